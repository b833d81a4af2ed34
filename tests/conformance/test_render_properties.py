"""Properties of pass rendering over generated program designs and passes (issue 8).

Designs are generated in two shapes: `scenarios()` mixes valid and invalid options (colours
in other notations, duplicate and built-in field keys, bad templates, too many or unknown
location stores, tiers out of order, empty names), `clean_scenarios()` only valid ones. Both
carry long, unicode and German texts, 0-15 stores, points and tiers, every barcode format
and loyalty cards and coupons in every state (active, voided, redeemed, expired).

1. validation (validate_program, then the sample renders of check_design, then the
   coupon's check) refuses a design with InvalidInput naming a field, never another
   exception, and refuses what breaks a rule checked here; a clean design is accepted;
   an accepted design renders every pass.
2. what renders obeys Apple's rules as PROTOCOLS.md section 1 states them, checked here
   without the project's own rule checker (walletsvc/apple/pass_rules.py).
3. the signed bundle lists every file with its SHA-1, carries the rendered pass.json and
   its signature verifies against the test CA.
4. rendering is deterministic, also when the stores come in another order.
5. en and de pass.strings hold every localized text pass.json uses, read with a parser
   of the strings format written here.

Examples per test are set below (the signing one fewer: an RSA signature each); the seed
is printed on failure (`--hypothesis-seed` repeats).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography import x509
from hypothesis import Phase, event, given, settings
from hypothesis import strategies as st

from walletsvc.apple.credentials import load_signing_identity
from walletsvc.apple.pass_json import PassJsonRenderer
from walletsvc.apple.pkpass import PkpassBuilder
from walletsvc.apple.verify import Status, render_text, verify_pkpass
from walletsvc.apple.wallet import ApplePassSigner
from walletsvc.domain.barcode import BarcodeKeyRing, encode_barcode
from walletsvc.domain.customer import Customer
from walletsvc.domain.errors import InvalidInput
from walletsvc.domain.pass_content import PassContent
from walletsvc.domain.program import (
    AppleDesign,
    BarcodeFormat,
    FieldGroup,
    LocalizedText,
    PassField,
    Program,
    Tier,
    validate_program,
)
from walletsvc.domain.store import Store
from walletsvc.domain.wallet_pass import (
    SERIAL_ALPHABET,
    SERIAL_LENGTH,
    Coupon,
    PassKind,
    PassState,
    WalletPass,
    validate_coupon,
)
from walletsvc.services.pass_render import content_digest
from walletsvc.services.programs import check_design

CERTS = Path(__file__).resolve().parents[2] / "certs_example"
DEV_CA = CERTS / "wwdr-dev-ca.pem"
# What the throwaway certificate in certs_example/ is issued for.
PASS_TYPE_ID = "pass.com.example.walletsvc.demo"
TEAM_ID = "DEVTEAM123"
URL = "https://wallet.example.com/apple"
RING = BarcodeKeyRing({"k1": b"\x07" * 32}, current="k1")

IDENTITY = load_signing_identity(
    wwdr=DEV_CA, certificate=CERTS / "pass-certificate.pem", private_key=CERTS / "pass-key.pem"
)
BUILDER = PkpassBuilder(IDENTITY)
SIGNER = ApplePassSigner(BUILDER, URL, require_https=True)
RENDERER = PassJsonRenderer(URL, require_https=True)
ROOTS = [x509.load_pem_x509_certificate(DEV_CA.read_bytes())]
# check_design reads only ctx.apple; the rest of a ServiceContext needs a database.
DESIGN_CTX: Any = SimpleNamespace(apple=SIGNER)

# No explain phase: it replays a failure hundreds of times and adds nothing a seed does not.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink]
MANY = settings(max_examples=200, deadline=None, phases=PHASES)
SIGNED = settings(max_examples=40, deadline=None, phases=PHASES)

# --- What PROTOCOLS.md section 1 says, written out here -------------------------------------

STYLE_KEYS = ("boardingPass", "coupon", "eventTicket", "generic", "storeCard")
FIELD_GROUPS = ("headerFields", "primaryFields", "secondaryFields", "auxiliaryFields", "backFields")
REQUIRED_TEXT_KEYS = (
    "passTypeIdentifier",
    "serialNumber",
    "teamIdentifier",
    "organizationName",
    "description",
)
APPLE_BARCODES = {
    BarcodeFormat.QR: "PKBarcodeFormatQR",
    BarcodeFormat.PDF417: "PKBarcodeFormatPDF417",
    BarcodeFormat.AZTEC: "PKBarcodeFormatAztec",
    BarcodeFormat.CODE128: "PKBarcodeFormatCode128",
}
# "rgb(r, g, b)", channels 0-255; the blanks a C or CSS parser skips, nothing else.
COLOUR = re.compile(r"rgb\([ \t\n\r\f]*(\d{1,3})[ \t\n\r\f]*,[ \t\n\r\f]*(\d{1,3})"
                    r"[ \t\n\r\f]*,[ \t\n\r\f]*(\d{1,3})[ \t\n\r\f]*\)", re.ASCII)  # fmt: skip
# The field keys every loyalty card or coupon carries itself (docs/pass-design.md).
BUILT_IN_KEYS = frozenset({"tier", "balance", "program", "offer", "details", "expires"})
# The built-in English texts and their German, from docs/pass-design.md and the tests of it.
BUILT_IN_GERMAN = {
    "Tier": "Stufe",
    "Points": "Punkte",
    "Program": "Programm",
    "Details": "Details",
    "Valid until": "Gültig bis",
    "Your tier is now %@": "Ihre Stufe ist jetzt %@",
    "You now have %@ points": "Sie haben jetzt %@ Punkte",
    "Your offer is now %@": "Ihr Angebot ist jetzt %@",
}


def colour_ok(value: object) -> bool:
    match = COLOUR.fullmatch(str(value))
    return match is not None and all(int(part) <= 255 for part in match.groups())


def apple_rule_violations(raw: bytes, content: PassContent) -> list[str]:
    """Return every rule of PROTOCOLS.md section 1 (and docs/pass-design.md) `raw` breaks."""
    problems: list[str] = []
    text = raw.decode("utf-8")  # strict: a lone surrogate or bad byte fails here

    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    document = json.loads(text, parse_constant=no_constants)
    if json.loads(json.dumps(document, ensure_ascii=False)) != document:
        problems.append("pass.json does not survive a JSON round trip")
    version = document.get("formatVersion")
    if type(version) is not int or version != 1:
        problems.append(f"formatVersion is {version!r}, not 1")
    for key in REQUIRED_TEXT_KEYS:
        value = document.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"required key {key} missing or empty")
    styles = [key for key in STYLE_KEYS if key in document]
    wanted = "storeCard" if content.wallet_pass.kind is PassKind.LOYALTY else "coupon"
    if styles != [wanted]:
        problems.append(f"style keys {styles}, expected exactly [{wanted!r}]")
    keys: list[str] = []
    for style in styles:
        for group in FIELD_GROUPS:
            for field in document[style].get(group, []):
                keys.append(field.get("key"))
                if "value" not in field:
                    problems.append(f"field {field.get('key')!r} has no value")
                message = field.get("changeMessage")
                if message is not None and "%@" not in message:
                    problems.append(f"changeMessage {message!r} lacks %@")
    repeated = sorted(key for key, count in Counter(keys).items() if count > 1)
    if repeated or not all(isinstance(key, str) and key for key in keys):
        problems.append(f"field keys not unique and non-empty: {repeated or keys}")
    for name in ("backgroundColor", "foregroundColor", "labelColor"):
        if not colour_ok(document.get(name)):
            problems.append(f"{name} {document.get(name)!r} is not rgb(r, g, b)")
    locations = document.get("locations", [])
    if len(locations) > 10 or len(document.get("beacons", [])) > 10:
        problems.append(f"{len(locations)} locations / beacons: at most 10")
    for location in locations:
        for axis in ("latitude", "longitude"):
            if type(location.get(axis)) is not float:
                problems.append(f"location {axis} {location.get(axis)!r} is not a number")
    if "relevantDate" in document:
        problems.append("relevantDate is deprecated: relevantDates replaces it")
    barcodes = document.get("barcodes", [])
    allowed = set(APPLE_BARCODES.values())
    if not barcodes or any(
        code.get("format") not in allowed
        or not code.get("message")
        or not code.get("messageEncoding")
        for code in barcodes
    ):
        problems.append(f"barcodes {barcodes!r} break the format/message/encoding rule")
    url, token = document.get("webServiceURL"), document.get("authenticationToken")
    if not (isinstance(url, str) and url.startswith("https://")):
        problems.append(f"webServiceURL {url!r} is not https")
    if not (isinstance(token, str) and len(token) >= 16):
        problems.append("authenticationToken shorter than 16 characters")
    return problems


def check_matches_content(document: dict[str, Any], content: PassContent) -> None:
    """The pass says what its program, pass and stores say (and nothing invented)."""
    design, wallet_pass = content.program.apple, content.wallet_pass
    assert document["passTypeIdentifier"] == design.pass_type_identifier
    assert document["teamIdentifier"] == design.team_identifier
    assert document["organizationName"] == design.organization_name
    assert document["description"] == design.description
    assert document["serialNumber"] == wallet_pass.serial
    assert document["authenticationToken"] == wallet_pass.authentication_token
    assert [document[name] for name in ("backgroundColor", "foregroundColor", "labelColor")] == [
        design.background_color,
        design.foreground_color,
        design.label_color,
    ]
    barcodes = document["barcodes"]
    assert barcodes[0]["format"] == APPLE_BARCODES[design.barcode_format]
    assert all(code["message"] == content.barcode_message for code in barcodes)
    if design.barcode_format is BarcodeFormat.CODE128:  # an Apple Watch shows the QR code
        assert "PKBarcodeFormatQR" in [code["format"] for code in barcodes[1:]]
    active = wallet_pass.state is PassState.ACTIVE
    if not active:
        assert document.get("voided") is True
        assert "locations" not in document and "relevantDates" not in document
    else:
        assert "voided" not in document
        # docs/pass-design.md: the home store and its nearest, else the program's known
        # location stores in order, else the first stores by id; at most 10.
        ids = {store.id for store in content.stores}
        chosen = [i for i in dict.fromkeys(design.location_store_ids) if i in ids]
        expected = min(len(chosen) if chosen and content.home_store_id not in ids else len(ids), 10)
        places = [(spot["latitude"], spot["longitude"]) for spot in document.get("locations", [])]
        assert len(places) == expected, (len(places), expected)
        assert set(places) <= {(s.latitude, s.longitude) for s in content.stores}
    coupon = wallet_pass.coupon
    if coupon is not None and coupon.expires_at is not None:
        stated = datetime.fromisoformat(document["expirationDate"])
        assert stated.tzinfo is not None
        assert stated == coupon.expires_at.replace(microsecond=0)
    else:
        assert "expirationDate" not in document


# --- pass.strings, read with a parser of their format written here ----------------------------

_ENTRY = re.compile(r'\s*"((?:[^"\\]|\\.)*)"\s*=\s*"((?:[^"\\]|\\.)*)"\s*;', re.DOTALL)
_UNESCAPE = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r"}


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _UNESCAPE[m.group(1)], text, flags=re.DOTALL)


def parse_strings(data: bytes) -> dict[str, str]:
    """Read a UTF-16 (BOM) strings file of `"key" = "value";` entries; refuse anything else."""
    assert data.startswith(b"\xff\xfe"), "pass.strings must be UTF-16 with a byte order mark"
    text = data[2:].decode("utf-16-le")
    table: dict[str, str] = {}
    position = 0
    while text[position:].strip():
        match = _ENTRY.match(text, position)
        assert match is not None, f"unreadable pass.strings at {text[position : position + 40]!r}"
        key = _unescape(match.group(1))
        assert key not in table, f"{key!r} appears twice"
        table[key] = _unescape(match.group(2))
        position = match.end()
    return table


# --- Strategies ------------------------------------------------------------------------------

GERMAN = (
    "Größe",
    "Straße",
    "Bäckerei Müller & Söhne",
    "Kundenkarte für Ihre Einkäufe",
    "Grüße aus Köln",
    "ÄÖÜäöüß",
    "Ermäßigung für Stammkunden",
)
ENGLISH = ("Member since", "Coffee & Co", "Terms", 'Say "hi"', "Back\\slash", "Level")
# Texts that are localization keys already (built-in labels and change messages).
TAKEN = tuple(BUILT_IN_GERMAN)
words = st.sampled_from(GERMAN + ENGLISH)
long_text = st.text(min_size=61, max_size=300)
any_text = st.one_of(
    words, st.text(max_size=60), long_text, st.sampled_from(TAKEN), st.sampled_from(["", " "])
)
shown_text = st.one_of(words, st.text(min_size=1, max_size=60), long_text).filter(str.strip)
# One printable line (letters, marks, digits, punctuation, symbols, spaces), as labels must be.
printable = st.characters(categories=("L", "M", "N", "P", "S"), include_characters=" ")
label_text = st.one_of(words, st.text(printable, min_size=1, max_size=60).filter(str.strip))

channel = st.integers(0, 255)
blank = st.sampled_from(["", " ", "  ", "\t"])
valid_colour = st.builds(
    lambda r, g, b, s1, s2: f"rgb({r},{s1}{g},{s2}{b})", channel, channel, channel, blank, blank
)
invalid_colour = st.one_of(
    st.builds(lambda r, g, b: f"rgb({r}, {g}, {b})", st.integers(256, 999), channel, channel),
    st.builds(lambda r, g, b: f"#{r:02x}{g:02x}{b:02x}", channel, channel, channel),
    st.sampled_from(
        [
            "rgba(1, 2, 3, 0.5)",
            "rgb(1, 2)",
            "red",
            "",
            "rgb(-1, 0, 0)",
            "rgb(1,2,3) ",
            "rgb(1.5, 2, 3)",
        ]
    ),
    # Blanks and digits of other scripts: a device's parser knows neither.
    st.builds(
        lambda r, s: f"rgb({r},{s}1, 2)",
        channel,
        st.sampled_from(["\u00a0", "\u3000", "\u2003", "\x1c", "\x85"]),
    ),
    st.just("rgb(\u0661\u0662, 2, 3)"),
)
colour = st.one_of(valid_colour, invalid_colour)

field_keys = st.one_of(
    st.sampled_from(sorted(BUILT_IN_KEYS)),
    st.sampled_from(["level", "terms", "since", "Z_9-x", "a"]),
    st.sampled_from(["", "1abc", "a b", "ä", "x" * 33]),
    st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,31}", fullmatch=True),
)
templates = st.one_of(
    st.sampled_from(
        [
            "{points}",
            "{tier}",
            "{program}",
            "{serial}",
            "See {program} online",
            "{points} Punkte \u2013 Stufe {tier}",
            "",
            "{store}",
            "{unknown}",
            "{",
            "}",
            "{{points}}",
        ]
    ),
    st.text(max_size=60),
    st.text(min_size=201, max_size=260),
)
localized = st.builds(LocalizedText, en=any_text, de=st.none() | any_text)
pass_fields = st.builds(
    PassField, key=field_keys, group=st.sampled_from(FieldGroup), label=localized, value=templates
)
store_ids = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,12}", fullmatch=True)
stores = st.lists(
    st.builds(
        Store,
        id=store_ids,
        program_id=st.just("coffee"),
        name=shown_text,
        latitude=st.floats(-90, 90),
        longitude=st.floats(-180, 180),
        radius_m=st.just(100.0),
    ),
    max_size=15,
    unique_by=lambda store: store.id,
)
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
)
moments = st.datetimes(datetime(2020, 1, 1), datetime(2040, 1, 1), timezones=zones)
tokens = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    min_size=43,
    max_size=43,
)
serials = st.text(alphabet=SERIAL_ALPHABET, min_size=SERIAL_LENGTH, max_size=SERIAL_LENGTH)


@st.composite
def tiers_in_order(draw: st.DrawFn, names: st.SearchStrategy[str]) -> tuple[Tier, ...]:
    chosen = draw(st.lists(names, min_size=1, max_size=5, unique_by=str.strip))
    steps = draw(st.lists(st.integers(1, 10**6), min_size=len(chosen), max_size=len(chosen)))
    thresholds = [sum(steps[:i]) for i in range(len(chosen))]  # 0, then strictly rising
    display = st.none() | st.builds(LocalizedText, en=label_text, de=st.none() | label_text)
    return tuple(
        Tier(name, points, draw(display)) for name, points in zip(chosen, thresholds, strict=True)
    )


@dataclass(frozen=True)
class Scenario:
    """One generated pass of one generated program, with the program's stores."""

    content: PassContent
    # Why an independent reading of the rules says the design must be refused.
    must_refuse: tuple[str, ...] = ()


