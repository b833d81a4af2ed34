"""Bulk import of customers (a CSV from the brand's CRM): each row an upsert, bad rows reported.

A row is created or updated by external id exactly as `POST /api/v1/customers` does,
in a transaction of its own, so a bad row never holds back the good ones and an
import cut off half-way can simply be run again. Reports name a row by its line and
external id and say what was wrong; they never repeat an email or phone number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from walletsvc.domain.api_key import Principal
from walletsvc.domain.customer import Consents
from walletsvc.domain.errors import DomainError, InvalidInput
from walletsvc.services.context import ServiceContext
from walletsvc.services.customers import CustomerDraft, upsert_customer

COLUMNS = ("external_id", "email", "phone", "location_consent", "marketing_consent")
_TRUE = frozenset({"true", "yes", "ja", "1", "y", "j"})
_FALSE = frozenset({"false", "no", "nein", "0", "n"})


@dataclass(frozen=True)
class RejectedRow:
    """A row that was not imported, and why."""

    line: int
    external_id: str
    reason: str
    field: str | None
    detail: str


@dataclass
class ImportReport:
    """What an import did."""

    created: int = 0
    updated: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Return how many rows were read."""
        return self.created + self.updated + len(self.rejected)


def check_columns(header: Iterable[str]) -> None:
    """Refuse a file whose header names unknown columns or lacks external_id."""
    names = [name.strip() for name in header]
    unknown = [name for name in names if name not in COLUMNS]
    if unknown or "external_id" not in names:
        raise InvalidInput(
            f"the header must name external_id and only these columns: {', '.join(COLUMNS)}"
            + (f" (unknown: {', '.join(unknown)})" if unknown else ""),
            field="header",
        )


async def import_customers(
    ctx: ServiceContext,
    principal: Principal,
    rows: Iterable[tuple[int, Mapping[str, str | None]]],
    *,
    program: str | None,
    progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Upsert every (line, row) and return the report."""
    report = ImportReport()
    for line, row in rows:
        external_id = (row.get("external_id") or "").strip()
        try:
            draft = CustomerDraft(
                external_id=external_id,
                program=program,
                email=_text(row.get("email")),
                phone=_text(row.get("phone")),
                consents=_consents(row),
            )
            _, created = await upsert_customer(ctx, principal, draft)
        except DomainError as error:
            report.rejected.append(
                RejectedRow(line, external_id, error.reason, error.field, error.detail)
            )
        else:
            if created:
                report.created += 1
            else:
                report.updated += 1
        if progress is not None:
            progress(report)
    return report


def _text(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _consents(row: Mapping[str, str | None]) -> Consents | None:
    """Return the row's consents; both columns empty keeps what is recorded."""
    location = _flag(row.get("location_consent"), "location_consent")
    marketing = _flag(row.get("marketing_consent"), "marketing_consent")
    if location is None and marketing is None:
        return None
    # A consent left empty beside one that is given is read as not given: consent is opt-in.
    return Consents(location=bool(location), marketing=bool(marketing))


def _flag(value: str | None, name: str) -> bool | None:
    text = (value or "").strip().lower()
    if not text:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidInput(f"{name} must be true or false (or empty to keep it)", field=name)
