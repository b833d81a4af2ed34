"""POS vendor adapters: one module per vendor, all listed here.

Each implements `walletsvc.intake.contract.PosAdapter`; its `name` is the slug in
`POST /webhooks/pos/{adapter}/{terminal_id}`, the inbox source, metrics and config.
A new vendor is a new module, an entry in `ADAPTERS`, and its fixtures in
tests/conformance/test_pos_adapters.py.
"""

from __future__ import annotations

from pos_adapters.shopify import ShopifyAdapter
from pos_adapters.square import SquareAdapter
from pos_adapters.standard import StandardAdapter
from pos_adapters.toast import ToastAdapter
from walletsvc.domain.errors import NotFound
from walletsvc.intake.contract import PosAdapter

ADAPTERS: tuple[PosAdapter, ...] = (
    SquareAdapter(),
    ShopifyAdapter(),
    ToastAdapter(),
    StandardAdapter(),
)

__all__ = [
    "ADAPTERS",
    "PosAdapter",
    "ShopifyAdapter",
    "SquareAdapter",
    "StandardAdapter",
    "ToastAdapter",
    "adapter_named",
]


def adapter_named(name: str, adapters: tuple[PosAdapter, ...] = ADAPTERS) -> PosAdapter:
    """Return the adapter with this slug; an unknown one is NotFound."""
    for adapter in adapters:
        if adapter.name == name:
            return adapter
    raise NotFound(f"no POS adapter is called {name!r}", reason="unknown_adapter", field="adapter")