@st.composite
def _pass_of(draw: st.DrawFn, program: Program, all_stores: list[Store]) -> Scenario:
    points = draw(st.integers(0, 10**12))
    customer = Customer(
        id="cust-1",
        program_id=program.id,
        external_id="crm-1",
        points_balance=points,
        tier=program.tier_for(points) if program.tiers else "",
    )
    kind = draw(st.sampled_from(PassKind))
    coupon = None
    if kind is PassKind.COUPON:
        coupon = Coupon(
            title=draw(st.one_of(shown_text.filter(lambda t: len(t) <= 80), st.just(""))),
            description=draw(st.none() | shown_text),
            discount=draw(st.none() | st.sampled_from(["10 %", "2 für 1", "€5"]) | shown_text),
            expires_at=draw(st.none() | moments),
        )
    serial = draw(serials)
    wallet_pass = WalletPass(
        serial=serial,
        program_id=program.id,
        customer_id=customer.id,
        kind=kind,
        authentication_token=draw(tokens),
        state=draw(st.sampled_from(PassState)),
        coupon=coupon,
        created_at=draw(moments),
    )
    home = draw(st.none() | st.sampled_from([s.id for s in all_stores] or ["nowhere"]))
    content = PassContent(
        program=program,
        customer=customer,
        wallet_pass=wallet_pass,
        barcode_message=encode_barcode(RING, serial),
        stores=tuple(all_stores),
        home_store_id=home,
    )
    return Scenario(content)


