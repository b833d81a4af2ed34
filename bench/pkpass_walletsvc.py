#!/usr/bin/env python3
"""Time walletsvc's own .pkpass production the way ../shared/bench/pkpass times its peers.

One process builds WARMUP untimed passes, then times N passes with a monotonic clock, and
prints one JSON line in the shared bench's result format. Every pass gets its own serial
and points value. Start-up is not timed: imports, loading the certificates with walletsvc's
own loader, reading the model and preparing the assets (hashing the images and laying out
their zip entries once, as the service does once per design version).

  run --variant model     pass.json from the shared model (serial and points replaced,
                          json.dumps) + PkpassBuilder.build: what the floor does per pass
  run --variant renderer  PassJsonRenderer.render(PassContent) + PkpassBuilder.build: the
                          service's own rendering of the model's design and fields
  run --variant package   ApplePassSigner.package awaited one pass at a time: the service's
                          path, including the hop to the default executor thread
  run --variant sign      sign_manifest alone over a real manifest: the PKCS#7-sign-only
                          reference, in this process and venv
  summarize RESULTS [--peers PEER_RESULTS]   medians over rounds and ratios, as markdown

bench/run_pkpass.sh runs all of it pinned to one CPU, next to the shared floor and
references; see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

from walletsvc.apple.credentials import load_signing_identity
from walletsvc.apple.pass_json import PassJsonRenderer
from walletsvc.apple.pkpass import PkpassBuilder, sign_manifest
from walletsvc.domain.customer import Customer
from walletsvc.domain.pass_content import PassContent
from walletsvc.domain.program import AppleDesign, Program, Tier
from walletsvc.domain.wallet_pass import PassKind, WalletPass

HERE = Path(__file__).resolve().parent
DEFAULT_SHARED = HERE.parent.parent / "shared" / "bench" / "pkpass"
IMAGES = ("icon.png", "icon@2x.png", "logo.png", "strip.png")
VARIANTS = ("model", "renderer", "package", "sign")
# Result names (tool:variant:key:mode, or ref:variant) the ratios are taken against.
SIGN_ONLY = "ref:pkcs7_sign"  # the shared ref_sign.py's PKCS7-sign-only call
OWN_SIGN = "walletsvc:sign:plain:-"  # walletsvc's sign_manifest alone, same process layout
FLOOR = "floor (cryptography+zipfile):key loaded once:plain:"  # + mem or disk


def serial_and_points(i: int) -> tuple[str, int]:
    """Return pass i's serial and points, in the shape the shared verifier checks."""
    return f"WSV-{i:08d}", (i * 37) % 100000


class Model:
    """The shared bench's pass model and dev certificates, loaded once."""

    def __init__(self, shared: Path) -> None:
        folder = shared / "model" / "loyalty.pass"
        self.template: dict[str, Any] = json.loads((folder / "pass.json").read_bytes())
        self.images = {name: (folder / name).read_bytes() for name in IMAGES}
        certs = shared / "certs"
        self.identity = load_signing_identity(
            wwdr=certs / "wwdr.pem",
            certificate=certs / "signerCert.pem",
            private_key=certs / "signerKey.pem",
        )
        self.builder = PkpassBuilder(self.identity)
        self.assets = self.builder.prepare_assets(self.images)

    def pass_json(self, serial: str, points: int) -> bytes:
        """Return the model's pass.json with this pass's serial and points."""
        # Copy only the path that changes, as the floor does; the rest is shared.
        card = dict(self.template["storeCard"])
        first, *rest = card["primaryFields"]
        card["primaryFields"] = [{**first, "value": points}, *rest]
        document = {**self.template, "serialNumber": serial, "storeCard": card}
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()

    def program(self) -> Program:
        """Return a walletsvc program with the model's design."""
        t = self.template
        design = AppleDesign(
            pass_type_identifier=t["passTypeIdentifier"],
            team_identifier=t["teamIdentifier"],
            organization_name=t["organizationName"],
            description=t["description"],
            logo_text=t["logoText"],
            background_color=t["backgroundColor"],
            foreground_color=t["foregroundColor"],
            label_color=t["labelColor"],
        )
        tiers = (Tier("Gold", 0),)
        return Program("bench", "Example Coffee", tiers, Decimal(1), design)

    def content(self, program: Program, serial: str, points: int) -> PassContent:
        """Return one pass's content, built fresh as a repository would load it."""
        t = self.template
        customer = Customer(
            id="c-bench",
            program_id=program.id,
            external_id="bench",
            points_balance=points,
            tier="Gold",
        )
        wallet_pass = WalletPass(
            serial=serial,
            program_id=program.id,
            customer_id=customer.id,
            kind=PassKind.LOYALTY,
            authentication_token=t["authenticationToken"],
        )
        return PassContent(program, customer, wallet_pass, t["barcodes"][0]["message"])


