"""The loyalty engine's API: authoritative balances and tiers, ledger entries, the tier feed."""

from __future__ import annotations

from aiohttp import web

from walletsvc.domain.api_key import Principal
from walletsvc.domain.customer import Customer
from walletsvc.domain.errors import InvalidInput
from walletsvc.domain.ledger import EntryKind
from walletsvc.services.loyalty_engine import EntryRequest, record_entry, set_loyalty, tier_updates
from walletsvc.web import loyalty_schemas as s
from walletsvc.web.api import router
from walletsvc.web.keys import CONTAINER
from walletsvc.web.router import json_response

DEFAULT_PAGE = 100


@router.route(
    "PUT",
    "/api/v1/customers/{customer_id}/loyalty",
    summary=(
        "Set the authoritative balance (an adjust entry for the difference) and/or tier "
        "(applied now, and the floor of scheduled reviews); passes update"
    ),
    tag="loyalty",
    body=s.LoyaltyIn,
    responses={200: s.LoyaltyOut},
)
async def put_loyalty(
    request: web.Request, principal: Principal, body: s.LoyaltyIn
) -> web.Response:
    customer = await set_loyalty(
        request.app[CONTAINER].ctx,
        principal,
        request.match_info["customer_id"],
        points=body.points,
        tier=body.tier,
    )
    return json_response(_loyalty_out(customer))


@router.route(
    "POST",
    "/api/v1/customers/{customer_id}/ledger-entries",
    summary=(
        "Record an earn, spend or adjust entry once per business_key; a spend beyond the "
        "balance is refused (409 insufficient_points)"
    ),
    tag="loyalty",
    body=s.LedgerEntryIn,
    responses={201: s.LoyaltyOut, 200: s.LoyaltyOut},
)
async def post_ledger_entry(
    request: web.Request, principal: Principal, body: s.LedgerEntryIn
) -> web.Response:
    if body.occurred_at is not None and body.occurred_at.tzinfo is None:
        raise InvalidInput("occurred_at needs a UTC offset", field="occurred_at")
    customer, created = await record_entry(
        request.app[CONTAINER].ctx,
        principal,
        request.match_info["customer_id"],
        EntryRequest(
            kind=EntryKind(body.kind),
            points=body.points,
            business_key=body.business_key,
            occurred_at=body.occurred_at,
        ),
    )
    return json_response(_loyalty_out(customer), 201 if created else 200)


@router.route(
    "GET",
    "/api/v1/tier-updates",
    summary="Tier changes, oldest first; pass next_cursor as `after` to read on",
    tag="loyalty",
    query={
        "after": "the next_cursor of the previous page (default: from the start)",
        "limit": f"at most this many items, 1-500 (default {DEFAULT_PAGE})",
    },
    responses={200: s.TierUpdatesOut},
)
async def get_tier_updates(request: web.Request, principal: Principal) -> web.Response:
    after = _int_param(request, "after", 0)
    limit = _int_param(request, "limit", DEFAULT_PAGE)
    updates = await tier_updates(request.app[CONTAINER].ctx, principal, after, limit)
    items = [
        s.TierUpdateOut(
            cursor=str(u.cursor),
            customer_id=u.customer_id,
            program=u.program_id,
            old_tier=u.old_tier,
            new_tier=u.new_tier,
            balance=u.balance,
            reason=u.reason,
            occurred_at=u.occurred_at,
        )
        for u in updates
    ]
    next_cursor = items[-1].cursor if items else str(after)
    return json_response(s.TierUpdatesOut(items=items, next_cursor=next_cursor))


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise InvalidInput(f"{name} must be a whole number", field=name)
    return int(raw)


def _loyalty_out(customer: Customer) -> s.LoyaltyOut:
    return s.LoyaltyOut(
        customer_id=customer.id,
        program=customer.program_id,
        balance=customer.points_balance,
        tier=customer.tier,
        tier_floor=customer.tier_floor,
    )