def _extra_keys_clash(fields: tuple[PassField, ...]) -> bool:
    keys = [extra.key for extra in fields]
    return len(set(keys)) != len(keys) or bool(BUILT_IN_KEYS & set(keys))


@st.composite
def _mutated(draw: st.DrawFn, scenario: Scenario) -> Scenario:
    """Change one option of a clean scenario to a generated, often invalid, value."""
    content = scenario.content
    program, design = content.program, content.program.apple
    what = draw(
        st.sampled_from(
            [
                "colour", "field", "fields", "change message label", "locations", "tiers",
                "tier name", "texts", "templates", "identifiers", "coupon title",
            ]
        )
    )  # fmt: skip
    if what == "colour":
        name = draw(st.sampled_from(["background_color", "foreground_color", "label_color"]))
        design = replace(design, **{name: draw(colour)})
    elif what == "field":
        design = replace(design, fields=(*design.fields, draw(pass_fields)))
    elif what == "fields":
        design = replace(design, fields=tuple(draw(st.lists(pass_fields, max_size=12))))
    elif what == "change message label":
        # A design cannot set a changeMessage, but a label with a change message's English
        # text shares its pass.strings entry: its German must keep the %@.
        message = draw(st.sampled_from([m for m in BUILT_IN_GERMAN if "%@" in m]))
        german = draw(
            st.sampled_from([BUILT_IN_GERMAN[message], BUILT_IN_GERMAN[message].replace("%@", "")])
            | st.none()
        )
        extra = PassField("note", FieldGroup.BACK, LocalizedText(message, german), "{points}")
        design = replace(design, fields=(*design.fields, extra))
    elif what == "locations":
        known = [store.id for store in content.stores]
        pool = st.sampled_from([*known, "unknown", "bad id!"])
        design = replace(design, location_store_ids=tuple(draw(st.lists(pool, max_size=15))))
    elif what == "tiers":
        names = st.one_of(words, st.sampled_from(TAKEN), st.text(max_size=40))
        tiers = st.lists(
            st.builds(Tier, name=names, min_points=st.integers(-5, 10**6), display_name=st.none()),
            max_size=4,
        ).map(tuple)
        program = replace(program, tiers=draw(tiers | tiers_in_order(names)))
    elif what == "tier name":
        first, *rest = program.tiers
        taken = draw(st.sampled_from(TAKEN))
        program = replace(program, tiers=(replace(first, name=taken, display_name=None), *rest))
    elif what == "texts":
        design = replace(
            design,
            organization_name=draw(any_text),
            description=draw(any_text),
            logo_text=draw(st.none() | any_text),
        )
        program = replace(program, name=draw(any_text))
    elif what == "templates":
        design = replace(
            design,
            barcode_alt_text=draw(st.none() | templates),
            location_text=draw(templates),
        )
    elif what == "identifiers":
        design = replace(
            design,
            pass_type_identifier=draw(
                st.sampled_from([PASS_TYPE_ID, "pass.com.example.other", "com.example", "pass."])
            ),
            team_identifier=draw(st.sampled_from([TEAM_ID, "ABCDE12345", "short", "devteam123"])),
        )
        program = replace(program, id=draw(st.sampled_from(["coffee", "kaffee-2", "Coffee!", ""])))
    elif content.wallet_pass.coupon is not None:  # the coupon's title
        coupon = replace(content.wallet_pass.coupon, title=draw(any_text | long_text))
        content = replace(content, wallet_pass=replace(content.wallet_pass, coupon=coupon))
    program = replace(program, apple=design)
    customer = replace(content.customer, program_id=program.id)
    if program.tiers:
        customer = replace(customer, tier=program.tier_for(customer.points_balance))
    content = replace(content, program=program, customer=customer)
    event(f"changed: {what}")
    return Scenario(content, must_refuse(program))


