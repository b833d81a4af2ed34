"""Incoming request limits every walletsvc process shares; over the limit is refused.

Each limit is a token bucket per key (an API key, a terminal, a client address) kept in
the database. A process does not ask the database on every request: it leases
`lease` tokens in one round trip and spends them locally, and when the database says
the bucket is empty it refuses locally until the bucket has a token again. So over any
window of T seconds all P processes together admit at most

    burst + rate x T + P x (lease - 1)

requests of one key: every admitted request spent a token the database handed out
(at most burst + rate x T in the window), plus what each process may still have held
from before the window. Tokens a process leases and then does not use are lost, which
only ever admits fewer. If the database cannot be reached the request is let through
(and logged): the limit protects the service, it must not be what takes it down.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from walletsvc.domain.errors import RateLimited

log = structlog.get_logger("walletsvc.limits")


class RequestBuckets(Protocol):
    """Token buckets shared by every process (storage/request_buckets.py)."""

    async def take(
        self, key: str, want: int, now: float, rate: float, burst: int
    ) -> tuple[int, float]:
        """Take up to `want` tokens; return how many and, when none, seconds to wait."""
        ...

    async def forget_full(self, now: float) -> int:
        """Delete buckets that have refilled completely."""
        ...


@dataclass(frozen=True)
class Limit:
    """A rate (tokens per second), the bucket size, and the tokens taken per round trip."""

    rate: float
    burst: int
    lease: int


@dataclass
class _Lease:
    held: int = 0
    empty_until: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RequestLimiter:
    """`admit(scope, key)` returns if one more request is allowed, else raises RateLimited."""

    def __init__(
        self,
        buckets: RequestBuckets,
        limits: dict[str, Limit],
        *,
        clock: Callable[[], float] = time.time,
        max_keys: int = 100_000,
        refused: Callable[[str], None] | None = None,
    ) -> None:
        self._buckets = buckets
        # A rate of 0 turns a scope off.
        self._limits = {scope: limit for scope, limit in limits.items() if limit.rate > 0}
        self._clock = clock
        # Bounded, least recently used first out: keys may be client addresses, which a
        # caller can vary at will. Forgetting a key only forgets tokens held (admits less).
        self._leases: OrderedDict[tuple[str, str], _Lease] = OrderedDict()
        self._max_keys = max_keys
        self._refused = refused

    def limits(self, scope: str) -> bool:
        """Tell whether `scope` is limited at all."""
        return scope in self._limits

    async def admit(self, scope: str, key: str) -> None:
        """Spend one token of `key` in `scope`, leasing more from the database if needed."""
        limit = self._limits.get(scope)
        if limit is None:
            return
        lease = self._lease(scope, key)
        if lease.held > 0:
            lease.held -= 1
            return
        self._refuse_if_empty(scope, lease)
        async with lease.lock:
            # Another request may have leased while this one waited for the lock.
            if lease.held > 0:
                lease.held -= 1
                return
            self._refuse_if_empty(scope, lease)
            now = self._clock()
            try:
                taken, wait = await self._buckets.take(
                    f"{scope}:{key}", limit.lease, now, limit.rate, limit.burst
                )
            except Exception:
                log.warning("limits.lease_failed", scope=scope, exc_info=True)
                return
            if taken == 0:
                lease.empty_until = now + wait
                self._refuse_if_empty(scope, lease)
                return  # the clock moved past the wait already: let it through
            lease.held = taken - 1

    def _refuse_if_empty(self, scope: str, lease: _Lease) -> None:
        wait = lease.empty_until - self._clock()
        if wait > 0:
            if self._refused is not None:
                self._refused(scope)
            raise RateLimited(
                "too many requests; try again after Retry-After seconds",
                scope=scope,
                retry_after_s=math.ceil(wait),
            )

    def _lease(self, scope: str, key: str) -> _Lease:
        entry = (scope, key)
        lease = self._leases.get(entry)
        if lease is None:
            lease = self._leases[entry] = _Lease()
            while len(self._leases) > self._max_keys:
                self._leases.popitem(last=False)
        else:
            self._leases.move_to_end(entry)
        return lease

    async def forget_full_buckets(self) -> int:
        """Delete the database buckets that refilled; run now and then by every process."""
        return await self._buckets.forget_full(self._clock())


async def run_bucket_cleanup(
    limiter: RequestLimiter, stop: asyncio.Event, interval_s: float = 60.0
) -> None:
    """Delete refilled buckets every `interval_s` until `stop` is set."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            pass
        if stop.is_set():
            return
        try:
            await limiter.forget_full_buckets()
        except Exception:
            log.warning("limits.cleanup_failed", exc_info=True)
