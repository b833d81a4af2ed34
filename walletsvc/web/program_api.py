"""API keys, programs, stores and terminals."""

from __future__ import annotations

from aiohttp import web

from pos_adapters import ADAPTERS
from walletsvc.bootstrap import Container
from walletsvc.domain.api_key import Principal
from walletsvc.domain.errors import InvalidInput
from walletsvc.domain.program import (
    AppleDesign,
    BarcodeFormat,
    DowngradePolicy,
    FieldGroup,
    GoogleSettings,
    LocalizedText,
    LoyaltyPolicy,
    PassField,
    Program,
    Tier,
)
from walletsvc.domain.store import Store
from walletsvc.services.api_keys import create_api_key, list_api_keys, revoke_api_key
from walletsvc.services.programs import create_program, list_programs, update_program
from walletsvc.services.stores import (
    GENERATED_SECRET_ADAPTERS,
    OWN_ADAPTER,
    add_store,
    add_terminal,
    rotate_terminal_secret,
)
from walletsvc.web import schemas as s
from walletsvc.web.api import router
from walletsvc.web.keys import CONTAINER
from walletsvc.web.router import json_response


@router.route(
    "POST",
    "/api/v1/api-keys",
    summary="Create an API key; its secret is shown once",
    tag="access",
    body=s.ApiKeyIn,
    responses={201: s.ApiKeyOut},
)
async def create_key(request: web.Request, principal: Principal, body: s.ApiKeyIn) -> web.Response:
    ctx = request.app[CONTAINER].ctx
    stored, secret = await create_api_key(
        ctx, principal, name=body.name, scopes=body.scopes, program_id=body.program
    )
    out = s.ApiKeyOut(
        id=stored.id,
        key=secret,
        name=stored.name,
        scopes=sorted(scope.value for scope in stored.scopes),
        program=stored.program_id,
    )
    return json_response(out, 201)


@router.route(
    "GET",
    "/api/v1/api-keys",
    summary="List API keys (never their secrets); a program's key sees its program's",
    tag="access",
    responses={200: s.ApiKeyListOut},
)
async def list_keys(request: web.Request, principal: Principal) -> web.Response:
    keys = await list_api_keys(request.app[CONTAINER].ctx, principal)
    items = [
        s.ApiKeyInfoOut(
            id=key.id,
            name=key.name,
            scopes=sorted(scope.value for scope in key.scopes),
            program=key.program_id,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
        )
        for key in keys
    ]
    return json_response(s.ApiKeyListOut(items=items))


@router.route(
    "DELETE",
    "/api/v1/api-keys/{key_id}",
    summary="Revoke an API key at once (idempotent)",
    tag="access",
    responses={204: None},
)
async def revoke_key(request: web.Request, principal: Principal) -> web.Response:
    await revoke_api_key(request.app[CONTAINER].ctx, principal, request.match_info["key_id"])
    return web.Response(status=204)


def localized(value: str | s.LocalizedTextIn) -> LocalizedText:
    """Return the domain text of an API text: one string, or one per language."""
    if isinstance(value, str):
        return LocalizedText(value)
    return LocalizedText(en=value.en, de=value.de)


def localized_out(text: LocalizedText) -> s.LocalizedTextOut:
    """Return the API view of a text."""
    return s.LocalizedTextOut(en=text.en, de=text.de)


def program_out(program: Program) -> s.ProgramOut:
    """Return the API view of a program."""
    apple, google = program.apple, program.google
    return s.ProgramOut(
        id=program.id,
        name=program.name,
        tiers=[
            s.TierOut(
                name=t.name,
                min_points=t.min_points,
                display_name=localized_out(t.display_name) if t.display_name else None,
            )
            for t in program.tiers
        ],
        points_per_unit=program.points_per_unit,
        apple=s.AppleDesignOut(
            pass_type_identifier=apple.pass_type_identifier,
            team_identifier=apple.team_identifier,
            organization_name=apple.organization_name,
            description=apple.description,
            logo_text=apple.logo_text,
            background_color=apple.background_color,
            foreground_color=apple.foreground_color,
            label_color=apple.label_color,
            barcode_format=apple.barcode_format.value,
            barcode_alt_text=apple.barcode_alt_text,
            fields=[
                s.PassFieldOut(
                    key=f.key, group=f.group.value, label=localized_out(f.label), value=f.value
                )
                for f in apple.fields
            ],
            location_store_ids=list(apple.location_store_ids),
            location_text=apple.location_text,
        ),
        google=s.GoogleOut(issuer_id=google.issuer_id, class_suffix=google.class_suffix),
        loyalty=s.LoyaltyPolicyOut(
            downgrade=program.loyalty.downgrade.value,
            qualification_days=program.loyalty.qualification_days,
            points_expiry_days=program.loyalty.points_expiry_days,
        ),
        design_version=program.design_version,
        created_at=program.created_at,
    )


@router.route(
    "GET",
    "/api/v1/programs",
    summary="List the programs this key may see",
    tag="programs",
    responses={200: s.ProgramListOut},
)
async def get_programs(request: web.Request, principal: Principal) -> web.Response:
    programs = await list_programs(request.app[CONTAINER].ctx, principal)
    return json_response(s.ProgramListOut(items=[program_out(p) for p in programs]))


@router.route(
    "POST",
    "/api/v1/programs",
    summary="Create a program",
    tag="programs",
    body=s.ProgramIn,
    responses={201: s.ProgramOut},
)
async def post_program(
    request: web.Request, principal: Principal, body: s.ProgramIn
) -> web.Response:
    container = request.app[CONTAINER]
    program = _program_from(body, container)
    created = await create_program(container.ctx, principal, program)
    return json_response(program_out(created), 201)


