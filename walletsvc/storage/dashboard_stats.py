"""The operator dashboard's figures (services/dashboard.py), read at request time.

Event figures are GROUP BYs over the outbox within a time window, found through the
(type, recorded_at) index; days are the UTC date the service recorded an event, so a
till whose clock is wrong cannot put its scans on another day or outside the window.
The rest are GROUP BYs over small or indexed tables. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from walletsvc.domain.event import EventType
from walletsvc.services.dashboard import (
    ProgramFigures,
    ProgramSummary,
    ServiceFigures,
    SinkFigures,
)
from walletsvc.storage.tables import (
    ApplePushRow,
    CallbackRejectionRow,
    CustomerRow,
    EventDeliveryRow,
    GoogleObjectRow,
    OutboxRow,
    PassRow,
    ProgramRow,
    StoreRow,
)

_outbox = OutboxRow.__table__  # type: ignore[attr-defined]
_deliveries = EventDeliveryRow.__table__  # type: ignore[attr-defined]
_passes = PassRow.__table__  # type: ignore[attr-defined]
_programs = ProgramRow.__table__  # type: ignore[attr-defined]
_stores = StoreRow.__table__  # type: ignore[attr-defined]
_customers = CustomerRow.__table__  # type: ignore[attr-defined]
_push = ApplePushRow.__table__  # type: ignore[attr-defined]
_google = GoogleObjectRow.__table__  # type: ignore[attr-defined]
_callbacks = CallbackRejectionRow.__table__  # type: ignore[attr-defined]

# Bounds on what one page may list, whatever the data holds.
MAX_STORES = 200
MAX_REASONS = 20


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands timestamps back without a zone; every one we write is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _day(conn: AsyncConnection, column: Any) -> Any:
    """Return the UTC date of a timestamp column as "YYYY-MM-DD", on either backend."""
    if conn.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)  # SQLite keeps UTC timestamps as text


class SqlDashboardStats:
    """DashboardStats on SQLite or PostgreSQL; each read is one read-only connection."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def programs(self) -> list[ProgramSummary]:
        """Return every program, by id, with its tiers lowest first."""
        query = select(_programs.c.id, _programs.c.name, _programs.c.tiers, _programs.c.apple)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query.order_by(_programs.c.id))).all()
        return [
            ProgramSummary(
                id=row.id,
                name=row.name,
                tiers=tuple(
                    str(tier["name"])
                    for tier in sorted(row.tiers, key=lambda tier: int(tier.get("min_points", 0)))
                ),
                pass_type_id=str((row.apple or {}).get("pass_type_identifier", "")),
            )
            for row in rows
        ]

    async def program_figures(self, program: ProgramSummary, since: datetime) -> ProgramFigures:
        """Return one program's figures for events recorded since `since`."""
        async with self._engine.connect() as conn:

            async def rows(query: Any) -> list[Any]:
                return list((await conn.execute(query)).all())

            day = _day(conn, _outbox.c.recorded_at)
            platform = _outbox.c.data["platform"].as_string()
            # Removals the push worker records carry no program: the pass tells it.
            serial = _outbox.c.data["serial"].as_string()
            installs = await rows(
                select(_outbox.c.type, day, platform, func.count())
                .join(_passes, _passes.c.serial == serial)
                .where(
                    _outbox.c.type.in_([EventType.PASS_INSTALLED, EventType.PASS_REMOVED]),
                    _outbox.c.recorded_at >= since,
                    _passes.c.program_id == program.id,
                )
                .group_by(_outbox.c.type, day, platform)
            )
            in_program = _outbox.c.data["program"].as_string() == program.id
            store = _outbox.c.data["store_id"].as_string()
            per_store = await rows(
                select(_outbox.c.type, store, func.count())
                .where(
                    _outbox.c.type.in_([EventType.PASS_SCANNED, EventType.STORE_ENTERED]),
                    _outbox.c.recorded_at >= since,
                    in_program,
                )
                .group_by(_outbox.c.type, store)
                .limit(2 * MAX_STORES)
            )
            coupons = await rows(
                select(day, func.count())
                .where(
                    _outbox.c.type == EventType.COUPON_REDEEMED,
                    _outbox.c.recorded_at >= since,
                    in_program,
                )
                .group_by(day)
            )
            stores = await rows(
                select(_stores.c.id, _stores.c.name)
                .where(_stores.c.program_id == program.id)
                .order_by(_stores.c.id)
                .limit(MAX_STORES)
            )
            tiers = await rows(
                select(_customers.c.tier, func.count())
                .where(
                    _customers.c.program_id == program.id,
                    _customers.c.merged_into.is_(None),
                    _customers.c.erased_at.is_(None),
                )
                .group_by(_customers.c.tier)
            )
            pushes = await rows(
                select(_push.c.last_error, func.count(), func.sum(_push.c.attempts))
                .where(_push.c.pass_type_id == program.pass_type_id)
                .group_by(_push.c.last_error)
            )
            google = await rows(
                select(_google.c.state, _google.c.error_field, func.count())
                .join(_passes, _passes.c.serial == _google.c.serial)
                .where(_passes.c.program_id == program.id)
                .group_by(_google.c.state, _google.c.error_field)
            )
        figures = ProgramFigures(
            stores={row.id: row.name for row in stores},
            tiers={str(tier): int(n) for tier, n in tiers},
            coupons={str(d): int(n) for d, n in coupons},
        )
        for kind, d, where, n in installs:
            target = figures.installs if kind == EventType.PASS_INSTALLED else figures.removals
            target[(str(d), str(where))] = int(n)
        for kind, store_id, n in per_store:
            counts = figures.scans if kind == EventType.PASS_SCANNED else figures.visits
            counts[str(store_id)] = int(n)
        owed = failing = 0
        for error, n, attempts in pushes:
            owed += int(n)
            if error is not None or int(attempts or 0) > 0:
                failing += int(n)
            if error is not None and len(figures.apns_errors) < MAX_REASONS:
                figures.apns_errors[str(error)] = int(n)
        for state, error_field, n in google:
            figures.google_states[str(state)] = figures.google_states.get(str(state), 0) + int(n)
            if state == "error" and len(figures.google_error_fields) < MAX_REASONS:
                # The field Google refused, never its message (which may quote a value).
                name = str(error_field or "-")
                figures.google_error_fields[name] = figures.google_error_fields.get(name, 0) + int(
                    n
                )
        return replace(figures, apns_owed=owed, apns_failing=failing)

    async def service_figures(self, sinks: Sequence[str]) -> ServiceFigures:
        """Return what each sink is owed, events not yet fanned out, and callback refusals."""
        async with self._engine.connect() as conn:
            owed = (
                await conn.execute(
                    select(
                        _deliveries.c.sink,
                        _deliveries.c.state,
                        func.count(),
                        func.min(_outbox.c.recorded_at),
                    )
                    .join(_outbox, _outbox.c.seq == _deliveries.c.seq)
                    .where(_deliveries.c.sink.in_(list(sinks)))
                    .group_by(_deliveries.c.sink, _deliveries.c.state)
                )
            ).all()
            # The partial index ix_outbox_undistributed holds exactly these rows.
            undistributed = (
                await conn.execute(
                    select(func.count(), func.min(_outbox.c.recorded_at)).where(
                        _outbox.c.distributed_at.is_(None)
                    )
                )
            ).one()
            callbacks = (
                await conn.execute(
                    select(_callbacks.c.source, _callbacks.c.reason, _callbacks.c.total)
                    .order_by(_callbacks.c.total.desc())
                    .limit(MAX_REASONS)
                )
            ).all()
        counts = {(sink, state): (int(n), _utc(oldest)) for sink, state, n, oldest in owed}
        figures = []
        for name in sinks:
            pending, oldest = counts.get((name, "pending"), (0, None))
            dead, _ = counts.get((name, "dead"), (0, None))
            figures.append(SinkFigures(name, pending, dead, oldest))
        count, oldest = undistributed
        return ServiceFigures(
            sinks=tuple(figures),
            # Without a sink nothing is owed: no relay fans events out then.
            undistributed=int(count) if sinks else 0,
            undistributed_oldest_at=_utc(oldest) if sinks else None,
            callback_rejections={(str(s), str(r)): int(n) for s, r, n in callbacks},
        )