def must_refuse(program: Program) -> tuple[str, ...]:
    """Return why this test's own reading of the rules says the design must be refused."""
    design = program.apple
    reasons = [
        f"{name} {getattr(design, name)!r}"
        for name in ("background_color", "foreground_color", "label_color")
        if not colour_ok(getattr(design, name))
    ]
    if _extra_keys_clash(design.fields):
        reasons.append(f"field keys {[f.key for f in design.fields]} repeat or reuse built-ins")
    ids = design.location_store_ids
    if len(ids) > 10 or len(set(ids)) != len(ids):
        reasons.append(f"location stores {ids}")
    # A text that is a built-in localization key must keep the built-in German (and so its
    # %@ when it is a change message): one pass.strings entry cannot say two things.
    # (key, English, German): a label is its own key; a tier's name is, showing its display name.
    entries = [(f.label.en, f.label.en, f.label.in_language("de")) for f in design.fields]
    entries += [(t.name, t.shown.en, t.shown.in_language("de")) for t in program.tiers]
    for key, english, german in entries:
        if key in BUILT_IN_GERMAN and (english, german) != (key, BUILT_IN_GERMAN[key]):
            reasons.append(f"{key!r} translated to {(english, german)!r}")
    return tuple(reasons)


def scenarios() -> st.SearchStrategy[Scenario]:
    """A clean scenario with one or two options changed to generated, often invalid, values."""
    once = clean_scenarios().flatmap(_mutated)
    return st.one_of(once, once.flatmap(_mutated))


