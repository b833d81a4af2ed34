"""POST /api/v1/scans: a till reports a pass scan, signed Standard Webhooks style.

The signature is checked on the raw bytes with the terminal's secret before the body
is even parsed; then the scan is applied once (services/scans.py).
"""

from __future__ import annotations

from aiohttp import web

from walletsvc.domain.ledger import parse_money
from walletsvc.domain.scan import ScanAction, ScanRequest
from walletsvc.intake import standard_webhooks
from walletsvc.services.scans import record_scan, scanning_terminal
from walletsvc.web.api import router
from walletsvc.web.keys import CONTAINER
from walletsvc.web.limits import admit
from walletsvc.web.refusals import count_replay
from walletsvc.web.router import json_response, parse_body
from walletsvc.web.scan_schemas import ScanCouponOut, ScanIn, ScanOut


@router.route(
    "POST",
    "/api/v1/scans",
    summary=(
        "A POS terminal reports a pass scan (headers webhook-id, webhook-timestamp, "
        "webhook-signature and X-Terminal-Id; a repeated scan_id answers as the first time)"
    ),
    tag="store",
    body=ScanIn,
    responses={200: ScanOut, 401: None, 409: None},
    auth=False,
    surface="scan",
    parse_body=False,
)
async def post_scan(request: web.Request) -> web.Response:
    ctx = request.app[CONTAINER].ctx
    terminal = await scanning_terminal(ctx, request.headers.get("X-Terminal-Id", ""))
    raw = await request.read()
    keys = [standard_webhooks.decode_secret(s) for s in terminal.signing_secrets(ctx.clock())]
    standard_webhooks.verify(request.headers, raw, keys, ctx.clock())
    await admit(request, "terminal", terminal.id)  # after the signature: forgeries spend nothing
    body = await parse_body(request, ScanIn)
    if isinstance(body, web.Response):
        return body
    amount = parse_money(body.amount.value, body.amount.currency) if body.amount else None
    result = await record_scan(
        ctx,
        terminal,
        ScanRequest(
            scan_id=body.scan_id,
            barcode=body.barcode,
            action=ScanAction(body.action),
            occurred_at=body.occurred_at,
            amount=amount,
            order_id=body.order_id,
        ),
    )
    if result.replayed:
        count_replay("scan")
    coupon = (
        ScanCouponOut(
            title=str(result.coupon["title"]),
            discount=None
            if result.coupon.get("discount") is None
            else str(result.coupon["discount"]),
        )
        if result.coupon
        else None
    )
    return json_response(
        ScanOut(
            customer_id=result.customer_id,
            serial=result.serial,
            action=result.action,
            points_earned=result.points_earned,
            balance=result.balance,
            tier=result.tier,
            coupon=coupon,
        )
    )
