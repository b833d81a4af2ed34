"""Add stores and the POS terminals in them."""

from __future__ import annotations

import base64
import secrets
from dataclasses import replace
from datetime import timedelta

from walletsvc.domain.api_key import Principal, Scope
from walletsvc.domain.errors import Conflict, InvalidInput, NotFound
from walletsvc.domain.store import Store, Terminal, validate_store, validate_terminal_id
from walletsvc.services.context import ServiceContext

# `walletsvc` is the signed scan API; vendor adapters add their slugs (pos_adapters).
OWN_ADAPTER = "walletsvc"
# Adapters whose terminals get a secret made by walletsvc (Standard Webhooks style);
# the others sign with a key the vendor hands out.
GENERATED_SECRET_ADAPTERS = frozenset({OWN_ADAPTER, "standard"})


def new_terminal_secret() -> str:
    """Return a Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def add_store(ctx: ServiceContext, principal: Principal, store: Store) -> Store:
    """Add a store to a program."""
    principal.require(Scope.STORES_WRITE)
    principal.require_program(store.program_id)
    validate_store(store)
    store = replace(store, created_at=ctx.clock())
    async with ctx.uow() as uow:
        if await uow.programs.get(store.program_id) is None:
            raise NotFound(f"no program {store.program_id!r}", field="program")
        if await uow.stores.get(store.id) is not None:
            raise Conflict(f"store {store.id!r} exists already", reason="already_exists")
        await uow.stores.add(store)
        # The program's passes list its stores as locations: re-render them (in the
        # background; only passes whose locations change get a new version and a push).
        await uow.programs.stores_changed(store.program_id)
        await uow.commit()
    return store


async def add_terminal(
    ctx: ServiceContext,
    principal: Principal,
    *,
    store_id: str,
    terminal_id: str,
    adapter: str,
    known_adapters: frozenset[str],
    secret: str | None = None,
) -> Terminal:
    """Add a terminal to a store; the returned secret is shown to the caller only now.

    `secret` is the vendor's signing key for a vendor adapter (Square, Shopify and Toast
    hand it out); without one a Standard Webhooks secret is made here.
    """
    principal.require(Scope.STORES_WRITE)
    validate_terminal_id(terminal_id)
    if adapter not in known_adapters:
        raise InvalidInput(
            f"unknown adapter {adapter!r}; known: {', '.join(sorted(known_adapters))}",
            field="adapter",
        )
    async with ctx.uow() as uow:
        store = await uow.stores.get(store_id)
        if store is None:
            raise NotFound("no such store")
        principal.require_program(store.program_id)
        if await uow.terminals.get(terminal_id) is not None:
            raise Conflict(f"terminal {terminal_id!r} exists already", reason="already_exists")
        terminal = Terminal(
            id=terminal_id,
            store_id=store.id,
            program_id=store.program_id,
            adapter=adapter,
            secret=secret or new_terminal_secret(),
            created_at=ctx.clock(),
        )
        await uow.terminals.add(terminal)
        await uow.commit()
    return terminal


MAX_OVERLAP_S = 7 * 86_400


async def rotate_terminal_secret(
    ctx: ServiceContext,
    principal: Principal,
    *,
    store_id: str,
    terminal_id: str,
    overlap_s: int,
    secret: str | None = None,
) -> Terminal:
    """Give the terminal a new secret; the current one stays valid for `overlap_s` seconds.

    Terminals are switched over one by one while both secrets verify, then the old one
    stops working on its own. A second rotation inside the window drops the oldest.
    """
    principal.require(Scope.STORES_WRITE)
    if not 0 <= overlap_s <= MAX_OVERLAP_S:
        raise InvalidInput(
            f"previous_valid_for_s must be between 0 and {MAX_OVERLAP_S}",
            field="previous_valid_for_s",
        )
    now = ctx.clock()
    async with ctx.uow() as uow:
        terminal = await uow.terminals.get(terminal_id)
        if terminal is None or terminal.store_id != store_id:
            raise NotFound("no such terminal")
        principal.require_program(terminal.program_id)
        vendor = terminal.adapter not in GENERATED_SECRET_ADAPTERS
        if vendor and secret is None:
            raise InvalidInput(
                f"a {terminal.adapter} terminal's new secret comes from the vendor's dashboard: "
                "give it as secret",
                field="secret",
            )
        if not vendor and secret is not None:
            raise InvalidInput(
                f"a {terminal.adapter} terminal gets a generated secret; leave secret out",
                field="secret",
            )
        rotated = replace(
            terminal,
            secret=secret or new_terminal_secret(),
            previous_secret=terminal.secret,
            previous_valid_until=now + timedelta(seconds=overlap_s),
        )
        await uow.terminals.rotate(rotated)
        await uow.commit()
    return rotated
