"""Shared fixtures: a wired service on a real database, and an HTTP client on the real app.

The database is SQLite (a fresh file per test) unless WALLETSVC_TEST_DATABASE_URL
names a PostgreSQL database; then the schema is migrated once per session and
every table is emptied after each test. `.ci/run` runs the suite both ways.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from walletsvc.bootstrap import Container, build_container, prepare_database
from walletsvc.config import Settings, load_settings
from walletsvc.storage.database import create_engine, is_sqlite
from walletsvc.storage.migrate import upgrade
from walletsvc.storage.tables import metadata
from walletsvc.web.app import create_app

ROOT = Path(__file__).resolve().parents[1]
CERTS = ROOT / "certs_example"
ADMIN_KEY = "test-admin-key-0123456789abcdefghijklmnop"
SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnop"
PUBLIC_URL = "http://walletsvc.test"
EXTERNAL_DATABASE = os.environ.get("WALLETSVC_TEST_DATABASE_URL")


def pytest_report_header() -> str:
    where = f"external {EXTERNAL_DATABASE}" if EXTERNAL_DATABASE else "SQLite per test"
    return f"walletsvc database: {where}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests marked `postgres` need the real server; on SQLite runs they are skipped, loudly.
    on_postgres = bool(EXTERNAL_DATABASE) and not is_sqlite(EXTERNAL_DATABASE or "sqlite://")
    if on_postgres:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set WALLETSVC_TEST_DATABASE_URL")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def external_database() -> Iterator[str | None]:
    """Migrate the external database once per session."""
    if EXTERNAL_DATABASE is None:
        yield None
        return

    async def migrate() -> None:
        engine = create_engine(EXTERNAL_DATABASE, pool_size=1)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(migrate())
    yield EXTERNAL_DATABASE


@pytest.fixture
def database_url(external_database: str | None, tmp_path: Path) -> str:
    """Return the database this test runs against."""
    return external_database or f"sqlite+aiosqlite:///{tmp_path / 'walletsvc.db'}"


@pytest.fixture
def make_settings(database_url: str, tmp_path: Path) -> Callable[..., Settings]:
    """Return a factory of test settings; keyword arguments override."""

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "data_dir": tmp_path / "data",
            "public_url": PUBLIC_URL,
            "admin_api_key": ADMIN_KEY,
            "secret_key": SECRET_KEY,
            "apple": {
                "pass_certificate": CERTS / "pass-certificate.pem",
                "pass_key": CERTS / "pass-key.pem",
                "wwdr_certificate": CERTS / "wwdr-dev-ca.pem",
            },
            "google": {"service_account_file": CERTS / "google-service-account.json"},
            "log_format": "console",
            # Tests run the loyalty review when they mean to, not at a random moment.
            "loyalty": {"review_interval_s": 0},
            "retention": {"interval_s": 0},
        }
        values.update(overrides)
        return load_settings(**values)

    return factory


@pytest.fixture
async def container(make_settings: Callable[..., Settings]) -> AsyncIterator[Container]:
    """A wired service with a migrated database and the demo program."""
    built = build_container(make_settings())
    await prepare_database(built)
    try:
        yield built
    finally:
        if EXTERNAL_DATABASE is not None:
            await empty_all_tables(built)
        await built.close()


async def empty_all_tables(container: Container) -> None:
    """Leave the shared database as the next test expects it: migrated and empty."""
    names = ", ".join(table.name for table in metadata.sorted_tables)
    async with container.engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def client(container: Container, aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    """An HTTP client on the real application."""
    client: TestClient[Any, Any] = await aiohttp_client(create_app(container))
    return client


@pytest.fixture
def admin() -> dict[str, str]:
    """Headers of the bootstrap admin key."""
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


NATS_URL = os.environ.get("WALLETSVC_TEST_NATS_URL", "nats://127.0.0.1:4222")


@pytest.fixture
async def jetstream() -> AsyncIterator[Any]:
    """A client of the real NATS JetStream, and a stream name and subject prefix of this test.

    Fails (never skips) when NATS is down: `.ci/run` starts it. The test's stream is
    deleted afterwards; the server is shared, so nothing else is touched.
    """
    import uuid

    import nats

    try:
        nc = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
    except Exception as exc:
        pytest.fail(f"NATS with JetStream must run at {NATS_URL} ({exc!r}); .ci/run starts it")
    tag = uuid.uuid4().hex[:10]
    js = nc.jetstream()
    names = {"stream": f"WALLETSVC_TEST_{tag}", "prefix": f"test.{tag}.events", "js": js}
    try:
        yield names
    finally:
        from nats.js.errors import NotFoundError

        try:
            await js.delete_stream(names["stream"])
        except NotFoundError:
            pass
        await nc.close()


@pytest.fixture
async def receiver(aiohttp_server: Callable[..., Any]) -> Any:
    """A local webhook endpoint for events (tests/fakes/webhook_receiver.py); `.url` posts to it."""
    from tests.fakes.webhook_receiver import WebhookReceiver

    hook = WebhookReceiver()
    server = await aiohttp_server(hook.app())
    hook.url = str(server.make_url("/hook"))
    return hook
