"""Stores with their geofence, and the POS terminals in them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from geopy.distance import geodesic

from walletsvc.domain.errors import InvalidInput

STORE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MIN_RADIUS_M = 20.0  # below this, phone location noise decides on its own
MAX_RADIUS_M = 5_000.0
PASS_LOCATIONS = 10  # Apple reads at most 10 locations from a pass


@dataclass(frozen=True)
class Store:
    """A physical store and the circle around it that counts as a visit."""

    id: str
    program_id: str
    name: str
    latitude: float
    longitude: float
    radius_m: float
    created_at: datetime | None = None


@dataclass(frozen=True)
class Terminal:
    """A POS terminal, the adapter it speaks and its signing secret."""

    id: str
    store_id: str
    program_id: str
    adapter: str
    secret: str
    created_at: datetime | None = None
    # The secret before the last rotation, accepted until `previous_valid_until` so the
    # terminals can be switched over one by one (PROTOCOLS.md section 4).
    previous_secret: str | None = None
    previous_valid_until: datetime | None = None

    def signing_secrets(self, now: datetime) -> list[str]:
        """Return the secrets a signature may be made with now, the current one first."""
        until = self.previous_valid_until
        if self.previous_secret is not None and until is not None and now < until:
            return [self.secret, self.previous_secret]
        return [self.secret]


def validate_store(store: Store) -> None:
    """Refuse a store with an unusable id, position or radius, naming the field."""
    if not STORE_ID.fullmatch(store.id):
        raise InvalidInput("store id must be 1-64 letters, digits or ._-", field="id")
    if not store.name.strip():
        raise InvalidInput("store name must not be empty", field="name")
    if not -90.0 <= store.latitude <= 90.0:
        raise InvalidInput("latitude must be between -90 and 90", field="latitude")
    if not -180.0 <= store.longitude <= 180.0:
        raise InvalidInput("longitude must be between -180 and 180", field="longitude")
    if not MIN_RADIUS_M <= store.radius_m <= MAX_RADIUS_M:
        raise InvalidInput(
            f"radius_m must be between {MIN_RADIUS_M:.0f} and {MAX_RADIUS_M:.0f}", field="radius_m"
        )


def validate_terminal_id(terminal_id: str) -> str:
    """Return the terminal id if usable in a URL and a header, else refuse it."""
    if not STORE_ID.fullmatch(terminal_id):
        raise InvalidInput("terminal id must be 1-64 letters, digits or ._-", field="id")
    return terminal_id


def choose_pass_locations(
    stores: Sequence[Store],
    home_store_id: str | None,
    chosen_ids: Sequence[str],
    limit: int = PASS_LOCATIONS,
) -> tuple[Store, ...]:
    """Return the stores a pass lists as its locations, at most `limit` of them.

    The holder's home store and the stores nearest to it (geodesic distance) come first;
    without a known home store, the program's chosen stores in their order; else the
    first stores by id. Ties break by id, so the same stores always give the same answer.
    """
    if limit <= 0 or not stores:
        return ()
    home = next((store for store in stores if store.id == home_store_id), None)
    if home is not None:
        origin = (home.latitude, home.longitude)
        nearest = sorted(
            stores,
            key=lambda store: (geodesic(origin, (store.latitude, store.longitude)).m, store.id),
        )
        return tuple(nearest[:limit])
    by_id = {store.id: store for store in stores}
    chosen = [by_id[store_id] for store_id in dict.fromkeys(chosen_ids) if store_id in by_id]
    if chosen:
        return tuple(chosen[:limit])
    return tuple(sorted(stores, key=lambda store: store.id)[:limit])
