"""Issue passes, read them, and download their signed bundles."""

from __future__ import annotations

from email.utils import format_datetime

from aiohttp import web

from walletsvc.apple.pkpass import PKPASS_MEDIA_TYPE
from walletsvc.domain.api_key import Principal
from walletsvc.domain.google_wallet import GoogleStatus
from walletsvc.domain.wallet_pass import Coupon, PassKind, WalletPass
from walletsvc.services.context import ServiceContext
from walletsvc.services.pass_changes import CouponChange, change_coupon, void_pass
from walletsvc.services.passes import (
    PassRequest,
    PkpassBundle,
    get_pass,
    google_status,
    issue_pass,
    pass_installs,
    pkpass_for_key,
    pkpass_for_link,
)
from walletsvc.web import pass_schemas as ps
from walletsvc.web import schemas as s
from walletsvc.web.api import router
from walletsvc.web.keys import CONTAINER
from walletsvc.web.router import json_response


@router.route(
    "POST",
    "/api/v1/passes",
    summary="Issue a pass (a customer's loyalty card is issued once and then reused)",
    tag="passes",
    body=s.PassIn,
    responses={201: s.PassIssuedOut, 200: s.PassIssuedOut},
)
async def post_pass(request: web.Request, principal: Principal, body: s.PassIn) -> web.Response:
    coupon = (
        Coupon(
            title=body.coupon.title,
            description=body.coupon.description,
            discount=body.coupon.discount,
            expires_at=body.coupon.expires_at,
        )
        if body.coupon is not None
        else None
    )
    issued = await issue_pass(
        request.app[CONTAINER].ctx,
        principal,
        PassRequest(
            program=body.program,
            kind=PassKind(body.kind),
            customer_id=body.customer_id,
            customer_external_id=body.customer_external_id,
            coupon=coupon,
        ),
    )
    wallet_pass = issued.wallet_pass
    out = s.PassIssuedOut(
        serial=wallet_pass.serial,
        kind=wallet_pass.kind.value,
        state=wallet_pass.state.value,
        program=wallet_pass.program_id,
        customer_id=wallet_pass.customer_id,
        add_url=issued.add_url,
        apple=s.ApplePassOut(pkpass_url=issued.pkpass_url),
        google=s.GooglePassOut(save_url=issued.google_save_url),
    )
    return json_response(out, 201 if issued.created else 200)


def pass_out(
    wallet_pass: WalletPass, apple_installs: int = 0, google: GoogleStatus | None = None
) -> s.PassOut:
    """Return the API view of a pass."""
    coupon = wallet_pass.coupon
    return s.PassOut(
        serial=wallet_pass.serial,
        program=wallet_pass.program_id,
        customer_id=wallet_pass.customer_id,
        kind=wallet_pass.kind.value,
        state=wallet_pass.state.value,
        void_reason=wallet_pass.void_reason,
        coupon=s.CouponOut(
            title=coupon.title,
            description=coupon.description,
            discount=coupon.discount,
            expires_at=coupon.expires_at,
        )
        if coupon
        else None,
        version=wallet_pass.version,
        installs=s.InstallsOut(apple=apple_installs, google=google.installs if google else 0),
        last_updated=wallet_pass.last_changed_at,
        created_at=wallet_pass.created_at,
        google=s.GoogleStateOut(state=google.state.value, error=google.error, field=google.field)
        if google
        else None,
    )


async def _pass_view(ctx: ServiceContext, wallet_pass: WalletPass) -> s.PassOut:
    serial = wallet_pass.serial
    return pass_out(wallet_pass, await pass_installs(ctx, serial), await google_status(ctx, serial))


@router.route(
    "GET",
    "/api/v1/passes/{serial}",
    summary="A pass: state, installs, last update",
    tag="passes",
    responses={200: s.PassOut},
)
async def get_pass_state(request: web.Request, principal: Principal) -> web.Response:
    ctx = request.app[CONTAINER].ctx
    wallet_pass = await get_pass(ctx, principal, request.match_info["serial"])
    return json_response(await _pass_view(ctx, wallet_pass))


@router.route(
    "PATCH",
    "/api/v1/passes/{serial}",
    summary="Change what a coupon shows; devices holding it are told",
    tag="passes",
    body=ps.PassChangeIn,
    responses={200: s.PassOut},
)
async def patch_pass(
    request: web.Request, principal: Principal, body: ps.PassChangeIn
) -> web.Response:
    ctx = request.app[CONTAINER].ctx
    given = body.coupon.model_fields_set
    change = CouponChange(
        title=body.coupon.title,
        **{
            name: getattr(body.coupon, name)
            for name in ("description", "discount", "expires_at")
            if name in given
        },
    )
    wallet_pass = await change_coupon(ctx, principal, request.match_info["serial"], change)
    return json_response(await _pass_view(ctx, wallet_pass))


@router.route(
    "POST",
    "/api/v1/passes/{serial}/void",
    summary="Void a pass; devices holding it are told",
    tag="passes",
    body=ps.VoidIn,
    responses={200: s.PassOut},
)
async def post_void(request: web.Request, principal: Principal, body: ps.VoidIn) -> web.Response:
    ctx = request.app[CONTAINER].ctx
    wallet_pass = await void_pass(ctx, principal, request.match_info["serial"], body.reason)
    return json_response(await _pass_view(ctx, wallet_pass))


@router.route(
    "GET",
    "/api/v1/passes/{serial}/pass.pkpass",
    summary="Download the signed .pkpass with an API key",
    tag="passes",
    responses={200: PKPASS_MEDIA_TYPE},
)
async def get_pkpass_with_key(request: web.Request, principal: Principal) -> web.Response:
    bundle = await pkpass_for_key(
        request.app[CONTAINER].ctx, principal, request.match_info["serial"]
    )
    return pkpass_response(bundle)


@router.route(
    "GET",
    "/add/{token}/pass.pkpass",
    summary="Download the signed .pkpass behind a customer's signed, expiring link",
    tag="customer pages",
    responses={200: PKPASS_MEDIA_TYPE},
    auth=False,
)
async def get_pkpass_with_link(request: web.Request) -> web.Response:
    bundle = await pkpass_for_link(request.app[CONTAINER].ctx, request.match_info["token"])
    return pkpass_response(bundle)


def pkpass_response(bundle: PkpassBundle) -> web.Response:
    """Return a .pkpass download with the pass's real last-change time."""
    headers = {
        "Content-Disposition": f'attachment; filename="{bundle.wallet_pass.serial}.pkpass"',
        "Cache-Control": "no-store",
    }
    if bundle.wallet_pass.last_changed_at is not None:
        headers["Last-Modified"] = format_datetime(bundle.wallet_pass.last_changed_at, usegmt=True)
    return web.Response(body=bundle.data, content_type=PKPASS_MEDIA_TYPE, headers=headers)
