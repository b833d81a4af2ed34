"""Response models of the Google Wallet routes."""

from __future__ import annotations

from walletsvc.web.schemas import Out


class GoogleCallbackOut(Out):
    serial: str
    event: str
    installs: int
