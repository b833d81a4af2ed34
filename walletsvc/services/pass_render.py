"""What a pass shows, gathered for the renderers, and the digest that says it changed."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from walletsvc.domain.barcode import encode_barcode
from walletsvc.domain.customer import Customer
from walletsvc.domain.pass_content import PassContent
from walletsvc.domain.program import Program
from walletsvc.domain.store import Store
from walletsvc.domain.wallet_pass import WalletPass
from walletsvc.services.context import ServiceContext


def pass_content(
    ctx: ServiceContext,
    program: Program,
    customer: Customer,
    wallet_pass: WalletPass,
    stores: Sequence[Store],
) -> PassContent:
    """Return everything the wallets' renderers need for one pass.

    `stores` are all the program's stores; the renderer picks the ones the pass lists
    as locations. Customers have no home store yet, so the program's choice applies.
    """
    return PassContent(
        program=program,
        customer=customer,
        wallet_pass=wallet_pass,
        barcode_message=encode_barcode(ctx.barcode_keys, wallet_pass.serial),
        stores=tuple(stores),
    )


def content_digest(program: Program, pass_json: bytes) -> str:
    """Return the digest of what a pass shows: its pass.json and its design's artwork.

    The design version is part of it because a new logo changes the bundle without
    changing pass.json.
    """
    digest = hashlib.sha256(f"design:{program.design_version}\n".encode())
    digest.update(pass_json)
    return digest.hexdigest()
