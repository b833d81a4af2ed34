"""The operator dashboard: who may see it, and the figures it shows for one program.

Signing in turns an API key holding `dashboard:read` into a session naming the key's
id (domain/dashboard_session.py); every request opens the session again and looks
the key up, so a revoked key or a lost scope ends the session at once. The figures
come from a `DashboardStats` port (storage/dashboard_stats.py) read at request time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from walletsvc.domain.api_key import Principal, Scope
from walletsvc.domain.dashboard_session import (
    make_session_token,
    read_session_token,
    session_is_genuine,
)
from walletsvc.domain.errors import NotFound
from walletsvc.services.api_keys import (
    BOOTSTRAP_KEY_ID,
    authenticate,
    bootstrap_principal,
    hash_secret,
)
from walletsvc.services.context import ServiceContext

WINDOW_DAYS = 30


@dataclass(frozen=True)
class ProgramSummary:
    """A program as the selector lists it, with what its figures are read by."""

    id: str
    name: str
    tiers: tuple[str, ...]  # lowest first
    pass_type_id: str


@dataclass(frozen=True)
class ProgramFigures:
    """One program's figures over the window; days are UTC dates, "YYYY-MM-DD"."""

    installs: dict[tuple[str, str], int] = field(default_factory=dict)  # (day, platform)
    removals: dict[tuple[str, str], int] = field(default_factory=dict)  # (day, platform)
    stores: dict[str, str] = field(default_factory=dict)  # id -> name, every store
    scans: dict[str, int] = field(default_factory=dict)  # by store id
    visits: dict[str, int] = field(default_factory=dict)  # store_entered, by store id
    coupons: dict[str, int] = field(default_factory=dict)  # redemptions by day
    tiers: dict[str, int] = field(default_factory=dict)  # customers by tier, now
    apns_owed: int = 0  # pushes queued for the program's pass type
    apns_failing: int = 0  # of those, ones APNs already refused or did not answer
    apns_errors: dict[str, int] = field(default_factory=dict)  # by last error ("410 ...")
    google_states: dict[str, int] = field(default_factory=dict)  # objects by sync state
    google_error_fields: dict[str, int] = field(default_factory=dict)  # field Google refused


@dataclass(frozen=True)
class SinkFigures:
    """What one event sink is owed."""

    name: str
    pending: int = 0
    dead: int = 0
    oldest_owed_at: datetime | None = None  # when the oldest owed event was recorded


@dataclass(frozen=True)
class ServiceFigures:
    """Figures that span every program (shown only to keys bound to none)."""

    sinks: tuple[SinkFigures, ...] = ()
    undistributed: int = 0  # events not yet handed to the sinks
    undistributed_oldest_at: datetime | None = None
    callback_rejections: dict[tuple[str, str], int] = field(default_factory=dict)


class DashboardStats(Protocol):
    """Reads the dashboard's figures from the database, bounded by a time window."""

    async def programs(self) -> list[ProgramSummary]: ...

    async def program_figures(self, program: ProgramSummary, since: datetime) -> ProgramFigures: ...

    async def service_figures(self, sinks: Sequence[str]) -> ServiceFigures: ...


@dataclass(frozen=True)
class Dashboard:
    """Everything one page shows."""

    program: ProgramSummary
    choices: tuple[ProgramSummary, ...]  # the programs the viewer may pick
    days: tuple[str, ...]  # the window, oldest first
    figures: ProgramFigures
    service: ServiceFigures | None  # None for a key bound to one program
    now: datetime


async def sign_in(
    ctx: ServiceContext,
    session_keys: Sequence[bytes],
    presented: str,
    bootstrap_key: str | None,
    ttl: timedelta,
) -> tuple[Principal, str]:
    """Return the key's principal and a new session token; refuse keys without the scope."""
    principal = await authenticate(ctx, presented, bootstrap_key)
    principal.require(Scope.DASHBOARD_READ)
    binding = await _binding(ctx, principal.key_id, bootstrap_key)
    assert binding is not None  # authenticate just found the key
    token = make_session_token(session_keys[0], principal.key_id, ctx.clock() + ttl, binding)
    return principal, token


async def open_session(
    ctx: ServiceContext, session_keys: Sequence[bytes], token: str, bootstrap_key: str | None
) -> Principal | None:
    """Return who a session cookie stands for; None if forged, expired or the key is gone.

    The scope is not checked here: a key that lost it gets 403, not the sign-in page.
    """
    session = read_session_token(token, ctx.clock())
    if session is None:
        return None
    binding = await _binding(ctx, session.key_id, bootstrap_key)
    if binding is None or not session_is_genuine(session_keys, token, binding):
        return None
    if session.key_id == BOOTSTRAP_KEY_ID:
        return bootstrap_principal()
    async with ctx.uow() as uow:
        stored = await uow.api_keys.get(session.key_id)
    if stored is None or stored.revoked_at is not None:
        return None
    return Principal(
        key_id=stored.id, name=stored.name, scopes=stored.scopes, program_id=stored.program_id
    )


async def _binding(ctx: ServiceContext, key_id: str, bootstrap_key: str | None) -> str | None:
    # What the session's MAC covers beyond the id: the current hash of that key's secret.
    if key_id == BOOTSTRAP_KEY_ID:
        return hash_secret(bootstrap_key) if bootstrap_key else None
    async with ctx.uow() as uow:
        stored = await uow.api_keys.get(key_id)
    if stored is None or stored.revoked_at is not None:
        return None
    return stored.secret_hash


async def read_dashboard(
    stats: DashboardStats,
    principal: Principal,
    program_id: str | None,
    sinks: Sequence[str],
    now: datetime,
) -> Dashboard:
    """Return the dashboard of one program the viewer may see (the first, unless chosen)."""
    principal.require(Scope.DASHBOARD_READ)
    programs = await stats.programs()
    if principal.program_id is not None:
        programs = [p for p in programs if p.id == principal.program_id]
    if program_id is None and programs:
        program = programs[0]
    else:
        found = [p for p in programs if p.id == program_id]
        if not found:
            # 404 for another program's id too: a bound key must not learn which exist.
            raise NotFound("no such program", reason="unknown_program")
        program = found[0]
    days = window(now)
    since = datetime.fromisoformat(days[0]).replace(tzinfo=UTC)
    figures = await stats.program_figures(program, since)
    service = await stats.service_figures(sinks) if principal.program_id is None else None
    return Dashboard(program, tuple(programs), days, figures, service, now)


def window(now: datetime) -> tuple[str, ...]:
    """Return the window's UTC days, oldest first, today last."""
    today = now.astimezone(UTC).date()
    return tuple(
        (today - timedelta(days=back)).isoformat() for back in range(WINDOW_DAYS - 1, -1, -1)
    )
