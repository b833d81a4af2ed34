"""Loyalty programs: tiers, earning rate and how their passes look."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from itertools import pairwise

from walletsvc.domain.errors import InvalidInput

PROGRAM_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Apple's colour format: "rgb(r, g, b)".
RGB = re.compile(r"^rgb\(\s*([0-9]{1,3})\s*,\s*([0-9]{1,3})\s*,\s*([0-9]{1,3})\s*\)$")
# Reverse-DNS pass type ids as Apple issues them ("pass.com.example.loyalty").
PASS_TYPE_ID = re.compile(r"^pass(\.[A-Za-z0-9-]+)+$")
TEAM_ID = re.compile(r"^[A-Z0-9]{10}$")


@dataclass(frozen=True)
class Tier:
    """A named level reached at `min_points`."""

    name: str
    min_points: int


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


@dataclass(frozen=True)
class GoogleSettings:
    """The program's Google Wallet issuer, when it has one."""

    issuer_id: str | None = None
    class_suffix: str | None = None


@dataclass(frozen=True)
class Program:
    """A loyalty program: its tiers, earning rate and pass design."""

    id: str
    name: str
    tiers: tuple[Tier, ...]
    points_per_unit: Decimal
    apple: AppleDesign
    google: GoogleSettings = field(default_factory=GoogleSettings)
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


def validate_tiers(tiers: tuple[Tier, ...]) -> None:
    """Tiers start at 0 points, have unique names and strictly rising thresholds."""
    if not tiers:
        raise InvalidInput("a program needs at least one tier", field="tiers")
    if tiers[0].min_points != 0:
        raise InvalidInput("the first tier must start at min_points 0", field="tiers")
    names = [tier.name.strip() for tier in tiers]
    if any(not name for name in names) or len(set(names)) != len(names):
        raise InvalidInput("tier names must be non-empty and unique", field="tiers")
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