# Clean designs: a pool of labels with one German text each, so no two options translate
# one English text differently, and at most 3 front fields, which fits a coupon's expiry
# next to them within Apple's 4 secondary and auxiliary fields.
CLEAN_LABELS = {
    "Member since": "Mitglied seit",
    "Level": "Ebene",
    "Terms": "Bedingungen",
    "Größe": "Größe",
    'Say "hi"': 'Sag "hallo"',
    "Back\\slash": "Rück\\strich",
    "Straße": "Straße",
    "Hotline": "Hotline",
}
CLEAN_TEMPLATES = st.sampled_from(
    ["{points}", "{tier}", "{program}", "{serial}", "See {program} online", "{points} Punkte"]
) | st.text(
    st.characters(
        categories=("L", "M", "N", "P", "S"), include_characters=" ", exclude_characters="{}"
    ),
    max_size=60,
)


@st.composite
def clean_fields(draw: st.DrawFn) -> tuple[PassField, ...]:
    keys = draw(st.lists(st.sampled_from(["level", "terms", "since", "Z_9-x", "x1"]), unique=True))
    fields = []
    front = 0
    for key in keys:
        group = draw(st.sampled_from(FieldGroup))
        if group is not FieldGroup.BACK and front == 3:
            group = FieldGroup.BACK
        front += group is not FieldGroup.BACK
        english = draw(st.sampled_from(sorted(CLEAN_LABELS)))
        german = draw(st.sampled_from([CLEAN_LABELS[english], None]))
        if german is None and english != CLEAN_LABELS[english]:
            english = "Hotline"  # without German the English text is used: keep it consistent
        fields.append(PassField(key, group, LocalizedText(english, german), draw(CLEAN_TEMPLATES)))
    return tuple(fields)


