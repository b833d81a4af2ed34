"""Tier rules: upgrades at once, downgrades only on review, never below the engine's floor.

PROTOCOLS.md section 6. A tier is known by its name; a name the program no longer has
ranks below every tier, so a renamed tier is replaced at the next change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from walletsvc.domain.errors import InvalidInput
from walletsvc.domain.program import DowngradePolicy, Program


def rank(program: Program, tier: str | None) -> int:
    """Return the tier's position in the program (-1 for none or an unknown name)."""
    for position, known in enumerate(program.tiers):
        if known.name == tier:
            return position
    return -1


def higher(program: Program, first: str, second: str | None) -> str:
    """Return the higher of two tiers (the first on a tie)."""
    if second is not None and rank(program, second) > rank(program, first):
        return second
    return first


def require_tier(program: Program, tier: str) -> str:
    """Return the tier if the program has it, else refuse it."""
    if rank(program, tier) < 0:
        names = ", ".join(t.name for t in program.tiers)
        raise InvalidInput(
            f"program {program.id} has no tier {tier!r} (it has {names})", field="tier"
        )
    return tier


def upgraded_tier(program: Program, current: str, balance: int, floor: str | None = None) -> str:
    """Return the tier after a balance change: up at once, never down here."""
    return higher(program, higher(program, current, program.tier_for(balance)), floor)


def reviewed_tier(
    program: Program,
    current: str,
    *,
    balance: int,
    earned_in_window: int,
    floor: str | None,
) -> str:
    """Return the tier the scheduled review settles on under the program's policy."""
    policy = program.loyalty.downgrade
    if policy is DowngradePolicy.NEVER:
        return upgraded_tier(program, current, balance, floor)
    # BALANCE: what the points held now reach. ROLLING: what the points earned in the
    # qualification window reach, whatever was spent. Either way the floor holds.
    qualifying = balance if policy is DowngradePolicy.BALANCE else earned_in_window
    return higher(program, program.tier_for(qualifying), floor)


@dataclass(frozen=True)
class LedgerTotals:
    """What the expiry rule needs of a customer's ledger."""

    earned_before_cutoff: int  # positive entries recorded before the cutoff
    debited: int  # every negative entry so far, as a positive number


def expiring_points(totals: LedgerTotals, balance: int) -> int:
    """Return the points to expire: the oldest earned that no debit has used up yet.

    First in, first out: spends, expiries and negative adjustments use up the oldest
    points first, so what was earned before the cutoff and is still unused expires.
    """
    unused_old = totals.earned_before_cutoff - totals.debited
    return max(0, min(unused_old, balance))


@dataclass(frozen=True)
class TierUpdate:
    """One tier change as the loyalty engine reads it from the feed."""

    program_id: str
    customer_id: str
    old_tier: str
    new_tier: str
    balance: int
    reason: str  # what moved it: earn, spend, adjust, expire, engine, review, merge
    occurred_at: datetime
    cursor: int | None = None  # set when the change is recorded, in commit order