def pass_maker(variant: str, model: Model, web_service_url: str) -> Callable[[int], bytes]:
    """Return a function that produces pass i's .pkpass bytes, untimed set-up done."""
    builder, assets = model.builder, model.assets
    if variant == "model":

        def one(i: int) -> bytes:
            return builder.build(model.pass_json(*serial_and_points(i)), assets)

        return one
    program = model.program()
    if variant == "renderer":
        renderer = PassJsonRenderer(web_service_url)

        def rendered(i: int) -> bytes:
            content = model.content(program, *serial_and_points(i))
            return builder.build(renderer.render(content), assets)

        return rendered
    if variant == "package":
        # Imported here: the port's module is not needed by the other variants.
        from walletsvc.apple.wallet import ApplePassSigner

        signer = ApplePassSigner(builder, web_service_url)
        loop = asyncio.new_event_loop()

        def packaged(i: int) -> bytes:
            content = model.content(program, *serial_and_points(i))
            return loop.run_until_complete(
                signer.package(program, signer.render(content), model.images)
            )

        return packaged
    manifest = b'{"pass.json":"' + b"0" * 40 + b'",' + assets.manifest_tail

    def signed(i: int) -> bytes:
        return sign_manifest(manifest, model.identity)

    return signed


def run(args: argparse.Namespace) -> None:
    """Time one variant and print its JSON result line."""
    shared = Path(args.shared).resolve()
    model = Model(shared)
    make = pass_maker(args.variant, model, model.template["webServiceURL"].rstrip("/"))
    makes_passes = args.variant != "sign"
    out = Path(args.out) / f"walletsvc-{args.variant}-{args.mode}"
    if makes_passes:
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*.pkpass"):
            old.unlink()
    to_disk = args.mode == "disk" and makes_passes

    def one(i: int) -> int:
        data = make(i)
        if to_disk:
            (out / f"{serial_and_points(i)[0]}.pkpass").write_bytes(data)
        return len(data)

    for i in range(args.warmup):
        one(1_000_000 + i)
    if to_disk:  # keep only the N timed passes, so the directory matches the run
        for old in out.glob("*.pkpass"):
            old.unlink()
    total = 0
    started = time.perf_counter()
    for i in range(args.n):
        total += one(i)
    seconds = time.perf_counter() - started
    if makes_passes:
        (out / "_last_in_memory.pkpass").write_bytes(make(args.n - 1))
    labels = {
        "model": "walletsvc PkpassBuilder.build, model pass.json via json.dumps",
        "renderer": "walletsvc PassJsonRenderer.render + PkpassBuilder.build",
        "package": "walletsvc ApplePassSigner.package (asyncio, default executor)",
        "sign": "walletsvc sign_manifest only (PKCS7 sign call, in-process)",
    }
    print(
        json.dumps(
            {
                "tool": "walletsvc",
                "label": labels[args.variant],
                "variant": args.variant,
                "key": "plain",
                "mode": args.mode if makes_passes else "-",
                "n": args.n,
                "warmup": args.warmup,
                "seconds": seconds,
                "passes_per_s": args.n / seconds,
                "ms_per_pass": seconds * 1000 / args.n,
                "avg_bytes": total / args.n,
                "version": version("walletsvc"),
                "cryptography": version("cryptography"),
                "runtime": f"CPython {platform.python_version()}",
                "cpus": sorted(os.sched_getaffinity(0)),
                "out": str(out) if makes_passes else None,
            }
        ),
        flush=True,
    )


