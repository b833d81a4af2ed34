"""Signed bundles kept by pass content, so a burst of devices fetching one update signs once."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable


class SignedPassCache:
    """A bounded LRU of signed .pkpass bytes keyed by (serial, content digest).

    Concurrent misses for one key share a single signing (one future), and an entry
    never goes stale: a changed pass has a new digest, hence a new key.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._max_bytes = max_bytes
        self._size = 0
        self._entries: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._pending: dict[tuple[str, str], asyncio.Future[bytes]] = {}
        self.hits = 0
        self.misses = 0

    def peek(self, key: tuple[str, str]) -> bytes | None:
        """Return the cached bundle for `key` if there is one (a hit), else None."""
        cached = self._entries.get(key)
        if cached is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        return cached

    async def get_or_make(
        self, key: tuple[str, str], make: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        """Return the cached bundle for `key`, or make it once however many ask at the same time."""
        cached = self.peek(key)
        if cached is not None:
            return cached
        pending = self._pending.get(key)
        if pending is not None:
            self.hits += 1
            return await asyncio.shield(pending)
        self.misses += 1
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            data = await make()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            # Nobody else may be waiting; retrieve it so asyncio does not warn.
            future.exception()
            raise
        finally:
            del self._pending[key]
        future.set_result(data)
        self._store(key, data)
        return data

    def _store(self, key: tuple[str, str], data: bytes) -> None:
        if len(data) > self._max_bytes:
            return
        self._entries[key] = data
        self._size += len(data)
        while self._size > self._max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._size -= len(evicted)
