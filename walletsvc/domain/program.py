"""Loyalty programs: tiers, earning rate and how their passes look."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from typing import NamedTuple

from walletsvc.domain.errors import InvalidInput
from walletsvc.domain.store import STORE_ID

PROGRAM_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Apple's colour format: "rgb(r, g, b)". ASCII blanks only: str patterns' \s also takes
# no-break and ideographic spaces, which a device's colour parser does not skip.
RGB = re.compile(r"^rgb\(\s*([0-9]{1,3})\s*,\s*([0-9]{1,3})\s*,\s*([0-9]{1,3})\s*\)$", re.ASCII)
# Reverse-DNS pass type ids as Apple issues them ("pass.com.example.loyalty").
PASS_TYPE_ID = re.compile(r"^pass(\.[A-Za-z0-9-]+)+$")
TEAM_ID = re.compile(r"^[A-Z0-9]{10}$")
FIELD_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
# A placeholder in a program's text templates: `{points}`. Only the names below are filled;
# templates are plain substitution, never evaluated, so an operator cannot reach anything else.
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
FIELD_PLACEHOLDERS = frozenset({"points", "tier", "program", "serial"})
LOCATION_PLACEHOLDERS = frozenset({"store", "program"})
MAX_EXTRA_FIELDS = 10
MAX_LOCATION_STORES = 10  # Apple shows at most 10 locations per pass
MAX_LABEL = 60
MAX_TEMPLATE = 200


@dataclass(frozen=True)
class LocalizedText:
    """A text shown on passes in English and, when given, German (else English is used)."""

    en: str
    de: str | None = None

    def in_language(self, language: str) -> str:
        """Return the text for `language`, falling back to English."""
        if language == "de" and self.de:
            return self.de
        return self.en


@dataclass(frozen=True)
class Tier:
    """A named level reached at `min_points`; `display_name` is what passes show."""

    name: str
    min_points: int
    display_name: LocalizedText | None = None

    @property
    def shown(self) -> LocalizedText:
        """Return the tier's name as passes show it."""
        return self.display_name or LocalizedText(self.name)


class BarcodeFormat(StrEnum):
    """The barcode symbologies Apple Wallet draws on a pass."""

    QR = "qr"
    PDF417 = "pdf417"
    AZTEC = "aztec"
    CODE128 = "code128"


class FieldGroup(StrEnum):
    """Where on the pass a program-defined field appears."""

    SECONDARY = "secondary"
    AUXILIARY = "auxiliary"
    BACK = "back"


@dataclass(frozen=True)
class PassField:
    """A field the program adds to its passes: a label and a value template."""

    key: str
    group: FieldGroup
    label: LocalizedText
    value: str  # may use {points}, {tier}, {program} and {serial}


@dataclass(frozen=True)
class AppleDesign:
    """What Apple needs to know about a program's passes and how they look."""

    pass_type_identifier: str
    team_identifier: str
    organization_name: str
    description: str
    logo_text: str | None = None
    background_color: str = "rgb(20, 40, 80)"
    foreground_color: str = "rgb(255, 255, 255)"
    label_color: str = "rgb(200, 210, 230)"
    barcode_format: BarcodeFormat = BarcodeFormat.QR
    barcode_alt_text: str | None = None  # a template, like a field value
    fields: tuple[PassField, ...] = ()
    # Stores whose positions the passes carry when the holder has no home store.
    location_store_ids: tuple[str, ...] = ()
    location_text: str = "{store}"  # lock-screen text near a store; {store}, {program}


@dataclass(frozen=True)
class GoogleSettings:
    """The program's Google Wallet issuer, when it has one."""

    issuer_id: str | None = None
    class_suffix: str | None = None


class DowngradePolicy(StrEnum):
    """How the scheduled tier review may lower a tier (upgrades always happen at once)."""

    NEVER = "never"  # a tier once reached is kept
    BALANCE = "balance"  # the tier the current balance reaches
    ROLLING = "rolling"  # the tier the points earned in the qualification window reach


@dataclass(frozen=True)
class LoyaltyPolicy:
    """How a program's tiers are reviewed and its points expire."""

    downgrade: DowngradePolicy = DowngradePolicy.NEVER
    qualification_days: int = 365  # the window of the rolling policy
    points_expiry_days: int | None = None  # None: points never expire


@dataclass(frozen=True)
class Program:
    """A loyalty program: its tiers, earning rate and pass design."""

    id: str
    name: str
    tiers: tuple[Tier, ...]
    points_per_unit: Decimal
    apple: AppleDesign
    google: GoogleSettings = field(default_factory=GoogleSettings)
    loyalty: LoyaltyPolicy = field(default_factory=LoyaltyPolicy)
    design_version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def tier_for(self, points: int) -> str:
        """Return the name of the highest tier whose threshold `points` reaches."""
        reached = self.tiers[0].name
        for tier in self.tiers:
            if points >= tier.min_points:
                reached = tier.name
        return reached

    def with_design(self, apple: AppleDesign) -> Program:
        """Return the program with a new pass design, bumping the design version."""
        return replace(self, apple=apple, design_version=self.design_version + 1)


class RefreshPoint(NamedTuple):
    """What a program's passes must be rendered for: its design and its set of stores."""

    design_version: int
    stores_version: int


