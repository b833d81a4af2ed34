"""Deliveries of outbox events to sinks, kept per (sink, event), and what relays share about sinks.

Why per-event state and not a cursor per sink: on PostgreSQL `outbox.seq` comes from
a sequence at INSERT time, so seq 7 can commit after seq 8 was read; a "delivered up
to seq 8" cursor would never send 7. Here the fan-out step looks for outbox rows
whose `distributed_at` is still NULL, which a late-committing row is until the
fan-out after its commit sees it; it makes one delivery row per sink in the same
transaction that marks the outbox row. Nothing depends on seq being dense or
committed in order, so nothing is skipped.

Fan-outs take turns (a transaction-scoped advisory lock on PostgreSQL; SQLite has one
writer at a time anyway), so deliveries appear in outbox order and two relays never
fan out one row twice. Claims use FOR UPDATE SKIP LOCKED on PostgreSQL so relay
processes share the work, and every claim is a lease with its own id: a relay that
dies leaves rows another picks up when the lease runs out, and a relay whose lease
was taken over can no longer settle the rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, literal, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from walletsvc.domain.event_delivery import (
    DEAD,
    PENDING,
    DeadLetter,
    Delivery,
    Distribution,
    JsonText,
    NewDelivery,
    RecordedEvent,
    SinkRoute,
    SinkState,
)
from walletsvc.services.event_delivery import GiveUp, Retry
from walletsvc.storage.tables import EventDeliveryRow, EventSinkRow, OutboxRow

# Any constant works; it only has to differ from other advisory locks in the database.
_FAN_OUT_LOCK = 0x77_6C_74_73_76_63_01  # "wltsvc" 1

# Distributing.next: mark a batch, return it in outbox order with `data` as its stored
# JSON text, and per row the sinks its customer has a pending delivery row for.
_NEXT_BATCH = """
WITH marked AS (
    UPDATE outbox SET distributed_at = $1
    WHERE seq IN (
        SELECT seq FROM outbox WHERE distributed_at IS NULL ORDER BY seq LIMIT $2
    )
    RETURNING seq, event_id, type, subject, partition_key, occurred_at, recorded_at,
        data::text AS data
), owed AS (
    SELECT partition_key, array_agg(DISTINCT sink) AS sinks
    FROM outbox_deliveries
    WHERE sink = ANY($3::text[]) AND state = 'pending'
        AND partition_key = ANY(ARRAY(SELECT partition_key FROM marked))
    GROUP BY partition_key
)
SELECT m.seq, m.event_id, m.type, m.subject, m.partition_key, m.occurred_at,
    m.recorded_at, m.data, owed.sinks
