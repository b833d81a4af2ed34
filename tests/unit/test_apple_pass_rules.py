"""Apple's pass.json rules: each one refuses a breaking pass and names itself."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from walletsvc.apple.pass_rules import check_pass
from walletsvc.domain.errors import ConfigurationError, DomainError, InvalidInput

STRINGS = {
    "en": {"Points": "Points", "You now have %@ points": "You now have %@ points"},
    "de": {"Points": "Punkte", "You now have %@ points": "Sie haben jetzt %@ Punkte"},
}


def sound_pass() -> dict[str, Any]:
    return {
        "formatVersion": 1,
        "passTypeIdentifier": "pass.com.example.coffee",
        "serialNumber": "abc123",
        "teamIdentifier": "ABCDE12345",
        "organizationName": "Example Coffee",
        "description": "Example Coffee card",
        "backgroundColor": "rgb(20, 40, 80)",
        "foregroundColor": "rgb(255,255,255)",
        "labelColor": "rgb(200, 210, 230)",
        "webServiceURL": "https://wallet.example.com/apple",
        "authenticationToken": "0123456789abcdef",
        "barcodes": [
            {"format": "PKBarcodeFormatQR", "message": "W1.x", "messageEncoding": "iso-8859-1"}
        ],
        "locations": [{"latitude": 52.52, "longitude": 13.405, "relevantText": "Berlin"}] * 10,
        "relevantDates": [
            {"startDate": "2026-04-29T22:00:00+00:00", "endDate": "2026-04-30T22:00:00+00:00"}
        ],
        "storeCard": {
            "headerFields": [{"key": "tier", "label": "Tier", "value": "Gold"}],
            "primaryFields": [
                {
                    "key": "balance",
                    "label": "Points",
                    "value": 10,
                    "changeMessage": "You now have %@ points",
                }
            ],
            "secondaryFields": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}],
            "auxiliaryFields": [{"key": "c", "value": "3"}, {"key": "d", "value": "4"}],
            "backFields": [{"key": "e", "value": "5"}],
        },
    }


def test_a_sound_pass_passes() -> None:
    check_pass(sound_pass(), STRINGS, require_https=True)


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda document: document.pop(key)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = document
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return change


BROKEN: list[tuple[str, Callable[[dict[str, Any]], None], type[DomainError], str]] = [
    ("no organization", _drop("organizationName"), InvalidInput, "'organizationName'"),
    ("no description", _set("description", " "), InvalidInput, "'description'"),
    ("no serial", _drop("serialNumber"), ConfigurationError, "'serialNumber'"),
    ("wrong version", _set("formatVersion", 2), ConfigurationError, "formatVersion must be 1"),
    ("no style", _drop("storeCard"), InvalidInput, "exactly one style key"),
    ("two styles", _set("coupon", {}), InvalidInput, "exactly one style key"),
    (
        "repeated key",
        _set("storeCard.backFields", [{"key": "balance", "value": "x"}]),
        InvalidInput,
        "field key 'balance' is used twice (Apple requires unique keys)",
    ),
    (
        "change message without %@",
        _set("storeCard.primaryFields.0.changeMessage", "Points changed"),
        InvalidInput,
        "changeMessage of field 'balance' lacks %@",
    ),
    (
        "field without value",
        _set("storeCard.backFields", [{"key": "e", "label": "E"}]),
        InvalidInput,
        "field 'e' has no value",
    ),
    (
        "two primary fields",
        _set("storeCard.primaryFields", [{"key": "p", "value": 1}, {"key": "q", "value": 2}]),
        InvalidInput,
        "at most 1",
    ),
    (
        "five front fields with a square barcode",
        _set("storeCard.auxiliaryFields", [{"key": k, "value": k} for k in "cdf"]),
        InvalidInput,
        "at most 4 of them together",
    ),
    (
        "eleven locations",
        _set("locations", [{"latitude": 1.0, "longitude": 2.0}] * 11),
        InvalidInput,
        "Apple allows at most 10",
    ),
    (
        "location without coordinates",
        _set("locations", [{"latitude": "52.5", "longitude": 13.4}]),
        InvalidInput,
        "numeric latitude and longitude",
    ),
    (
        "eleven beacons",
        _set("beacons", [{"proximityUUID": "x"}] * 11),
        InvalidInput,
        "beacons; Apple allows at most 10",
    ),
    (
        "relevance over a day",
        _set("relevantDates.0.startDate", "2026-04-28T22:00:00+00:00"),
        InvalidInput,
        "at most 24 hours",
    ),
    (
        "relevance without an end",
        _set("relevantDates", [{"startDate": "2026-04-28T22:00:00+00:00"}]),
        InvalidInput,
        "startDate with an endDate",
    ),
    (
        "plain http web service",
        _set("webServiceURL", "http://wallet.example.com/apple"),
        ConfigurationError,
        "webServiceURL must use https",
    ),
    (
        "short token",
        _set("authenticationToken", "fifteen-chars.."),
        ConfigurationError,
        "at least 16 characters",
    ),
    (
        "token without a web service",
        _drop("webServiceURL"),
        ConfigurationError,
        "come together",
    ),
    ("colour out of range", _set("labelColor", "rgb(256, 0, 0)"), InvalidInput, "labelColor"),
    ("colour in hex", _set("backgroundColor", "#ffffff"), InvalidInput, "backgroundColor"),
    (
        "unknown barcode format",
        _set("barcodes.0.format", "PKBarcodeFormatEAN13"),
        InvalidInput,
        "barcode format 'PKBarcodeFormatEAN13' is not one of",
    ),
    (
        "barcode without encoding",
        _set("barcodes.0.messageEncoding", ""),
        ConfigurationError,
        "messageEncoding",
    ),
]


@pytest.mark.parametrize(
    ("change", "error", "named"),
    [case[1:] for case in BROKEN],
    ids=[case[0] for case in BROKEN],
)
def test_each_broken_rule_is_refused_by_name(
    change: Callable[[dict[str, Any]], None], error: type[DomainError], named: str
) -> None:
    document = sound_pass()
    change(document)
    with pytest.raises(error) as caught:
        check_pass(document, STRINGS, require_https=True)
    assert type(caught.value) is error
    assert caught.value.reason == "apple_rule"
    assert named in caught.value.detail


def test_plain_http_is_fine_in_development() -> None:
    document = sound_pass()
    document["webServiceURL"] = "http://localhost:8080/apple"
    check_pass(document, STRINGS, require_https=False)


def test_a_rectangular_barcode_allows_four_secondary_and_four_auxiliary_fields() -> None:
    document = sound_pass()
    document["barcodes"][0]["format"] = "PKBarcodeFormatPDF417"
    document["storeCard"]["secondaryFields"] = [{"key": f"s{n}", "value": n} for n in range(4)]
    document["storeCard"]["auxiliaryFields"] = [{"key": f"x{n}", "value": n} for n in range(4)]
    check_pass(document, STRINGS)


def test_a_localization_key_missing_from_one_language_is_refused() -> None:
    strings = copy.deepcopy(STRINGS)
    del strings["de"]["Points"]
    with pytest.raises(InvalidInput) as caught:
        check_pass(sound_pass(), strings)
    assert caught.value.reason == "apple_rule"
    assert "'Points'" in caught.value.detail
    assert "de.lproj/pass.strings" in caught.value.detail


def test_a_translated_change_message_must_keep_its_placeholder() -> None:
    strings = copy.deepcopy(STRINGS)
    strings["de"]["You now have %@ points"] = "Neuer Punktestand"
    with pytest.raises(InvalidInput) as caught:
        check_pass(sound_pass(), strings)
    assert "without %@ in de.lproj/pass.strings" in caught.value.detail


def test_texts_no_table_knows_are_shown_as_they_are() -> None:
    document = sound_pass()
    document["storeCard"]["backFields"] = [{"key": "e", "label": "Spring treat", "value": "5"}]
    check_pass(document, STRINGS)
