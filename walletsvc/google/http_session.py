"""One aiohttp session for everything walletsvc sends to Google, opened on first use.

The container is built before the event loop runs (the CLI builds it, then starts
aiohttp), and a ClientSession belongs to the loop it is created on.
"""

from __future__ import annotations

import aiohttp


class LazySession:
    """Opens the session inside the running loop the first time it is needed."""

    def __init__(self, connections: int = 20) -> None:
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                raise_for_status=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
