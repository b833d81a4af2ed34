"""Settings: `walletsvc.toml` plus `WALLETSVC_` environment variables (environment wins).

Built once at start (`load_settings`) and passed down; nothing else reads the
environment. Nested sections use `__` in environment names, for example
`WALLETSVC_APPLE__PASS_CERTIFICATE=/etc/walletsvc/pass.pem`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_FILE = Path("walletsvc.toml")


class Section(BaseModel):
    """A `[section]` of the settings: a misspelt key is refused, as at the top level.

    Without this a typo inside a section (`[apple.apns] key_fil = ...`) would be dropped
    silently and the service would start on the default instead.
    """

    model_config = ConfigDict(extra="forbid")


class ApnsSettings(Section):
    """Pushes that tell Wallet a pass changed (APNs, always Apple's production gateway)."""

    # Unset: on in production; off in development, where throwaway certificates reach no device
    # (pushes then wait in the queue, coalesced, one row per device).
    enabled: bool | None = None
    endpoint: str = "https://api.push.apple.com"
    # Token auth instead of the pass certificate: an APNs .p8 key of the same team.
    key_file: Path | None = None
    key_id: str | None = None
    team_id: str | None = None
    # Trust these CA certificates instead of the system's for the gateway (a private relay
    # or a test stand-in); unset for Apple.
    server_ca_file: Path | None = None
    connections: int = Field(default=2, ge=1, le=64)
    max_in_flight: int = Field(default=1000, ge=1, le=100_000)
    # How long a change waits for more changes to the same pass before its push goes out.
    push_delay_s: float = Field(default=1.0, ge=0, le=3600)
    # A worker claims due pushes for this long; if its process dies mid-push, another
    # process sends them once the claim runs out. Longer than a batch takes to send.
    claim_lease_s: float = Field(default=60.0, ge=5, le=3600)


class AppleSettings(Section):
    """Apple Pass Type ID signing material. Unset in development: generated throwaway material."""

    pass_certificate: Path | None = None  # PEM or DER
    pass_key: Path | None = None  # PEM or DER, optionally passphrase-protected
    pass_key_passphrase: SecretStr | None = None
    pass_p12: Path | None = None  # instead of certificate + key
    wwdr_certificate: Path | None = None  # Apple WWDR G4 in production
    apns: ApnsSettings = Field(default_factory=ApnsSettings)


class GoogleSettings(Section):
    """Google Wallet issuer account, its REST API and its callbacks (docs/google-wallet.md)."""

    # Unset: on in production; off in development, where the throwaway service account
    # reaches no real issuer (syncs then wait in the queue; save links are still made).
    enabled: bool | None = None
    service_account_file: Path | None = None
    # Our issuer: the only recipient id a callback may be signed for.
    issuer_id: str | None = Field(default=None, pattern=r"^\d{1,30}$")
    api_base_url: str = "https://walletobjects.googleapis.com/walletobjects/v1"
    # Google's published limit is about 20 requests per second per issuer; shared by
    # every walletsvc process through the database.
    rate_limit_per_s: float = Field(default=20.0, gt=0, le=1000)
    retry_attempts: int = Field(default=4, ge=1, le=10)
    retry_first_backoff_s: float = Field(default=0.5, gt=0, le=60)
    retry_max_backoff_s: float = Field(default=8.0, gt=0, le=600)
    request_timeout_s: float = Field(default=15.0, gt=0, le=120)
    # How long a change waits for more changes to the same pass before its sync goes out.
    sync_delay_s: float = Field(default=1.0, ge=0, le=3600)
    # Google's callback root signing keys, as published (docs/google-wallet.md); the file
    # is re-read when it changes. Unset: /google/callback answers 404.
    root_keys_file: Path | None = None


class LoyaltySettings(Section):
    """The scheduled loyalty review (points expiry, tier downgrades)."""

    # How often the review runs, shared by all processes; 0 leaves it to `walletsvc
    # loyalty review` (from cron, say).
    review_interval_s: int = Field(default=3600, ge=0, le=7 * 86_400)


class RetentionSettings(Section):
    """How long what has served its purpose is kept (docs/operations.md "Retention")."""

    # How often the clean-up runs, shared by all processes; 0 leaves it to
    # `walletsvc prune` (from cron, say).
    interval_s: int = Field(default=3600, ge=0, le=7 * 86_400)
    # Delivered events. The dashboard charts the last 30 days from them.
    events_days: float = Field(default=35.0, gt=0, le=3650)
    # Inbox rows (the dedupe keys of scans and POS webhooks). Vendors stop retrying
    # within days; a scan's signature is stale after 5 minutes.
    inbox_days: float = Field(default=35.0, gt=0, le=3650)
    # What Apple Wallet posted to /apple/v1/log.
    apple_logs_days: float = Field(default=30.0, gt=0, le=3650)


class GeofenceSettings(Section):
    """How geofence claims are judged, and the Radar webhook (`/webhooks/geofence/radar`)."""

    # A claim older than this (or further in the future than the skew) is stale.
    max_age_s: float = Field(default=300.0, gt=0, le=86_400)
    max_clock_skew_s: float = Field(default=30.0, ge=0, le=3_600)
    # A point vaguer than this proves nothing about being in a store.
    max_accuracy_m: float = Field(default=200.0, gt=0, le=100_000)
    # A second enter or dwell (or exit) this soon after the last is a repeat.
    debounce_window_s: float = Field(default=600.0, gt=0, le=86_400)
    # An enter this soon after an exit is the phone flapping at the edge of the circle.
    flap_window_s: float = Field(default=600.0, gt=0, le=86_400)
    # An enter older than this does not start the visit an exit or dwell belongs to.
    max_visit_s: float = Field(default=43_200.0, gt=0, le=7 * 86_400)
    # Radar's webhook security token, and the one before it while a rotation runs.
    # Unset: the Radar webhook answers 404.
    radar_token: SecretStr | None = None
    radar_previous_token: SecretStr | None = None
    radar_min_confidence: int = Field(default=2, ge=0, le=3)  # 1 low, 2 medium, 3 high
    radar_live_only: bool = True  # refuse events from Radar's Test environment
    radar_store_tag: str | None = None  # only geofences with this tag are stores, if set


class WebhookSinkSettings(Section):
    """One HTTP endpoint that receives events, signed Standard Webhooks style."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")  # in logs, metrics and the CLI
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr  # whsec_ + base64 of 24-64 random bytes
    previous_secret: SecretStr | None = None  # also signed with while the receiver rotates
    types: list[str] = Field(default_factory=list)  # event types it takes; empty: all
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    concurrency: int = Field(default=16, ge=1, le=1000)


class NatsSinkSettings(Section):
    """NATS JetStream: events on `<subject_prefix>.<type>`, deduplicated by event id."""

    # nats://host:4222, or several servers of one cluster comma-separated; unset: no sink
    url: str | None = None
    name: str = Field(default="nats", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    stream: str = Field(default="WALLETSVC_EVENTS", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    subject_prefix: str = Field(
        default="walletsvc.events", pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
    )
    # Redeliveries of one event within this window are dropped by the stream. Keep it
    # longer than the relay's lease so a crashed relay's resends are caught.
    duplicate_window_s: float = Field(default=600.0, gt=0, le=7 * 86_400)
    # Copies of the stream JetStream keeps when walletsvc creates it (3 on a 3-node
    # cluster); an existing stream is used as it is.
    replicas: int = Field(default=1, ge=1, le=5)
    types: list[str] = Field(default_factory=list)
    timeout_s: float = Field(default=5.0, gt=0, le=300)
    reconnect_wait_s: float = Field(default=1.0, gt=0, le=300)


class EventsSettings(Section):
    """Events out: the relay and its sinks (docs/events.md)."""

    # in-process: every `walletsvc serve` runs a relay; off: run `walletsvc relay` apart.
    relay: Literal["in-process", "off"] = "in-process"
    source: str = ""  # the CloudEvents source; default: the public URL
    horizon_days: float = Field(default=3.0, gt=0, le=60)  # then a failing delivery is dead
    batch: int = Field(default=200, ge=1, le=10_000)
    workers: int = Field(default=2, ge=1, le=32)  # rounds in flight per sink
    lease_s: float = Field(default=60.0, gt=0, le=3600)
    first_retry_s: float = Field(default=2.0, gt=0, le=3600)
    max_retry_s: float = Field(default=3600.0, gt=0, le=86_400)
    idle_wait_s: float = Field(default=0.5, gt=0, le=60)
    # /readyz answers 503 when a sink is unreachable only if this is set: the outbox
    # keeps events while a sink is down, so by default the API stays in service.
    ready_requires_sinks: bool = False
    webhooks: list[WebhookSinkSettings] = Field(default_factory=list)
    nats: NatsSinkSettings = Field(default_factory=NatsSinkSettings)

    @model_validator(mode="after")
    def _unique_names(self) -> EventsSettings:
        names = [hook.name for hook in self.webhooks]
        if self.nats.url:
            names.append(self.nats.name)
        if len(set(names)) != len(names):
            raise ValueError(f"event sink names must differ: {names}")
        return self


class RateLimitSettings(Section):
    """One token bucket per key (an API key, a terminal, a client address), shared by all
    processes through the database. `rate_per_s = 0` turns the limit off."""

    rate_per_s: float = Field(ge=0, le=1_000_000)
    burst: int = Field(ge=1, le=10_000_000)
    # Tokens a process takes from the shared bucket per database round trip; unset:
    # a fifth of the burst, at most 50. Over P processes the limit may be exceeded by
    # at most P x (lease - 1) requests (docs/operations.md, "Limits").
    lease: int | None = Field(default=None, ge=1, le=10_000)

    @property
    def lease_size(self) -> int:
        """Return how many tokens one lease takes."""
        return self.lease if self.lease is not None else max(1, min(50, self.burst // 5))


def _limit(rate_per_s: float, burst: int) -> Any:
    return Field(default_factory=lambda: RateLimitSettings(rate_per_s=rate_per_s, burst=burst))


class LimitsSettings(Section):
    """Incoming limits: request rates, body sizes per route, slow clients (docs/operations.md)."""

    # Server-to-server callers, per API key: a brand backend may issue passes in batches.
    api_key: RateLimitSettings = _limit(200.0, 2000)
    # Signed scans (POST /api/v1/scans), per terminal: a till scans a few times a second.
    terminal: RateLimitSettings = _limit(5.0, 30)
    # POS vendors' webhooks, per terminal (a Shopify "terminal" is a whole shop's orders).
    pos_webhook: RateLimitSettings = _limit(20.0, 200)
    # Unauthenticated endpoints, per client address.
    apple_log: RateLimitSettings = _limit(1.0, 20)
    apple_device: RateLimitSettings = _limit(10.0, 100)
    google_callback: RateLimitSettings = _limit(10.0, 100)
    add_page: RateLimitSettings = _limit(2.0, 30)
    dashboard_login: RateLimitSettings = _limit(0.2, 10)

    # The client address: the peer, or the last hop a trusted proxy appended to this
    # header (for example X-Forwarded-For). Only set it when every request comes through
    # that proxy: otherwise clients choose their own address and dodge their limits.
    trusted_proxy_header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,64}$")
    # How many proxies append to the header (the address is that many entries from the end).
    trusted_proxy_hops: int = Field(default=1, ge=1, le=10)

    def rate_limits(self) -> dict[str, RateLimitSettings]:
        """Return every rate-limit scope (api_key, terminal, ...) with its settings."""
        return {name: value for name, value in self if isinstance(value, RateLimitSettings)}

    # Request bodies, in bytes, where `max_body_bytes` would be too generous.
    scan_body_bytes: int = Field(default=8 * 1024, ge=256)
    geofence_body_bytes: int = Field(default=16 * 1024, ge=256)
    radar_body_bytes: int = Field(default=64 * 1024, ge=256)
    apple_log_body_bytes: int = Field(default=32 * 1024, ge=256)
    apple_device_body_bytes: int = Field(default=4 * 1024, ge=256)
    google_callback_body_bytes: int = Field(default=16 * 1024, ge=256)
    dashboard_login_body_bytes: int = Field(default=4 * 1024, ge=256)
    # Shopify sends whole orders (hundreds of line items fit in a few hundred KiB).
    pos_webhook_body_bytes: int = Field(default=1024 * 1024, ge=256)

    # Slow clients: a request head must arrive within header_timeout_s of its first byte,
    # its body within body_timeout_s of the head; an idle keep-alive connection is closed
    # after keepalive_timeout_s (keep it above a load balancer's idle timeout, 60 s on most).
    header_timeout_s: float = Field(default=10.0, gt=0, le=600)
    body_timeout_s: float = Field(default=20.0, gt=0, le=3600)
    keepalive_timeout_s: float = Field(default=75.0, gt=0, le=3600)
    # After a refused body, unread bytes are drained (never kept) this long, so the client
    # reads the answer instead of a reset; then the connection is closed.
    lingering_s: float = Field(default=2.0, ge=0, le=60)


class DemoSettings(Section):
    """The `demo` program created on first start in development."""

    enabled: bool = True
    program_id: str = "demo"


class Settings(BaseSettings):
    """Every setting of the service, with defaults that run with no configuration."""

    model_config = SettingsConfigDict(
        env_prefix="WALLETSVC_",
        env_nested_delimiter="__",
        extra="forbid",
        toml_file=DEFAULT_CONFIG_FILE,
    )

    mode: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    public_url: str = ""  # default: http://{host}:{port}
    database_url: str = "sqlite+aiosqlite:///./walletsvc.db"
    database_pool_size: int = Field(default=20, ge=1, le=200)
    migrate_on_start: bool = True
    data_dir: Path = Path(".walletsvc")

    admin_api_key: SecretStr | None = None
    # Keys MACs (barcodes, links), hashes of emails/phones, and encrypts secrets at rest.
    # Extra keys, oldest last, still open what they sealed while a rotation runs.
    secret_key: SecretStr | None = None
    previous_secret_keys: list[SecretStr] = Field(default_factory=list)
    # Keys the hashes of emails and phone numbers. It must never change once customers
    # exist (their hashes would stop matching), so it is separate from secret_key,
    # which rotates. Unset: derived from secret_key, fine until the first rotation.
    identifier_pepper: SecretStr | None = None

    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    link_ttl_days: int = Field(default=30, ge=1, le=365)
    shutdown_timeout_s: float = Field(default=15.0, ge=0)

    apple: AppleSettings = Field(default_factory=AppleSettings)
    google: GoogleSettings = Field(default_factory=GoogleSettings)
    geofence: GeofenceSettings = Field(default_factory=GeofenceSettings)
    loyalty: LoyaltySettings = Field(default_factory=LoyaltySettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    events: EventsSettings = Field(default_factory=EventsSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Order is precedence: explicit arguments, then the environment, then the file.
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls),
            file_secret_settings,
        )

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _production_needs_real_material(self) -> Settings:
        if self.mode == "production":
            missing = []
            if self.secret_key is None:
                missing.append("WALLETSVC_SECRET_KEY")
            if self.admin_api_key is None:
                missing.append("WALLETSVC_ADMIN_API_KEY")
            if not self.public_url.startswith("https://"):
                missing.append("WALLETSVC_PUBLIC_URL (https)")
            if self.apple.wwdr_certificate is None:
                missing.append("WALLETSVC_APPLE__WWDR_CERTIFICATE")
            if self.apple.pass_p12 is None and (
                self.apple.pass_certificate is None or self.apple.pass_key is None
            ):
                missing.append("WALLETSVC_APPLE__PASS_P12 or PASS_CERTIFICATE + PASS_KEY")
            if missing:
                raise ValueError("production mode needs: " + ", ".join(missing))
            for name, value in (
                ("WALLETSVC_SECRET_KEY", self.secret_key),
                ("WALLETSVC_ADMIN_API_KEY", self.admin_api_key),
                ("WALLETSVC_IDENTIFIER_PEPPER", self.identifier_pepper),
                *(("WALLETSVC_PREVIOUS_SECRET_KEYS", k) for k in self.previous_secret_keys),
            ):
                if value is not None and len(value.get_secret_value()) < 32:
                    raise ValueError(f"{name} must be at least 32 characters")
        return self

    @property
    def development(self) -> bool:
        """Tell whether throwaway material and the demo program may be used."""
        return self.mode == "development"

    @property
    def effective_public_url(self) -> str:
        """Return the external base URL (defaults to the listening address)."""
        return self.public_url or f"http://{self.host}:{self.port}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings once from the TOML file (if any), the environment and overrides."""
    if config_file is None:
        return Settings(**overrides)
    if not config_file.is_file():
        raise FileNotFoundError(f"configuration file {config_file} does not exist")

    class _FromFile(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": config_file})

    return _FromFile(**overrides)
