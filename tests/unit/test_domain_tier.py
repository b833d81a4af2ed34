"""Tier rules and the expiry rule, on their own."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from walletsvc.domain.program import (
    AppleDesign,
    DowngradePolicy,
    LoyaltyPolicy,
    Program,
    Tier,
)
from walletsvc.domain.tier import LedgerTotals, expiring_points, reviewed_tier, upgraded_tier


def _program(policy: DowngradePolicy = DowngradePolicy.NEVER) -> Program:
    return Program(
        id="p",
        name="P",
        tiers=(Tier("Bronze", 0), Tier("Silver", 500), Tier("Gold", 1500)),
        points_per_unit=Decimal(1),
        apple=AppleDesign("pass.example", "TEAM", "Org", "Card"),
        loyalty=LoyaltyPolicy(downgrade=policy),
    )


def test_an_earn_never_lowers_a_tier():
    program = _program()
    assert upgraded_tier(program, "Gold", 10) == "Gold"
    assert upgraded_tier(program, "Bronze", 600) == "Silver"
    assert upgraded_tier(program, "Bronze", 10, floor="Silver") == "Silver"
    assert upgraded_tier(program, "Retired", 10) == "Bronze"  # an unknown name is replaced


def test_a_review_follows_the_policy_and_holds_the_floor():
    def review(policy, balance=100, earned=0, floor=None):
        return reviewed_tier(
            _program(policy), "Gold", balance=balance, earned_in_window=earned, floor=floor
        )

    assert review(DowngradePolicy.NEVER) == "Gold"
    assert review(DowngradePolicy.BALANCE) == "Bronze"
    assert review(DowngradePolicy.BALANCE, floor="Silver") == "Silver"
    assert review(DowngradePolicy.ROLLING, balance=5000, earned=600) == "Silver"


@given(
    earned_old=st.integers(0, 10_000),
    earned_new=st.integers(0, 10_000),
    debited=st.integers(0, 20_000),
)
def test_expiry_takes_only_unused_old_points_and_never_more_than_the_balance(
    earned_old, earned_new, debited
):
    debited = min(debited, earned_old + earned_new)  # a balance never goes below zero
    balance = earned_old + earned_new - debited
    expired = expiring_points(LedgerTotals(earned_old, debited), balance)
    assert 0 <= expired <= balance
    assert expired == max(0, earned_old - debited)
    # What stays is at least what was earned recently and not yet used.
    assert balance - expired >= min(earned_new, balance)
