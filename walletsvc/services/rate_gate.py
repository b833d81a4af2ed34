"""A request rate limit every walletsvc process shares, kept in the database.

Each process takes a few tokens at a time from a per-key token bucket row (under a
row lock, in a short transaction of its own) and spends them locally, so over any
window of T seconds all processes together send at most rate x T + burst x (1 +
number of processes): the bucket's burst, and a batch each process may still hold.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from walletsvc.services.ports import Clock, UnitOfWorkFactory


class SharedRateLimit:
    """`acquire(key)` returns when one more request under `key` is allowed."""

    def __init__(
        self, uow: UnitOfWorkFactory, clock: Clock, *, rate: float, burst: int, prefix: str
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._rate = rate
        self._burst = max(1, burst)
        self._prefix = prefix
        self._held: dict[str, int] = defaultdict(int)
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def acquire(self, key: str) -> None:
        """Wait for a token of `key`'s bucket."""
        async with self._locks[key]:
            while self._held[key] == 0:
                async with self._uow() as uow:
                    taken, wait = await uow.rate_buckets.take(
                        f"{self._prefix}:{key}", self._burst, self._clock(), self._rate, self._burst
                    )
                    await uow.commit()
                if taken:
                    self._held[key] = taken
                else:
                    await asyncio.sleep(min(1.0, max(0.005, wait)))
            self._held[key] -= 1
