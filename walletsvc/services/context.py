"""What every use case needs, bound once at start by walletsvc/bootstrap.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from walletsvc.domain.barcode import BarcodeKeyRing
from walletsvc.domain.geofence import GeofencePolicy
from walletsvc.services.pass_cache import SignedPassCache
from walletsvc.services.ports import ApplePasses, Clock, UnitOfWorkFactory, WalletObjectStore


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
    # How long a pass change waits for more changes before its push goes out.
    push_delay: timedelta = timedelta(seconds=1)
    # How long a push worker's claim lasts: after a crash mid-push, the wait before
    # another process sends what it had claimed.
    push_lease: timedelta = timedelta(seconds=60)
    pass_cache: SignedPassCache = field(default_factory=SignedPassCache)
    # The windows geofence claims are judged with ([geofence] settings).
    geofence: GeofencePolicy = field(default_factory=GeofencePolicy)
    # Google Wallet (renders, writes, links); None when no service account is configured.
    google: WalletObjectStore | None = None
    # How long a change waits for more changes before its Google sync goes out.
    google_delay: timedelta = timedelta(seconds=1)