@st.composite
def clean_scenarios(draw: st.DrawFn) -> Scenario:
    """A program that breaks no rule (certificate's pass type), and one of its passes."""
    all_stores = draw(stores)
    known = [store.id for store in all_stores]
    chosen = draw(st.lists(st.sampled_from(known), max_size=10, unique=True)) if known else []
    reserved = set(TAKEN) | set(CLEAN_LABELS)
    names = st.one_of(
        st.sampled_from(["Bronze", "Silber", "Gold", "Platin", "Größte Stufe", "Grün & Blau"]),
        st.text(min_size=1, max_size=40).filter(lambda name: name.strip() and name not in reserved),
    )
    design = AppleDesign(
        pass_type_identifier=PASS_TYPE_ID,
        team_identifier=TEAM_ID,
        organization_name=draw(shown_text),
        description=draw(shown_text),
        logo_text=draw(st.none() | shown_text),
        background_color=draw(valid_colour),
        foreground_color=draw(valid_colour),
        label_color=draw(valid_colour),
        barcode_format=draw(st.sampled_from(BarcodeFormat)),
        barcode_alt_text=draw(st.none() | CLEAN_TEMPLATES),
        fields=draw(clean_fields()),
        location_store_ids=tuple(chosen),
        location_text=draw(st.sampled_from(["{store}", "{store} ist um die Ecke", "{program}"])),
    )
    program = Program(
        id="coffee",
        name=draw(shown_text),
        tiers=draw(tiers_in_order(names)),
        points_per_unit=Decimal("1"),
        apple=design,
    )
    scenario: Scenario = draw(_pass_of(program, all_stores))
    coupon = scenario.content.wallet_pass.coupon
    if coupon is not None and not coupon.title.strip():
        wallet_pass = replace(scenario.content.wallet_pass, coupon=replace(coupon, title="Angebot"))
        scenario = Scenario(replace(scenario.content, wallet_pass=wallet_pass))
    return scenario