def validate_program(program: Program, *, development: bool) -> None:
    """Refuse a program whose id, tiers, rate or design cannot work, naming the field."""
    if not PROGRAM_ID.fullmatch(program.id):
        raise InvalidInput(
            "program id must be 1-63 lowercase letters, digits or '-', starting with a letter "
            "or digit",
            field="id",
        )
    if not program.name.strip():
        raise InvalidInput("program name must not be empty", field="name")
    validate_tiers(program.tiers)
    validate_loyalty_policy(program.loyalty)
    rate = program.points_per_unit
    if not rate.is_finite() or rate < 0 or rate > 10_000:
        raise InvalidInput("points_per_unit must be between 0 and 10000", field="points_per_unit")
    apple = program.apple
    if not PASS_TYPE_ID.fullmatch(apple.pass_type_identifier):
        raise InvalidInput(
            "pass_type_identifier must look like 'pass.com.example.loyalty'",
            field="apple.pass_type_identifier",
        )
    # Development material uses free-form team ids; real Apple team ids are 10 characters.
    if not development and not TEAM_ID.fullmatch(apple.team_identifier):
        raise InvalidInput(
            "team_identifier must be the 10-character Apple team id",
            field="apple.team_identifier",
        )
    for name in ("background_color", "foreground_color", "label_color"):
        value = getattr(apple, name)
        match = RGB.fullmatch(value)
        if not match or any(int(part) > 255 for part in match.groups()):
            raise InvalidInput(f"{name} must be 'rgb(r, g, b)' with 0-255", field=f"apple.{name}")
    if not apple.organization_name.strip():
        raise InvalidInput("Apple requires organization_name", field="apple.organization_name")
    if not apple.description.strip():
        raise InvalidInput("Apple requires description", field="apple.description")
    _validate_pass_content(apple)


def validate_loyalty_policy(policy: LoyaltyPolicy) -> None:
    """Refuse review windows and expiry periods outside what a program can mean."""
    if not 1 <= policy.qualification_days <= 3660:
        raise InvalidInput(
            "qualification_days must be between 1 and 3660", field="loyalty.qualification_days"
        )
    expiry = policy.points_expiry_days
    if expiry is not None and not 1 <= expiry <= 3660:
        raise InvalidInput(
            "points_expiry_days must be between 1 and 3660 (or null: never)",
            field="loyalty.points_expiry_days",
        )


def _validate_pass_content(apple: AppleDesign) -> None:
    if apple.barcode_alt_text is not None:
        _check_template(apple.barcode_alt_text, FIELD_PLACEHOLDERS, "apple.barcode_alt_text")
    if len(apple.fields) > MAX_EXTRA_FIELDS:
        raise InvalidInput(f"a design has at most {MAX_EXTRA_FIELDS} fields", field="apple.fields")
    for number, extra in enumerate(apple.fields):
        where = f"apple.fields[{number}]"
        if not FIELD_KEY.fullmatch(extra.key):
            raise InvalidInput(
                "field key must be 1-32 letters, digits, '_' or '-', starting with a letter",
                field=f"{where}.key",
            )
        _check_text(extra.label, f"{where}.label")
        _check_template(extra.value, FIELD_PLACEHOLDERS, f"{where}.value")
    ids = apple.location_store_ids
    if len(ids) > MAX_LOCATION_STORES:
        raise InvalidInput(
            f"at most {MAX_LOCATION_STORES} location stores (Apple shows up to 10 locations)",
            field="apple.location_store_ids",
        )
    if len(set(ids)) != len(ids) or not all(STORE_ID.fullmatch(i) for i in ids):
        raise InvalidInput(
            "location_store_ids must be unique store ids", field="apple.location_store_ids"
        )
    _check_template(apple.location_text, LOCATION_PLACEHOLDERS, "apple.location_text")


def _check_text(text: LocalizedText, where: str) -> None:
    for value in (text.en, text.de):
        if value is None:
            continue
        # One line each: pass.strings and Wallet's labels are single-line texts.
        if not value.strip() or len(value) > MAX_LABEL or not value.isprintable():
            raise InvalidInput(
                f"texts must be 1-{MAX_LABEL} printable characters on one line", field=where
            )


def _check_template(template: str, allowed: frozenset[str], where: str) -> None:
    if len(template) > MAX_TEMPLATE or not template.isprintable():
        raise InvalidInput(
            f"a template is at most {MAX_TEMPLATE} printable characters", field=where
        )
    names = set(PLACEHOLDER.findall(template))
    unknown = names - allowed
    if unknown:
        known = ", ".join("{" + name + "}" for name in sorted(allowed))
        raise InvalidInput(
            f"unknown placeholder {{{sorted(unknown)[0]}}}; use {known}", field=where
        )
    rest = PLACEHOLDER.sub("", template)
    if "{" in rest or "}" in rest:
        raise InvalidInput("braces are only allowed around a placeholder", field=where)


def fill_template(template: str, values: Mapping[str, str]) -> str:
    """Return `template` with each `{name}` replaced by its value; unknown names stay."""
    return PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), template)


def validate_tiers(tiers: tuple[Tier, ...]) -> None:
    """Tiers start at 0 points, have unique names and strictly rising thresholds."""
    if not tiers:
        raise InvalidInput("a program needs at least one tier", field="tiers")
    if tiers[0].min_points != 0:
        raise InvalidInput("the first tier must start at min_points 0", field="tiers")
    names = [tier.name.strip() for tier in tiers]
    if any(not name for name in names) or len(set(names)) != len(names):
        raise InvalidInput("tier names must be non-empty and unique", field="tiers")
    for number, tier in enumerate(tiers):
        if tier.display_name is not None:
            _check_text(tier.display_name, f"tiers[{number}].display_name")
    thresholds = [tier.min_points for tier in tiers]
    if any(b <= a for a, b in pairwise(thresholds)):
        raise InvalidInput("tier min_points must rise strictly", field="tiers")


def rgb_triple(value: str) -> tuple[int, int, int]:
    """Return the (r, g, b) of an Apple colour string."""
    match = RGB.fullmatch(value)
    if not match:
        raise InvalidInput(f"not an rgb() colour: {value!r}")
    r, g, b = (int(part) for part in match.groups())
    return r, g, b
