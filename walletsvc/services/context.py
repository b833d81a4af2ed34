"""What every use case needs, bound once at start by walletsvc/bootstrap.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from walletsvc.domain.barcode import BarcodeKeyRing
from walletsvc.services.ports import ApplePasses, Clock, UnitOfWorkFactory


@dataclass(frozen=True)
class ServiceContext:
    """The ports and the few settings the use cases read."""

    uow: UnitOfWorkFactory
    clock: Clock
    apple: ApplePasses
    barcode_keys: BarcodeKeyRing
    link_keys: tuple[bytes, ...]  # MAC add-page and download links; the first makes new ones
    identifier_pepper: bytes  # keys the hashes of emails and phone numbers
    public_url: str  # no trailing slash
    link_ttl: timedelta
    development: bool
