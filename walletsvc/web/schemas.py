"""Request (`In`) and response (`Out`) models of the server-to-server API (API.md).

Requests refuse unknown fields, so a typo is an error and not silently ignored.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer


class In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


Name = Annotated[str, Field(min_length=1, max_length=200)]


class ApiKeyIn(In):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    scopes: Annotated[list[str], Field(min_length=1, max_length=20)]
    program: str | None = None


class ApiKeyOut(Out):
    id: str
    key: str = Field(description="the secret; shown only in this answer")
    name: str
    scopes: list[str]
    program: str | None


class ApiKeyInfoOut(Out):
    """A key as listed: never its secret."""

    id: str
    name: str
    scopes: list[str]
    program: str | None
    created_at: datetime | None
    revoked_at: datetime | None


class ApiKeyListOut(Out):
    items: list[ApiKeyInfoOut]


ShortText = Annotated[str, Field(min_length=1, max_length=60)]
Template = Annotated[str, Field(max_length=200)]


class LocalizedTextIn(In):
    en: ShortText
    de: ShortText | None = None


Localized = Annotated[
    ShortText | LocalizedTextIn,
    Field(description='one text for every language, or {"en": ..., "de": ...}'),
]


class TierIn(In):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    min_points: Annotated[int, Field(ge=0, le=10**12)]
    display_name: Localized | None = Field(
        default=None, description="what passes show for the tier; defaults to its name"
    )


class PassFieldIn(In):
    key: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")]
    group: Literal["secondary", "auxiliary", "back"]
    label: Localized
    value: Template = Field(description="text with {points}, {tier}, {program} or {serial}")


class AppleDesignIn(In):
    pass_type_identifier: str | None = Field(
        default=None, description="defaults to the configured Pass Type ID certificate's"
    )
    team_identifier: str | None = Field(default=None, description="defaults to the certificate's")
    organization_name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=200)
    logo_text: str | None = Field(default=None, max_length=40)
    background_color: str = "rgb(20, 40, 80)"
    foreground_color: str = "rgb(255, 255, 255)"
    label_color: str = "rgb(200, 210, 230)"
    barcode_format: Literal["qr", "pdf417", "aztec", "code128"] = "qr"
    barcode_alt_text: Annotated[str, Field(max_length=100)] | None = Field(
        default=None, description="text under the barcode; may use the field placeholders"
    )
    fields: Annotated[list[PassFieldIn], Field(max_length=10)] = Field(default_factory=list)
    location_store_ids: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]], Field(max_length=10)
    ] = Field(
        default_factory=list,
        description="stores the passes list when the holder has no home store",
    )
    location_text: Annotated[str, Field(min_length=1, max_length=100)] = Field(
        default="{store}", description="lock-screen text near a store; {store}, {program}"
    )


class GoogleIn(In):
    issuer_id: Annotated[str, Field(pattern=r"^\d{1,30}$")] | None = None
    class_suffix: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,100}$")] | None = None


class LoyaltyPolicyIn(In):
    downgrade: Literal["never", "balance", "rolling"] = Field(
        default="never",
        description="how the scheduled review may lower a tier: never; to what the balance "
        "reaches; to what the points earned in the last qualification_days reach",
    )
    qualification_days: Annotated[int, Field(ge=1, le=3660)] = 365
    points_expiry_days: Annotated[int | None, Field(ge=1, le=3660)] = Field(
        default=None, description="points expire this many days after they were earned"
    )


class LoyaltyPolicyOut(Out):
    downgrade: str
    qualification_days: int
    points_expiry_days: int | None


class ProgramIn(In):
    id: Annotated[str, Field(min_length=1, max_length=63)]
    name: Name
    tiers: Annotated[list[TierIn], Field(min_length=1, max_length=20)]
    points_per_unit: Annotated[Decimal, Field(ge=0, le=10000, max_digits=12, decimal_places=4)] = (
        Decimal("1")
    )
    apple: AppleDesignIn = Field(default_factory=AppleDesignIn)
    google: GoogleIn = Field(default_factory=GoogleIn)
    loyalty: LoyaltyPolicyIn = Field(default_factory=LoyaltyPolicyIn)


class LocalizedTextOut(Out):
    en: str
    de: str | None


class TierOut(Out):
    name: str
    min_points: int
    display_name: LocalizedTextOut | None = None


class PassFieldOut(Out):
    key: str
    group: str
    label: LocalizedTextOut
    value: str


class AppleDesignOut(Out):
    pass_type_identifier: str
    team_identifier: str
    organization_name: str
    description: str
    logo_text: str | None
    background_color: str
    foreground_color: str
    label_color: str
    barcode_format: str
    barcode_alt_text: str | None
    fields: list[PassFieldOut]
    location_store_ids: list[str]
    location_text: str


class GoogleOut(Out):
    issuer_id: str | None
    class_suffix: str | None


class ProgramOut(Out):
    id: str
    name: str
    tiers: list[TierOut]
    points_per_unit: Decimal
    apple: AppleDesignOut
    google: GoogleOut
    loyalty: LoyaltyPolicyOut
    design_version: int
    created_at: datetime | None

    @field_serializer("points_per_unit")
    def _exact(self, value: Decimal) -> str:
        return str(value)


class ProgramListOut(Out):
    items: list[ProgramOut]


class StoreIn(In):
    id: Annotated[str, Field(min_length=1, max_length=64)]
    program: str
    name: Name
    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]
    radius_m: Annotated[float, Field(ge=20, le=5000)] = 100.0


class StoreOut(Out):
    id: str
    program: str
    name: str
    latitude: float
    longitude: float
    radius_m: float
    created_at: datetime | None


class TerminalIn(In):
    id: Annotated[str, Field(min_length=1, max_length=64)]
    adapter: Annotated[str, Field(min_length=1, max_length=32)] = "walletsvc"
    secret: (
        Annotated[
            str,
            Field(
                min_length=8,
                max_length=200,
                description="the vendor's webhook signing key (square, shopify, toast); "
                "omit for walletsvc and standard, which get a generated secret",
            ),
        ]
        | None
    ) = None


class TerminalOut(Out):
    id: str
    store_id: str
    adapter: str
    secret: str | None = Field(
        description="the generated Standard Webhooks secret (whsec_...), shown only now; "
        "null when the vendor's own key was given"
    )


class TerminalSecretIn(In):
    previous_valid_for_s: Annotated[int, Field(ge=0, le=7 * 86_400)] = Field(
        default=86_400,
        description="how long the current secret keeps working beside the new one",
    )
    secret: Annotated[str, Field(min_length=8, max_length=200)] | None = Field(
        default=None,
        description="the vendor's new webhook signing key (square, shopify, toast); omit "
        "for walletsvc and standard, which get a generated secret",
    )


class TerminalSecretOut(Out):
    id: str
    store_id: str
    adapter: str
    secret: str | None = Field(description="the new generated secret, shown only now")
    previous_valid_until: datetime


class ErasureOut(Out):
    customer_id: str
    passes_voided: int


class ConsentsIn(In):
    location: bool = False
    marketing: bool = False


class CustomerIn(In):
    external_id: Annotated[str, Field(min_length=1, max_length=128)]
    email: Annotated[str, Field(max_length=254)] | None = None
    phone: Annotated[str, Field(max_length=32)] | None = None
    consents: ConsentsIn | None = None
    program: str | None = Field(
        default=None, description="needed only for a key not bound to a program when several exist"
    )


class ConsentsOut(Out):
    location: bool
    marketing: bool


class IdentifierOut(Out):
    kind: str
    value: str = Field(description="emails and phone numbers appear only as keyed hashes")
    source: str
    created_at: datetime | None


class PassSummaryOut(Out):
    serial: str
    kind: str
    state: str


class CustomerOut(Out):
    id: str
    program: str
    external_id: str
    consents: ConsentsOut
    balance: int
    tier: str
    identifiers: list[IdentifierOut]
    passes: list[PassSummaryOut]
    created_at: datetime | None
    updated_at: datetime | None


class CouponIn(In):
    title: Annotated[str, Field(min_length=1, max_length=80)]
    description: Annotated[str, Field(max_length=500)] | None = None
    discount: Annotated[str, Field(max_length=40)] | None = None
    expires_at: datetime | None = None


class PassIn(In):
    program: str | None = None
    kind: Literal["loyalty", "coupon"]
    customer_id: str | None = None
    customer_external_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    coupon: CouponIn | None = None


class ApplePassOut(Out):
    pkpass_url: str = Field(description="signed link; expires after link_ttl_days")


class GooglePassOut(Out):
    save_url: str | None = Field(description="null until Google Wallet is configured")


class PassIssuedOut(Out):
    serial: str
    kind: str
    state: str
    program: str
    customer_id: str
    add_url: str
    apple: ApplePassOut
    google: GooglePassOut


class CouponOut(Out):
    title: str
    description: str | None
    discount: str | None
    expires_at: datetime | None


class InstallsOut(Out):
    apple: int
    google: int


class GoogleStateOut(Out):
    state: str = Field(description="pending, synced or error")
    error: str | None = Field(description="Google's message when it refused the object")
    field: str | None = Field(description="the field Google blamed, when it said")


class PassOut(Out):
    serial: str
    program: str
    customer_id: str
    kind: str
    state: str
    void_reason: str | None
    coupon: CouponOut | None
    version: int
    installs: InstallsOut
    last_updated: datetime | None
    created_at: datetime | None
    google: GoogleStateOut | None = Field(
        default=None, description="the Google Wallet object; null when the program has none"
    )


class HealthOut(Out):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
