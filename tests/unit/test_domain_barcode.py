"""Pass barcodes: a till can read them, nobody can forge or guess them."""

from __future__ import annotations

import pytest

from walletsvc.domain.barcode import (
    MAC_CHARS,
    BarcodeKeyRing,
    ForgedBarcode,
    MalformedBarcode,
    decode_barcode,
    encode_barcode,
)
from walletsvc.domain.errors import InvalidInput
from walletsvc.domain.wallet_pass import new_serial

SERIAL = "0123456789abcdefghjkmnpqrs"
OTHER_SERIAL = "srqpnmkjhgfedcba9876543210"
BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
RING = BarcodeKeyRing(keys={"k1": b"first-barcode-key"}, current="k1")


def _flip(char: str) -> str:
    return "A" if char != "A" else "B"


def test_encoded_barcode_decodes_to_its_serial() -> None:
    assert decode_barcode(RING, encode_barcode(RING, SERIAL)) == SERIAL


@pytest.mark.parametrize("_", range(50))
def test_fresh_serials_round_trip(_: int) -> None:
    serial = new_serial()
    assert decode_barcode(RING, encode_barcode(RING, serial)) == serial


def test_barcode_holds_only_prefix_key_id_serial_and_mac() -> None:
    parts = encode_barcode(RING, SERIAL).split(".")
    assert parts[:3] == ["W1", "k1", SERIAL]
    assert len(parts) == 4
    assert len(parts[3]) == MAC_CHARS
    assert set(parts[3]) <= set(BASE32)


def test_barcode_depends_only_on_the_serial() -> None:
    # encode_barcode takes nothing but the serial, so no customer data can leak in,
    # and the same serial always gives the same code a till can re-scan.
    assert encode_barcode(RING, SERIAL) == encode_barcode(RING, SERIAL)
    assert encode_barcode(RING, SERIAL) != encode_barcode(RING, OTHER_SERIAL)


def test_surrounding_whitespace_from_a_scanner_is_ignored() -> None:
    assert decode_barcode(RING, f"  {encode_barcode(RING, SERIAL)}\r\n") == SERIAL


def test_lowercase_mac_is_accepted() -> None:
    prefix, key_id, serial, mac = encode_barcode(RING, SERIAL).split(".")
    assert decode_barcode(RING, f"{prefix}.{key_id}.{serial}.{mac.lower()}") == SERIAL


@pytest.mark.parametrize("position", range(MAC_CHARS))
def test_barcode_with_one_mac_char_changed_is_forged(position: int) -> None:
    prefix, key_id, serial, mac = encode_barcode(RING, SERIAL).split(".")
    tampered = mac[:position] + _flip(mac[position]) + mac[position + 1 :]
    with pytest.raises(ForgedBarcode) as caught:
        decode_barcode(RING, f"{prefix}.{key_id}.{serial}.{tampered}")
    assert caught.value.reason == "barcode_forged"


def test_mac_of_one_serial_does_not_open_another() -> None:
    prefix, key_id, _, mac = encode_barcode(RING, SERIAL).split(".")
    with pytest.raises(ForgedBarcode) as caught:
        decode_barcode(RING, f"{prefix}.{key_id}.{OTHER_SERIAL}.{mac}")
    assert caught.value.reason == "barcode_forged"


def test_barcode_signed_with_an_unknown_key_id_is_forged() -> None:
    prefix, _, serial, mac = encode_barcode(RING, SERIAL).split(".")
    with pytest.raises(ForgedBarcode) as caught:
        decode_barcode(RING, f"{prefix}.k9.{serial}.{mac}")
    assert caught.value.reason == "barcode_forged"


def test_barcode_relabelled_with_another_known_key_id_is_forged() -> None:
    ring = BarcodeKeyRing(keys={"k1": b"first", "k2": b"second"}, current="k1")
    _, _, serial, mac = encode_barcode(ring, SERIAL).split(".")
    with pytest.raises(ForgedBarcode):
        decode_barcode(ring, f"W1.k2.{serial}.{mac}")


def test_truncated_mac_is_forged() -> None:
    code = encode_barcode(RING, SERIAL)
    with pytest.raises(ForgedBarcode):
        decode_barcode(RING, code[:-1])


