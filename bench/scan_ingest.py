"""Scan ingestion: POST /api/v1/scans against the same SQL issued directly through asyncpg.

Target (issue 5): at least 0.5 x the floor measured in the same run, p99 at most 50 ms.

    .venv/bin/python bench/scan_ingest.py                  # about 9 min
    PROFILE=10 .venv/bin/python bench/scan_ingest.py       # then 10 s of py-spy on the server

The service runs as `walletsvc serve` on a fresh PostgreSQL database in its own process
(serve_passes.py's pattern); the load generator and the floors run in this process.
Setup, untimed: a store, a `walletsvc` terminal and CUSTOMERS customers, each with a
loyalty pass issued through the API and downloaded, its barcode taken from pass.json.

Every timed scan is a purchase ("12.50" EUR, 12 points) with a new scan_id. Two
variants: "spread" picks a random customer per scan (rows are rarely contended), "one"
sends every scan to the same customer (the pass and customer row locks serialise
them). For each variant, client count and round, three sides run back to back on the
same scan sequence:

- `floor` replays, through asyncpg, the statements the service issues for one scan
  (read from PostgreSQL's statement log): the terminal read on its own, then BEGIN,
  inbox claim, pass locked (with the digests of the program and its stores), customer
  locked, ledger insert, customer update, the customer's passes, push-queue upsert,
  one outbox insert, counters bump and pass update in one statement, inbox response,
  commit. The content hash is a sha256 of the balance instead of a rendered
  pass.json. **The issue's yardstick.**
- `lean floor` is that transaction with only what it needs: inbox insert, pass and
  customer locked, ledger insert, customer update, push-queue upsert, one multi-row
  outbox insert, counters bump, pass update, inbox response, commit. No terminal read,
  no pre-ping, no re-reads: what a hand-written asyncpg implementation would cost.
- `service`: signed scans (Standard Webhooks headers, X-Terminal-Id; bodies and
  signatures made before the clock starts) posted over loopback with aiohttp.

Both floors use at most POOL connections (the service's pool: database_pool_size,
20 by default). Each row reports scans/s, p50/p99 latency seen by the client, and CPU
per scan of this process, the server, PostgreSQL (this database's backends and the
shared processes) and the rest of the machine (from /proc). The machine's cores are
shared by all of them, so the service also pays for its load generator, which the
floors do not. Recorded figures: bench/results/scans.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from service_process import ADMIN, PG, fresh_database, server_pids, start_server, wait_ready

from walletsvc.domain.wallet_pass import next_change_time
from walletsvc.intake.standard_webhooks import decode_secret, signature_headers

ROOT = Path(__file__).resolve().parents[1]
DATABASE = os.environ.get("BENCH_DATABASE", "walletsvc_bench_scans")
CUSTOMERS = int(os.environ.get("CUSTOMERS", "1000"))
SCANS = int(os.environ.get("SCANS", "2000"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
WARMUP = int(os.environ.get("WARMUP", "300"))
CONCURRENCY = [int(n) for n in os.environ.get("CONCURRENCY", "1,8,32").split(",")]
ONE_CONCURRENCY = [int(n) for n in os.environ.get("ONE_CONCURRENCY", "8,32").split(",") if n]
POOL = int(os.environ.get("POOL", "20"))
PROFILE = float(os.environ.get("PROFILE", "0"))
OUT = Path(os.environ.get("OUT", ROOT / "bench" / "out"))
PORT = int(os.environ.get("PORT", "8767"))
BASE = f"http://127.0.0.1:{PORT}"
PROGRAM = "demo"
SOURCE = f"scan:{PROGRAM}"
STORE = "bench"
TERMINAL = "till-bench"
AMOUNT = "12.50"
POINTS = 12  # the demo program earns 1 point per whole euro
OCCURRED_AT = "2026-11-22T10:00:00+01:00"
HEADERS = {"Authorization": f"Bearer {ADMIN}"}


@dataclass(frozen=True)
class Holder:
    """A customer with one loyalty pass, as the till and the floors see them."""

    customer_id: str
    serial: str
    barcode: str


@dataclass
class Row:
    side: str
    variant: str
    clients: int
    latencies: list[float]
    elapsed: float
    cpu: dict[str, float] = field(default_factory=dict)
    sessions: int = 0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed

    def quantile(self, q: int) -> float:
        return statistics.quantiles(sorted(self.latencies), n=100)[q - 1]


# --- setup through the API (untimed) ------------------------------------------------------


async def setup(http: aiohttp.ClientSession) -> tuple[bytes, list[Holder]]:
    """Create the store, the terminal and CUSTOMERS holders; return the terminal key."""
    async with http.post(
        f"{BASE}/api/v1/stores",
        json={
            "id": STORE,
            "program": PROGRAM,
            "name": "Bench",
            "latitude": 52.52,
            "longitude": 13.405,
            "radius_m": 100,
        },
        headers=HEADERS,
    ) as response:
        assert response.status == 201, await response.text()
    async with http.post(
        f"{BASE}/api/v1/stores/{STORE}/terminals",
        json={"id": TERMINAL, "adapter": "walletsvc"},
        headers=HEADERS,
    ) as response:
        terminal = await response.json()
        assert response.status == 201, terminal
    holders: list[Holder | None] = [None] * CUSTOMERS
    counter = iter(range(CUSTOMERS))

    async def issuer() -> None:
        for n in counter:
            async with http.post(
                f"{BASE}/api/v1/passes",
                json={"kind": "loyalty", "customer_external_id": f"scan-bench-{n}"},
                headers=HEADERS,
            ) as response:
                issued = await response.json()
                assert response.status == 201, issued
            async with http.get(issued["apple"]["pkpass_url"]) as response:
                bundle = zipfile.ZipFile(BytesIO(await response.read()))
            document = json.loads(bundle.read("pass.json"))
            holders[n] = Holder(
                issued["customer_id"], issued["serial"], document["barcodes"][0]["message"]
            )

    await asyncio.gather(*(issuer() for _ in range(16)))
    return decode_secret(terminal["secret"]), [h for h in holders if h is not None]


# --- the service ----------------------------------------------------------------------------


def signed_requests(
    key: bytes, holders: list[Holder], picks: list[int], tag: str
) -> list[tuple[bytes, dict[str, str]]]:
    """Return the bodies and headers of the scans, signed now (before the clock starts)."""
    now = datetime.now(UTC)
    requests = []
    for n, pick in enumerate(picks):
        body = json.dumps(
            {
                "scan_id": f"{tag}-{n}",
                "barcode": holders[pick].barcode,
                "action": "purchase",
                "occurred_at": OCCURRED_AT,
                "amount": {"value": AMOUNT, "currency": "EUR"},
            }
        ).encode()
        headers = signature_headers([key], f"msg_{uuid.uuid4().hex}", now, body)
        headers["X-Terminal-Id"] = TERMINAL
        headers["Content-Type"] = "application/json"
        requests.append((body, headers))
    return requests


def service_side(
    http: aiohttp.ClientSession, requests: list[tuple[bytes, dict[str, str]]]
) -> Callable[[int], Awaitable[None]]:
    async def scan(n: int) -> None:
        body, headers = requests[n]
        async with http.post(f"{BASE}/api/v1/scans", data=body, headers=headers) as response:
            answer = await response.read()
            assert response.status == 200, answer

    return scan


# --- the floors: the same SQL through asyncpg ----------------------------------------------


class Connections:
    """A plain pool: no reset query on release (SQLAlchemy's pool sends none either)."""

    def __init__(self, connections: list[asyncpg.Connection]) -> None:
        self._idle: asyncio.Queue[asyncpg.Connection] = asyncio.Queue()
        for connection in connections:
            self._idle.put_nowait(connection)

    @classmethod
    async def open(cls, size: int) -> Connections:
        return cls([await asyncpg.connect(f"{PG}/{DATABASE}") for _ in range(size)])

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        connection = await self._idle.get()
        try:
            yield connection
        finally:
            self._idle.put_nowait(connection)

    async def close(self) -> None:
        while not self._idle.empty():
            await self._idle.get_nowait().close()


SQL = {
    "inbox_claim": "INSERT INTO inbox (source, external_id, fingerprint, received_at, response,"
    " body, processed_at) VALUES ($1, $2, $3, $4, $5::json, $6, $7) RETURNING id",
    "ledger": "INSERT INTO ledger_entries (program_id, customer_id, kind, points, business_key,"
    " source, occurred_at, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    "customer_update": "UPDATE customers SET points_balance = $1, tier = $2, updated_at = $3"
    " WHERE id = $4",
    "push_queue": "INSERT INTO apple_push_queue (pass_type_id, push_token, generation, attempts,"
    " due_at) SELECT apple_registrations.pass_type_id, apple_devices.push_token, $1::integer,"
    " $2::integer, $3::timestamptz FROM apple_registrations JOIN apple_devices"
    " ON apple_devices.device_library_id = apple_registrations.device_library_id"
    " WHERE apple_registrations.serial = $4 ON CONFLICT (pass_type_id, push_token)"
    " DO UPDATE SET generation = apple_push_queue.generation + 1",
    "counter": "UPDATE counters SET value = value + 1 WHERE name = 'pass_update' RETURNING value",
    "pass_update": "UPDATE passes SET version = $1, content_hash = $2, update_tag = $3,"
    " last_changed_at = $4 WHERE serial = $5",
    "inbox_respond": "UPDATE inbox SET response = $1::json, processed_at = $2 WHERE id = $3",
    # the service's statements since the scan path went to asyncpg (statement log)
    "terminal_now": "SELECT id, store_id, program_id, adapter, secret_sealed,"
    " previous_secret_sealed, previous_valid_until, created_at FROM terminals WHERE id = $1",
    "inbox_claim_now": "INSERT INTO inbox (source, external_id, fingerprint, received_at,"
    " response, body) VALUES ($1, $2, $3, $4, 'null', $5) RETURNING id",
    # since 0014 the program's revision, not md5 digests of the program and its stores
    "pass_lock_revision": "SELECT serial, program_id, customer_id, kind, state,"
    " auth_token_sealed, coupon, void_reason, version, content_hash, last_changed_at,"
    " created_at, (SELECT revision FROM programs g WHERE g.id = passes.program_id)"
    " FROM passes WHERE serial = $1 FOR UPDATE",
    "customer_lock_all": "SELECT id, program_id, external_id, location_consent,"
    " marketing_consent, points_balance, tier, merged_into, tier_floor, erased_at, created_at,"
    " updated_at FROM customers WHERE id = $1 FOR UPDATE",
    "ledger_now": "INSERT INTO ledger_entries (program_id, customer_id, kind, points,"
    " business_key, source, occurred_at, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    "customer_update_all": "UPDATE customers SET location_consent = $2, marketing_consent = $3,"
    " points_balance = $4, tier = $5, updated_at = $6, merged_into = $7, tier_floor = $8"
    " WHERE id = $1",
    "customer_passes_now": "SELECT serial, program_id, customer_id, kind, state,"
    " auth_token_sealed, coupon, void_reason, version, content_hash, last_changed_at,"
    " created_at FROM passes WHERE customer_id = $1 ORDER BY created_at",
    "push_queue_now": "INSERT INTO apple_push_queue (pass_type_id, push_token, generation,"
    " attempts, due_at) SELECT r.pass_type_id, d.push_token, 1, 0, $2 FROM apple_registrations r"
    " JOIN apple_devices d ON d.device_library_id = r.device_library_id WHERE r.serial = $1"
    " ON CONFLICT (pass_type_id, push_token)"
    " DO UPDATE SET generation = apple_push_queue.generation + 1",
    "pass_update_now": "UPDATE passes SET state = $2, coupon = $3, void_reason = $4,"
    " version = $5, content_hash = $6, last_changed_at = $7 WHERE serial = $1",
    # the lean floor: only the columns it uses
    "lean_pass_lock": "SELECT version, last_changed_at FROM passes WHERE serial = $1 FOR UPDATE",
    "lean_customer_lock": "SELECT points_balance, tier FROM customers WHERE id = $1 FOR UPDATE",
}
OUTBOX_INSERT = (
    "INSERT INTO outbox (event_id, type, subject, partition_key, occurred_at, recorded_at, data)"
    " VALUES {} RETURNING seq"
)
TIERS = (("Bronze", 0), ("Silver", 500), ("Gold", 1500))  # the demo program's


def last_statement_sql(rows: int) -> str:
    """The service's last statement before COMMIT: outbox rows, inbox response, tag."""
    n = 7 * rows
    return (
        f"WITH o AS ({outbox_sql(rows, cast=False)}),"
        f" r AS (UPDATE inbox SET response = ${n + 2}, processed_at = ${n + 3}"
        f" WHERE id = ${n + 1}), tag AS (UPDATE counters SET value = value + 1"
        " WHERE name = 'pass_update' RETURNING value) UPDATE passes SET update_tag = tag.value"
        f" FROM tag WHERE serial = ANY(${n + 4}::text[]) RETURNING update_tag"
    )


def outbox_sql(rows: int, *, cast: bool = True) -> str:
    values = ", ".join(
        "("
        + ", ".join(f"${7 * r + c}" + ("::json" if c == 7 and cast else "") for c in range(1, 8))
        + ")"
        for r in range(rows)
    )
    if not cast:  # the service's own form (storage/pg_repositories.py)
        return OUTBOX_INSERT.format(values).removesuffix(" RETURNING seq")
    return OUTBOX_INSERT.format(values)


def tier_after(current: str, balance: int) -> str:
    names = [name for name, _ in TIERS]
    reached = [name for name, minimum in TIERS if balance >= minimum][-1]
    return current if names.index(current) >= names.index(reached) else reached


@dataclass(frozen=True)
class ScanWork:
    scan_id: str
    holder: Holder


class ScanEffects:
    """What both floors compute in Python for a scan: events, fingerprint, hash, answer."""

    def __init__(self, work: ScanWork, balance: int, tier: str, version: int) -> None:
        self.now = datetime.now(UTC)
        self.occurred = datetime.fromisoformat(OCCURRED_AT)
        self.work = work
        self.balance = balance + POINTS
        self.tier = tier_after(tier, self.balance)
        self.old_tier = tier
        self.version = version + 1
        self.content_hash = hashlib.sha256(
            f"{work.holder.serial}:{self.balance}:{self.tier}".encode()
        ).hexdigest()
        self.answer = json.dumps(
            {
                "customer_id": work.holder.customer_id,
                "serial": work.holder.serial,
                "action": "purchase",
                "points_earned": POINTS,
                "balance": self.balance,
                "tier": self.tier,
                "coupon": None,
            }
        )

    def place(self) -> dict[str, Any]:
        return {
            "customer_id": self.work.holder.customer_id,
            "program": PROGRAM,
            "store_id": STORE,
            "terminal_id": TERMINAL,
            "scan_id": self.work.scan_id,
        }

    def event(self, kind: str, occurred: datetime, data: dict[str, Any]) -> list[Any]:
        subject = self.work.holder.customer_id
        return [str(uuid.uuid4()), kind, subject, subject, occurred, self.now, json.dumps(data)]

    def scanned_events(self) -> list[list[Any]]:
        place = self.place()
        return [
            self.event(
                "com.walletsvc.instore.pass_scanned.v1",
                self.occurred,
                {**place, "serial": self.work.holder.serial, "action": "purchase"},
            ),
            self.event(
                "com.walletsvc.instore.purchase_recorded.v1",
                self.occurred,
                {**place, "order_id": None, "amount": AMOUNT, "currency": "EUR"},
            ),
        ]

    def earned_events(self) -> list[list[Any]]:
        place = self.place()
        events = [
            self.event(
                "com.walletsvc.loyalty.points_earned.v1",
                self.occurred,
                {**place, "points": POINTS, "balance": self.balance},
            )
        ]
        if self.tier != self.old_tier:
            events.append(
                self.event(
                    "com.walletsvc.loyalty.tier_changed.v1",
                    self.occurred,
                    {
                        **place,
                        "old_tier": self.old_tier,
                        "new_tier": self.tier,
                        "balance": self.balance,
                    },
                )
            )
        return events

    def updated_events(self) -> list[list[Any]]:
        return [
            self.event(
                "com.walletsvc.wallet.pass_updated.v1",
                self.now,
                {
                    "customer_id": self.work.holder.customer_id,
                    "program": PROGRAM,
                    "serial": self.work.holder.serial,
                    "version": self.version,
                },
            )
        ]

    def fingerprint(self) -> str:
        canonical = json.dumps(
            {
                "barcode": self.work.holder.barcode,
                "action": "purchase",
                "occurred_at": OCCURRED_AT,
                "amount": [AMOUNT, "EUR"],
                "order_id": None,
            },
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


async def insert_events(
    connection: asyncpg.Connection, events: list[list[Any]], *, service: bool = False
) -> None:
    sql = outbox_sql(len(events), cast=not service)
    await connection.execute(sql, *(v for event in events for v in event))


async def floor_scan(pool: Connections, work: ScanWork) -> None:
    """The service's statements for one purchase scan, in its order, without the ORM.

    Read from PostgreSQL's statement log (bench/README.md): the terminal read on its
    own, then BEGIN, inbox claim, pass lock with its program's revision (what the
    program cache checks), customer lock, ledger insert, customer update, the
    customer's passes, push-queue upsert, pass update, then one statement for the
    outbox rows, the inbox response and the counter bump tagging the pass, COMMIT.
    12 round trips.
    """
    holder = work.holder
    async with pool.connection() as connection:
        await connection.fetchrow(SQL["terminal_now"], TERMINAL)
        async with connection.transaction():
            received = datetime.now(UTC)
            fingerprint = ScanEffects(work, 0, "Bronze", 0).fingerprint()
            inbox_id = await connection.fetchval(
                SQL["inbox_claim_now"], SOURCE, work.scan_id, fingerprint, received, None
            )
            wallet_pass = await connection.fetchrow(SQL["pass_lock_revision"], holder.serial)
            customer = await connection.fetchrow(SQL["customer_lock_all"], holder.customer_id)
            effects = ScanEffects(
                work, customer["points_balance"], customer["tier"], wallet_pass["version"]
            )
            await connection.execute(
                SQL["ledger_now"],
                PROGRAM,
                holder.customer_id,
                "earn",
                POINTS,
                f"scan:{work.scan_id}",
                "scan",
                effects.occurred,
                effects.now,
            )
            await connection.execute(
                SQL["customer_update_all"],
                holder.customer_id,
                customer["location_consent"],
                customer["marketing_consent"],
                effects.balance,
                effects.tier,
                effects.now,
                customer["merged_into"],
                customer["tier_floor"],
            )
            await connection.fetch(SQL["customer_passes_now"], holder.customer_id)
            await connection.execute(SQL["push_queue_now"], holder.serial, effects.now)
            await connection.execute(
                SQL["pass_update_now"],
                holder.serial,
                wallet_pass["state"],
                "null",
                wallet_pass["void_reason"],
                effects.version,
                effects.content_hash,
                next_change_time(wallet_pass["last_changed_at"], effects.now),
            )
            events = effects.scanned_events() + effects.earned_events() + effects.updated_events()
            await connection.fetch(
                last_statement_sql(len(events)),
                *(v for event in events for v in event),
                inbox_id,
                effects.answer,
                received,
                [holder.serial],
            )


async def lean_scan(pool: Connections, work: ScanWork) -> None:
    """The same transaction with only the statements it needs."""
    holder = work.holder
    async with pool.connection() as connection, connection.transaction():
        received = datetime.now(UTC)
        fingerprint = ScanEffects(work, 0, "Bronze", 0).fingerprint()
        inbox_id = await connection.fetchval(
            SQL["inbox_claim"], SOURCE, work.scan_id, fingerprint, received, "null", None, None
        )
        wallet_pass = await connection.fetchrow(SQL["lean_pass_lock"], holder.serial)
        customer = await connection.fetchrow(SQL["lean_customer_lock"], holder.customer_id)
        effects = ScanEffects(
            work, customer["points_balance"], customer["tier"], wallet_pass["version"]
        )
        await connection.execute(
            SQL["ledger"],
            PROGRAM,
            holder.customer_id,
            "earn",
            POINTS,
            f"scan:{work.scan_id}",
            "scan",
            effects.occurred,
            effects.now,
        )
        await connection.execute(
            SQL["customer_update"], effects.balance, effects.tier, effects.now, holder.customer_id
        )
        await connection.execute(SQL["push_queue"], 1, 0, effects.now, holder.serial)
        await insert_events(
            connection,
            effects.scanned_events() + effects.earned_events() + effects.updated_events(),
        )
        tag = await connection.fetchval(SQL["counter"])
        await connection.execute(
            SQL["pass_update"],
            effects.version,
            effects.content_hash,
            tag,
            next_change_time(wallet_pass["last_changed_at"], effects.now),
            holder.serial,
        )
        await connection.execute(SQL["inbox_respond"], effects.answer, received, inbox_id)


def floor_side(
    pool: Connections,
    run: Callable[[Connections, ScanWork], Awaitable[None]],
    holders: list[Holder],
    picks: list[int],
    tag: str,
) -> Callable[[int], Awaitable[None]]:
    works = [ScanWork(f"{tag}-{n}", holders[pick]) for n, pick in enumerate(picks)]

    async def scan(n: int) -> None:
        await run(pool, works[n])

    return scan


# --- measuring ---------------------------------------------------------------------------


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def busy_seconds() -> float:
    """Return the CPU time all cores spent outside idle and iowait since boot."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks[:7]) - ticks[3] - ticks[4]) / TICK  # user to softirq, not idle, iowait


def run_queue_seconds(pid: int) -> float:
    """Return how long the process's main thread waited for a CPU while runnable."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


SHARED_POSTGRES = ("checkpointer", "background writer", "walwriter", "launcher", "bin/postgres")


def postgres_processes() -> dict[int, float]:
    """Return CPU seconds of this database's backends and the shared PostgreSQL processes."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if DATABASE in title or any(name in title for name in SHARED_POSTGRES):
            found[int(entry.name)] = cpu_seconds(int(entry.name))
    return found


def cpu_snapshot(server: int) -> dict[str, Any]:
    return {
        "bench": time.process_time(),
        "server": sum(cpu_seconds(pid) for pid in server_pids(server)),
        "postgres": postgres_processes(),
        "busy": busy_seconds(),
        "wait": sum(run_queue_seconds(pid) for pid in server_pids(server)),
    }


def cpu_per_scan(before: dict[str, Any], after: dict[str, Any], scans: int) -> dict[str, float]:
    """Return us per scan: CPU of this process, the server, PostgreSQL (this database's
    backends and the shared processes; backends that exited during the row are missed),
    everything else on the machine, and the server's time runnable but waiting for a CPU."""
    spent = {name: after[name] - before[name] for name in ("bench", "server", "busy", "wait")}
    spent["postgres"] = sum(
        cpu - before["postgres"].get(pid, 0.0) for pid, cpu in after["postgres"].items()
    )
    spent["other"] = spent.pop("busy") - spent["bench"] - spent["server"] - spent["postgres"]
    spent["server waiting for a CPU"] = spent.pop("wait")
    return {name: value / scans * 1e6 for name, value in spent.items()}


async def run_clients(
    work: Callable[[int], Awaitable[None]], total: int, clients: int
) -> tuple[list[float], float]:
    """Run `work(n)` for n in range(total) from `clients` concurrent clients; time each."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def client() -> None:
        for n in counter:
            started = time.perf_counter()
            await work(n)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, time.perf_counter() - started


async def measure(
    side: str,
    variant: str,
    clients: int,
    work: Callable[[int], Awaitable[None]],
    total: int,
    server: int,
    monitor: asyncpg.Connection,
) -> Row:
    sessions = await monitor.fetchval(SESSIONS, DATABASE)
    before = cpu_snapshot(server)
    latencies, elapsed = await run_clients(work, total, clients)
    after = cpu_snapshot(server)
    row = Row(side, variant, clients, latencies, elapsed)
    row.cpu = cpu_per_scan(before, after, total)
    row.sessions = await monitor.fetchval(SESSIONS, DATABASE) - sessions
    print(
        f"  {variant:6} {clients:2} clients {side:10} {row.rate:7,.0f} scans/s  "
        f"p50 {row.quantile(50):6.2f} ms  p99 {row.quantile(99):6.2f} ms  us per scan: "
        + ", ".join(f"{name} {value:,.0f}" for name, value in row.cpu.items())
        + f"; {row.sessions:,} new PostgreSQL sessions",
        flush=True,
    )
    return row


# Sessions opened on the database (counted when a backend reports its statistics).
SESSIONS = "SELECT sessions FROM pg_stat_database WHERE datname = $1"


def picks_for(variant: str, total: int, seed: str) -> list[int]:
    if variant == "one":
        return [0] * total
    chooser = random.Random(seed)
    return [chooser.randrange(CUSTOMERS) for _ in range(total)]


async def consistency() -> str:
    connection = await asyncpg.connect(f"{PG}/{DATABASE}")
    try:
        entries, points = await connection.fetchrow(
            "SELECT count(*), coalesce(sum(points), 0) FROM ledger_entries"
        )
        balances = await connection.fetchval("SELECT sum(points_balance) FROM customers")
        inbox = await connection.fetchval(
            "SELECT count(*) FROM inbox WHERE processed_at IS NOT NULL"
        )
        outbox = await connection.fetchval("SELECT count(*) FROM outbox")
    finally:
        await connection.close()
    assert points == balances, (points, balances)
    assert entries == inbox, (entries, inbox)
    return (
        f"{entries:,} ledger entries = {inbox:,} answered inbox rows; "
        f"ledger points {points:,} = sum of balances; {outbox:,} outbox rows"
    )


# --- profile -----------------------------------------------------------------------------


PROFILE_RULES: list[tuple[str, Callable[[list[str]], bool]]] = [
    (
        "idle (executor threads waiting, no stack)",
        lambda f: f[-1].startswith("_worker (") or not f[-1],
    ),
    (
        "socket send to PostgreSQL or the client (wall time, incl. waiting for the CPU)",
        lambda f: f[-1].startswith("_SelectorSocketTransport.write"),
    ),
    ("SQLAlchemy ORM in greenlet: Session.get", lambda f: f[0].startswith("Session.get ")),
    ("SQLAlchemy ORM in greenlet: Session.exec", lambda f: f[0].startswith("Session.exec")),
    ("SQLAlchemy ORM in greenlet: Session.flush", lambda f: f[0].startswith("Session.flush")),
    ("SQLAlchemy ORM in greenlet: commit, rollback, close", lambda f: f[0].startswith("Session.")),
    ("asyncpg (under an ORM call)", lambda f: "asyncpg/" in f[-1]),
    (
        "SQLAlchemy async glue (greenlet_spawn, pool, pre-ping)",
        lambda f: "sqlalchemy/" in f[-1] or "greenlet" in f[-1],
    ),
    ("pass.json render", lambda f: any("pass_render" in x or "renderer" in x for x in f)),
    ("walletsvc code", lambda f: "walletsvc/" in f[-1]),
    ("aiohttp", lambda f: "aiohttp/" in f[-1]),
    ("asyncio event loop", lambda f: "asyncio/" in f[-1]),
]


def summarize_profile(path: Path, scans: int) -> None:
    """Print py-spy's raw samples (100 Hz, wall time) as milliseconds per scan by category.

    SQLAlchemy runs its sync ORM code inside greenlets, which py-spy shows as stacks of
    their own rooted at Session.get/exec/flush; the driver work under an ORM call shows
    in the event loop's stack. The callers listed are the walletsvc frames nearest to
    the ORM call on the event loop's stack (whose ORM work that is).
    """
    categories: Counter[str] = Counter()
    callers: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        total += count
        frames = stack.split(";")
        name = next((name for name, rule in PROFILE_RULES if rule(frames)), None)
        if name is None:
            name = "other: " + frames[-1].rpartition("(")[2].split("/")[0].split(":")[0]
        categories[name] += count
        own = [frame for frame in frames if "walletsvc/" in frame]
        if own and "greenlet_spawn" in stack:
            callers[own[-1].split(" (")[0]] += count
    print(f"\npy-spy: {total:,} samples over {scans:,} scans; ms per scan (10 ms a sample):")
    for name, count in categories.most_common(16):
        print(f"  {count * 10 / scans:6.2f} ms {count / total:6.1%}  {name}")
    print("walletsvc frames that made the ORM calls (event-loop side only), ms per scan:")
    for name, count in callers.most_common(16):
        print(f"  {count * 10 / scans:6.2f} ms  {name}")


def profile_path() -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    return OUT / "scans-pyspy.txt"


async def profile(
    http: aiohttp.ClientSession, key: bytes, holders: list[Holder], server: int
) -> None:
    total = int(PROFILE * 400) + 2000
    requests = signed_requests(key, holders, picks_for("spread", total, "profile"), "profile")
    raw = profile_path()
    spy = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "py-spy"),
        "record",
        "-p",
        str(server),
        "-d",
        str(int(PROFILE)),
        "-f",
        "raw",
        "-o",
        str(raw),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    work = service_side(http, requests)
    clients = max(CONCURRENCY)
    latencies: list[float] = []
    counter = iter(range(total))

    async def client() -> None:
        for n in counter:
            if spy.returncode is not None:
                return
            started = time.perf_counter()
            await work(n)
            latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(client() for _ in range(clients)))
    await asyncio.wait_for(spy.wait(), timeout=60)
    print(f"\nprofiled {len(latencies):,} scans at {clients} clients; raw stacks: {raw}")
    summarize_profile(raw, len(latencies))


# --- main --------------------------------------------------------------------------------


def summary(rows: list[Row]) -> None:
    print("\nmedians over rounds (min..max); ratio = service / floor of the same round")
    keys = sorted({(r.variant, r.clients) for r in rows}, key=lambda k: (k[0] != "spread", k[1]))
    for variant, clients in keys:
        sides = {
            side: [r for r in rows if (r.variant, r.clients, r.side) == (variant, clients, side)]
            for side in ("floor", "lean floor", "service")
        }
        print(f"{variant} customers, {clients} clients:")
        for side, group in sides.items():
            rates = [r.rate for r in group]
            print(
                f"  {side:10} {statistics.median(rates):7,.0f} scans/s "
                f"({min(rates):,.0f}..{max(rates):,.0f})  "
                f"p50 {statistics.median(r.quantile(50) for r in group):6.2f} ms  "
                f"p99 {statistics.median(r.quantile(99) for r in group):6.2f} ms "
                f"(max of rounds {max(r.quantile(99) for r in group):.2f})"
            )
        for yardstick in ("floor", "lean floor"):
            ratios = [
                s.rate / f.rate for s, f in zip(sides["service"], sides[yardstick], strict=True)
            ]
            print(
                f"  service / {yardstick}: {statistics.median(ratios):.2f} "
                f"({min(ratios):.2f}..{max(ratios):.2f})"
            )


def load() -> str:
    return " ".join(f"{n:.2f}" for n in os.getloadavg())


async def main() -> None:
    await fresh_database(DATABASE)
    print(
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, load average {load()}; "
        f"CUSTOMERS={CUSTOMERS} SCANS={SCANS} ROUNDS={ROUNDS} WARMUP={WARMUP} "
        f"CONCURRENCY={CONCURRENCY} ONE_CONCURRENCY={ONE_CONCURRENCY} POOL={POOL}"
    )
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as data_dir:
        server = start_server(DATABASE, Path(data_dir), PORT)
        try:
            await wait_ready(BASE)
            connector = aiohttp.TCPConnector(limit=max(CONCURRENCY + ONE_CONCURRENCY))
            async with aiohttp.ClientSession(connector=connector) as http:
                started = time.perf_counter()
                key, holders = await setup(http)
                print(
                    f"setup: {len(holders):,} customers with loyalty passes "
                    f"({time.perf_counter() - started:.1f} s, untimed)"
                )
                pool = await Connections.open(POOL)
                monitor = await asyncpg.connect(f"{PG}/{DATABASE}")
                print("PostgreSQL", await monitor.fetchval("SHOW server_version"))
                # The service makes the counter row on the first pass change; the floors
                # expect it (the warm-up scans make it too).
                await monitor.execute(
                    "INSERT INTO counters (name, value) VALUES ('pass_update', 0)"
                    " ON CONFLICT (name) DO NOTHING"
                )
                try:
                    warm = picks_for("spread", WARMUP, "warm")
                    await run_clients(
                        service_side(http, signed_requests(key, holders, warm, "warm-s")),
                        WARMUP,
                        max(CONCURRENCY),
                    )
                    for name, run in (("warm-f", floor_scan), ("warm-l", lean_scan)):
                        side = floor_side(pool, run, holders, warm, name)
                        await run_clients(side, WARMUP, min(POOL, max(CONCURRENCY)))
                    plan = [("spread", c) for c in CONCURRENCY] + [
                        ("one", c) for c in ONE_CONCURRENCY
                    ]
                    for round_ in range(ROUNDS):
                        print(f"round {round_ + 1} of {ROUNDS}", flush=True)
                        for variant, clients in plan:
                            tag = f"r{round_}-{variant}-{clients}"
                            picks = picks_for(variant, SCANS, tag)
                            for side, run in (("floor", floor_scan), ("lean floor", lean_scan)):
                                work = floor_side(pool, run, holders, picks, f"{tag}-{side[0]}")
                                rows.append(
                                    await measure(
                                        side, variant, clients, work, SCANS, server.pid, monitor
                                    )
                                )
                            requests = signed_requests(key, holders, picks, f"{tag}-s")
                            work = service_side(http, requests)
                            rows.append(
                                await measure(
                                    "service", variant, clients, work, SCANS, server.pid, monitor
                                )
                            )
                finally:
                    await monitor.close()
                    await pool.close()
                summary(rows)
                print(f"\nload average {load()}; check: " + await consistency())
                if PROFILE:
                    await profile(http, key, holders, server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    asyncio.run(main())
