"""Headless Chromium driven by Playwright, against the service on a real TCP port.

Chromium is Debian's (`apt-get install chromium`, /usr/bin/chromium; another path via
WALLETSVC_CHROMIUM); Playwright never downloads a browser here. Without Chromium the
browser tests skip, loudly; with WALLETSVC_REQUIRE_BROWSER=1 (as `.ci/run` sets) they
fail instead, so CI cannot pass without having run them.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import ADMIN_KEY, EXTERNAL_DATABASE, ROOT, empty_all_tables
from walletsvc.bootstrap import Container, build_container, prepare_database
from walletsvc.web.app import create_app

# Screenshots of every page a browser test saw; ignored by git (.gitignore: test-artifacts/).
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_skipped: list[str] = []


def chromium_path() -> str | None:
    """Return the Chromium to drive, None when this machine has none."""
    configured = os.environ.get("WALLETSVC_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def _missing() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (make install puts it in the test extra)"
    if chromium_path() is None:
        return "no Chromium at /usr/bin/chromium or WALLETSVC_CHROMIUM (apt-get install chromium)"
    return None


@pytest.fixture
def chromium() -> str:
    """Return Chromium's path, or skip (fail when WALLETSVC_REQUIRE_BROWSER=1) without it."""
    missing = _missing()
    if missing is not None:
        if os.environ.get("WALLETSVC_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests are required here but cannot run: {missing}")
        _skipped.append(missing)
        pytest.skip(f"BROWSER TESTS NOT RUN: {missing}")
    path = chromium_path()
    assert path is not None
    return path


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _skipped:
        terminalreporter.write_sep(
            "!", f"{len(_skipped)} browser tests skipped: {_skipped[0]}", red=True, bold=True
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Live:
    """The running service as a phone reaches it, and an admin's way to call its API."""

    base_url: str
    container: Container
    session: aiohttp.ClientSession

    async def call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Call the admin API; return the JSON answer of a 2xx."""
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with self.session.request(
            method, self.base_url + path, json=body, headers=headers
        ) as response:
            assert response.status < 300, await response.text()
            answer: dict[str, Any] = await response.json()
            return answer


@pytest.fixture
async def live(
    chromium: str,
    make_settings: Callable[..., Any],
    aiohttp_server: Callable[..., Awaitable[Any]],
) -> AsyncIterator[Live]:
    """The real application on 127.0.0.1, its public URL pointing at itself."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    container = build_container(make_settings(public_url=base_url))
    await prepare_database(container)
    try:
        await aiohttp_server(create_app(container), port=port)
        async with aiohttp.ClientSession() as session:
            yield Live(base_url, container, session)
    finally:
        if EXTERNAL_DATABASE is not None:
            await empty_all_tables(container)
        await container.close()


@pytest.fixture
async def playwright(chromium: str) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as driver:
        yield driver


@dataclass
class Browsing:
    """A device's browser: its context, the one tab, and every URL it asked for."""

    context: Any
    page: Any
    requested: list[str]


@pytest.fixture
async def browse(
    chromium: str, playwright: Any, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[Browsing]]]:
    """Return a factory of fresh Chromium profiles emulating a Playwright device."""
    opened: list[Any] = []

    async def open_as(device: str, locale: str = "en-GB") -> Browsing:
        emulation = dict(playwright.devices[device])
        emulation.pop("default_browser_type", None)  # Chromium emulates every device here
        profile = tmp_path / f"profile-{len(opened)}"
        context = await playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            locale=locale,
            accept_downloads=True,
            # The page must work without script; the tests prove it by running none.
            java_script_enabled=False,
            **emulation,
        )
        opened.append(context)
        context.set_default_timeout(10_000)
        requested: list[str] = []

        async def local_only(route: Any) -> None:
            # Nothing may leave the machine: a Google save link is checked, never followed.
            url = route.request.url
            requested.append(url)
            if url.startswith("http://127.0.0.1:"):
                await route.continue_()
            else:
                await route.abort()

        await context.route("**/*", local_only)
        page = context.pages[0] if context.pages else await context.new_page()
        return Browsing(context, page, requested)

    try:
        yield open_as
    finally:
        for context in opened:
            await context.close()


async def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as a test artifact; return where it went."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
