"""Google Wallet facts the use cases work with: ids, queued syncs, callbacks, notice limits.

The rules are PROTOCOLS.md section 3 (https://developers.google.com/wallet/retail/loyalty-cards
and https://developers.google.com/wallet/retail/offers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from walletsvc.domain.program import Program
from walletsvc.domain.wallet_pass import PassKind

# Google's resource ids are "<issuerId>.<suffix>", the suffix of [A-Za-z0-9._-].
SUFFIX = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
# Google lets an object notify its holder at most 3 times in 24 hours.
NOTICES_PER_WINDOW = 3
NOTICE_WINDOW = timedelta(hours=24)


class GoogleSyncState(StrEnum):
    """Where a pass's Google object stands, as GET /api/v1/passes/{serial} shows it."""

    PENDING = "pending"  # a change waits in the queue
    SYNCED = "synced"  # Google holds what the pass shows now
    ERROR = "error"  # Google refused what we sent; see the error


class CallbackEvent(StrEnum):
    """What a Google Wallet save/delete callback reports."""

    SAVE = "save"
    DELETE = "del"


@dataclass(frozen=True)
class GoogleJob:
    """A pass whose Google object is owed a sync, as claimed by a worker."""

    serial: str
    generation: int  # the queue row's generation when claimed; a later change bumps it
    attempts: int
    inserted: bool  # Google has the object already (patch first, not insert)
    last_tier: str | None  # the tier Google showed last, to notice a tier change


@dataclass(frozen=True)
class GoogleStatus:
    """What the operator sees of a pass's Google object."""

    state: GoogleSyncState
    error: str | None
    field: str | None
    installs: int


@dataclass(frozen=True)
class GoogleCallback:
    """A verified save or delete callback."""

    class_id: str
    object_id: str
    event: CallbackEvent
    nonce: str
    expires_at: datetime


def class_id(program: Program, kind: PassKind) -> str | None:
    """Return the Google class id of a program's passes of `kind`, None without an issuer."""
    issuer = program.google.issuer_id
    if not issuer:
        return None
    suffix = program.google.class_suffix or program.id
    return f"{issuer}.{suffix}" if kind is PassKind.LOYALTY else f"{issuer}.{suffix}-offer"


def object_id(program: Program, serial: str) -> str | None:
    """Return the Google object id of a pass, None when its program has no issuer."""
    issuer = program.google.issuer_id
    return f"{issuer}.{serial}" if issuer else None


def serial_of(object_id_: str, issuer_id: str) -> str | None:
    """Return the pass serial an object id of our issuer names, None if it is not ours."""
    prefix = f"{issuer_id}."
    if not object_id_.startswith(prefix):
        return None
    serial = object_id_[len(prefix) :]
    return serial if SUFFIX.fullmatch(serial) else None
