"""The aiohttp application factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web

from walletsvc.bootstrap import Container, open_event_relay
from walletsvc.services.google_sync import run_google_worker
from walletsvc.services.loyalty_review import run_loyalty_reviews
from walletsvc.services.pos_webhooks import run_webhook_worker
from walletsvc.services.program_refresh import run_program_refreshes
from walletsvc.services.push_delivery import run_push_worker
from walletsvc.services.request_limits import run_bucket_cleanup
from walletsvc.services.retention import run_retention
from walletsvc.web import (  # noqa: F401  (importing a module registers its routes)
    add_page,
    apple_web_service,
    customer_api,
    dashboard,
    geofence_api,
    geofence_webhooks,
    google_routes,
    health,
    loyalty_api,
    metrics,
    pass_api,
    pos_api,
    program_api,
    scan_api,
)
from walletsvc.web.api import router
from walletsvc.web.keys import CONTAINER, EVENT_RELAY
from walletsvc.web.limits import request_limits
from walletsvc.web.middleware import problem_details, request_context


def create_app(container: Container) -> web.Application:
    """Build the application around an already wired container."""
    app = web.Application(
        middlewares=[request_context, problem_details, request_limits],
        client_max_size=container.settings.max_body_bytes,
    )
    app[CONTAINER] = container
    if container.push_sender is not None:
        app.cleanup_ctx.append(push_worker)
    app.cleanup_ctx.append(webhook_worker)
    app.cleanup_ctx.append(pass_refresher)
    if container.settings.loyalty.review_interval_s > 0:
        app.cleanup_ctx.append(loyalty_reviewer)
    if container.settings.retention.interval_s > 0:
        app.cleanup_ctx.append(retention_worker)
    if container.google_sync:
        app.cleanup_ctx.append(google_worker)
    if container.limiter is not None:
        app.cleanup_ctx.append(bucket_cleaner)
    app[EVENT_RELAY] = []
    app.cleanup_ctx.append(event_relay)
    router.install(app)
    health.describe(app)
    return app


def background(
    name: str, run: Callable[[Container, asyncio.Event], Coroutine[Any, Any, None]]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Return a cleanup context that runs `run` while the app runs and stops it cleanly."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(run(app[CONTAINER], stop), name=name)
        yield
        stop.set()
        await task

    return context


def _pushes(container: Container, stop: asyncio.Event) -> Coroutine[Any, Any, None]:
    assert container.push_sender is not None
    return run_push_worker(container.ctx, container.push_sender, stop)


def _google(container: Container, stop: asyncio.Event) -> Coroutine[Any, Any, None]:
    assert container.ctx.google is not None
    return run_google_worker(container.ctx, container.ctx.google, stop)


def _reviews(container: Container, stop: asyncio.Event) -> Coroutine[Any, Any, None]:
    return run_loyalty_reviews(container.ctx, stop, container.settings.loyalty.review_interval_s)


def _retention(container: Container, stop: asyncio.Event) -> Coroutine[Any, Any, None]:
    every_s = container.settings.retention.interval_s
    return run_retention(container.ctx, container.retention, stop, every_s)


# Each runs in every process; the work itself is shared through the database.
push_worker = background("apns-pushes", _pushes)
webhook_worker = background("pos-webhooks", lambda c, stop: run_webhook_worker(c.ctx, stop))
pass_refresher = background("pass-refresh", lambda c, stop: run_program_refreshes(c.ctx, stop))
loyalty_reviewer = background("loyalty-review", _reviews)
google_worker = background("google-sync", _google)
retention_worker = background("retention", _retention)
bucket_cleaner = background("request-buckets", lambda c, stop: _clean_buckets(c, stop))


def _clean_buckets(container: Container, stop: asyncio.Event) -> Coroutine[Any, Any, None]:
    assert container.limiter is not None
    return run_bucket_cleanup(container.limiter, stop)


async def event_relay(app: web.Application) -> AsyncIterator[None]:
    """Open the event sinks; relay events while the app runs unless `[events] relay = "off"`."""
    container = app[CONTAINER]
    relay = await open_event_relay(container)
    if relay is None:
        yield
        return
    app[EVENT_RELAY].append(relay)
    stop = asyncio.Event()
    task = None
    if container.settings.events.relay == "in-process":
        await relay.start()  # before the first request, so /readyz reports the live sinks
        task = asyncio.create_task(relay.run(stop))
    yield
    stop.set()
    if task is not None:
        await task
    await relay.close()
