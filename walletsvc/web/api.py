"""The one router every API module declares its operations on."""

from __future__ import annotations

from walletsvc.web.router import ApiRouter

router = ApiRouter()
