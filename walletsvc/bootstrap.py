"""Pick concrete implementations from Settings and wire them together (the only place that does).

On a first development start this also makes the throwaway signing material, the
secret key and an admin key in the data directory, and the `demo` program.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp
import structlog
from cryptography.x509.oid import NameOID
from sqlalchemy.ext.asyncio import AsyncEngine

from walletsvc.apple.apns import ApnsPushSender, ProviderTokenKey
from walletsvc.apple.credentials import (
    SigningIdentity,
    days_until_expiry,
    load_signing_identity,
)
from walletsvc.apple.dev_material import ensure_dev_apple_material
from walletsvc.apple.pkpass import PkpassBuilder
from walletsvc.apple.wallet import ApplePassSigner
from walletsvc.config import Settings
from walletsvc.domain.barcode import BarcodeKeyRing
from walletsvc.domain.errors import ConfigurationError, Conflict, DuplicateKey
from walletsvc.domain.event import EventType
from walletsvc.domain.event_delivery import SinkRoute
from walletsvc.domain.geofence import GeofencePolicy
from walletsvc.domain.program import AppleDesign, Program, Tier
from walletsvc.google.callback import CallbackVerifier, RootKeyFile
from walletsvc.google.dev_material import ensure_dev_service_account
from walletsvc.google.http_session import LazySession
from walletsvc.google.rest import RetryPolicy, WalletObjectsClient
from walletsvc.google.service_account import AccessTokens, ServiceAccount
from walletsvc.google.wallet import GoogleWalletObjects
from walletsvc.intake.radar import RadarPolicy, RadarWebhook
from walletsvc.outbox.jetstream import JetStreamEventSink
from walletsvc.outbox.relay import EventRelay, RelayPolicy
from walletsvc.outbox.signer import secret_key
from walletsvc.outbox.webhook import WebhookEventSink
from walletsvc.services.api_keys import bootstrap_principal
from walletsvc.services.context import ServiceContext
from walletsvc.services.event_delivery import EventSink
from walletsvc.services.ports import PushSender, UnitOfWorkFactory
from walletsvc.services.programs import create_program
from walletsvc.services.rate_gate import SharedRateLimit
from walletsvc.services.request_limits import Limit, RequestLimiter
from walletsvc.services.retention import RetentionPolicy
from walletsvc.storage.dashboard_stats import SqlDashboardStats
from walletsvc.storage.database import create_engine, session_factory
from walletsvc.storage.event_deliveries import SqlEventDeliveryStore
from walletsvc.storage.migrate import upgrade
from walletsvc.storage.request_buckets import SqlRequestBuckets
from walletsvc.storage.secret_box import SecretBox
from walletsvc.storage.stats import SqlStats
from walletsvc.storage.unit_of_work import SqlUnitOfWorkFactory

log = structlog.get_logger("walletsvc.bootstrap")

DEV_PASS_TYPE_ID = "pass.dev.walletsvc.demo"
DEV_TEAM_ID = "DEVTEAM123"


@dataclass
class Container:
    """Everything the entry points need, built once."""

    settings: Settings
    engine: AsyncEngine
    ctx: ServiceContext
    apple: ApplePassSigner
    admin_api_key: str | None
    dev_files: dict[str, Path] = field(default_factory=dict)
    # None when pushes are off (development default): owed pushes wait in the queue.
    push_sender: PushSender | None = None
    # None when no Radar token is configured: its webhook then answers 404.
    radar: RadarWebhook | None = None
    # Whether the Google sync worker runs (off: syncs wait in the queue).
    google_sync: bool = False
    # None while no callback root keys are configured: /google/callback answers 404.
    google_callbacks: CallbackVerifier | None = None
    # Deliveries of outbox events to the sinks (open_event_relay makes the relay itself).
    event_store: SqlEventDeliveryStore | None = None
    # Counts for /metrics and operators, read from the database at scrape time.
    stats: SqlStats | None = None
    # The operator dashboard's figures, and the keys that sign its session cookies.
    dashboard: SqlDashboardStats | None = None
    session_keys: tuple[bytes, ...] = ()
    # Incoming rate limits per API key, terminal and client address ([limits]).
    limiter: RequestLimiter | None = None

    @property
    def retention(self) -> RetentionPolicy:
        """How long records are kept, from `[retention]`."""
        kept = self.settings.retention
        return RetentionPolicy(
            events=timedelta(days=kept.events_days),
            inbox=timedelta(days=kept.inbox_days),
            apple_logs=timedelta(days=kept.apple_logs_days),
            no_sinks=not (self.settings.events.webhooks or self.settings.events.nats.url),
        )

    async def close(self) -> None:
        """Release APNs and Google connections and the database pool."""
        if self.push_sender is not None:
            await self.push_sender.close()
        if self.ctx.google is not None:
            await self.ctx.google.close()
        await self.engine.dispose()


def utc_now() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


def build_container(settings: Settings) -> Container:
    """Wire the service from `settings`; development material is made when missing."""
    dev_files: dict[str, Path] = {}
    if settings.development:
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_event_settings(settings)
    secret_keys = _secret_keys(settings, dev_files)
    admin_key = _admin_key(settings, dev_files)
    identity = _apple_identity(settings, dev_files)
    _check_expiry(identity)
    if not settings.development:
        _check_wwdr_generation(identity)
        _check_google_production(settings)
    if settings.development and settings.google.service_account_file is None:
        dev_files["google_service_account"] = ensure_dev_service_account(
            settings.data_dir / "google-service-account.json"
        )
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    box = SecretBox(secret_keys)
    public_url = settings.effective_public_url
    apple = ApplePassSigner(
        PkpassBuilder(identity), f"{public_url}/apple", require_https=not settings.development
    )
    current = secret_keys[0]
    ring = BarcodeKeyRing(
        keys={_key_id(key): _derive(key, "barcode") for key in secret_keys},
        current=_key_id(current),
    )
    uow = SqlUnitOfWorkFactory(session_factory(engine), box)
    ctx = ServiceContext(
        uow=uow,
        clock=utc_now,
        apple=apple,
        barcode_keys=ring,
        link_keys=tuple(_derive(key, "link") for key in secret_keys),
        identifier_pepper=_identifier_pepper(settings, current),
        public_url=public_url,
        link_ttl=timedelta(days=settings.link_ttl_days),
        development=settings.development,
        push_delay=timedelta(seconds=settings.apple.apns.push_delay_s),
        push_lease=timedelta(seconds=settings.apple.apns.claim_lease_s),
        geofence=_geofence_policy(settings),
        google=_google_wallet(settings, dev_files, uow, public_url),
        google_delay=timedelta(seconds=settings.google.sync_delay_s),
    )
    sender = _push_sender(settings, identity)
    return Container(
        settings,
        engine,
        ctx,
        apple,
        admin_key,
        dev_files,
        sender,
        radar=_radar(settings),
        google_sync=_google_enabled(settings) and ctx.google is not None,
        google_callbacks=_google_callbacks(settings),
        event_store=SqlEventDeliveryStore(engine),
        stats=SqlStats(engine),
        dashboard=SqlDashboardStats(engine),
        session_keys=tuple(_derive(key, "dashboard-session") for key in secret_keys),
        limiter=_request_limiter(settings, engine),
    )


def _request_limiter(settings: Settings, engine: AsyncEngine) -> RequestLimiter:
    scopes = settings.limits.rate_limits()
    return RequestLimiter(
        SqlRequestBuckets(engine),
        {
            name: Limit(rate=scope.rate_per_s, burst=scope.burst, lease=scope.lease_size)
            for name, scope in scopes.items()
        },
    )


def _google_enabled(settings: Settings) -> bool:
    enabled = settings.google.enabled
    return enabled if enabled is not None else not settings.development


def _check_google_production(settings: Settings) -> None:
    google = settings.google
    if not _google_enabled(settings):
        return
    missing = [
        name
        for name, value in (
            ("WALLETSVC_GOOGLE__SERVICE_ACCOUNT_FILE", google.service_account_file),
            ("WALLETSVC_GOOGLE__ISSUER_ID", google.issuer_id),
            ("WALLETSVC_GOOGLE__ROOT_KEYS_FILE", google.root_keys_file),
        )
        if value is None
    ]
    if missing:
        raise ConfigurationError(
            "Google Wallet is on in production and needs "
            + ", ".join(missing)
            + " (docs/google-wallet.md); or set WALLETSVC_GOOGLE__ENABLED=false"
        )
    if not google.api_base_url.startswith("https://"):
        raise ConfigurationError("WALLETSVC_GOOGLE__API_BASE_URL must be https in production")


def _google_wallet(
    settings: Settings, dev_files: dict[str, Path], uow: UnitOfWorkFactory, public_url: str
) -> GoogleWalletObjects | None:
    google = settings.google
    path = google.service_account_file or dev_files.get("google_service_account")
    if path is None:
        return None
    account = ServiceAccount.from_file(path)
    session = LazySession()
    rate = google.rate_limit_per_s
    # A process takes a few tokens per database round trip; the bucket holds as many,
    # so every process together stays within `rate` per second plus one such batch.
    throttle = SharedRateLimit(
        uow, utc_now, rate=rate, burst=max(1, min(5, int(rate // 4))), prefix="google"
    )
    retry = RetryPolicy(
        attempts=google.retry_attempts,
        first_backoff_s=google.retry_first_backoff_s,
        max_backoff_s=google.retry_max_backoff_s,
        timeout_s=google.request_timeout_s,
    )
    client = WalletObjectsClient(
        google.api_base_url, AccessTokens(account, session), session, throttle, retry
    )
    return GoogleWalletObjects(
        account, client, session, public_url=public_url, issuer_id=google.issuer_id
    )


def _google_callbacks(settings: Settings) -> CallbackVerifier | None:
    google = settings.google
    if google.root_keys_file is None or not google.issuer_id:
        return None
    return CallbackVerifier(RootKeyFile(google.root_keys_file), google.issuer_id)


def _geofence_policy(settings: Settings) -> GeofencePolicy:
    geofence = settings.geofence
    return GeofencePolicy(
        max_age=timedelta(seconds=geofence.max_age_s),
        max_clock_skew=timedelta(seconds=geofence.max_clock_skew_s),
        max_accuracy_m=geofence.max_accuracy_m,
        debounce_window=timedelta(seconds=geofence.debounce_window_s),
        flap_window=timedelta(seconds=geofence.flap_window_s),
        max_visit=timedelta(seconds=geofence.max_visit_s),
    )


def _radar(settings: Settings) -> RadarWebhook | None:
    geofence = settings.geofence
    tokens = [
        token.get_secret_value()
        for token in (geofence.radar_token, geofence.radar_previous_token)
        if token is not None and token.get_secret_value()
    ]
    if not tokens:
        return None
    # Radar's own freshness check uses the same windows as the claims it carries.
    policy = RadarPolicy(
        min_confidence=geofence.radar_min_confidence,
        max_age=timedelta(seconds=geofence.max_age_s),
        max_clock_skew=timedelta(seconds=geofence.max_clock_skew_s),
        live_only=geofence.radar_live_only,
        store_tag=geofence.radar_store_tag,
    )
    return RadarWebhook(tokens, policy)


def _push_sender(settings: Settings, identity: SigningIdentity) -> PushSender | None:
    apns = settings.apple.apns
    enabled = apns.enabled if apns.enabled is not None else not settings.development
    if not enabled:
        return None
    provider_key = None
    if apns.key_file is not None:
        if not apns.key_id or not apns.team_id:
            raise ConfigurationError(
                "token auth for APNs needs WALLETSVC_APPLE__APNS__KEY_ID and "
                "WALLETSVC_APPLE__APNS__TEAM_ID with the .p8 key file"
            )
        provider_key = ProviderTokenKey.from_p8(
            apns.key_file, key_id=apns.key_id, team_id=apns.team_id
        )
    server_ca = apns.server_ca_file.read_bytes() if apns.server_ca_file else None
    return ApnsPushSender(
        identities={identity.pass_type_identifier: identity},
        provider_key=provider_key,
        endpoint=apns.endpoint,
        max_connections=apns.connections,
        max_in_flight=apns.max_in_flight,
        server_ca_pem=server_ca,
    )


async def prepare_database(container: Container) -> None:
    """Migrate (unless told not to), add the demo program, check programs match the certificate."""
    if container.settings.migrate_on_start:
        await upgrade(container.engine)
    if container.settings.development and container.settings.demo.enabled:
        await ensure_demo_program(container)
    await check_programs_match_certificate(container)


async def check_programs_match_certificate(container: Container) -> None:
    """Refuse to start when a program's passes could not be signed by the loaded certificate.

    Wallet refuses a pass whose passTypeIdentifier and teamIdentifier differ from the
    signing certificate's UID and OU; finding that out at start beats finding it out
    from customers.
    """
    apple = container.apple
    async with container.ctx.uow() as uow:
        programs = await uow.programs.list()
    wrong = [
        f"{program.id} ({program.apple.pass_type_identifier}, team {program.apple.team_identifier})"
        for program in programs
        if program.apple.pass_type_identifier != apple.pass_type_identifier
        or program.apple.team_identifier != apple.team_identifier
    ]
    if wrong:
        raise ConfigurationError(
            "the Pass Type ID certificate is for "
            f"{apple.pass_type_identifier} (team {apple.team_identifier}) but these programs "
            f"use another: {', '.join(wrong)}; configure the certificate of that pass type, "
            "or change the programs' apple.pass_type_identifier and team_identifier"
        )


async def ensure_demo_program(container: Container) -> None:
    """Create the `demo` program with three tiers when it does not exist yet."""
    ctx = container.ctx
    program_id = container.settings.demo.program_id
    async with ctx.uow() as uow:
        if await uow.programs.get(program_id) is not None:
            return
    program = Program(
        id=program_id,
        name="walletsvc Demo Rewards",
        tiers=(Tier("Bronze", 0), Tier("Silver", 500), Tier("Gold", 1500)),
        points_per_unit=Decimal("1"),
        apple=AppleDesign(
            pass_type_identifier=container.apple.pass_type_identifier,
            team_identifier=container.apple.team_identifier,
            organization_name="walletsvc Demo",
            description="walletsvc Demo Rewards card",
            logo_text="Demo Rewards",
        ),
    )
    try:
        await create_program(ctx, bootstrap_principal(), program)
    except (Conflict, DuplicateKey):
        return  # another process starting beside this one made it first
    log.info("demo.program.created", program=program_id)


def _derive(secret_key: bytes, purpose: str) -> bytes:
    # One secret, many keys: a key per purpose so no MAC can stand in for another.
    return hmac.new(secret_key, f"walletsvc:{purpose}".encode(), hashlib.sha256).digest()


def _identifier_pepper(settings: Settings, current_secret: bytes) -> bytes:
    if settings.identifier_pepper is not None:
        return _derive(settings.identifier_pepper.get_secret_value().encode(), "identifier-pepper")
    return _derive(current_secret, "identifier-pepper")


def _key_id(secret_key: bytes) -> str:
    return hashlib.sha256(b"walletsvc-key-id:" + secret_key).hexdigest()[:4]


def _secret_keys(settings: Settings, dev_files: dict[str, Path]) -> list[bytes]:
    keys = [key.get_secret_value().encode() for key in settings.previous_secret_keys]
    if settings.secret_key is not None:
        return [settings.secret_key.get_secret_value().encode(), *keys]
    if not settings.development:
        raise ConfigurationError("WALLETSVC_SECRET_KEY is required in production")
    path = settings.data_dir / "secret-key"
    dev_files["secret_key"] = path
    return [_read_or_create_secret(path).encode(), *keys]


def _admin_key(settings: Settings, dev_files: dict[str, Path]) -> str | None:
    if settings.admin_api_key is not None:
        return settings.admin_api_key.get_secret_value()
    if not settings.development:
        return None
    path = settings.data_dir / "admin-api-key"
    dev_files["admin_api_key"] = path
    return _read_or_create_secret(path)


def _read_or_create_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value + "\n")
    return value


def _check_wwdr_generation(identity: SigningIdentity) -> None:
    # Pass Type ID certificates are issued under WWDR G4; G1 expired in February 2023 and
    # pairing the wrong generation is the commonest "pass cannot be installed" cause.
    subject = identity.wwdr.subject
    units = [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    if "G4" not in units:
        raise ConfigurationError(
            f"the WWDR certificate '{subject.rfc4514_string()}' is not Apple WWDR G4; download "
            "AppleWWDRCAG4.cer from Apple PKI and set WALLETSVC_APPLE__WWDR_CERTIFICATE"
        )


def _check_expiry(identity: SigningIdentity) -> None:
    days = days_until_expiry(identity, utc_now())
    if days < 0:
        raise ConfigurationError(
            f"the Pass Type ID certificate for {identity.pass_type_identifier} has expired; "
            "renew it in Apple's developer portal and configure the new one"
        )
    if days <= 30:
        log.warning(
            "apple.certificate.expiring",
            pass_type_identifier=identity.pass_type_identifier,
            days_left=days,
        )


def _apple_identity(settings: Settings, dev_files: dict[str, Path]) -> SigningIdentity:
    apple = settings.apple
    configured = apple.pass_p12 is not None or apple.pass_certificate is not None
    if configured:
        if apple.wwdr_certificate is None:
            raise ConfigurationError("set WALLETSVC_APPLE__WWDR_CERTIFICATE (Apple WWDR G4)")
        passphrase = apple.pass_key_passphrase
        return load_signing_identity(
            wwdr=apple.wwdr_certificate,
            certificate=apple.pass_certificate,
            private_key=apple.pass_key,
            passphrase=passphrase.get_secret_value() if passphrase else None,
            p12=apple.pass_p12,
        )
    if not settings.development:
        raise ConfigurationError("production needs a Pass Type ID certificate and key")
    material = ensure_dev_apple_material(
        settings.data_dir / "apple",
        pass_type_identifier=DEV_PASS_TYPE_ID,
        team_identifier=DEV_TEAM_ID,
    )
    dev_files["apple_dev_ca"] = material.ca_certificate
    return load_signing_identity(
        wwdr=material.ca_certificate,
        certificate=material.certificate,
        private_key=material.private_key,
    )


def check_event_settings(settings: Settings) -> None:
    """Refuse event sinks with unknown types or unreadable secrets before anything starts."""
    known = {value for name, value in vars(EventType).items() if name.isupper()}
    events = settings.events
    filters = [(hook.name, hook.types) for hook in events.webhooks]
    filters.append((events.nats.name, events.nats.types))
    for name, types in filters:
        unknown = sorted(set(types) - known)
        if unknown:
            raise ConfigurationError(f"event sink {name}: unknown event types {unknown}")
    for hook in events.webhooks:
        for secret in (hook.secret, hook.previous_secret):
            if secret is not None:
                try:
                    secret_key(secret.get_secret_value())
                except ConfigurationError as exc:
                    raise ConfigurationError(f"event sink {hook.name}: {exc.detail}") from None


def event_relay_policy(settings: Settings) -> RelayPolicy:
    """Return the relay's timings from [events]."""
    events = settings.events
    return RelayPolicy(
        batch=events.batch,
        workers=events.workers,
        lease=timedelta(seconds=events.lease_s),
        first_retry=timedelta(seconds=events.first_retry_s),
        max_retry=timedelta(seconds=max(events.max_retry_s, events.first_retry_s)),
        horizon=timedelta(days=events.horizon_days),
        idle_wait_s=events.idle_wait_s,
    )


