"""Signed, expiring links to a customer's pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from walletsvc.domain.errors import NotFound
from walletsvc.domain.link_token import ExpiredLink, make_link_token, open_link_token

KEY = b"link-key-for-tests"
SERIAL = "0123456789abcdefghjkmnpqrs"
OTHER_SERIAL = "srqpnmkjhgfedcba9876543210"
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(days=7)


def _refused_as_invalid(token: str, now: datetime = NOW) -> NotFound:
    with pytest.raises(NotFound) as caught:
        open_link_token([KEY], token, now)
    assert not isinstance(caught.value, ExpiredLink)
    assert caught.value.reason == "link_invalid"
    return caught.value


def test_link_opens_the_serial_it_was_made_for() -> None:
    assert open_link_token([KEY], make_link_token(KEY, SERIAL, EXPIRES), NOW) == SERIAL


def test_link_still_opens_at_its_expiry_second() -> None:
    assert open_link_token([KEY], make_link_token(KEY, SERIAL, EXPIRES), EXPIRES) == SERIAL


def test_link_past_its_expiry_is_refused_as_expired() -> None:
    token = make_link_token(KEY, SERIAL, EXPIRES)
    with pytest.raises(ExpiredLink) as caught:
        open_link_token([KEY], token, EXPIRES + timedelta(seconds=1))
    assert caught.value.reason == "link_expired"


def test_expired_link_is_a_not_found() -> None:
    # An expired link must look like a missing page, never like a server error.
    token = make_link_token(KEY, SERIAL, NOW - timedelta(days=1))
    with pytest.raises(NotFound):
        open_link_token([KEY], token, NOW)


def test_link_names_its_serial_and_expiry_in_the_clear() -> None:
    serial, expires, mac = make_link_token(KEY, SERIAL, EXPIRES).split(".")
    assert serial == SERIAL
    assert int(expires) == int(EXPIRES.timestamp())
    assert mac


def test_link_with_another_serial_is_invalid() -> None:
    _, expires, mac = make_link_token(KEY, SERIAL, EXPIRES).split(".")
    _refused_as_invalid(f"{OTHER_SERIAL}.{expires}.{mac}")


@pytest.mark.parametrize("shift", [1, 3600, 365 * 24 * 3600])
def test_link_with_a_stretched_expiry_is_invalid(shift: int) -> None:
    serial, expires, mac = make_link_token(KEY, SERIAL, EXPIRES).split(".")
    _refused_as_invalid(f"{serial}.{int(expires) + shift}.{mac}")


def test_expired_link_with_a_stretched_expiry_is_invalid_not_revived() -> None:
    past = NOW - timedelta(days=1)
    serial, expires, mac = make_link_token(KEY, SERIAL, past).split(".")
    _refused_as_invalid(f"{serial}.{int(expires) + 2 * 24 * 3600}.{mac}")


def test_link_with_a_changed_mac_is_invalid() -> None:
    serial, expires, mac = make_link_token(KEY, SERIAL, EXPIRES).split(".")
    tampered = ("B" if mac[0] != "B" else "C") + mac[1:]
    _refused_as_invalid(f"{serial}.{expires}.{tampered}")


def test_link_with_the_mac_cut_short_is_invalid() -> None:
    _refused_as_invalid(make_link_token(KEY, SERIAL, EXPIRES)[:-1])


def test_link_made_with_another_key_is_invalid() -> None:
    _refused_as_invalid(make_link_token(b"another-services-key", SERIAL, EXPIRES))


def test_same_link_made_twice_is_identical() -> None:
    assert make_link_token(KEY, SERIAL, EXPIRES) == make_link_token(KEY, SERIAL, EXPIRES)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        f"{SERIAL}.1893456000",
        f"{SERIAL}.1893456000.mac.extra",
        "not-a-serial.1893456000.mac",
        f"{SERIAL}.soon.mac",
        f"{SERIAL}.-1.mac",
        f"{SERIAL}..mac",
    ],
)
def test_tokens_of_the_wrong_shape_are_invalid(token: str) -> None:
    _refused_as_invalid(token)


def test_expiry_written_with_a_superscript_digit_is_invalid() -> None:
    _refused_as_invalid(f"{SERIAL}.\u00b2.AAAAAAAAAAAAAAAAAAAAAAAA")


def test_links_made_before_a_key_rotation_keep_working():
    old, new = b"old-link-key-" * 3, b"new-link-key-" * 3
    token = make_link_token(old, SERIAL, EXPIRES)
    assert open_link_token([new, old], token, NOW) == SERIAL
    with pytest.raises(NotFound):
        open_link_token([new], token, NOW)
