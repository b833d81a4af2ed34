"""What a push to a wallet device can come back as, and what the service does about it.

The policy follows Apple's "Handling notification responses from APNs"
(https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns)
as summarised in PROTOCOLS.md section 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PushOutcome(StrEnum):
    """What to do with a registration after one push attempt."""

    DELIVERED = "delivered"  # 200: done
    UNREGISTERED = "unregistered"  # 410, BadDeviceToken, ExpiredToken: drop the registration
    RETRY = "retry"  # 429, 5xx, a dropped connection: back off and try again
    MISCONFIGURED = "misconfigured"  # 403, DeviceTokenNotForTopic...: alert, never retry per token


@dataclass(frozen=True)
class PushReply:
    """One device's answer to one push."""

    push_token: str
    outcome: PushOutcome
    status: int | None  # the HTTP status, None when no answer came (connection lost)
    reason: str | None = None  # APNs' reason string, e.g. "Unregistered"
    retry_after_s: float | None = None  # a wait the server asked for, when it did


@dataclass(frozen=True)
class PushJob:
    """A push owed to one device token for one pass type, as claimed by a worker."""

    pass_type_id: str
    push_token: str
    generation: int  # the queue row's generation when claimed; a later change bumps it
    attempts: int
