"""A program or store changed by any process, any way, is what every other process reads next.

On PostgreSQL each process (engine) caches programs and their stores and checks them
against the program's revision, which triggers move on every change (migration 0014).
Here two containers on one database stand for two processes: one reads (and so fills
its cache), the other changes things, through the API, the services or plain SQL.
On SQLite there is no cache and the same behaviour holds trivially.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import text

from tests.helpers import issue_loyalty
from walletsvc.bootstrap import Container, build_container
from walletsvc.domain.store import Store
from walletsvc.services.api_keys import bootstrap_principal
from walletsvc.services.programs import update_program
from walletsvc.services.stores import add_store


@pytest.fixture
async def other(make_settings: Callable[..., Any]) -> AsyncIterator[Container]:
    """A second process on the same database: its own engine, pool and cache."""
    built = build_container(make_settings())
    try:
        yield built
    finally:
        await built.close()


async def seen(container: Container, serial: str) -> tuple[str, list[str]]:
    """Return the program's name and store names as both pass paths read them."""
    async with container.ctx.uow() as uow:  # "latest pass" and the download
        found = await uow.passes.get_with_holder(serial)
        assert found is not None
        _, program, _ = found
        read = (program.name, [s.name for s in await uow.stores.for_program(program.id)])
    async with container.ctx.uow() as uow:  # a scan, a change of the pass
        locked = await uow.passes.get_for_update(serial)
        assert locked is not None
        program = await uow.programs.get(locked.program_id)
        assert program is not None
        stores = await uow.stores.for_program(program.id)
        listed = [p.name for p in await uow.programs.list() if p.id == program.id]
    assert (program.name, [s.name for s in stores]) == read
    assert listed == [program.name]
    return read


async def execute(container: Container, sql: str, **values: Any) -> None:
    async with container.engine.begin() as connection:
        await connection.execute(text(sql), values)


_ADD_STORE = (
    "INSERT INTO stores (id, program_id, name, latitude, longitude, radius_m, created_at)"
    " VALUES (:id, 'demo', :name, 52.52, 13.405, 100, CURRENT_TIMESTAMP)"
)


async def test_a_program_changed_in_sql_by_another_process_is_read_at_once(
    container, client, admin, other
):
    serial = (await issue_loyalty(client, admin, "cached-1"))["serial"]
    name, _ = await seen(container, serial)
    await execute(other, "UPDATE programs SET name = 'Renamed by hand' WHERE id = 'demo'")
    assert (await seen(container, serial))[0] == "Renamed by hand"
    # Any column counts, not only the ones the program is made of.
    await execute(other, "UPDATE programs SET name = :name WHERE id = 'demo'", name=name)
    await execute(other, "UPDATE programs SET refreshed_version = refreshed_version")
    assert (await seen(container, serial))[0] == name


async def test_stores_changed_in_sql_by_another_process_are_read_at_once(
    container, client, admin, other
):
    serial = (await issue_loyalty(client, admin, "cached-2"))["serial"]
    assert (await seen(container, serial))[1] == []
    await execute(other, _ADD_STORE, id="s1", name="Mitte")
    assert (await seen(container, serial))[1] == ["Mitte"]
    await execute(other, _ADD_STORE, id="s2", name="Hamburg")
    await execute(other, "UPDATE stores SET name = 'Mitte, renamed' WHERE id = 's1'")
    assert (await seen(container, serial))[1] == ["Mitte, renamed", "Hamburg"]
    await execute(other, "DELETE FROM stores WHERE id = 's1'")
    assert (await seen(container, serial))[1] == ["Hamburg"]


async def test_changes_through_another_process_services_are_read_at_once(
    container, client, admin, other
):
    serial = (await issue_loyalty(client, admin, "cached-3"))["serial"]
    await seen(container, serial)
    principal = bootstrap_principal()
    store = Store("s1", "demo", "Mitte", latitude=52.5, longitude=13.4, radius_m=100.0)
    await add_store(other.ctx, principal, store)
    assert (await seen(container, serial))[1] == ["Mitte"]
    async with other.ctx.uow() as uow:
        program = await uow.programs.get("demo")
    assert program is not None
    await update_program(other.ctx, principal, replace(program, name="Renamed by the API"))
    assert await seen(container, serial) == ("Renamed by the API", ["Mitte"])


async def test_a_change_rolled_back_leaves_nothing_stale_in_the_cache(
    container, client, admin, other
):
    serial = (await issue_loyalty(client, admin, "cached-4"))["serial"]
    async with container.ctx.uow() as uow:
        program = await uow.programs.get("demo")
        assert program is not None
        await uow.programs.update(replace(program, name="Never committed"))
        found = await uow.passes.get_with_holder(serial)  # reads its own change
        assert found is not None and found[1].name == "Never committed"
    # Not committed. Another process now makes one change, committed.
    await execute(other, "UPDATE programs SET name = 'Committed elsewhere' WHERE id = 'demo'")
    assert (await seen(container, serial))[0] == "Committed elsewhere"


@pytest.mark.postgres
async def test_stores_truncated_by_another_process_are_gone_at_once(
    container, client, admin, other
):
    serial = (await issue_loyalty(client, admin, "cached-5"))["serial"]
    await execute(other, _ADD_STORE, id="s1", name="Mitte")
    assert (await seen(container, serial))[1] == ["Mitte"]
    await execute(other, "TRUNCATE stores CASCADE")
    assert (await seen(container, serial))[1] == []