def load(path: Path) -> list[dict[str, Any]]:
    """Return the JSON lines of a results file (none if it is missing)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def key_of(row: dict[str, Any]) -> str:
    """Return the name a result row is grouped under."""
    if row["tool"] == "ref":
        return f"ref:{row['variant']}"
    return f"{row['tool']}:{row['variant']}:{row['key']}:{row['mode']}"


def by_round(rows: list[dict[str, Any]]) -> dict[str, dict[int, float]]:
    """Return passes/s per result name and round."""
    table: dict[str, dict[int, float]] = {}
    for row in rows:
        table.setdefault(key_of(row), {})[row.get("round", 0)] = row["passes_per_s"]
    return table


def ratio_cell(ours: dict[int, float], reference: dict[int, float]) -> str:
    """Return 'median (min..max)' of the per-round ratios ours ÷ reference."""
    per_round = [rate / reference[r] for r, rate in ours.items() if r in reference]
    if not per_round:
        return "-"
    return f"**{statistics.median(per_round):.3f}** ({min(per_round):.3f}..{max(per_round):.3f})"


def summarize(args: argparse.Namespace) -> None:
    """Print medians over rounds and the ratios the issue asks for, as markdown."""
    ours = by_round(load(Path(args.results)))
    peers = by_round(load(Path(args.peers))) if args.peers else {}
    lines = [
        "| measured in this run | rounds | median passes/s | median ms/pass | "
        "min..max passes/s | spread |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, rounds in sorted(ours.items()):
        rates = list(rounds.values())
        mid = statistics.median(rates)
        spread = (max(rates) - min(rates)) / mid * 100
        lines.append(
            f"| {name} | {len(rates)} | {mid:,.1f} | {1000 / mid:.3f} | "
            f"{min(rates):,.1f}..{max(rates):,.1f} | {spread:.1f}% |"
        )
    # Each cell: the median over rounds of (walletsvc passes/s ÷ reference passes/s) taken
    # within one round, then the lowest and highest of those per-round ratios.
    lines += [
        "",
        "| walletsvc passes/s ÷ | PKCS7 sign only (ref_sign.py) | sign_manifest only | "
        "floor, same output mode |",
        "|---|---:|---:|---:|",
    ]
    for ours_key in sorted(k for k in ours if k.startswith("walletsvc:") and k != OWN_SIGN):
        floor = FLOOR + ours_key.rsplit(":", 1)[1]
        cells = [
            ratio_cell(ours[ours_key], ours.get(ref_key, {}))
            for ref_key in (SIGN_ONLY, OWN_SIGN, floor)
        ]
        lines.append(f"| {ours_key} | {' | '.join(cells)} |")
    if args.verify:
        lines += [
            "",
            "| output checked by the shared verify.py | ok | tamper rejected | CMS digest | "
            "certs | signature bytes | .pkpass bytes | zip |",
            "|---|---:|---|---|---:|---:|---|---|",
        ]
        for v in load(Path(args.verify)):
            lines.append(
                f"| {Path(v['dir']).name} | {v['ok']}/{v['checked']} of {v['files_in_dir']} | "
                f"{'yes' if v['negative_control_rejected'] else 'NO'} | {v.get('digest')} | "
                f"{v.get('certs_embedded')} | {v.get('signature_bytes')} | "
                f"{v['size_bytes_min']}..{v['size_bytes_max']} | {','.join(v['zip_methods'])} |"
            )
    if peers:
        headline = ours.get("walletsvc:model:plain:mem")
        lines += [
            "",
            "Peers from the shared run.sh run of the same session (different processes, run "
            "just before; medians over its rounds):",
            "",
            "| peer (shared run.sh) | median passes/s | walletsvc model/mem ÷ peer |",
            "|---|---:|---:|",
        ]
        for name, rounds in sorted(peers.items()):
            if not name.endswith(":mem") and name not in (SIGN_ONLY, "ref:rsa_sign"):
                continue
            mid = statistics.median(rounds.values())
            ratio = f"{statistics.median(headline.values()) / mid:,.2f}" if headline else "-"
            lines.append(f"| {name} | {mid:,.1f} | {ratio} |")
    print("\n".join(lines))


def main() -> None:
    """Parse the command line and run a variant or summarize results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    timing = commands.add_parser("run", help="time one variant, print a JSON line")
    timing.add_argument("--variant", choices=VARIANTS, default="model")
    timing.add_argument("--mode", choices=("mem", "disk"), default="mem")
    timing.add_argument("--n", type=int, default=2000)
    timing.add_argument("--warmup", type=int, default=50)
    timing.add_argument("--out", default=str(HERE / "out" / "pkpass"))
    timing.add_argument("--shared", default=str(DEFAULT_SHARED))
    report = commands.add_parser("summarize", help="medians and ratios as markdown")
    report.add_argument("results")
    report.add_argument("--peers", help="the shared run.sh's out/results.jsonl")
    report.add_argument("--verify", help="the shared verify.py's JSON lines for these passes")
    args = parser.parse_args()
    if args.command == "run":
        run(args)
    else:
        summarize(args)


if __name__ == "__main__":
    main()
