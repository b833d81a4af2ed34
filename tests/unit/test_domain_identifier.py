"""Personal identifiers: normalised once, kept only as a keyed hash."""

from __future__ import annotations

import hashlib

import pytest

from walletsvc.domain.errors import InvalidInput
from walletsvc.domain.identifier import (
    IdentifierKind,
    hash_identifier,
    normalize_email,
    normalize_phone,
)

PEPPER = b"pepper-for-tests"


@pytest.mark.parametrize(
    "raw",
    [
        "anna@example.com",
        "Anna@Example.com",
        "ANNA@EXAMPLE.COM",
        "  anna@example.com\n",
        "\tAnna@EXAMPLE.com ",
    ],
)
def test_same_address_typed_differently_normalises_the_same(raw: str) -> None:
    assert normalize_email(raw) == "anna@example.com"


def test_plus_tags_and_subdomains_are_kept() -> None:
    assert normalize_email("Anna+Shop@Mail.Example.co.uk") == "anna+shop@mail.example.co.uk"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "anna",
        "anna@",
        "@example.com",
        "anna@example",
        "anna@example.c",
        "anna@@example.com",
        "an@na@example.com",
        "an na@example.com",
        "anna@exa mple.com",
        ("a" * 65) + "@example.com",
        "anna@" + ("a" * 250) + ".com",
    ],
)
def test_what_is_not_an_address_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_email(raw)
    assert caught.value.field == "email"


def test_local_part_of_64_characters_is_accepted() -> None:
    address = ("a" * 64) + "@example.com"
    assert normalize_email(address) == address


@pytest.mark.parametrize(
    "raw",
    [
        "+4915112345678",
        "+49 151 12345678",
        "+49-151-1234-5678",
        "+49 (151) 123 456 78",
        "+49.151.12345678",
        "+49/151/12345678",
        "004915112345678",
        "0049 151 12345678",
        "  +49 151 12345678  ",
    ],
)
def test_same_number_typed_differently_normalises_to_e164(raw: str) -> None:
    assert normalize_phone(raw) == "+4915112345678"


@pytest.mark.parametrize("raw", ["+1234567", "+123456789012345"])
def test_numbers_of_7_to_15_digits_are_accepted(raw: str) -> None:
    assert normalize_phone(raw) == raw


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "+",
        "015112345678",  # a local number: which country?
        "0151 12345678",
        "15112345678",
        "+0151 12345678",  # no country code starts with 0
        "000151 12345678",  # "00" then a 0: still no country code
        "+123456",  # six digits: too short
        "+1234567890123456",  # sixteen digits: too long for E.164
        "+49 151 CALL-ME",
        "+49 151 1234567x",
        "++4915112345678",
        "tel:+4915112345678",
    ],
)
def test_what_is_not_an_international_number_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_phone(raw)
    assert caught.value.field == "phone"


def test_number_with_non_ascii_digits_is_not_returned_outside_e164() -> None:
    raw = "+4\u0669\u0661\u0665\u0661\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668"
    try:
        normalized = normalize_phone(raw)
    except InvalidInput:
        return
    assert normalized == "+4915112345678"


def test_same_identifier_hashes_the_same_every_time() -> None:
    first = hash_identifier(PEPPER, IdentifierKind.EMAIL_HASH, "anna@example.com")
    second = hash_identifier(PEPPER, IdentifierKind.EMAIL_HASH, "anna@example.com")
    assert first == second


def test_address_typed_differently_hashes_the_same_once_normalised() -> None:
    kind = IdentifierKind.EMAIL_HASH
    assert hash_identifier(PEPPER, kind, normalize_email(" Anna@Example.COM")) == hash_identifier(
        PEPPER, kind, normalize_email("anna@example.com")
    )


def test_different_identifiers_hash_differently() -> None:
    kind = IdentifierKind.EMAIL_HASH
    assert hash_identifier(PEPPER, kind, "anna@example.com") != hash_identifier(
        PEPPER, kind, "ben@example.com"
    )


def test_hash_differs_per_pepper() -> None:
    kind = IdentifierKind.EMAIL_HASH
    assert hash_identifier(b"pepper-a", kind, "anna@example.com") != hash_identifier(
        b"pepper-b", kind, "anna@example.com"
    )


def test_hash_differs_per_kind() -> None:
    # The same string as an email and as a phone must not link to the same person.
    value = "+4915112345678"
    hashes = {hash_identifier(PEPPER, kind, value) for kind in IdentifierKind}
    assert len(hashes) == len(IdentifierKind)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (IdentifierKind.EMAIL_HASH, "anna@example.com"),
        (IdentifierKind.PHONE_HASH, "+4915112345678"),
    ],
)
def test_hash_never_contains_the_identifier(kind: IdentifierKind, value: str) -> None:
    digest = hash_identifier(PEPPER, kind, value)
    assert len(digest) == 64
    assert set(digest) <= set("0123456789abcdef")
    assert value not in digest
    assert value.lstrip("+") not in digest


def test_hash_is_keyed_not_a_plain_sha256() -> None:
    # A plain SHA-256 of an email can be reversed with a list of addresses.
    value = "anna@example.com"
    digest = hash_identifier(PEPPER, IdentifierKind.EMAIL_HASH, value)
    assert digest != hashlib.sha256(value.encode()).hexdigest()
    assert digest != hashlib.sha256(f"email_sha256:{value}".encode()).hexdigest()
