"""Apple Wallet devices as the PassKit web service sees them.

https://developer.apple.com/documentation/walletpasses/adding-a-web-service-to-update-passes
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from walletsvc.domain.errors import InvalidInput

# Apple sends a 32-character hex library id today; allow a little more without letting a
# path segment carry anything but plain characters.
DEVICE_LIBRARY_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# APNs device tokens are hex (64 characters today; Apple warns they may grow).
PUSH_TOKEN = re.compile(r"[0-9A-Fa-f]{16,200}")
MAX_LOG_MESSAGES = 50
MAX_LOG_MESSAGE_CHARS = 1000


@dataclass(frozen=True)
class ChangedPasses:
    """The answer to "what changed?": serials newer than the device's tag, and the new tag."""

    serials: tuple[str, ...]
    last_updated: int


def validate_device_library_id(value: str) -> str:
    """Return the id when it is one Wallet could have sent."""
    if not DEVICE_LIBRARY_ID.fullmatch(value):
        raise InvalidInput("not a device library identifier", field="deviceLibraryIdentifier")
    return value


def validate_push_token(value: object) -> str:
    """Return the push token, lower-cased, when it looks like an APNs device token."""
    if not isinstance(value, str) or not PUSH_TOKEN.fullmatch(value):
        raise InvalidInput("pushToken must be the hex APNs device token", field="pushToken")
    return value.lower()


def parse_update_tag(value: str | None) -> int | None:
    """Return the tag we handed out as `lastUpdated`, or None when the device sent none.

    The tag is opaque to the device; ours is a position in a commit-ordered sequence.
    A tag we cannot have made (say, from a server this one replaced) counts as none:
    the device then gets all its passes once, instead of an error on every call and
    never an update again.
    """
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


def clean_log_messages(value: object) -> list[str]:
    """Return Wallet's log lines, bounded in number and length and free of control characters."""
    if not isinstance(value, list):
        raise InvalidInput("logs must be a list of strings", field="logs")
    messages: list[str] = []
    for entry in value[:MAX_LOG_MESSAGES]:
        if not isinstance(entry, str):
            raise InvalidInput("logs must be a list of strings", field="logs")
        printable = "".join(ch if ch.isprintable() else " " for ch in entry)
        messages.append(printable[:MAX_LOG_MESSAGE_CHARS])
    return messages
