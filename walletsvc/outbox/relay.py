"""The relay: hands committed outbox rows to every sink, each at its own pace.

Two steps, each safe to run in any number of processes at once:

1. fan-out: committed outbox rows not yet distributed become one delivery per sink
   that takes their type (walletsvc/storage/event_deliveries.py says why this, and
   not a cursor per sink);
2. per sink: claim due deliveries under a lease (never one whose customer has an
   earlier event still owed to that sink), send them, settle the replies.

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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from walletsvc.domain.event_delivery import Delivery, DeliveryOutcome, DeliveryReply, SinkRoute
from walletsvc.outbox.envelope import encode
from walletsvc.services.event_delivery import EventDeliveryStore, EventSink, GiveUp, Retry

log = structlog.get_logger("walletsvc.events")


@dataclass(frozen=True)
class RelayPolicy:
    """How the relay batches, leases, backs off and gives up."""

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

    async def close(self) -> None:
        """Close the sinks and whatever outbound clients were made for them."""
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
            busy = await self.fan_out_once()
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
                count = await self.fan_out_once()
            except Exception:
                log.exception("events.fan_out.failed")
                count = 0
            if count < self.policy.fan_out_batch:
                await _wait(stop, None, self.policy.idle_wait_s)

    async def _sink_loop(self, sink: EventSink, stop: asyncio.Event) -> None:
        name = sink.route.name
        wake = asyncio.Event()
        self._wake.append(wake)
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
            if handled < self.policy.batch:
                await _wait(stop, wake, self.policy.idle_wait_s)


async def _wait(stop: asyncio.Event, wake: asyncio.Event | None, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
