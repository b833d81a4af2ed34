"""The ports of event delivery: where deliveries are kept, and the sinks they go to.

The relay (walletsvc/outbox/relay.py) drives these; storage implements the store
(SqlEventDeliveryStore) and outbox implements the sinks (webhooks, NATS JetStream).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from walletsvc.domain.event_delivery import (
    DeadLetter,
    Delivery,
    DeliveryReply,
    Distribution,
    NewDelivery,
    OutgoingEvent,
    SinkRoute,
    SinkState,
)


@dataclass(frozen=True)
class Retry:
    """A failed delivery to try again at `at`."""

    delivery: Delivery
    at: datetime
    error: str


@dataclass(frozen=True)
class GiveUp:
    """A failed delivery past its horizon: it becomes a dead letter."""

    delivery: Delivery
    error: str


class EventSink(Protocol):
    """Somewhere events go: a webhook endpoint, a NATS JetStream stream."""

    @property
    def route(self) -> SinkRoute:
        """Return the sink's name and the event types it takes."""
        ...

    async def start(self) -> None:
        """Connect and prepare (a stream, say); a sink that is down must not raise here."""
        ...

    async def deliver(self, events: Sequence[OutgoingEvent]) -> list[DeliveryReply]:
        """Send every event, concurrently where safe; one reply per event, in order.

        The events of one call are all of different partition keys, so their order
        among themselves does not matter.
        """
        ...

    def check(self) -> str:
        """Return "ok" or why the sink cannot be reached now (for /readyz)."""
        ...

    async def close(self) -> None: ...


class DistributingBatches(Protocol):
    """An open distribution: the next batch of events, and what is still owed of them."""

    async def next(self, limit: int) -> Distribution | None:
        """Mark the next `limit` committed, undistributed events; return them, or None."""
        ...

    async def owe(self, owing: Sequence[NewDelivery]) -> None:
        """Record deliveries still owed after a first attempt."""
        ...


class EventDeliveryStore(Protocol):
    """Deliveries per sink and event, and the shared state of sinks; each call one transaction."""

    # True when `distribute` works: the store can keep its transaction open while the
    # relay sends (PostgreSQL); otherwise the relay fans out, then claims.
    distributes: bool

    async def distribute(
        self,
        routes: Sequence[SinkRoute],
        now: datetime,
        work: Callable[[DistributingBatches], Awaitable[int]],
    ) -> int:
        """Run `work` in one transaction that marks events distributed as it reads them.

        Its deliveries owed are inserted by the same transaction, which commits when
        `work` returns; 0 without calling `work` while another relay distributes.
        """
        ...

    async def fan_out(self, routes: Sequence[SinkRoute], now: datetime, limit: int) -> int:
        """Make deliveries of up to `limit` committed, undistributed events; return the count."""
        ...

    async def claim(self, sink: str, now: datetime, lease: timedelta, limit: int) -> list[Delivery]:
        """Lease due deliveries, at most one per partition key and none behind an earlier one."""
        ...

    async def settle(
        self,
        sink: str,
        delivered: Sequence[Delivery],
        retries: Sequence[Retry],
        dead: Sequence[GiveUp],
        now: datetime,
    ) -> None:
        """Record the outcome of a round; rows whose lease was lost since are left alone."""
        ...

    async def pause(self, sink: str, until: datetime, now: datetime) -> None:
        """Send nothing to `sink` before `until` (all processes)."""
        ...

    async def mark_gone(self, sink: str, reason: str, now: datetime) -> int:
        """Stop `sink`: its owed deliveries become dead letters; return how many."""
        ...

    async def revive(self, sink: str, now: datetime) -> bool:
        """Let a gone sink take events again; True when it was gone."""
        ...

    async def states(self, sinks: Sequence[str]) -> list[SinkState]:
        """Return each sink's pause, gone mark and pending and dead counts."""
        ...

    async def dead_letters(self, sink: str | None, limit: int) -> list[DeadLetter]:
        """Return dead letters, oldest event first."""
        ...

    async def replay(self, event_ids: Sequence[str] | None, sink: str | None, now: datetime) -> int:
        """Make dead letters owed again (all of them when `event_ids` is None); return how many."""
        ...
