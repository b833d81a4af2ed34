"""Apply the alembic migrations that ship inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant works; it only has to differ from the other advisory locks we take.
_LOCK = 0x77_6C_74_73_76_63_02  # "wltsvc" 2


def alembic_config(url: str) -> Config:
    """Return an alembic configuration for `url` without any ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema up to the newest revision on `engine`'s database."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))

    def _upgrade(connection: object) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Several processes starting at once on one database take turns: the first
            # migrates, the others then find the schema at head. Released at commit.
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
        await connection.run_sync(_upgrade)


async def pending(engine: AsyncEngine) -> bool:
    """Tell whether migrations remain to be applied."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()

    def _current(connection: object) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()  # type: ignore[arg-type]

    async with engine.connect() as connection:
        current = await connection.run_sync(_current)
    return current != head
