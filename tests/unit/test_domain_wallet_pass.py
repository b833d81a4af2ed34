"""Wallet passes: serials, tokens, voiding and coupons."""

from __future__ import annotations

import string
from dataclasses import replace

import pytest

from walletsvc.domain.errors import Conflict, InvalidInput
from walletsvc.domain.wallet_pass import (
    SERIAL_ALPHABET,
    Coupon,
    PassKind,
    PassState,
    WalletPass,
    is_serial,
    new_authentication_token,
    new_serial,
    validate_coupon,
)

PASS = WalletPass(
    serial="0123456789abcdefghjkmnpqrs",
    program_id="coffee",
    customer_id="cust-1",
    kind=PassKind.LOYALTY,
    authentication_token="t" * 43,
)


def test_new_serial_has_the_shape_of_a_serial() -> None:
    serial = new_serial()
    assert len(serial) == 26
    assert set(serial) <= set(SERIAL_ALPHABET)
    assert is_serial(serial)


def test_serial_alphabet_has_32_characters_without_look_alikes() -> None:
    assert len(set(SERIAL_ALPHABET)) == 32
    assert set(SERIAL_ALPHABET) <= set(string.digits + string.ascii_lowercase)
    assert not set("ilou") & set(SERIAL_ALPHABET)


def test_ten_thousand_new_serials_are_all_different() -> None:
    serials = [new_serial() for _ in range(10_000)]
    assert len(set(serials)) == len(serials)
    assert all(is_serial(serial) for serial in serials)


def test_new_serials_use_the_whole_alphabet() -> None:
    # 260,000 draws from 32 symbols: a character never drawn means a skewed generator.
    seen = set("".join(new_serial() for _ in range(10_000)))
    assert seen == set(SERIAL_ALPHABET)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "0123456789abcdefghjkmnpqr",  # 25
        "0123456789abcdefghjkmnpqrst",  # 27
        "0123456789ABCDEFGHJKMNPQRS",  # upper case
        "0123456789abcdefghjkmnpqri",  # 'i' is not in the alphabet
        "0123456789abcdefghjkmnpqr-",
        "0123456789abcdefghjkmnpq s",
    ],
)
def test_values_not_shaped_like_a_serial_are_not_serials(value: str) -> None:
    assert not is_serial(value)


def test_authentication_token_is_long_url_safe_and_unique() -> None:
    tokens = [new_authentication_token() for _ in range(1_000)]
    assert all(len(token) >= 32 for token in tokens)
    allowed = set(string.ascii_letters + string.digits + "-_")
    assert all(set(token) <= allowed for token in tokens)
    assert len(set(tokens)) == len(tokens)


def test_voiding_an_active_pass_records_the_reason() -> None:
    voided = PASS.voided("lost phone")
    assert voided.state is PassState.VOIDED
    assert voided.void_reason == "lost phone"
    assert (voided.serial, voided.authentication_token) == (
        PASS.serial,
        PASS.authentication_token,
    )


def test_voiding_leaves_the_original_pass_active() -> None:
    PASS.voided("lost phone")
    assert PASS.state is PassState.ACTIVE
    assert PASS.void_reason is None


def test_same_pass_cannot_be_voided_twice() -> None:
    voided = PASS.voided("lost phone")
    with pytest.raises(Conflict) as caught:
        voided.voided("again")
    assert caught.value.reason == "pass_voided"


@pytest.mark.parametrize("state", [PassState.REDEEMED, PassState.EXPIRED])
def test_pass_that_is_no_longer_active_cannot_be_voided(state: PassState) -> None:
    with pytest.raises(Conflict) as caught:
        replace(PASS, state=state).voided("too late")
    assert caught.value.reason == f"pass_{state.value}"


def test_coupon_pass_with_a_titled_offer_is_accepted() -> None:
    validate_coupon(PassKind.COUPON, Coupon(title="10% off"))
    validate_coupon(PassKind.COUPON, Coupon(title="x" * 80))


def test_loyalty_pass_without_a_coupon_is_accepted() -> None:
    validate_coupon(PassKind.LOYALTY, None)


@pytest.mark.parametrize(
    ("kind", "coupon", "field"),
    [
        (PassKind.COUPON, None, "coupon.title"),
        (PassKind.COUPON, Coupon(title=""), "coupon.title"),
        (PassKind.COUPON, Coupon(title="   "), "coupon.title"),
        (PassKind.COUPON, Coupon(title="x" * 81), "coupon.title"),
        (PassKind.LOYALTY, Coupon(title="10% off"), "coupon"),
    ],
)
def test_coupon_that_does_not_fit_the_pass_is_refused(
    kind: PassKind, coupon: Coupon | None, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_coupon(kind, coupon)
    assert caught.value.field == field
