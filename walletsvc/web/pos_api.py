"""POST /webhooks/pos/{adapter}/{terminal_id}: POS vendors' webhooks, verified then stored.

The signature is checked on the raw bytes before anything is parsed; the delivery is
stored in the inbox and answered at once; services/pos_webhooks.py acts on it.
"""

from __future__ import annotations

import hashlib

import structlog
from aiohttp import web

from pos_adapters import adapter_named
from walletsvc.domain.errors import DomainError
from walletsvc.domain.ledger import Money
from walletsvc.domain.pos import PosItem, PosPurchase, PosScan
from walletsvc.intake.contract import NormalizedPurchase, NormalizedScan, ParsedWebhook
from walletsvc.services.pos_webhooks import accept_webhook, webhook_terminal
from walletsvc.web.api import router
from walletsvc.web.keys import CONTAINER
from walletsvc.web.limits import admit
from walletsvc.web.refusals import count_replay

log = structlog.get_logger("walletsvc.pos")


@router.route(
    "POST",
    "/webhooks/pos/{adapter}/{terminal_id}",
    summary="A POS vendor's webhook (square, shopify, toast, standard); 2xx once stored",
    tag="store",
    responses={200: None, 202: None, 401: None},
    auth=False,
    surface="pos_webhook",
)
async def post_pos_webhook(request: web.Request) -> web.Response:
    ctx = request.app[CONTAINER].ctx
    slug, terminal_id = request.match_info["adapter"], request.match_info["terminal_id"]
    adapter = adapter_named(slug)
    raw = await request.read()
    try:
        terminal = await webhook_terminal(ctx, terminal_id, adapter.name)
        # Square signs the URL it was told to call: the public one, not what the proxy saw.
        url = f"{ctx.public_url}/webhooks/pos/{slug}/{terminal_id}"
        now = ctx.clock()
        keys = [adapter.decode_secret(secret) for secret in terminal.signing_secrets(now)]
        adapter.verify(request.headers, raw, url, keys, now)
        parsed = adapter.parse(request.headers, raw)
    except DomainError as error:
        log.warning("pos.webhook.rejected", adapter=slug, reason=error.reason)
        raise
    await admit(request, "pos_webhook", terminal.id)  # after the signature: forgeries spend nothing
    if parsed.ignored:
        return web.json_response({"status": "ignored", "type": parsed.event_type})
    stored = await accept_webhook(
        ctx,
        terminal,
        adapter.name,
        parsed.event_id,
        hashlib.sha256(raw).hexdigest(),
        _items(parsed),
    )
    if not stored:
        count_replay("pos_webhook")
    return web.json_response({"status": "accepted" if stored else "duplicate"}, status=202)


def _items(parsed: ParsedWebhook) -> tuple[PosItem, ...]:
    items: list[PosItem] = []
    for item in parsed.items:
        if isinstance(item, NormalizedPurchase):
            items.append(
                PosPurchase(
                    order_id=item.order_id,
                    amount=Money(item.amount, item.currency),
                    customer_ref=item.customer_id,
                    loyalty_code=item.loyalty_code,
                    occurred_at=item.occurred_at,
                )
            )
        elif isinstance(item, NormalizedScan):
            items.append(PosScan(barcode=item.barcode, occurred_at=item.occurred_at))
    return tuple(items)
