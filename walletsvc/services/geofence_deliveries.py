"""Record one verified geofence provider request: each delivery once, each claim once.

Radar signs only a per-request signing id, not the body, so the body is bound to
it here: the first request with a signing id wins, and a later one with the same id
but other bytes is refused as a replayed signature. A retry with the same bytes gets
the first answer. Only a digest of the body is kept, never the body.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from walletsvc.domain.errors import BadSignature, Conflict, DuplicateKey, NotFound
from walletsvc.domain.geofence import GeofenceClaim
from walletsvc.services.context import ServiceContext
from walletsvc.services.geofence import provider_reporter, record_geofence_claim


@dataclass(frozen=True)
class DeliverySummary:
    """What became of a request's events: counts only, no customers, stores or places."""

    accepted: int = 0
    refused: int = 0
    skipped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # refusal and skip reasons
    replayed: bool = False  # True: a retry of an earlier request, answered as it was


async def record_geofence_delivery(
    ctx: ServiceContext,
    provider: str,
    delivery_id: str,
    body_digest: str,
    claims: Sequence[GeofenceClaim],
    skip_reasons: Sequence[str],
) -> DeliverySummary:
    """Judge every claim of one verified request, in the order they happened."""
    source = f"geofence:{provider}:delivery"
    answered = await _claim_delivery(ctx, source, delivery_id, body_digest)
    if answered is not None:
        return answered
    reporter = provider_reporter(provider)
    reasons: Counter[str] = Counter(skip_reasons)
    accepted = refused = 0
    # In time order, so an exit in the same request is judged after its enter.
    for claim in sorted(claims, key=lambda claim: claim.occurred_at):
        try:
            verdict = await record_geofence_claim(ctx, reporter, claim)
        except (NotFound, Conflict) as error:
            # One unknown store or customer must not make the provider resend the rest.
            refused += 1
            reasons[error.reason] += 1
            continue
        if verdict.accepted:
            accepted += 1
        else:
            refused += 1
            reasons[str(verdict.reason)] += 1
    summary = DeliverySummary(accepted, refused, len(skip_reasons), dict(sorted(reasons.items())))
    async with ctx.uow() as uow:
        answer = {k: v for k, v in asdict(summary).items() if k != "replayed"}
        await uow.inbox.respond(source, delivery_id, answer, ctx.clock())
        await uow.commit()
    return summary


async def _claim_delivery(
    ctx: ServiceContext, source: str, delivery_id: str, body_digest: str
) -> DeliverySummary | None:
    """Record the delivery id; return the earlier answer if a retry of it comes again."""
    try:
        async with ctx.uow() as uow:
            seen = await uow.inbox.get(source, delivery_id)
            if seen is None:
                await uow.inbox.claim(source, delivery_id, body_digest, ctx.clock(), None)
                await uow.commit()
                return None
    except DuplicateKey:
        # A copy arrived at the same moment and recorded it first.
        async with ctx.uow() as uow:
            seen = await uow.inbox.get(source, delivery_id)
        if seen is None:  # pragma: no cover - the clashing copy had committed
            raise Conflict(
                "the delivery is being recorded; retry", reason="delivery_in_progress"
            ) from None
    if seen.fingerprint != body_digest:
        raise BadSignature(
            "this signature was already used for another request", reason="signature_reused"
        )
    if seen.response is None:
        # Recorded but not answered (a crash, or a copy still running): judging again is
        # safe, since every claim is recorded once by its own event id.
        return None
    response = seen.response
    return DeliverySummary(
        accepted=int(response["accepted"]),
        refused=int(response["refused"]),
        skipped=int(response["skipped"]),
        reasons={str(k): int(v) for k, v in dict(response["reasons"]).items()},
        replayed=True,
    )