def test_barcode_from_a_ring_with_a_different_secret_is_forged() -> None:
    stranger = BarcodeKeyRing(keys={"k1": b"someone-elses-key"}, current="k1")
    with pytest.raises(ForgedBarcode):
        decode_barcode(RING, encode_barcode(stranger, SERIAL))


@pytest.mark.parametrize(
    "message",
    [
        "",
        "   ",
        "garbage",
        "4006381333931",  # an EAN someone scanned by mistake
        f"W2.k1.{SERIAL}.AAAAAAAAAAAAAAAA",  # wrong prefix
        f"w1.k1.{SERIAL}.AAAAAAAAAAAAAAAA",  # prefix is case-sensitive
        f"W1.{SERIAL}.AAAAAAAAAAAAAAAA",  # three parts
        f"W1.k1.{SERIAL}.AAAAAAAAAAAAAAAA.extra",  # five parts
        "W1.k1.not-a-serial.AAAAAAAAAAAAAAAA",
        f"W1.k1.{SERIAL[:-1]}.AAAAAAAAAAAAAAAA",  # serial one short
        f"W1.k1.{SERIAL}0.AAAAAAAAAAAAAAAA",  # serial one long
        f"W1.k1.{SERIAL.upper()}.AAAAAAAAAAAAAAAA",  # serials are lowercase
        f"W1.k1.{'i' * 26}.AAAAAAAAAAAAAAAA",  # look-alike letters are never in a serial
    ],
)
def test_codes_that_are_not_ours_are_malformed(message: str) -> None:
    with pytest.raises(MalformedBarcode) as caught:
        decode_barcode(RING, message)
    assert caught.value.reason == "barcode_malformed"
    assert caught.value.field == "barcode"


def test_barcode_errors_are_invalid_input() -> None:
    # The web layer maps InvalidInput; both barcode refusals must stay inside it.
    assert issubclass(ForgedBarcode, InvalidInput)
    assert issubclass(MalformedBarcode, InvalidInput)


def test_barcode_made_before_rotation_still_scans_while_its_key_is_kept() -> None:
    before = BarcodeKeyRing(keys={"k1": b"old-key"}, current="k1")
    code = encode_barcode(before, SERIAL)
    after = BarcodeKeyRing(keys={"k1": b"old-key", "k2": b"new-key"}, current="k2")
    assert decode_barcode(after, code) == SERIAL


def test_new_barcodes_use_the_current_key_after_rotation() -> None:
    before = BarcodeKeyRing(keys={"k1": b"old-key"}, current="k1")
    after = BarcodeKeyRing(keys={"k1": b"old-key", "k2": b"new-key"}, current="k2")
    code = encode_barcode(after, SERIAL)
    assert code.split(".")[1] == "k2"
    assert code != encode_barcode(before, SERIAL)
    assert decode_barcode(after, code) == SERIAL
    with pytest.raises(ForgedBarcode):
        decode_barcode(before, code)


def test_barcode_stops_scanning_once_its_key_is_removed() -> None:
    before = BarcodeKeyRing(keys={"k1": b"old-key"}, current="k1")
    code = encode_barcode(before, SERIAL)
    retired = BarcodeKeyRing(keys={"k2": b"new-key"}, current="k2")
    with pytest.raises(ForgedBarcode) as caught:
        decode_barcode(retired, code)
    assert caught.value.reason == "barcode_forged"


def test_key_ring_refuses_a_current_id_it_does_not_hold() -> None:
    with pytest.raises(ValueError, match="current"):
        BarcodeKeyRing(keys={"k1": b"key"}, current="k2")


@pytest.mark.parametrize("key_id", ["", "k.1", "k-1", "k 1", "123456789", "k1/"])
def test_key_ring_refuses_key_ids_a_barcode_cannot_carry(key_id: str) -> None:
    with pytest.raises(ValueError, match="key ids"):
        BarcodeKeyRing(keys={key_id: b"key", "ok": b"key"}, current="ok")


@pytest.mark.parametrize("key_id", ["a", "K1", "12345678"])
def test_key_ring_accepts_short_alphanumeric_key_ids(key_id: str) -> None:
    ring = BarcodeKeyRing(keys={key_id: b"key"}, current=key_id)
    assert decode_barcode(ring, encode_barcode(ring, SERIAL)) == SERIAL
