"""The relay: hands committed outbox rows to every sink, each at its own pace.

Two steps, each safe to run in any number of processes at once:

1. distribution: committed outbox rows not yet distributed are read in outbox order
   and, on PostgreSQL, sent to every sink at once, inside the transaction that marks
   them distributed: the first attempt. Only what is still owed after it becomes a
   delivery row (one per sink and event): a failure, a reply still awaited when the
   wait ran out, or an event that may not go yet (its customer has an earlier one
   owed to that sink, the sink is paused or unreachable). On SQLite, where an open
   transaction holds every writer, this step only makes the delivery rows (fan-out).
   walletsvc/storage/event_deliveries.py says why rows are marked, and no cursor
   per sink is kept.
2. per sink: claim due deliveries under a lease (never one whose customer has an
   earlier event still owed to that sink), send them, settle the replies.

The first attempt is what makes the relay fast: an event delivered at once costs its
share of one statement a batch (marking, reading, the owed lookup) and of encoding
(its stored `data` text pasted as it is), no delivery row written, claimed and deleted.

Replies: delivered rows go; failures come back after exponential back-off with
full jitter, or after the Retry-After of a 429, which also pauses the whole sink;
after the horizon a failing delivery becomes a dead letter; a 410 Gone stops the
sink and turns what it was owed into dead letters, loudly. All of this lives in the
database, so relays in several processes act as one.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import structlog

from walletsvc.domain.event_delivery import (
    DEAD,
    PENDING,
    Delivery,
    DeliveryOutcome,
    DeliveryReply,
    Distribution,
    NewDelivery,
    OutgoingEvent,
    SinkRoute,
)
from walletsvc.outbox.envelope import encode
from walletsvc.services.event_delivery import (
    DistributingBatches,
    EventDeliveryStore,
    EventSink,
    GiveUp,
    Retry,
)

log = structlog.get_logger("walletsvc.events")

# The longest an idle sink loop waits between two claims when nothing wakes it.
_IDLE_MAX_S = 2.0


@dataclass(frozen=True)
class RelayPolicy:
    """How the relay batches, leases, backs off and gives up."""

    # Events per first attempt and per claim: also the most a killed relay resends.
    batch: int = 200
    # Rounds in flight per sink: one claims and settles while another waits on the
    # network. Safe for order: a customer's next event is claimable only once the one
    # before it is settled.
    workers: int = 2
    fan_out_batch: int = 1000
    lease: timedelta = timedelta(seconds=60)
    first_retry: timedelta = timedelta(seconds=2)
    max_retry: timedelta = timedelta(hours=1)
    horizon: timedelta = timedelta(days=3)
    max_retry_after: timedelta = timedelta(hours=24)
    idle_wait_s: float = 0.5
    # How long a distribution waits for a sink's replies to its first attempt. What is
    # still unanswered then is recorded as leased to this relay and settled when the
    # replies come, so one slow sink does not hold up the others' next events.
    first_attempt_wait: timedelta = timedelta(seconds=2)


@dataclass
class _Round:
    """One batch of a distribution: its first attempts in flight and its rows owed."""

    started: float
    owed: list[NewDelivery] = field(default_factory=list)
    sends: list[tuple[str, list[Delivery], asyncio.Task[list[DeliveryReply]]]] = field(
        default_factory=list
    )
    keys: dict[str, set[str]] = field(default_factory=dict)  # per sink, partitions


def utc_now() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


class EventRelay:
    """Moves events from the outbox to the sinks until told to stop."""

    def __init__(
        self,
        store: EventDeliveryStore,
        sinks: Sequence[EventSink],
        *,
        source: str,
        policy: RelayPolicy | None = None,
        clock: Callable[[], datetime] = utc_now,
        on_close: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        names = [sink.route.name for sink in sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"sink names must differ: {names}")
        self.store = store
        self.sinks = list(sinks)
        self.source = source
        self.policy = policy or RelayPolicy()
        self._clock = clock
        self._on_close = list(on_close)
        self._wake: list[asyncio.Event] = []
        self._started = False
        # Per sink, a first attempt that outlived its wait and is settled when it ends.
        # Until then that sink gets no other first attempt (its events become rows).
        self._late: dict[str, asyncio.Task[None]] = {}
        self._late_new: dict[
            str, tuple[str, list[Delivery], asyncio.Task[list[DeliveryReply]]]
        ] = {}
        self._unfinished: list[asyncio.Task[list[DeliveryReply]]] = []

    @property
    def routes(self) -> list[SinkRoute]:
        """Return every sink's name and types."""
        return [sink.route for sink in self.sinks]

    async def start(self) -> None:
        """Start the sinks' connections and say which sinks are stopped (410) and why."""
        for sink in self.sinks:
            await sink.start()
        for state in await self.store.states([route.name for route in self.routes]):
            if state.gone_at is not None:
                log.error(
                    "events.sink.gone",
                    sink=state.name,
                    since=state.gone_at.isoformat(),
                    reason=state.gone_reason,
                    dead=state.dead,
                    hint=f"fix the endpoint, then `walletsvc events revive {state.name}` "
                    f"and `walletsvc events replay --all --sink {state.name}`",
                )
        self._started = True

    async def run(self, stop: asyncio.Event) -> None:
        """Fan out and deliver until `stop` is set."""
        if not self._started:
            await self.start()
        loops = [self._fan_out_loop(stop)] + [
            self._sink_loop(sink, stop) for sink in self.sinks for _ in range(self.policy.workers)
        ]
        await asyncio.gather(*loops)
        await self._settle_late()

    async def close(self) -> None:
        """Close the sinks and whatever outbound clients were made for them."""
        await self._settle_late()
        for sink in self.sinks:
            await sink.close()
        for close in self._on_close:
            await close()

    async def fan_out_once(self) -> int:
        """Make the deliveries of one batch of committed events; return how many events."""
        count = await self.store.fan_out(self.routes, self._clock(), self.policy.fan_out_batch)
        if count:
            for wake in self._wake:
                wake.set()
        return count

    async def distribute_once(self) -> int:
        """Distribute committed events, with a first attempt where the store allows it
        (PostgreSQL); return how many events.

        One transaction takes up to `workers` x `batch` events (and `fan_out_batch`),
        `batch` at a time, the next read while the one before is being sent: the database and the
        sinks work at once. It commits when every batch is answered (or left leased),
        so a relay killed meanwhile leaves all of them undistributed, to be sent again.
        """
        if not self.store.distributes:
            return await self.fan_out_once()
        now = self._clock()
        lease_id = uuid.uuid4().hex
        failed: list[tuple[str, list[Delivery], list[DeliveryReply]]] = []
        waiting = [False]  # pending rows were made: wake the claims after the commit
        committed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        policy = self.policy

        # A relay killed mid-distribution resends all of it: no more than the `workers`
        # batches a claiming relay may have in flight.
        most = min(policy.fan_out_batch, policy.batch * policy.workers)

        async def work(batches: DistributingBatches) -> int:
            count = 0
            rounds: deque[_Round] = deque()
            sending: dict[str, Counter[str]] = {sink.route.name: Counter() for sink in self.sinks}
            while count < most:
                limit = min(policy.batch, most - count)
                distribution = await batches.next(limit)
                if distribution is None:
                    break
                count += len(distribution.events)
                rounds.append(self._start_round(distribution, now, lease_id, sending))
                if len(rounds) >= policy.workers:
                    await self._finish_round(rounds.popleft(), batches, sending, failed, waiting)
                if len(distribution.events) < limit:
                    break  # caught up: commit what is in flight rather than wait for more
            while rounds:
                await self._finish_round(rounds.popleft(), batches, sending, failed, waiting)
            return count

        try:
            count = await self.store.distribute(self.routes, now, work)
            committed.set_result(True)
        finally:
            if not committed.done():  # rolled back: all of it is sent again later
                committed.set_result(False)
            for task in self._unfinished:
                task.cancel()
            self._unfinished.clear()
            for name, late in self._late_new.items():
                self._late[name] = asyncio.create_task(self._settle_when_answered(*late, committed))
            self._late_new.clear()
        for name, deliveries, replies in failed:
            await self._settle(name, deliveries, replies)
        if waiting[0]:
            for wake in self._wake:
                wake.set()
        return count

    def _start_round(
        self,
        distribution: Distribution,
        now: datetime,
        lease_id: str,
        sending: dict[str, Counter[str]],
    ) -> _Round:
        """Send what may go now to every sink at once; keep the rest as rows owed.

        An event goes on its first attempt when its sink is reachable and not paused,
        and no earlier event of its customer is owed to that sink: no delivery row
        (read in this transaction; distributions take turns, so none appears
        meanwhile), no event of an earlier batch still being sent, nothing earlier in
        this batch. Whatever else the sink takes waits as a pending row, due now.
        """
        round_ = _Round(started=asyncio.get_running_loop().time())
        encoded: dict[int, OutgoingEvent] = {}
        for sink in self.sinks:
            route = sink.route
            name = route.name
            late = self._late.get(name)
            free = (
                name not in distribution.held
                and (late is None or late.done())
                and name not in self._late_new
                and sink.check() == "ok"
            )
            busy = sending[name]
            first: list[Delivery] = []
            seen: set[str] = set()
            for event in distribution.events:
                if not route.wants(event.type):
                    continue
                key = event.partition_key
                if name in distribution.gone:  # a gone sink's events wait as dead letters
                    gone = NewDelivery(name, event.seq, key, DEAD, 0, now, now)
                    round_.owed.append(replace(gone, last_error="sink gone", dead_at=now))
                    continue
                if (
                    free
                    and key not in seen
                    and not busy[key]
                    and (name, key) not in (distribution.owed)
                ):
                    first.append(Delivery(name, event, 0, now, lease_id))
                else:
                    round_.owed.append(NewDelivery(name, event.seq, key, PENDING, 0, now, now))
                seen.add(key)
            busy.update(seen)
            round_.keys[name] = seen
            if first:
                outgoing = []
                for delivery in first:
                    seq = delivery.event.seq
                    if seq not in encoded:
                        encoded[seq] = encode(delivery.event, self.source)
                    outgoing.append(encoded[seq])
                task = asyncio.ensure_future(_send(sink, outgoing))
                self._unfinished.append(task)
                round_.sends.append((name, first, task))
        return round_

    async def _finish_round(
        self,
        round_: _Round,
        batches: DistributingBatches,
        sending: dict[str, Counter[str]],
        failed: list[tuple[str, list[Delivery], list[DeliveryReply]]],
        waiting: list[bool],
    ) -> None:
        """Wait for a round's replies (up to `first_attempt_wait`); record what is owed."""
        owed = round_.owed
        if round_.sends:
            left = self.policy.first_attempt_wait.total_seconds() - (
                asyncio.get_running_loop().time() - round_.started
            )
            await asyncio.wait([task for _, _, task in round_.sends], timeout=max(left, 0.0))
        for name, first, task in round_.sends:
            lease_id, lease_until = first[0].lease_id, first[0].queued_at + self.policy.lease
            if not task.done():
                # Still waiting for replies: leased rows, settled when they come (after
                # the commit). Meanwhile this sink gets no other first attempt.
                owed += [_leased(d, lease_id, lease_until) for d in first]
                self._unfinished.remove(task)
                self._late_new[name] = (name, first, task)
                continue
            self._unfinished.remove(task)
            unsent = [
                (delivery, reply)
                for delivery, reply in zip(first, task.result(), strict=True)
                if reply.outcome is not DeliveryOutcome.DELIVERED
            ]
            if unsent:
                # Leased to this round, then settled after the commit like any claim:
                # back-off, a 429's pause, a 410's stop, the horizon.
                owed += [_leased(d, lease_id, lease_until) for d, _ in unsent]
                failed.append((name, [d for d, _ in unsent], [r for _, r in unsent]))
        await batches.owe(owed)
        if any(new.state == PENDING and new.lease_id is None for new in owed):
            waiting[0] = True
        for name, keys in round_.keys.items():
            sending[name].subtract(keys)

    async def _settle_when_answered(
        self,
        name: str,
        deliveries: list[Delivery],
        task: asyncio.Task[list[DeliveryReply]],
        committed: asyncio.Future[bool],
    ) -> None:
        replies = await task
        if not await committed:
            return  # the distribution rolled back: those events are sent again
        try:
            await self._settle(name, deliveries, replies)
        except Exception:  # the leases run out and the rows are claimed again
            log.exception("events.round.failed", sink=name)

    async def _settle_late(self) -> None:
        late = [task for task in self._late.values() if not task.done()]
        if late:
            await asyncio.gather(*late, return_exceptions=True)
        self._late.clear()

    async def deliver_once(self, sink: EventSink) -> int:
        """Send one batch of due deliveries to `sink` and settle them; return how many."""
        name = sink.route.name
        deliveries = await self.store.claim(
            name, self._clock(), self.policy.lease, self.policy.batch
        )
        if not deliveries:
            return 0
        replies = await sink.deliver([encode(d.event, self.source) for d in deliveries])
        await self._settle(name, deliveries, replies)
        return len(deliveries)

    async def drain(self, rounds: int = 100) -> None:
        """Fan out and deliver until nothing is due (tests and one-off runs)."""
        for _ in range(rounds):
            busy = await self.distribute_once()
            await self._settle_late()
            for sink in self.sinks:
                busy += await self.deliver_once(sink)
            if not busy:
                return

    async def health(self) -> dict[str, str]:
        """Return each sink's state for /readyz: ok, unreachable, paused, gone."""
        now = self._clock()
        checks = {}
        for state, sink in zip(
            await self.store.states([route.name for route in self.routes]), self.sinks, strict=True
        ):
            if state.gone_at is not None:
                checks[state.name] = f"gone: {state.gone_reason or '410'}"
            elif state.paused_until is not None and state.paused_until > now:
                checks[state.name] = f"paused until {state.paused_until.isoformat()}"
            elif self._started:
                checks[state.name] = sink.check()
            else:
                checks[state.name] = "ok (relayed by another process)"
        return checks

    async def _settle(
        self, name: str, deliveries: Sequence[Delivery], replies: Sequence[DeliveryReply]
    ) -> None:
        now = self._clock()
        delivered: list[Delivery] = []
        retries: list[Retry] = []
        dead: list[GiveUp] = []
        gone: DeliveryReply | None = None
        pause_until: datetime | None = None
        for delivery, reply in zip(deliveries, replies, strict=True):
            if reply.outcome is DeliveryOutcome.DELIVERED:
                delivered.append(delivery)
            elif reply.outcome is DeliveryOutcome.GONE:
                gone = reply
            elif now - delivery.queued_at >= self.policy.horizon:
                dead.append(GiveUp(delivery, f"gave up after the horizon: {reply.detail}"))
            else:
                at = self._retry_at(delivery, reply, now)
                retries.append(Retry(delivery, at, reply.detail))
                if reply.retry_after_s is not None:
                    pause_until = max(at, pause_until or at)
        await self.store.settle(name, delivered, retries, dead, now)
        if pause_until is not None:
            await self.store.pause(name, pause_until, now)
            log.warning("events.sink.throttled", sink=name, until=pause_until.isoformat())
        if retries:
            log.info("events.delivery.retry", sink=name, count=len(retries), error=retries[0].error)
        if dead:
            log.error(
                "events.delivery.dead",
                sink=name,
                count=len(dead),
                error=dead[0].error,
                hint="`walletsvc events dead` lists them, `walletsvc events replay` resends",
            )
        if gone is not None:
            parked = await self.store.mark_gone(name, gone.detail, now)
            log.error(
                "events.sink.gone",
                sink=name,
                reason=gone.detail,
                dead=parked,
                hint=f"the receiver removed this endpoint; nothing more is sent to it. Fix "
                f"the configuration, then `walletsvc events revive {name}` and "
                f"`walletsvc events replay --all --sink {name}`",
            )

    def _retry_at(self, delivery: Delivery, reply: DeliveryReply, now: datetime) -> datetime:
        policy = self.policy
        if reply.retry_after_s is not None:
            asked = timedelta(seconds=reply.retry_after_s)
            return now + max(policy.first_retry, min(asked, policy.max_retry_after))
        ceiling = min(policy.max_retry, policy.first_retry * (2 ** min(delivery.attempts, 30)))
        # Full jitter: customers' retries spread out instead of arriving together.
        low, high = policy.first_retry.total_seconds(), ceiling.total_seconds()
        return now + timedelta(seconds=random.uniform(low, high))  # noqa: S311  (not a secret)

    async def _fan_out_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                count = await self.distribute_once()
            except Exception:
                log.exception("events.fan_out.failed")
                count = 0
            full = self.policy.fan_out_batch
            if self.store.distributes:
                full = min(full, self.policy.batch * self.policy.workers)
            if count < full:
                await _wait(stop, None, self.policy.idle_wait_s)

    async def _sink_loop(self, sink: EventSink, stop: asyncio.Event) -> None:
        name = sink.route.name
        wake = asyncio.Event()
        self._wake.append(wake)
        idle = self.policy.idle_wait_s
        while not stop.is_set():
            wake.clear()
            handled = 0
            # A sink known to be unreachable (NATS down) is not claimed from: its deliveries
            # keep their attempts and cannot turn dead while it is down.
            if sink.check() == "ok":
                try:
                    handled = await self.deliver_once(sink)
                except Exception:
                    log.exception("events.round.failed", sink=name)
            if handled == 0:
                # Nothing due: poll less and less often (a claim is a transaction) until
                # a distribution leaves rows owed and wakes this loop. Retries and run-out
                # leases come due on their own, so the wait stays bounded.
                woken = await _wait(stop, wake, idle)
                idle = self.policy.idle_wait_s if woken else min(idle * 2, _IDLE_MAX_S)
            else:
                idle = self.policy.idle_wait_s
                if handled < self.policy.batch:
                    await _wait(stop, wake, idle)


async def _send(sink: EventSink, events: Sequence[OutgoingEvent]) -> list[DeliveryReply]:
    try:
        return await sink.deliver(events)
    except Exception as exc:  # a sink that raises: every event of the call is retried
        log.exception("events.deliver.failed", sink=sink.route.name)
        return [DeliveryReply(DeliveryOutcome.RETRY, type(exc).__name__)] * len(events)


def _leased(delivery: Delivery, lease_id: str, until: datetime) -> NewDelivery:
    event = delivery.event
    at = delivery.queued_at
    owed = NewDelivery(delivery.sink, event.seq, event.partition_key, PENDING, 0, at, at)
    return replace(owed, lease_id=lease_id, leased_until=until)


async def _wait(stop: asyncio.Event, wake: asyncio.Event | None, seconds: float) -> bool:
    """Wait for `stop`, `wake` or `seconds`; True unless the time ran out."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        done, _ = await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        return bool(done)
    finally:
        for waiter in waiters:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
