"""The command line: serve, migrate, relay, events, loyalty, passes, customers, prune,
verify-pass."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.engine import make_url

from walletsvc.apple.credentials import CredentialError
from walletsvc.apple.verify import load_ca_file, read_bundle, render_text, verify_pkpass
from walletsvc.bootstrap import (
    Container,
    build_container,
    open_event_relay,
    prepare_database,
    utc_now,
)
from walletsvc.cli_import import run_import
from walletsvc.cli_workers import run_workers
from walletsvc.config import Settings, load_settings
from walletsvc.domain.errors import ConfigurationError, NotFound
from walletsvc.log import configure_logging
from walletsvc.services.loyalty_review import review_all, review_program
from walletsvc.services.pass_changes import refresh_program_passes
from walletsvc.services.retention import prune
from walletsvc.storage.migrate import pending, upgrade
from walletsvc.web import serving
from walletsvc.web.app import create_app

log = structlog.get_logger("walletsvc.cli")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command named on the command line."""
    parser = argparse.ArgumentParser(prog="walletsvc", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML settings file (default walletsvc.toml)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--no-migrate", action="store_true", help="do not migrate on start")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="serve from this many processes on one port (SO_REUSEPORT; default 1)",
    )
    # Set by `--workers` on the processes it starts; not for people.
    serve.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    commands.add_parser("migrate", help="apply database migrations and exit")
    loyalty = commands.add_parser("loyalty", help="loyalty jobs")
    loyalty_jobs = loyalty.add_subparsers(dest="job", required=True)
    review = loyalty_jobs.add_parser(
        "review", help="expire points and settle tiers now, per each program's policy"
    )
    review.add_argument("--program", help="only this program (default: every program)")
    passes = commands.add_parser("passes", help="bulk work on passes")
    passes_jobs = passes.add_subparsers(dest="job", required=True)
    refresh = passes_jobs.add_parser(
        "refresh", help="re-render every pass of a program now and push the changed ones"
    )
    refresh.add_argument("--program", required=True)
    customers = commands.add_parser("customers", help="bulk work on customers")
    customer_jobs = customers.add_subparsers(dest="job", required=True)
    imported = customer_jobs.add_parser(
        "import",
        help="create or update customers from a CSV (external_id, email, phone, "
        "location_consent, marketing_consent); rejected rows are reported",
    )
    imported.add_argument("file", type=Path)
    imported.add_argument("--program", help="the program (needed when there are several)")
    imported.add_argument("--rejects", type=Path, help="write rejected rows here (CSV)")
    commands.add_parser(
        "prune",
        help="delete delivered events, old inbox rows and logs now, per [retention]",
        description="Run the retention clean-up once (serve runs it every "
        "[retention] interval_s); prints what it removed as JSON.",
    )
    commands.add_parser(
        "relay",
        help="relay outbox events to the sinks, as a process of its own",
        description="Deliver outbox events to the configured sinks until SIGTERM. Any number "
        "may run beside each other and beside `serve`; see docs/events.md.",
    )
    _add_events_commands(commands)
    verify = commands.add_parser(
        "verify-pass",
        help="check a .pkpass offline as a device would (needs no settings)",
        description="Check a .pkpass offline: zip, pass.json, manifest, signature, chain, "
        "identity. Exit 0 when every check passes, 1 when one fails, 2 on usage errors.",
    )
    verify.add_argument("file", type=Path, help="the .pkpass file")
    verify.add_argument("--ca", type=Path, help="trusted root certificate(s), PEM or DER")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.command == "verify-pass":
        # Offline by design: no settings, logging or database, so it runs anywhere.
        return _verify_pass(args.file, args.ca, as_json=args.json)

    if args.command == "serve" and args.workers < 1:
        print("walletsvc serve: --workers must be at least 1", file=sys.stderr)
        return 2
    overrides: dict[str, object] = {}
    if args.command == "serve":
        if args.host:
            overrides["host"] = args.host
        if args.port:
            overrides["port"] = args.port
        if args.no_migrate:
            overrides["migrate_on_start"] = False
    try:
        settings = load_settings(args.config, **overrides)
    except (ValidationError, SettingsError, FileNotFoundError) as exc:
        print(f"walletsvc: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(
        fmt=settings.log_format, level=settings.log_level, production=not settings.development
    )
    try:
        container = build_container(settings)
    except (ConfigurationError, CredentialError) as exc:
        log.error("startup.refused", detail=str(exc))
        print(f"walletsvc: cannot start: {exc}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        asyncio.run(_migrate(container))
        return 0
    if args.command == "loyalty":
        return asyncio.run(_loyalty_review(container, args.program))
    if args.command == "passes":
        return asyncio.run(_refresh_passes(container, args.program))
    if args.command == "customers":
        return asyncio.run(_import_customers(container, args))
    if args.command == "relay":
        return asyncio.run(_relay(container))
    if args.command == "prune":
        return asyncio.run(_prune(container))
    if args.command == "events":
        return asyncio.run(_events(container, args))
    if args.workers > 1:
        return run_workers(container, args)
    worker = args.worker_index
    # Like web.run_app, plus deadlines on slow request heads ([limits], web/serving.py).
    # Workers of one `--workers N` share the port; the kernel spreads connections.
    serving.run(
        _serve(container, banner=worker in (None, 0)), settings, reuse_port=worker is not None
    )
    return 0


def _verify_pass(file: Path, ca: Path | None, *, as_json: bool) -> int:
    try:
        roots = load_ca_file(ca) if ca is not None else None
        data = read_bundle(file)
    except OSError as exc:
        print(f"walletsvc verify-pass: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"walletsvc verify-pass: {exc}", file=sys.stderr)
        return 2
    report = verify_pkpass(data, roots=roots)
    if as_json:
        print(json.dumps({"file": str(file), **report.as_dict()}, ensure_ascii=False, indent=2))
    else:
        print(f"{file}\n{render_text(report)}")
    return 0 if report.ok else 1


async def _migrate(container: Container) -> None:
    try:
        await upgrade(container.engine)
        log.info("migrate.done", database=_safe_url(container.settings))
    finally:
        await container.close()


async def _loyalty_review(container: Container, program: str | None) -> int:
    try:
        if program is not None:
            reports = [await review_program(container.ctx, program)]
        else:
            reports = await review_all(container.ctx)
    finally:
        await container.close()
    for report in reports:
        print(json.dumps(asdict(report)))
    return 0


async def _prune(container: Container) -> int:
    try:
        report = await prune(container.ctx, container.retention)
    finally:
        await container.close()
    print(json.dumps(report.counts))
    return 0


async def _import_customers(container: Container, args: argparse.Namespace) -> int:
    try:
        return await run_import(container.ctx, args.file, args.program, args.rejects)
    finally:
        await container.close()


async def _refresh_passes(container: Container, program: str) -> int:
    try:
        changed = await refresh_program_passes(container.ctx, program)
    except NotFound:
        print(f"walletsvc passes refresh: no program {program!r}", file=sys.stderr)
        return 1
    finally:
        await container.close()
    print(json.dumps({"program": program, "passes_changed": changed}))
    return 0


def _add_events_commands(commands: Any) -> None:
    events = commands.add_parser("events", help="event delivery: status, dead letters, replay")
    actions = events.add_subparsers(dest="events_command", required=True)
    actions.add_parser("status", help="each sink: owed and dead deliveries, paused or gone")
    dead = actions.add_parser("dead", help="list dead letters, oldest event first")
    dead.add_argument("--sink", help="only this sink")
    dead.add_argument("--limit", type=int, default=100)
    dead.add_argument("--json", action="store_true", help="one JSON object per line")
    replay = actions.add_parser("replay", help="send dead letters again")
    replay.add_argument("event_ids", nargs="*", metavar="EVENT_ID")
    replay.add_argument("--all", action="store_true", help="every dead letter (of --sink)")
    replay.add_argument("--sink", help="only this sink")
    revive = actions.add_parser("revive", help="let a sink stopped by 410 Gone take events")
    revive.add_argument("sink")


async def _relay(container: Container) -> int:
    try:
        if await pending(container.engine):
            print("walletsvc relay: run `walletsvc migrate` first", file=sys.stderr)
            return 2
        relay = await open_event_relay(container)
        if relay is None:
            print("walletsvc relay: no event sinks configured ([events])", file=sys.stderr)
            return 2
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        log.info("relay.started", sinks=[route.name for route in relay.routes])
        try:
            await relay.run(stop)
        finally:
            await relay.close()
        log.info("relay.stopped")
        return 0
    finally:
        await container.close()


async def _events(container: Container, args: argparse.Namespace) -> int:
    store = container.event_store
    assert store is not None
    events = container.settings.events
    names = [hook.name for hook in events.webhooks] + (
        [events.nats.name] if events.nats.url else []
    )
    now = utc_now()
    try:
        if args.events_command == "status":
            for state in await store.states(names):
                line = f"{state.name}: pending {state.pending}, dead {state.dead}"
                if state.gone_at is not None:
                    line += f", GONE since {state.gone_at.isoformat()} ({state.gone_reason})"
                elif state.paused_until is not None and state.paused_until > now:
                    line += f", paused until {state.paused_until.isoformat()}"
                print(line)
        elif args.events_command == "dead":
            for letter in await store.dead_letters(args.sink, args.limit):
                if args.json:
                    print(
                        json.dumps(
                            {
                                **asdict(letter),
                                "queued_at": letter.queued_at.isoformat(),
                                "dead_at": letter.dead_at.isoformat() if letter.dead_at else None,
                            }
                        )
                    )
                else:
                    print(
                        f"{letter.event_id}  {letter.sink}  {letter.type}  attempts "
                        f"{letter.attempts}  {letter.last_error or ''}"
                    )
        elif args.events_command == "replay":
            if bool(args.event_ids) == bool(args.all):
                print("walletsvc events replay: name event ids or --all", file=sys.stderr)
                return 2
            count = await store.replay(None if args.all else args.event_ids, args.sink, now)
            print(f"{count} dead letter(s) owed again")
            gone = [s.name for s in await store.states(names) if s.gone_at is not None]
            if gone:
                print(f"note: gone sinks take nothing until revived: {', '.join(gone)}")
        elif args.events_command == "revive":
            if not await store.revive(args.sink, now):
                print(f"sink {args.sink} was not gone")
            else:
                print(
                    f"sink {args.sink} takes events again; replay its dead letters with "
                    f"`walletsvc events replay --all --sink {args.sink}`"
                )
        return 0
    finally:
        await container.close()


async def _serve(container: Container, *, banner: bool = True) -> web.Application:
    try:
        await prepare_database(container)
    except ConfigurationError as exc:
        log.error("startup.refused", detail=str(exc))
        print(f"walletsvc: cannot start: {exc}", file=sys.stderr)
        await container.close()
        raise SystemExit(2) from None
    app = create_app(container)

    async def close(_app: web.Application) -> None:
        await container.close()

    async def announce(_app: web.Application) -> None:
        _print_banner(container)

    if banner:
        app.on_startup.append(announce)
    app.on_cleanup.append(close)
    return app


def _safe_url(settings: Settings) -> str:
    return make_url(settings.database_url).render_as_string(hide_password=True)


def _print_banner(container: Container) -> None:
    settings = container.settings
    base = settings.effective_public_url
    lines = [
        f"walletsvc is running on http://{settings.host}:{settings.port} ({settings.mode})",
        f"  database:       {_safe_url(settings)}",
        f"  health:         {base}/healthz",
        f"  OpenAPI:        {base}/api/v1/openapi.json",
        f"  Apple web svc:  {base}/apple",
    ]
    if settings.development:
        files = container.dev_files
        lines += [
            "",
            "!" * 78,
            "!! DEVELOPMENT MODE: passes are signed with THROWAWAY certificates made here.",
            "!! They verify with openssl against the dev CA but WILL NOT INSTALL on a real",
            "!! iPhone. Configure a real Pass Type ID certificate for devices (docs/).",
            "!" * 78,
            "",
        ]
        if "admin_api_key" in files:
            lines.append(
                f"  admin API key:  export WALLETSVC_ADMIN_API_KEY=$(cat {files['admin_api_key']})"
            )
        if "apple_dev_ca" in files:
            lines.append(f"  dev CA (for openssl cms -verify): {files['apple_dev_ca']}")
        if settings.demo.enabled:
            lines += [
                f"  demo program:   {settings.demo.program_id}",
                '  try:  curl -s -H "Authorization: Bearer $WALLETSVC_ADMIN_API_KEY" '
                f"{base}/api/v1/programs",
            ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
