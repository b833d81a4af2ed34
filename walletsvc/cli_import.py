"""`walletsvc customers import FILE.csv`: the command-line side of a bulk import.

Reads the CSV (UTF-8, with or without BOM; comma or semicolon, as German spreadsheets
write it), shows progress on stderr, writes rejected rows as CSV and exits 1 when any
row was rejected, 2 when the file itself cannot be read.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TextIO

from walletsvc.domain.api_key import Principal, Scope
from walletsvc.domain.errors import DomainError
from walletsvc.services.context import ServiceContext
from walletsvc.services.customer_import import ImportReport, check_columns, import_customers

# The operator at the console acts with every scope, like the bootstrap admin key.
OPERATOR = Principal(key_id="cli", name="command line", scopes=frozenset({Scope.ADMIN}))


async def run_import(
    ctx: ServiceContext, file: Path, program: str | None, rejects: Path | None
) -> int:
    """Import the file; return the exit code."""
    try:
        handle = file.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        print(f"walletsvc customers import: cannot read {file}: {exc.strerror}", file=sys.stderr)
        return 2
    with handle:
        sample = handle.read(4096)
        handle.seek(0)
        delimiter = ";" if sample.count(";") > sample.count(",") else ","
        reader = csv.DictReader(handle, delimiter=delimiter)
        try:
            check_columns(reader.fieldnames or [])
            report = await import_customers(
                ctx, OPERATOR, _rows(reader), program=program, progress=_progress(sys.stderr)
            )
        except DomainError as error:
            print(f"walletsvc customers import: {error.detail}", file=sys.stderr)
            return 2
        except (csv.Error, UnicodeDecodeError) as exc:
            print(f"walletsvc customers import: {file} is not UTF-8 CSV: {exc}", file=sys.stderr)
            return 2
    print(
        f"{report.rows} rows: {report.created} created, {report.updated} updated, "
        f"{len(report.rejected)} rejected",
        file=sys.stderr,
    )
    _write_rejects(report, rejects)
    return 1 if report.rejected else 0


def _rows(reader: csv.DictReader[str]) -> Iterator[tuple[int, Mapping[str, str | None]]]:
    for row in reader:
        yield reader.line_num, {k.strip(): v for k, v in row.items() if k is not None}


def _progress(stream: TextIO) -> Callable[[ImportReport], None]:
    interactive = stream.isatty()

    def show(report: ImportReport) -> None:
        if interactive and report.rows % 50 == 0:
            stream.write(f"\r{report.rows} rows, {len(report.rejected)} rejected")
            stream.flush()
        elif not interactive and report.rows % 1000 == 0:
            stream.write(f"{report.rows} rows, {len(report.rejected)} rejected\n")

    return show


def _write_rejects(report: ImportReport, path: Path | None) -> None:
    """Write the rejected rows as CSV: to `path`, else to stdout."""
    if not report.rejected:
        return
    out = path.open("w", encoding="utf-8", newline="") if path is not None else sys.stdout
    try:
        writer = csv.writer(out)
        writer.writerow(["line", "external_id", "reason", "field", "detail"])
        for row in report.rejected:
            writer.writerow([row.line, row.external_id, row.reason, row.field or "", row.detail])
    finally:
        if path is not None:
            out.close()
