"""Counters of refused requests and of repeats answered as the first time.

A refusal is counted once, where the router turns the domain error into an answer
(walletsvc/web/router.py), so no surface counts on its own and none is forgotten.
Labels are the surface (which door was knocked on) and the error's stable reason,
never anything the caller sent: the label set stays small and holds no secrets.
"""

from __future__ import annotations

from prometheus_client import Counter

from walletsvc.domain.errors import DomainError, Forbidden, Unauthorized

REFUSALS = Counter(
    "walletsvc_refusals",
    "Requests refused: bad or missing credentials, bad signatures, stale timestamps, "
    "replays, forged barcodes and tokens",
    ["surface", "reason"],
)
# A retry of something already done is answered as the first time (idempotence),
# which is not a refusal; counted apart so that a replay storm is still visible.
REPLAYS = Counter(
    "walletsvc_replays_answered",
    "Repeated requests answered as the first time and changing nothing",
    ["surface"],
)

# Surfaces whose callers prove themselves by signatures or tokens: every error there
# is worth counting. On API-key routes only the authentication and scope checks are.
SIGNED_SURFACES = frozenset(
    {"scan", "pos_webhook", "geofence_webhook", "google_callback", "apple_web_service"}
)
API_AUTH = "api_auth"


def count_refusal(surface: str | None, error: DomainError) -> None:
    """Count `error` as a refusal on `surface` when it is one worth watching."""
    if surface in SIGNED_SURFACES:
        REFUSALS.labels(surface=surface, reason=error.reason).inc()
    elif surface is not None and isinstance(error, Unauthorized | Forbidden):
        REFUSALS.labels(surface=surface, reason=error.reason).inc()


def count_replay(surface: str) -> None:
    """Count a repeat that was answered as the first time."""
    REPLAYS.labels(surface=surface).inc()
