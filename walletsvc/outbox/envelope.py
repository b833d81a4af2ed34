"""The CloudEvents 1.0 JSON envelope of a recorded event.

Follows the CloudEvents 1.0.2 core specification and its JSON format
(https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md,
.../formats/json-format.md) with three documented extensions: `partitionkey`
(extensions/partitioning.md), `sequence` (extensions/sequence.md) and `recordedtime`
(extensions/recordedtime.md). Context attributes carry ids and times only, never
personal data: the subject and partition key are the opaque profile id.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from walletsvc.domain.event_delivery import OutgoingEvent, RecordedEvent

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
    """Return the event encoded once for every sink."""
    body = json.dumps(cloudevent(event, source), separators=(",", ":"), ensure_ascii=False)
    return OutgoingEvent(id=event.id, type=event.type, body=body.encode())


def rfc3339(moment: datetime) -> str:
    """Return a UTC timestamp as RFC 3339 with a `Z`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
