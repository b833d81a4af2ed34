"""Typed keys for what the app holds."""

from __future__ import annotations

from aiohttp import web

from walletsvc.bootstrap import Container
from walletsvc.outbox.relay import EventRelay

CONTAINER = web.AppKey("container", Container)
# The event relay once opened (at most one; empty without sinks): a list, filled at start.
EVENT_RELAY = web.AppKey("event_relay", list[EventRelay])