def validate(content: PassContent) -> None:
    """Everything the service checks before a pass of this design exists."""
    validate_program(content.program, development=False)
    check_design(DESIGN_CTX, content.program)
    validate_coupon(content.wallet_pass.kind, content.wallet_pass.coupon)


# --- Properties ------------------------------------------------------------------------------

REFUSABLE_FIELDS = ("id", "name", "tiers", "points_per_unit", "loyalty", "apple", "coupon")


@MANY
@given(scenario=scenarios())
def test_a_design_is_refused_naming_a_field_or_its_passes_render(scenario: Scenario) -> None:
    content = scenario.content
    try:
        validate(content)
    except InvalidInput as error:
        event(f"refused: {error.field}")
        assert error.detail and error.field, (error.reason, error.detail, error.field)
        assert re.split(r"[.\[]", error.field)[0] in REFUSABLE_FIELDS, error.field
        if error.reason == "apple_rule":
            assert error.field == "apple"
        return
    event("accepted")
    assert not scenario.must_refuse, f"accepted although: {scenario.must_refuse}"
    raw = RENDERER.render(content)  # an accepted design renders every pass
    assert apple_rule_violations(raw, content) == []
    check_matches_content(json.loads(raw), content)


@MANY
@given(scenario=clean_scenarios())
def test_a_clean_design_is_accepted_and_its_pass_obeys_apples_rules(scenario: Scenario) -> None:
    content = scenario.content
    validate(content)
    raw = RENDERER.render(content)
    assert apple_rule_violations(raw, content) == []
    check_matches_content(json.loads(raw), content)