@router.route(
    "PUT",
    "/api/v1/programs/{program_id}",
    summary=(
        "Replace a program's settings and design; every pass is re-rendered and pushed in "
        "the background (passes_pending_refresh says how far that is)"
    ),
    tag="programs",
    body=s.ProgramIn,
    responses={200: s.ProgramOut},
)
async def put_program(
    request: web.Request, principal: Principal, body: s.ProgramIn
) -> web.Response:
    container = request.app[CONTAINER]
    if body.id != request.match_info["program_id"]:
        raise InvalidInput("the id in the body must be the program's id", field="id")
    updated = await update_program(container.ctx, principal, _program_from(body, container))
    return json_response(program_out(updated))


def _program_from(body: s.ProgramIn, container: Container) -> Program:
    """Return the program a request body describes, with the certificate's defaults."""
    design = body.apple
    return Program(
        id=body.id,
        name=body.name,
        tiers=tuple(
            Tier(
                t.name,
                t.min_points,
                localized(t.display_name) if t.display_name is not None else None,
            )
            for t in body.tiers
        ),
        points_per_unit=body.points_per_unit,
        apple=AppleDesign(
            pass_type_identifier=design.pass_type_identifier
            or container.apple.pass_type_identifier,
            team_identifier=design.team_identifier or container.apple.team_identifier,
            organization_name=design.organization_name or body.name,
            description=design.description or f"{body.name} loyalty card",
            logo_text=design.logo_text,
            background_color=design.background_color,
            foreground_color=design.foreground_color,
            label_color=design.label_color,
            barcode_format=BarcodeFormat(design.barcode_format),
            barcode_alt_text=design.barcode_alt_text,
            fields=tuple(
                PassField(
                    key=f.key, group=FieldGroup(f.group), label=localized(f.label), value=f.value
                )
                for f in design.fields
            ),
            location_store_ids=tuple(design.location_store_ids),
            location_text=design.location_text,
        ),
        google=GoogleSettings(
            issuer_id=body.google.issuer_id, class_suffix=body.google.class_suffix
        ),
        loyalty=LoyaltyPolicy(
            downgrade=DowngradePolicy(body.loyalty.downgrade),
            qualification_days=body.loyalty.qualification_days,
            points_expiry_days=body.loyalty.points_expiry_days,
        ),
    )


@router.route(
    "POST",
    "/api/v1/stores",
    summary="Add a store",
    tag="stores",
    body=s.StoreIn,
    responses={201: s.StoreOut},
)
async def post_store(request: web.Request, principal: Principal, body: s.StoreIn) -> web.Response:
    store = await add_store(
        request.app[CONTAINER].ctx,
        principal,
        Store(
            id=body.id,
            program_id=body.program,
            name=body.name,
            latitude=body.latitude,
            longitude=body.longitude,
            radius_m=body.radius_m,
        ),
    )
    out = s.StoreOut(
        id=store.id,
        program=store.program_id,
        name=store.name,
        latitude=store.latitude,
        longitude=store.longitude,
        radius_m=store.radius_m,
        created_at=store.created_at,
    )
    return json_response(out, 201)


@router.route(
    "POST",
    "/api/v1/stores/{store_id}/terminals",
    summary="Add a POS terminal; its signing secret is shown once",
    tag="stores",
    body=s.TerminalIn,
    responses={201: s.TerminalOut},
)
async def post_terminal(
    request: web.Request, principal: Principal, body: s.TerminalIn
) -> web.Response:
    terminal = await add_terminal(
        request.app[CONTAINER].ctx,
        principal,
        store_id=request.match_info["store_id"],
        terminal_id=body.id,
        adapter=body.adapter,
        known_adapters=frozenset({OWN_ADAPTER, *(adapter.name for adapter in ADAPTERS)}),
        secret=_vendor_secret(body),
    )
    out = s.TerminalOut(
        id=terminal.id,
        store_id=terminal.store_id,
        adapter=terminal.adapter,
        secret=None if body.secret else terminal.secret,
    )
    return json_response(out, 201)


@router.route(
    "POST",
    "/api/v1/stores/{store_id}/terminals/{terminal_id}/secret",
    summary=(
        "Rotate a terminal's signing secret; the current one keeps working for "
        "previous_valid_for_s so terminals can switch over one by one"
    ),
    tag="stores",
    body=s.TerminalSecretIn,
    responses={200: s.TerminalSecretOut},
)
async def post_terminal_secret(
    request: web.Request, principal: Principal, body: s.TerminalSecretIn
) -> web.Response:
    terminal = await rotate_terminal_secret(
        request.app[CONTAINER].ctx,
        principal,
        store_id=request.match_info["store_id"],
        terminal_id=request.match_info["terminal_id"],
        overlap_s=body.previous_valid_for_s,
        secret=body.secret,
    )
    assert terminal.previous_valid_until is not None
    out = s.TerminalSecretOut(
        id=terminal.id,
        store_id=terminal.store_id,
        adapter=terminal.adapter,
        secret=None if body.secret else terminal.secret,
        previous_valid_until=terminal.previous_valid_until,
    )
    return json_response(out)


def _vendor_secret(body: s.TerminalIn) -> str | None:
    """Return the vendor's signing key a vendor terminal needs; ours make their own."""
    generated = body.adapter in GENERATED_SECRET_ADAPTERS
    if generated and body.secret is not None:
        raise InvalidInput(
            f"a {body.adapter} terminal gets a generated secret; leave secret out", field="secret"
        )
    if not generated and body.secret is None:
        raise InvalidInput(
            f"a {body.adapter} terminal needs the webhook signing key from the vendor's "
            "dashboard as secret",
            field="secret",
        )
    return body.secret
