"""The CloudEvents envelope: written out directly, the same document json.dumps makes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from walletsvc.domain.event_delivery import JsonText, RecordedEvent
from walletsvc.outbox.envelope import cloudevent, encode

AWKWARD = ["cust-1", 'quote " back \\ nl \n ctl \x01', "é ☃ \u2028 𝄞", ""]


def event(text: str, moment: datetime, data: object, seq: int = 7) -> RecordedEvent:
    return RecordedEvent(seq, f"id-{text}", f"type.{text}", text, text, moment, moment, data)  # type: ignore[arg-type]


def dumped(recorded: RecordedEvent, source: str) -> bytes:
    envelope = cloudevent(recorded, source)
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize("text", AWKWARD)
@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 3, 1, 12, 30, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 30, 0, 5, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2026, 3, 1, 12, 30),  # naive: taken as UTC
    ],
)
@pytest.mark.parametrize("seq", [0, 7, 10**19])
def test_encode_is_byte_for_byte_json_dumps_of_the_envelope(
    text: str, moment: datetime, seq: int
) -> None:
    data = {"customer_id": text, "n": 1, "f": 1.5, "l": [1, None, True], "d": {"x": text}}
    recorded = event(text, moment, data, seq)
    assert encode(recorded, f"https://src/{text}").body == dumped(recorded, f"https://src/{text}")


@pytest.mark.parametrize("text", AWKWARD)
def test_stored_json_text_is_pasted_and_means_the_same(text: str) -> None:
    data = {"customer_id": text, "nested": {"a": [1, 2.5, None]}, "version": 3}
    moment = datetime(2026, 3, 1, tzinfo=UTC)
    # As PostgreSQL's json type returns it: the writer's text, spaces and escapes kept.
    stored = JsonText(" " + json.dumps(data) + " ")
    body = encode(event(text, moment, stored), "src").body
    assert json.loads(body) == json.loads(dumped(event(text, moment, data), "src"))
    assert list(json.loads(body)) == list(cloudevent(event(text, moment, data), "src"))
    assert dict(stored) == data  # read as a mapping, it is decoded
