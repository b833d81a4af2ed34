"""Delivering recorded events to sinks: what the relay reads, sends and learns back.

An event is recorded once (an outbox row); each configured sink then has its own
delivery of it, with its own attempts, back-off and dead-letter state, so a slow or
failing sink never holds up another.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

PENDING = "pending"  # owed: due now, backing off, or leased to a relay
DEAD = "dead"  # a dead letter: given up on until replayed


class JsonText(Mapping[str, object]):
    """An event's `data` as the JSON object text the database holds, decoded only if read.

    The envelope encoder pastes the text into the envelope as it is: the stored text is the
    JSON the writer made (PostgreSQL's `json` type keeps it verbatim and checked it on
    INSERT), so the document stays valid and `data` means the same, byte for byte
    apart from insignificant whitespace. Anything reading it as a mapping gets it decoded.
    """

    __slots__ = ("_decoded", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._decoded: dict[str, object] | None = None

    def _mapping(self) -> dict[str, object]:
        if self._decoded is None:
            self._decoded = json.loads(self.text)
        return self._decoded

    def __getitem__(self, key: str) -> object:
        return self._mapping()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())

    def __repr__(self) -> str:
        return f"JsonText({self.text!r})"


@dataclass(frozen=True)
class RecordedEvent:
    """An outbox row as the relay reads it."""

    seq: int
    id: str
    type: str
    subject: str
    partition_key: str
    occurred_at: datetime
    recorded_at: datetime
    data: Mapping[str, object]


@dataclass(frozen=True)
class Delivery:
    """One event owed to one sink, leased to the relay that claimed it."""

    sink: str
    event: RecordedEvent
    attempts: int  # failed attempts so far
    queued_at: datetime  # when the delivery was made owed: the dead-letter horizon counts from here
    lease_id: str  # settles only while this claim still holds the row


@dataclass(frozen=True)
class OutgoingEvent:
    """An event encoded for the wire (a CloudEvents JSON document)."""

    id: str
    type: str
    body: bytes


class DeliveryOutcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # failed now; try again after a back-off (or the Retry-After given)
    GONE = "gone"  # the endpoint said 410 Gone: stop sending to it at all


@dataclass(frozen=True)
class DeliveryReply:
    """What a sink made of one event."""

    outcome: DeliveryOutcome
    detail: str = ""  # a status code or error class: never a body, a secret or a URL
    retry_after_s: float | None = None  # the receiver asked for this pause (429 Retry-After)


@dataclass(frozen=True)
class SinkRoute:
    """A sink's name and the event types it takes (empty: every type)."""

    name: str
    types: frozenset[str] = frozenset()

    def wants(self, event_type: str) -> bool:
        """Tell whether this sink takes events of `event_type`."""
        return not self.types or event_type in self.types


@dataclass(frozen=True)
class SinkState:
    """What every relay process must know about a sink: kept in the database, not in memory."""

    name: str
    paused_until: datetime | None = None  # a 429 pauses the whole sink until then
    gone_at: datetime | None = None  # a 410 stops it until an operator revives it
    gone_reason: str | None = None
    pending: int = 0
    dead: int = 0


@dataclass(frozen=True)
class DeadLetter:
    """A delivery given up on: past the horizon, or its sink gone."""

    sink: str
    event_id: str
    type: str
    seq: int
    attempts: int
    last_error: str | None
    queued_at: datetime
    dead_at: datetime | None


@dataclass(frozen=True)
class NewDelivery:
    """A delivery row the relay asks the store to make while it distributes events.

    Only events a sink still owes after the first attempt get one: an event sent and
    acknowledged while its outbox row was being distributed leaves no row at all.
    """

    sink: str
    seq: int
    partition_key: str
    state: str  # PENDING or DEAD
    attempts: int
    queued_at: datetime
    next_attempt_at: datetime
    lease_id: str | None = None  # still in flight when distribution committed
    leased_until: datetime | None = None
    last_error: str | None = None
    dead_at: datetime | None = None


@dataclass(frozen=True)
class Distribution:
    """What the store knows, inside the distributing transaction, about where events may go."""

    events: Sequence[RecordedEvent]  # committed, undistributed, in outbox order
    held: frozenset[str]  # sinks paused by a 429 (or gone): nothing is sent to them now
    gone: frozenset[str]  # sinks stopped by a 410: their events are dead letters at once
    owed: frozenset[tuple[str, str]]  # (sink, partition key) with an earlier delivery owed
