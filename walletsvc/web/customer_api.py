"""Customer profiles: create-or-update by external id, and read."""

from __future__ import annotations

from aiohttp import web

from walletsvc.domain.api_key import Principal
from walletsvc.domain.customer import Consents
from walletsvc.services.customers import (
    CustomerDraft,
    CustomerProfile,
    get_customer_profile,
    upsert_customer,
)
from walletsvc.services.erasure import erase_customer
from walletsvc.services.identity import link_identifier
from walletsvc.web import schemas as s
from walletsvc.web.api import router
from walletsvc.web.identity_schemas import IdentifierLinkIn
from walletsvc.web.keys import CONTAINER
from walletsvc.web.router import json_response


@router.route(
    "POST",
    "/api/v1/customers",
    summary="Create a customer, or update the one with this external_id",
    tag="customers",
    body=s.CustomerIn,
    responses={201: s.CustomerOut, 200: s.CustomerOut},
)
async def post_customer(
    request: web.Request, principal: Principal, body: s.CustomerIn
) -> web.Response:
    ctx = request.app[CONTAINER].ctx
    consents = (
        Consents(location=body.consents.location, marketing=body.consents.marketing)
        if body.consents is not None
        else None
    )
    customer, created = await upsert_customer(
        ctx,
        principal,
        CustomerDraft(
            external_id=body.external_id,
            program=body.program,
            email=body.email,
            phone=body.phone,
            consents=consents,
        ),
    )
    profile = await get_customer_profile(ctx, principal, customer.id)
    return json_response(profile_out(profile), 201 if created else 200)


@router.route(
    "GET",
    "/api/v1/customers/{customer_id}",
    summary="A customer's profile: identifiers, consents, balance, tier, passes",
    tag="customers",
    responses={200: s.CustomerOut},
)
async def get_customer(request: web.Request, principal: Principal) -> web.Response:
    profile = await get_customer_profile(
        request.app[CONTAINER].ctx, principal, request.match_info["customer_id"]
    )
    return json_response(profile_out(profile))


@router.route(
    "DELETE",
    "/api/v1/customers/{customer_id}",
    summary=(
        "Erase a customer: identifiers, CRM id, consents and visits go, every pass is "
        "voided on the phones, and a customer_erased event is emitted"
    ),
    tag="customers",
    responses={202: s.ErasureOut},
)
async def delete_customer(request: web.Request, principal: Principal) -> web.Response:
    customer_id = request.match_info["customer_id"]
    voided = await erase_customer(request.app[CONTAINER].ctx, principal, customer_id)
    return json_response(s.ErasureOut(customer_id=customer_id, passes_voided=voided), 202)


@router.route(
    "POST",
    "/api/v1/customers/{customer_id}/identifiers",
    summary=(
        "Link an identifier (email, phone, pos_customer '<adapter>:<id>') to a profile; "
        "one already on another profile merges the two into the older"
    ),
    tag="customers",
    body=IdentifierLinkIn,
    responses={201: s.CustomerOut, 200: s.CustomerOut},
)
async def post_identifier(
    request: web.Request, principal: Principal, body: IdentifierLinkIn
) -> web.Response:
    ctx = request.app[CONTAINER].ctx
    customer, merged = await link_identifier(
        ctx, principal, request.match_info["customer_id"], body.kind, body.value, body.source
    )
    profile = await get_customer_profile(ctx, principal, customer.id)
    return json_response(profile_out(profile), 200 if merged else 201)


def profile_out(profile: CustomerProfile) -> s.CustomerOut:
    """Return the API view of a customer profile."""
    customer = profile.customer
    return s.CustomerOut(
        id=customer.id,
        program=customer.program_id,
        external_id=customer.external_id,
        consents=s.ConsentsOut(
            location=customer.consents.location, marketing=customer.consents.marketing
        ),
        balance=customer.points_balance,
        tier=customer.tier,
        identifiers=[
            s.IdentifierOut(
                kind=i.kind.value, value=i.value, source=i.source, created_at=i.created_at
            )
            for i in profile.identifiers
        ],
        passes=[
            s.PassSummaryOut(serial=p.serial, kind=p.kind.value, state=p.state.value)
            for p in profile.passes
        ],
        created_at=customer.created_at,
        updated_at=customer.updated_at,
    )