@SIGNED
@given(scenario=clean_scenarios())
def test_the_signed_bundle_lists_every_file_and_verifies(scenario: Scenario) -> None:
    content = scenario.content
    program = content.program
    rendered = RENDERER.render(content)
    assets = SIGNER.bundle_assets(program, SIGNER.default_assets(program))
    bundle = BUILDER.build(rendered, BUILDER.prepare_assets(assets))

    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        files = {name: archive.read(name) for name in names}
    assert len(names) == len(set(names)), "a file appears twice in the zip"
    manifest = json.loads(files["manifest.json"])
    assert set(manifest) == set(files) - {"manifest.json", "signature"}
    for name, digest in manifest.items():
        assert hashlib.sha1(files[name]).hexdigest() == digest, name
    assert files["pass.json"] == rendered
    assert {"icon.png", "en.lproj/pass.strings", "de.lproj/pass.strings"} <= set(files)

    report = verify_pkpass(bundle, roots=ROOTS)
    assert all(check.status is Status.PASS for check in report.checks), render_text(report)


@MANY
@given(scenario=clean_scenarios(), data=st.data())
def test_rendering_is_deterministic(scenario: Scenario, data: st.DataObject) -> None:
    content = scenario.content
    first = RENDERER.render(content)
    # The same pass rebuilt from equal parts, its stores in another order (as a database
    # may return them), rendered by another renderer: still the same bytes.
    shuffled = data.draw(st.permutations(content.stores))
    again = PassContent(
        program=replace(content.program),
        customer=replace(content.customer),
        wallet_pass=replace(content.wallet_pass),
        barcode_message=str(content.barcode_message),
        stores=tuple(replace(store) for store in shuffled),
        home_store_id=content.home_store_id,
    )
    second = PassJsonRenderer(URL, require_https=True).render(again)
    assert first == second
    assert content_digest(content.program, first) == content_digest(again.program, second)


@MANY
@given(scenario=clean_scenarios())
def test_every_localized_text_is_in_the_english_and_german_strings(scenario: Scenario) -> None:
    content = scenario.content
    program = content.program
    document = json.loads(RENDERER.render(content))
    files = SIGNER.bundle_assets(program, {})
    tables = {lang: parse_strings(files[f"{lang}.lproj/pass.strings"]) for lang in ("en", "de")}
    assert set(files) == {"en.lproj/pass.strings", "de.lproj/pass.strings"}

    style = document["storeCard" if "storeCard" in document else "coupon"]
    fields = [field for group in FIELD_GROUPS for field in style.get(group, [])]
    extra = {f.key: f for f in program.apple.fields}
    tiers = {tier.name: tier for tier in program.tiers}
    for field in fields:
        used = [field["changeMessage"]] if "changeMessage" in field else []
        if field["key"] != "offer":  # a coupon's own title is its label, not a key
            used.append(field["label"])
        if field["key"] == "tier" and field["value"] in tiers:
            used.append(field["value"])
        for text in used:
            for lang, table in tables.items():
                assert text in table, f"{text!r} missing from {lang}.lproj/pass.strings"
        if "changeMessage" in field:
            assert all("%@" in tables[lang][field["changeMessage"]] for lang in tables)
        label = field["label"]
        if field["key"] in extra:
            wanted = extra[field["key"]].label
            assert (tables["en"][label], tables["de"][label]) == (wanted.en, wanted.de or wanted.en)
        elif label in BUILT_IN_GERMAN:
            assert (tables["en"][label], tables["de"][label]) == (label, BUILT_IN_GERMAN[label])
        if field["key"] == "tier" and field["value"] in tiers:
            shown = tiers[field["value"]].display_name or LocalizedText(field["value"])
            assert tables["de"][field["value"]] == (shown.de or shown.en)
    for message in BUILT_IN_GERMAN:
        assert tables["de"][message] == BUILT_IN_GERMAN[message]


def test_the_strings_parser_refuses_what_it_cannot_read() -> None:
    # The check above is only as good as this parser: it must not read garbage as a table.
    good = b"\xff\xfe" + '"a\\"b" = "c\\nd";\n"x" = "y";\n'.encode("utf-16-le")
    assert parse_strings(good) == {'a"b': "c\nd", "x": "y"}
    with pytest.raises(AssertionError):
        parse_strings(b"\xff\xfe" + '"a" = "b"\n"c" = "d";'.encode("utf-16-le"))
    with pytest.raises(AssertionError):
        parse_strings(b'"a" = "b";')