FROM marked AS m LEFT JOIN owed ON owed.partition_key = m.partition_key
ORDER BY m.seq
"""

_deliveries = EventDeliveryRow.__table__  # type: ignore[attr-defined]
_outbox = OutboxRow.__table__  # type: ignore[attr-defined]
_sinks = EventSinkRow.__table__  # type: ignore[attr-defined]


def _utc(value: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; every one we write is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Distributing:
    """One open distributing transaction (PostgreSQL): batches out, owed rows in."""

    def __init__(
        self,
        conn: AsyncConnection,
        sinks: list[str],
        now: datetime,
        held: frozenset[str],
        gone: frozenset[str],
    ) -> None:
        self._conn = conn
        self._sinks = sinks
        self._now = now
        self._held = held
        self._gone = gone
        self._driver: Any = None

    async def next(self, limit: int) -> Distribution | None:
        """Mark the next `limit` committed, undistributed events; return them, or None.

        One statement, one round trip: it marks the batch, returns it in outbox order
        and says, per customer in it, to which sinks an earlier event of theirs is
        still owed (a pending delivery row, including rows `owe` added earlier in this
        transaction). Read through asyncpg directly, with `data` as the stored JSON
        text (`JsonText`, pasted into the envelope undecoded): this is the relay's
        hot path, and the ORM's row and JSON processing was a good part of its CPU.
        """
        if self._driver is None:
            raw = await self._conn.get_raw_connection()
            self._driver = raw.driver_connection  # the asyncpg connection, in this transaction
        # A row committing meanwhile is left for the next batch (it is still
        # undistributed), whatever its seq. The owed lookup is one pass over the
        # sinks' delivery rows for the batch's keys (an array, made once), as the
        # separate query was: no per-row subquery a stale plan could make quadratic.
        rows = await self._driver.fetch(_NEXT_BATCH, self._now, limit, self._sinks)
        if not rows:
            return None
        events = []
        owed: set[tuple[str, str]] = set()
        for row in rows:
            seq, event_id, type_, subject, key, occurred_at, recorded_at, data, sinks = row
            events.append(
                RecordedEvent(
                    seq=seq,
                    id=event_id,
                    type=type_,
                    subject=subject,
                    partition_key=key,
                    occurred_at=_utc(occurred_at),
                    recorded_at=_utc(recorded_at),
                    data=JsonText(data),
                )
            )
            if sinks:
                owed.update((sink, key) for sink in sinks)
        return Distribution(events, self._held, self._gone, frozenset(owed))

    async def owe(self, owing: Sequence[NewDelivery]) -> None:
        """Insert the deliveries still owed after a batch's first attempt."""
        if not owing:
            return
        await self._conn.execute(
            insert(_deliveries),
            [
                {
                    "sink": new.sink,
                    "seq": new.seq,
                    "partition_key": new.partition_key,
                    "state": new.state,
                    "attempts": new.attempts,
                    "queued_at": new.queued_at,
                    "next_attempt_at": new.next_attempt_at,
                    "lease_id": new.lease_id,
                    "leased_until": new.leased_until,
                    "last_error": new.last_error,
                    "dead_at": new.dead_at,
                }
                for new in owing
            ],
        )


