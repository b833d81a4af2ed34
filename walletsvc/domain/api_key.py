"""API keys: who is calling the server-to-server API and what they may do."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from walletsvc.domain.errors import Forbidden, InvalidInput, NotFound


class Scope(StrEnum):
    """What a key allows. `ADMIN` allows everything."""

    ADMIN = "admin"
    API_KEYS_WRITE = "api-keys:write"
    PROGRAMS_READ = "programs:read"
    PROGRAMS_WRITE = "programs:write"
    STORES_WRITE = "stores:write"
    CUSTOMERS_READ = "customers:read"
    CUSTOMERS_WRITE = "customers:write"
    PASSES_READ = "passes:read"
    PASSES_WRITE = "passes:write"
    LOYALTY_READ = "loyalty:read"
    LOYALTY_WRITE = "loyalty:write"
    GEOFENCE_WRITE = "geofence:write"
    METRICS_READ = "metrics:read"
    DASHBOARD_READ = "dashboard:read"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a key's id, its scopes and the program it is bound to."""

    key_id: str
    name: str
    scopes: frozenset[Scope]
    program_id: str | None = None  # None: the key may act on every program

    def has(self, scope: Scope) -> bool:
        """Tell whether the key holds `scope`."""
        return Scope.ADMIN in self.scopes or scope in self.scopes

    def require(self, scope: Scope) -> None:
        """Refuse the call unless the key holds `scope`."""
        if not self.has(scope):
            raise Forbidden(f"this API key lacks the scope {scope.value!r}", reason="missing_scope")

    def require_program(self, program_id: str) -> None:
        """Refuse access to another program's data as if it did not exist."""
        if self.program_id is not None and self.program_id != program_id:
            # 404, not 403: a key must not learn which ids other programs use.
            raise NotFound("no such resource", reason="not_found")


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """Return the scopes named, refusing unknown names."""
    scopes = set()
    for value in values:
        try:
            scopes.add(Scope(value))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise InvalidInput(f"unknown scope {value!r}; known: {known}", field="scopes") from None
    if not scopes:
        raise InvalidInput("a key needs at least one scope", field="scopes")
    return frozenset(scopes)


def check_grant(granter: Principal, scopes: frozenset[Scope], program_id: str | None) -> None:
    """A key may only hand out scopes and programs it holds itself."""
    if granter.program_id is not None and program_id != granter.program_id:
        raise Forbidden("a program key can only create keys for its own program", field="program")
    missing = [s.value for s in scopes if not granter.has(s)]
    if missing:
        raise Forbidden(f"cannot grant scopes this key does not hold: {', '.join(missing)}")
