"""The ``musicstore`` command (also ``python -m musicstore``): the Python API from a shell."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from .errors import MusicstoreError
from .migrate import migrate
from .models import Stats
from .store import Store
from .urls import DEFAULT_URL, URL_ENV

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _print_table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> None:
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print(
            "  ".join(
                c.rjust(w) if n and c.replace(".", "").isdigit() else c.ljust(w)
                for c, w in zip(row, widths, strict=True)
            ).rstrip()
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))


def cmd_migrate(args: argparse.Namespace) -> int:
    applied = migrate(args.database)
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    with Store(args.database) as store:
        _show_stats(store.get_database_stats(), as_json=args.json)
    return EXIT_OK


def _show_stats(stats: Stats, *, as_json: bool) -> None:
    if as_json:
        figures: dict[str, Any] = asdict(stats)
        figures["by_status"] = {status.value: n for status, n in stats.by_status.items()}
        figures["total"] = stats.total
        figures["average_generation_seconds"] = stats.average_generation_seconds
        print(json.dumps(figures, indent=2))
        return
    rows = [(status.value, n) for status, n in stats.by_status.items()]
    rows += [("total", stats.total)]
    _print_table(rows, ["status", "generations"])
    average = stats.average_generation_seconds
    print(
        f"\nfiles: {stats.total_file_bytes:,} bytes  audio: {stats.completed_audio_seconds:.1f} s  "
        f"mean generation time: {'-' if average is None else f'{average:.3f} s'}  "
        f"prompts: {stats.unique_prompts} unique, {stats.prompt_uses} uses"
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    _show_stats(run_demo(args.database, count=args.count, output_root=args.output_root), as_json=False)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="musicstore",
        description="Job store and audio export for AI music generation.",
        epilog=f"The database URL comes from --database, else ${URL_ENV}, else {DEFAULT_URL}.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database", "-d", metavar="URL", help=f"database URL (default: ${URL_ENV} or {DEFAULT_URL})"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, parents=[common], description=help)

    command("migrate", "create or upgrade the schema").set_defaults(func=cmd_migrate)
    stats = command("stats", "counts by status, bytes, prompt usage")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.set_defaults(func=cmd_stats)
    demo = command("demo", "end-to-end demo: enqueue, claim, export audio, complete, show stats")
    demo.add_argument("--count", type=int, default=5, help="how many generations (default 5)")
    demo.add_argument(
        "--output-root",
        metavar="DIR",
        default="data/audio",
        help="where the WAV files go (default data/audio)",
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MusicstoreError as exc:
        print(f"musicstore: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
