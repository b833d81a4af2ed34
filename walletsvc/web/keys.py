"""Typed keys for what the app holds."""

from __future__ import annotations

from aiohttp import web

from walletsvc.bootstrap import Container

CONTAINER = web.AppKey("container", Container)
