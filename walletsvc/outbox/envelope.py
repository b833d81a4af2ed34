"""The CloudEvents 1.0 JSON envelope of a recorded event.

Follows the CloudEvents 1.0.2 core specification and its JSON format
(https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md,
.../formats/json-format.md) with three documented extensions: `partitionkey`
(extensions/partitioning.md), `sequence` (extensions/sequence.md) and `recordedtime`
(extensions/recordedtime.md). Context attributes carry ids and times only, never
personal data: the subject and partition key are the opaque profile id.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from json.encoder import encode_basestring  # what json.dumps(ensure_ascii=False) quotes with
from typing import Any

from walletsvc.domain.event_delivery import JsonText, OutgoingEvent, RecordedEvent

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"  # structured mode
DATA_CONTENT_TYPE = "application/json"
_SEQUENCE_DIGITS = 20  # the sequence extension is a string compared as text: pad it


def cloudevent(event: RecordedEvent, source: str) -> dict[str, Any]:
    """Return the event as a CloudEvents JSON object."""
    return {
        "specversion": SPEC_VERSION,
        "id": event.id,
        "source": source,
        "type": event.type,
        "subject": event.subject,
        "time": rfc3339(event.occurred_at),
        "datacontenttype": DATA_CONTENT_TYPE,
        "partitionkey": event.partition_key,
        "recordedtime": rfc3339(event.recorded_at),
        "sequence": str(event.seq).zfill(_SEQUENCE_DIGITS),
        "data": dict(event.data),
    }


def encode(event: RecordedEvent, source: str) -> OutgoingEvent:
    """Return the event encoded once for every sink.

    The same document as `json.dumps(cloudevent(event, source), separators=(",", ":"),
    ensure_ascii=False)`, key for key and byte for byte (strings are quoted by the
    encoder json.dumps uses), written out directly: this runs for every event sent.
    `data` held as stored JSON text (`JsonText`) is pasted in without decoding.
    """
    data = event.data
    if isinstance(data, JsonText) and data.text.lstrip().startswith("{"):
        data_json = data.text
    else:
        data_json = json.dumps(dict(data), separators=(",", ":"), ensure_ascii=False)
    body = (
        f'{{"specversion":"{SPEC_VERSION}","id":{encode_basestring(event.id)},'
        f'"source":{encode_basestring(source)},"type":{encode_basestring(event.type)},'
        f'"subject":{encode_basestring(event.subject)},'
        f'"time":{encode_basestring(rfc3339(event.occurred_at))},'
        f'"datacontenttype":"{DATA_CONTENT_TYPE}",'
        f'"partitionkey":{encode_basestring(event.partition_key)},'
        f'"recordedtime":{encode_basestring(rfc3339(event.recorded_at))},'
        f'"sequence":"{event.seq:0{_SEQUENCE_DIGITS}d}","data":{data_json}}}'
    )
    return OutgoingEvent(id=event.id, type=event.type, body=body.encode())


# Events of one writer transaction share their times, and formatting one is a good part
# of encoding an event: remember the last few. Equal datetimes are the same instant
# (aware ones across zones too), and the text is of that instant in UTC.
@functools.lru_cache(maxsize=1024)
def rfc3339(moment: datetime) -> str:
    """Return a UTC timestamp as RFC 3339 with a `Z`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    elif moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat().replace("+00:00", "Z")
