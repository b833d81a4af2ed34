"""Properties of every parser of untrusted input that tests/conformance/test_pos_adapters.py
does not cover already (it runs the POS adapters, Square, Shopify, Toast and the
Standard Webhooks one, over random and mangled bodies and headers):

- pass barcodes: any text gives a serial or one of the two barcode errors; an issued
  code gives its serial back; no single-character change names another pass;
- Radar's geofence webhook: any headers verify or raise the signature errors; any
  body, or a mangled real one, parses or raises a domain error naming what is wrong;
- Google Wallet's callback: any body, or a mangled real envelope, verifies or raises a
  domain error (CallbackRejected, MalformedWebhook), never another exception.

Hypothesis runs with the profile in tests/conftest.py (or its defaults); the examples
per test are set below and the seed is printed on failure (`--hypothesis-seed` repeats).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.google_callbacks import CallbackSigner
from tests.unit.test_radar_webhook import NOW, body, radar_event, signed
from walletsvc.domain.barcode import (
    BarcodeKeyRing,
    ForgedBarcode,
    MalformedBarcode,
    decode_barcode,
    encode_barcode,
)
from walletsvc.domain.errors import BadSignature, DomainError, StaleTimestamp
from walletsvc.domain.wallet_pass import SERIAL_ALPHABET, SERIAL_LENGTH
from walletsvc.google.callback import CallbackVerifier, RootKeyFile
from walletsvc.intake.radar import RadarBatch, RadarWebhook

RING = BarcodeKeyRing({"k1": b"\x01" * 32, "k2": b"\x02" * 32}, current="k2")
serials = st.text(alphabet=SERIAL_ALPHABET, min_size=SERIAL_LENGTH, max_size=SERIAL_LENGTH)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
EXAMPLES = settings(max_examples=300, deadline=None)


# Barcodes


@EXAMPLES
@given(message=st.text(max_size=120) | st.builds(lambda s: f"W1.k2.{s}.AAAA", st.text()))
def test_any_text_is_a_serial_or_a_barcode_error(message: str) -> None:
    try:
        serial = decode_barcode(RING, message)
    except (MalformedBarcode, ForgedBarcode):
        return
    assert len(serial) == SERIAL_LENGTH


@EXAMPLES
@given(serial=serials, key_id=st.sampled_from(["k1", "k2"]))
def test_an_issued_code_gives_its_serial_back(serial: str, key_id: str) -> None:
    ring = BarcodeKeyRing(RING.keys, current=key_id)
    assert decode_barcode(RING, encode_barcode(ring, serial)) == serial


@EXAMPLES
@given(serial=serials, data=st.data())
def test_no_single_character_change_names_another_pass(serial: str, data: st.DataObject) -> None:
    code = encode_barcode(RING, serial)
    position = data.draw(st.integers(0, len(code) - 1))
    replacement = data.draw(st.characters(codec="ascii").filter(lambda c: c != code[position]))
    mutated = code[:position] + replacement + code[position + 1 :]
    try:
        decoded = decode_barcode(RING, mutated)
    except (MalformedBarcode, ForgedBarcode):
        return
    # Tills may read the MAC in either case; nothing else about a code is forgiven.
    assert decoded == serial and mutated.upper() == code.upper(), (code, mutated)
    assert position > len(code) - 17  # the change was in the MAC


# Radar


def _radar() -> RadarWebhook:
    return RadarWebhook(["radar-property-token-0123456789"])


header_text = st.text(max_size=80)


@EXAMPLES
@given(
    headers=st.dictionaries(
        st.sampled_from(["X-Radar-Signing-Id", "X-Radar-Signature", "x-radar-signature", "Other"]),
        header_text,
    )
)
def test_any_radar_headers_verify_or_raise_a_signature_error(headers: dict[str, str]) -> None:
    try:
        signing_id = _radar().verify(headers)
    except (BadSignature, StaleTimestamp):
        return
    assert isinstance(signing_id, str) and signing_id


def test_a_signed_radar_request_verifies() -> None:
    headers = signed(token="radar-property-token-0123456789")
    assert _radar().verify(headers) == "sig-0001"


@EXAMPLES
@given(raw=st.binary(max_size=400))
def test_any_radar_body_parses_or_raises_a_domain_error(raw: bytes) -> None:
    try:
        batch = _radar().parse(raw, NOW)
    except DomainError:
        return
    assert isinstance(batch, RadarBatch)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


def _mangle(document: Any, data: st.DataObject) -> Any:
    """Replace or delete one value anywhere in a JSON document."""
    document = copy.deepcopy(document)
    path = data.draw(st.sampled_from(_paths(document)[1:]))
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(json_values)
    return document


@EXAMPLES
@given(data=st.data())
def test_a_mangled_radar_delivery_parses_or_raises_a_domain_error(data: st.DataObject) -> None:
    document = json.loads(body(radar_event(), radar_event(type="user.exited_geofence")))
    mangled = _mangle(document, data)
    try:
        batch = _radar().parse(json.dumps(mangled).encode(), NOW)
    except DomainError as error:
        assert error.reason
        return
    # Whatever is accepted is accounted for: each event is a claim or a skip.
    assert len(batch.claims) + len(batch.skipped) <= 2


# Google callbacks

ISSUER = "3388000000022100000"
IDS = {"object_id": f"{ISSUER}.{'a' * 26}", "class_id": f"{ISSUER}.kaffee"}


@pytest.fixture(scope="module")
def google(tmp_path_factory: pytest.TempPathFactory) -> tuple[CallbackSigner, CallbackVerifier]:
    signer = CallbackSigner()
    roots = signer.write_root_keys(Path(tmp_path_factory.mktemp("google")) / "roots.json")
    return signer, CallbackVerifier(RootKeyFile(roots), ISSUER)


def test_a_genuine_callback_verifies(google: tuple[CallbackSigner, CallbackVerifier]) -> None:
    signer, verifier = google
    envelope = json.dumps(signer.envelope(recipient=ISSUER, **IDS)).encode()
    assert verifier.verify(envelope, datetime.now(UTC)).object_id == IDS["object_id"]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=400) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_callback_body_verifies_or_raises_a_domain_error(
    google: tuple[CallbackSigner, CallbackVerifier], raw: bytes
) -> None:
    _, verifier = google
    with pytest.raises(DomainError):
        verifier.verify(raw, datetime.now(UTC))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_mangled_callback_is_refused_with_a_domain_error(
    google: tuple[CallbackSigner, CallbackVerifier], data: st.DataObject
) -> None:
    signer, verifier = google
    envelope = signer.envelope(recipient=ISSUER, **IDS)
    # The signed parts are JSON inside strings: mangle them there too.
    for key in ("signedMessage",):
        envelope[key] = json.loads(envelope[key])
    envelope["intermediateSigningKey"]["signedKey"] = json.loads(
        envelope["intermediateSigningKey"]["signedKey"]
    )
    mangled = _mangle(envelope, data)
    if isinstance(mangled.get("signedMessage"), dict | list):
        mangled["signedMessage"] = json.dumps(mangled["signedMessage"])
    key = mangled.get("intermediateSigningKey")
    if isinstance(key, dict) and isinstance(key.get("signedKey"), dict | list):
        key["signedKey"] = json.dumps(key["signedKey"])
    try:
        callback = verifier.verify(json.dumps(mangled).encode(), datetime.now(UTC))
    except DomainError as error:
        assert error.reason
        return
    # Only a change that re-serialises to the very bytes that were signed can pass.
    assert callback.object_id == IDS["object_id"]
