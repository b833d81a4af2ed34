"""Domain events: each fact gets one id that never changes."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest

from walletsvc.domain.event import DomainEvent, EventType

AT = datetime(2030, 1, 1, tzinfo=UTC)


def _event() -> DomainEvent:
    return DomainEvent(
        type=EventType.PASS_ISSUED, subject="cust-1", data={"serial": "s"}, occurred_at=AT
    )


def test_each_event_gets_its_own_id() -> None:
    ids = {_event().id for _ in range(1_000)}
    assert len(ids) == 1_000


def test_identical_facts_recorded_twice_are_two_events() -> None:
    assert _event() != _event()


def test_event_id_is_a_uuid() -> None:
    event = _event()
    assert str(uuid.UUID(event.id)) == event.id


def test_event_id_stays_the_same_on_every_read() -> None:
    event = _event()
    first = event.id
    assert event.id == first
    assert event.id == first


def test_event_id_cannot_be_reassigned() -> None:
    event = _event()
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.id = "other"  # type: ignore[misc]


def test_given_id_is_kept_so_a_redelivery_reuses_it() -> None:
    event = _event()
    again = DomainEvent(
        type=event.type,
        subject=event.subject,
        data=event.data,
        occurred_at=event.occurred_at,
        id=event.id,
    )
    assert again.id == event.id
    assert again == event


@pytest.mark.parametrize("name", [n for n in vars(EventType) if not n.startswith("_")])
def test_event_types_are_reverse_dns_and_versioned(name: str) -> None:
    value = getattr(EventType, name)
    assert value.startswith("com.walletsvc.")
    assert value.rsplit(".", 1)[1].startswith("v")
    assert value.rsplit(".", 1)[1][1:].isdigit()


def test_event_types_are_all_different() -> None:
    values = [v for n, v in vars(EventType).items() if not n.startswith("_")]
    assert len(set(values)) == len(values)