async def open_event_relay(container: Container) -> EventRelay | None:
    """Make the sinks and their outbound clients (in the running loop); None without sinks."""
    settings = container.settings
    events = settings.events
    check_event_settings(settings)
    assert container.event_store is not None
    sinks: list[EventSink] = []
    closers = []
    if events.webhooks:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=sum(h.concurrency for h in events.webhooks)),
            headers={"User-Agent": "walletsvc-events/1"},
        )
        closers.append(session.close)
        for hook in events.webhooks:
            secrets_ = [s for s in (hook.secret, hook.previous_secret) if s is not None]
            sinks.append(
                WebhookEventSink(
                    SinkRoute(hook.name, frozenset(hook.types)),
                    hook.url,
                    [secret_key(s.get_secret_value()) for s in secrets_],
                    session,
                    timeout_s=hook.timeout_s,
                    concurrency=hook.concurrency,
                )
            )
    nats = events.nats
    if nats.url:
        sinks.append(
            JetStreamEventSink(
                SinkRoute(nats.name, frozenset(nats.types)),
                nats.url,
                stream=nats.stream,
                subject_prefix=nats.subject_prefix,
                duplicate_window_s=nats.duplicate_window_s,
                replicas=nats.replicas,
                timeout_s=nats.timeout_s,
                reconnect_wait_s=nats.reconnect_wait_s,
            )
        )
    if not sinks:
        return None
    return EventRelay(
        container.event_store,
        sinks,
        source=events.source or settings.effective_public_url,
        policy=event_relay_policy(settings),
        on_close=closers,
    )