class SqlEventDeliveryStore:
    """EventDeliveryStore on SQLite or PostgreSQL; every method is its own transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        # Only PostgreSQL can keep a transaction open while events are sent: on SQLite
        # it would hold the one write lock, and every writer, for that long.
        self.distributes = self._postgres

    async def distribute(
        self,
        routes: Sequence[SinkRoute],
        now: datetime,
        work: Callable[[Distributing], Awaitable[int]],
    ) -> int:
        """Run `work` in one distributing transaction; return what it returns.

        `work` takes batches of committed, undistributed events (`Distributing.next`,
        which marks them distributed in this transaction), tries them on the sinks and
        records what is still owed (`Distributing.owe`). It all commits when `work`
        returns. Distributions and fan-outs take turns (the advisory lock), so what a
        batch is told is owed cannot grow meanwhile (a replay aside). If the relay dies
        first, nothing is recorded: the rows are undistributed still, and the next
        relay sends them again with the same ids (at least once).
        """
        if not self._postgres:
            raise NotImplementedError("distribute needs PostgreSQL; use fan_out")
        async with self._engine.begin() as conn:
            locked = await conn.scalar(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _FAN_OUT_LOCK}
            )
            if not locked:
                return 0  # another relay is distributing right now
            names = [route.name for route in routes]
            held: set[str] = set()
            gone: set[str] = set()
            for mark in (
                await conn.execute(
                    select(_sinks.c.name, _sinks.c.paused_until, _sinks.c.gone_at).where(
                        _sinks.c.name.in_(names)
                    )
                )
            ).all():
                if mark.gone_at is not None:
                    gone.add(mark.name)
                    held.add(mark.name)
                elif mark.paused_until is not None and _utc(mark.paused_until) > now:
                    held.add(mark.name)
            return await work(Distributing(conn, names, now, frozenset(held), frozenset(gone)))

    async def fan_out(self, routes: Sequence[SinkRoute], now: datetime, limit: int) -> int:
        """Make deliveries of up to `limit` committed, undistributed events; return the count."""
        async with self._engine.begin() as conn:
            if self._postgres:
                locked = await conn.scalar(
                    text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _FAN_OUT_LOCK}
                )
                if not locked:
                    return 0  # another relay is fanning out right now
            seqs = list(
                (
                    await conn.execute(
                        select(_outbox.c.seq)
                        .where(_outbox.c.distributed_at.is_(None))
                        .order_by(_outbox.c.seq)
                        .limit(limit)
                    )
                ).scalars()
            )
            if not seqs:
                return 0
            gone = set(
                (
                    await conn.execute(select(_sinks.c.name).where(_sinks.c.gone_at.is_not(None)))
                ).scalars()
            )
            for route in routes:
                # Copied inside the database, and by the seqs read above only: a row that
                # commits meanwhile is left for the next fan-out, for every sink alike.
                dead = route.name in gone  # a gone sink's events wait as dead letters
                rows = select(
                    literal(route.name),
                    _outbox.c.seq,
                    _outbox.c.partition_key,
                    literal(DEAD if dead else PENDING),
                    literal(0),
                    literal(now, _deliveries.c.queued_at.type),
                    literal(now, _deliveries.c.next_attempt_at.type),
                    literal("sink gone" if dead else None, _deliveries.c.last_error.type),
                    literal(now if dead else None, _deliveries.c.dead_at.type),
                ).where(_outbox.c.seq.in_(seqs))
                if route.types:
                    rows = rows.where(_outbox.c.type.in_(sorted(route.types)))
                columns = ["sink", "seq", "partition_key", "state", "attempts", "queued_at"]
                columns += ["next_attempt_at", "last_error", "dead_at"]
                await conn.execute(insert(_deliveries).from_select(columns, rows))
            await conn.execute(
                update(_outbox).where(_outbox.c.seq.in_(seqs)).values(distributed_at=now)
            )
            return len(seqs)

    async def claim(self, sink: str, now: datetime, lease: timedelta, limit: int) -> list[Delivery]:
        """Lease due deliveries, at most one per partition key and none behind an earlier one."""
        async with self._engine.begin() as conn:
            if await self._held(conn, sink, now):
                return []
            # The head of each customer's queue is its lowest pending seq; only heads are
            # claimable. One window pass over the sink's pending rows finds them whatever
            # the planner believes about this table, which fills and empties fast and so
            # often has stale statistics: joins and a correlated NOT EXISTS here turned
            # into quadratic nested loops on them.
            ranked = (
                select(
                    _deliveries.c.seq,
                    _deliveries.c.next_attempt_at,
                    _deliveries.c.leased_until,
                    func.row_number()
                    .over(partition_by=_deliveries.c.partition_key, order_by=_deliveries.c.seq)
                    .label("place"),
                )
                .where(_deliveries.c.sink == sink, _deliveries.c.state == PENDING)
                .subquery("ranked")
            )
            heads = list(
                (
                    await conn.execute(
                        select(ranked.c.seq)
                        .where(
                            ranked.c.place == 1,
                            ranked.c.next_attempt_at <= now,
                            or_(ranked.c.leased_until.is_(None), ranked.c.leased_until < now),
                        )
                        .order_by(ranked.c.seq)
                        # More than one batch: a relay claiming beside this one has the
                        # first heads locked, and this claim should find the next ones.
                        .limit(limit * 4)
                    )
                ).scalars()
            )
            if not heads:
                return []
            # Lock them; rows another relay claimed or settled meanwhile are skipped, or
            # fail the re-checked conditions, and stay theirs.
            free = or_(_deliveries.c.leased_until.is_(None), _deliveries.c.leased_until < now)
            candidates = (
                select(_deliveries.c.seq)
                .where(
                    _deliveries.c.sink == sink,
                    _deliveries.c.seq.in_(heads),
                    _deliveries.c.state == PENDING,
                    free,
                )
                .order_by(_deliveries.c.seq)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            seqs = list((await conn.execute(candidates)).scalars())
            lease_id = uuid.uuid4().hex
            await conn.execute(
                update(_deliveries)
                .where(
                    _deliveries.c.sink == sink,
                    _deliveries.c.seq.in_(seqs),
                    or_(_deliveries.c.leased_until.is_(None), _deliveries.c.leased_until < now),
                )
                .values(lease_id=lease_id, leased_until=now + lease)
            )
            rows = (
                await conn.execute(
                    select(
                        _deliveries.c.attempts,
                        _deliveries.c.queued_at,
                        _outbox.c.seq,
                        _outbox.c.event_id,
                        _outbox.c.type,
                        _outbox.c.subject,
                        _outbox.c.partition_key,
                        _outbox.c.occurred_at,
                        _outbox.c.recorded_at,
                        _outbox.c.data,
                    )
                    .join(_outbox, _outbox.c.seq == _deliveries.c.seq)
                    .where(_deliveries.c.sink == sink, _deliveries.c.lease_id == lease_id)
                    .order_by(_outbox.c.seq)
                )
            ).all()
        return [
            Delivery(
                sink=sink,
                event=RecordedEvent(
                    seq=row.seq,
                    id=row.event_id,
                    type=row.type,
                    subject=row.subject,
                    partition_key=row.partition_key,
                    occurred_at=_utc(row.occurred_at),
                    recorded_at=_utc(row.recorded_at),
                    data=row.data,
                ),
                attempts=row.attempts,
                queued_at=_utc(row.queued_at),
                lease_id=lease_id,
            )
            for row in rows
        ]

    async def settle(
        self,
        sink: str,
        delivered: Sequence[Delivery],
        retries: Sequence[Retry],
        dead: Sequence[GiveUp],
        now: datetime,
    ) -> None:
        """Record the outcome of a round; rows whose lease was lost since are left alone."""
        mine = and_(
            _deliveries.c.sink == sink,
            _deliveries.c.seq == bindparam("b_seq"),
            _deliveries.c.lease_id == bindparam("b_lease"),
        )
        async with self._engine.begin() as conn:
            by_lease: dict[str, list[int]] = {}
            for done in delivered:
                by_lease.setdefault(done.lease_id, []).append(done.event.seq)
            for lease_id, seqs in by_lease.items():  # one claim, one lease: one statement
                await conn.execute(
                    delete(_deliveries).where(
                        _deliveries.c.sink == sink,
                        _deliveries.c.lease_id == lease_id,
                        _deliveries.c.seq.in_(seqs),
                    )
                )
            if retries:
                await conn.execute(
                    update(_deliveries)
                    .where(mine)
                    .values(
                        attempts=_deliveries.c.attempts + 1,
                        next_attempt_at=bindparam("b_at"),
                        last_error=bindparam("b_error"),
                        lease_id=None,
                        leased_until=None,
                    ),
                    [
                        {
                            "b_seq": r.delivery.event.seq,
                            "b_lease": r.delivery.lease_id,
                            "b_at": r.at,
                            "b_error": r.error[:200],
                        }
                        for r in retries
                    ],
                )
            if dead:
                await conn.execute(
                    update(_deliveries)
                    .where(mine)
                    .values(
                        state=DEAD,
                        dead_at=now,
                        attempts=_deliveries.c.attempts + 1,
                        last_error=bindparam("b_error"),
                        lease_id=None,
                        leased_until=None,
                    ),
                    [
                        {
                            "b_seq": g.delivery.event.seq,
                            "b_lease": g.delivery.lease_id,
                            "b_error": g.error[:200],
                        }
                        for g in dead
                    ],
                )

    async def pause(self, sink: str, until: datetime, now: datetime) -> None:
        """Send nothing to `sink` before `until` (all processes)."""
        async with self._engine.begin() as conn:
            await self._upsert_sink(conn, sink, now, paused_until=until)

    async def mark_gone(self, sink: str, reason: str, now: datetime) -> int:
        """Stop `sink`: its owed deliveries become dead letters; return how many."""
        async with self._engine.begin() as conn:
            await self._upsert_sink(conn, sink, now, gone_at=now, gone_reason=reason[:200])
            result = await conn.execute(
                update(_deliveries)
                .where(_deliveries.c.sink == sink, _deliveries.c.state == PENDING)
                .values(
                    state=DEAD,
                    dead_at=now,
                    last_error=reason[:200],
                    lease_id=None,
                    leased_until=None,
                )
            )
            return int(result.rowcount)

    async def revive(self, sink: str, now: datetime) -> bool:
        """Let a gone sink take events again; True when it was gone."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(_sinks)
                .where(_sinks.c.name == sink, _sinks.c.gone_at.is_not(None))
                .values(gone_at=None, gone_reason=None, paused_until=None, updated_at=now)
            )
            return bool(result.rowcount)

    async def states(self, sinks: Sequence[str]) -> list[SinkState]:
        """Return each sink's pause, gone mark and pending and dead counts."""
        async with self._engine.connect() as conn:
            marks = {
                row.name: row
                for row in (
                    await conn.execute(select(_sinks).where(_sinks.c.name.in_(list(sinks))))
                ).all()
            }
            counts: dict[tuple[str, str], int] = {
                (row.sink, row.state): int(row.n)
                for row in (
                    await conn.execute(
                        select(_deliveries.c.sink, _deliveries.c.state, func.count().label("n"))
                        .where(_deliveries.c.sink.in_(list(sinks)))
                        .group_by(_deliveries.c.sink, _deliveries.c.state)
                    )
                ).all()
            }
        states = []
        for name in sinks:
            mark = marks.get(name)
            states.append(
                SinkState(
                    name=name,
                    paused_until=_utc(mark.paused_until) if mark and mark.paused_until else None,
                    gone_at=_utc(mark.gone_at) if mark and mark.gone_at else None,
                    gone_reason=mark.gone_reason if mark else None,
                    pending=counts.get((name, PENDING), 0),
                    dead=counts.get((name, DEAD), 0),
                )
            )
        return states

    async def dead_letters(self, sink: str | None, limit: int) -> list[DeadLetter]:
        """Return dead letters, oldest event first."""
        query = (
            select(
                _deliveries.c.sink,
                _deliveries.c.attempts,
                _deliveries.c.last_error,
                _deliveries.c.queued_at,
                _deliveries.c.dead_at,
                _outbox.c.seq,
                _outbox.c.event_id,
                _outbox.c.type,
            )
            .join(_outbox, _outbox.c.seq == _deliveries.c.seq)
            .where(_deliveries.c.state == DEAD)
            .order_by(_outbox.c.seq, _deliveries.c.sink)
            .limit(limit)
        )
        if sink is not None:
            query = query.where(_deliveries.c.sink == sink)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            DeadLetter(
                sink=row.sink,
                event_id=row.event_id,
                type=row.type,
                seq=row.seq,
                attempts=row.attempts,
                last_error=row.last_error,
                queued_at=_utc(row.queued_at),
                dead_at=_utc(row.dead_at) if row.dead_at else None,
            )
            for row in rows
        ]

    async def replay(self, event_ids: Sequence[str] | None, sink: str | None, now: datetime) -> int:
        """Make dead letters owed again (all of them when `event_ids` is None); return how many."""
        conditions: list[Any] = [_deliveries.c.state == DEAD]
        if sink is not None:
            conditions.append(_deliveries.c.sink == sink)
        if event_ids is not None:
            conditions.append(
                _deliveries.c.seq.in_(
                    select(_outbox.c.seq).where(_outbox.c.event_id.in_(list(event_ids)))
                )
            )
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(_deliveries)
                .where(*conditions)
                .values(
                    state=PENDING,
                    attempts=0,
                    queued_at=now,  # a replay gets a whole new horizon
                    next_attempt_at=now,
                    dead_at=None,
                    lease_id=None,
                    leased_until=None,
                )
            )
            return int(result.rowcount)

    async def _held(self, conn: AsyncConnection, sink: str, now: datetime) -> bool:
        mark = (
            await conn.execute(
                select(_sinks.c.paused_until, _sinks.c.gone_at).where(_sinks.c.name == sink)
            )
        ).first()
        if mark is None:
            return False
        return mark.gone_at is not None or (
            mark.paused_until is not None and _utc(mark.paused_until) > now
        )

    async def _upsert_sink(
        self, conn: AsyncConnection, sink: str, now: datetime, **values: object
    ) -> None:
        dialect: Any = postgresql if self._postgres else sqlite
        statement = dialect.insert(_sinks).values(name=sink, updated_at=now, **values)
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[_sinks.c.name], set_={"updated_at": now, **values}
            )
        )
