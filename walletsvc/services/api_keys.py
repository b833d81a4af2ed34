"""Create API keys and recognise the caller behind one."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from walletsvc.domain.api_key import Principal, Scope, check_grant, parse_scopes
from walletsvc.domain.errors import InvalidInput, NotFound, Unauthorized
from walletsvc.services.context import ServiceContext
from walletsvc.services.ports import StoredApiKey

KEY_PREFIX = "wsk_"
BOOTSTRAP_KEY_ID = "bootstrap"


def hash_secret(secret: str) -> str:
    """Return the SHA-256 of a key secret (keys are random, so no slow hash is needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def bootstrap_principal() -> Principal:
    """Return the principal of the bootstrap key from the settings."""
    return Principal(key_id=BOOTSTRAP_KEY_ID, name="bootstrap", scopes=frozenset({Scope.ADMIN}))


async def create_api_key(
    ctx: ServiceContext,
    granter: Principal,
    *,
    name: str,
    scopes: list[str],
    program_id: str | None,
) -> tuple[StoredApiKey, str]:
    """Create a key; return it and its full secret, which is shown only this once."""
    granter.require(Scope.API_KEYS_WRITE)
    if not name.strip() or len(name) > 100:
        raise InvalidInput("name must be 1-100 characters", field="name")
    parsed = parse_scopes(scopes)
    if granter.program_id is not None and program_id is None:
        program_id = granter.program_id
    check_grant(granter, parsed, program_id)
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    stored = StoredApiKey(
        id=key_id,
        name=name.strip(),
        secret_hash=hash_secret(secret),
        scopes=parsed,
        program_id=program_id,
        created_at=ctx.clock(),
    )
    async with ctx.uow() as uow:
        if program_id is not None and await uow.programs.get(program_id) is None:
            raise InvalidInput(f"no program {program_id!r}", field="program")
        await uow.api_keys.add(stored)
        await uow.commit()
    return stored, f"{KEY_PREFIX}{key_id}.{secret}"


async def authenticate(ctx: ServiceContext, presented: str, bootstrap_key: str | None) -> Principal:
    """Return who holds `presented`, or refuse it; every comparison is constant-time."""
    if bootstrap_key and hmac.compare_digest(hash_secret(presented), hash_secret(bootstrap_key)):
        return bootstrap_principal()
    if not presented.startswith(KEY_PREFIX) or "." not in presented:
        raise Unauthorized("the API key is not valid", reason="invalid_api_key")
    key_id, _, secret = presented[len(KEY_PREFIX) :].partition(".")
    async with ctx.uow() as uow:
        stored = await uow.api_keys.get(key_id)
    # Hash even when the id is unknown so timing does not tell which ids exist.
    expected = stored.secret_hash if stored else hash_secret("unknown-key")
    valid = hmac.compare_digest(hash_secret(secret), expected)
    if stored is None or not valid or stored.revoked_at is not None:
        raise Unauthorized("the API key is not valid", reason="invalid_api_key")
    return Principal(
        key_id=stored.id, name=stored.name, scopes=stored.scopes, program_id=stored.program_id
    )


async def list_api_keys(ctx: ServiceContext, principal: Principal) -> list[StoredApiKey]:
    """Return the keys the caller may manage (a program's key: its program's keys only)."""
    principal.require(Scope.API_KEYS_WRITE)
    async with ctx.uow() as uow:
        return await uow.api_keys.list(principal.program_id)


async def revoke_api_key(ctx: ServiceContext, principal: Principal, key_id: str) -> None:
    """Revoke a key at once, in every process; revoking it again changes nothing.

    The bootstrap key from the settings is no row and cannot be revoked here: remove it
    from the settings. A program's key sees only its program's keys: others are 404.
    """
    principal.require(Scope.API_KEYS_WRITE)
    async with ctx.uow() as uow:
        stored = await uow.api_keys.get(key_id)
        if stored is None or (
            principal.program_id is not None and stored.program_id != principal.program_id
        ):
            raise NotFound("no such API key")
        await uow.api_keys.revoke(key_id, ctx.clock())
        await uow.commit()
