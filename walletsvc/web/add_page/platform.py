"""Which phone (if any) opened the add page, read from its User-Agent."""

from __future__ import annotations

import re
from enum import StrEnum


class Platform(StrEnum):
    """What the reader most likely holds; it decides which wallet button comes first."""

    IOS = "ios"
    ANDROID = "android"
    DESKTOP = "desktop"


# iPadOS 13+ Safari claims to be a Mac by default; such an iPad gets the desktop page
# (both buttons and a QR code), which still works there.
_IOS = re.compile(r"\b(iPhone|iPad|iPod)\b")
_ANDROID = re.compile(r"\bAndroid\b", re.IGNORECASE)


def platform_of(user_agent: str) -> Platform:
    """Return the platform a User-Agent names; anything unknown is a desktop."""
    if _IOS.search(user_agent):
        return Platform.IOS
    if _ANDROID.search(user_agent):
        return Platform.ANDROID
    return Platform.DESKTOP
