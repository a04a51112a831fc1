"""The ``musicstore`` command (also ``python -m musicstore``): the Python API from a shell.

Human output is aligned tables on stdout; ``--json`` prints one JSON document instead. Progress lines go to
stderr, only when it is a terminal. Errors are one line on stderr, and the exit code says what happened
(``EXIT_*``; docs/cli.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .. import interrupt
from ..errors import InvalidInput, MigrationError, MusicstoreError, NotFound
from ..maintenance.backup import backup, restore
from ..maintenance.reconcile import reconcile
from ..maintenance.retention import DEFAULT_STATUSES, cleanup
from ..maintenance.usage import disk_usage, storage_stats
from ..masking import redact
from ..migrate import migrate, migrations_path, yoyo_url
from ..models import Generation, Stats, Status
from ..ops import DEFAULT_MAX_ATTEMPTS
from ..store import Store
from ..urls import DEFAULT_URL, URL_ENV, resolve, without_password
from ..validate import MAX_PAGE
from .progress import ProgressBar
from .table import table

EXIT_OK = 0
EXIT_ERROR = 1
"""An error (bad value, database or file problem); one line on stderr says what."""
EXIT_USAGE = 2
"""Bad command-line arguments (argparse's usage error)."""
EXIT_NOT_FOUND = 3
"""``show``: no generation has that id."""
EXIT_INCONSISTENT = 4
"""``reconcile``: database and output root disagree (found, and with ``--repair`` repaired)."""
EXIT_INTERRUPTED = interrupt.EXIT_INTERRUPTED
"""Ctrl-C (SIGINT), from musicstore's first import on (``musicstore.interrupt``)."""

ROOT_ENV = "MUSICSTORE_OUTPUT_ROOT"
DEFAULT_ROOT = "data/audio"
SHOWN = 50
"""How many items of a report the tables list (``--json`` has them all, up to the report's own limit)."""

EPILOG = f"""\
environment:
  {URL_ENV}   database URL when --database is not given (default {DEFAULT_URL})
  {ROOT_ENV}    output root when --output-root is not given (default {DEFAULT_ROOT})

exit codes:
  0    success
  1    error (one line on stderr: musicstore: error: ...)
  2    bad arguments (usage)
  3    show: no generation with that id
  4    reconcile: database and files disagree (found, or found and repaired)
  130  interrupted (Ctrl-C)

Every read command takes --json for scripts. See docs/cli.md.
"""


# --- output -------------------------------------------------------------------------------------------


def _print_table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> None:
    print("\n".join(table(rows, headers)))


def _print_section(title: str, rows: Sequence[Sequence[object]], headers: Sequence[str], count: int) -> None:
    """A titled table of at most SHOWN rows, saying how many more ``--json`` holds."""
    if not count:
        return
    print(f"\n{title} ({count:,}):")
    _print_table(rows[:SHOWN], headers)
    if count > SHOWN:
        print(f"... and {count - SHOWN:,} more (--json lists them)")


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=_json_default))


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def _bytes(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _short(text: str, width: int = 48) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


# --- argument types -----------------------------------------------------------------------------------

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` (one number, one unit)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", text.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; use e.g. 30d, 12h, 90m, 45s or 2w")
    try:
        return timedelta(seconds=float(match[1]) * _DURATION_UNITS[match[2]])
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{text!r} is too long a duration") from None


def parse_size(text: str) -> int:
    """Bytes: ``5000``, ``500MB``, ``50GB``, ``1.5TB`` (powers of 1000) or ``2GiB`` (powers of 1024)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)", text.strip().lower())
    if match is None or (match[3] and not match[2]):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; use e.g. 5000, 500MB, 50GB or 2GiB")
    unit = 1024 ** "kmgt".index(match[2]) * 1024 if match[3] else _SIZE_UNITS[match[2]]
    try:
        return round(float(match[1]) * unit)
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{text!r} is too large a size") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def page_size(text: str) -> int:
    """A ``--limit``: 1 to the library's largest page (a bad value is a usage error, like 0)."""
    value = positive_int(text)
    if value > MAX_PAGE:
        raise argparse.ArgumentTypeError(f"{text!r} is more than the largest page, {MAX_PAGE}")
    return value


def not_empty(text: str) -> str:
    """``--database ""`` (an unset shell variable) is a mistake, not a request for the default."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty (leave the option out for the default)")
    return text


# --- shared -------------------------------------------------------------------------------------------


def _open(args: argparse.Namespace) -> Store:
    """The store at ``--database``; a SQLite file that does not exist is an error, not a new empty file."""
    target = resolve(args.database)
    if target.path is not None and not target.path.exists():
        raise MigrationError(
            f"no database at {target.path}; create it with `musicstore migrate --database {target.url}`"
        )
    return Store(target.url)


def _root(args: argparse.Namespace) -> str:
    return str(args.output_root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


def _generation_fields(generation: Generation) -> list[tuple[str, str]]:
    rows = []
    for name, value in dataclasses.asdict(generation).items():
        if isinstance(value, datetime):
            text = value.isoformat()
        elif name == "metadata":
            text = json.dumps(value, sort_keys=True, ensure_ascii=False)
        elif value is None:
            text = "-"
        else:
            text = str(value.value if isinstance(value, enum.Enum) else value)
        rows.append((name, text))
    return rows


# --- commands -----------------------------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    applied = migrate(args.database)
    if args.json:
        _print_json({"database": without_password(resolve(args.database).url), "applied": applied})
    else:
        print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return EXIT_OK


def cmd_yoyo(args: argparse.Namespace) -> int:
    """``migrations-path`` and ``yoyo-url``: what ``yoyo apply`` needs, printed for ``$(...)``."""
    if args.command == "migrations-path":
        print(migrations_path())
        return EXIT_OK
    url, password_left_out = yoyo_url(args.database)
    if password_left_out:
        note = "the password is left out: give yoyo PGPASSWORD, ~/.pgpass or --prompt-password"
        print(f"musicstore: note: {note}", file=sys.stderr)
    print(url)
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    with _open(args) as store:
        stats = store.get_database_stats()
        storage = storage_stats(store) if args.storage else None
        usage = None
        if args.disk:
            with ProgressBar("scanning", unit="files") as bar:
                usage = disk_usage(store, _root(args), progress=bar)
    if args.json:
        figures = _stats_figures(stats)
        if storage is not None:
            figures["storage"] = storage
        if usage is not None:
            figures["disk"] = usage
        _print_json(figures)
        return EXIT_OK
    _show_stats(stats, as_json=False)
    if storage is not None:
        print(
            f"\nrecorded: {storage.generations:,} generations, {storage.file_bytes:,} bytes, created "
            f"{storage.oldest_created_at or '-'} .. {storage.newest_created_at or '-'}"
        )
        for title, buckets in (
            ("status", storage.by_status),
            ("model", storage.by_model),
            ("day", storage.by_day),
        ):
            rows = [(key, b.generations, _bytes(b.file_bytes)) for key, b in buckets.items()]
            _print_section(f"by {title}", rows, [title, "generations", "bytes"], len(rows))
    if usage is not None:
        print(
            f"\ndisk under {usage.root}: {usage.files:,} files, {usage.bytes:,} bytes "
            f"(the database records {usage.database_file_bytes:,} bytes)"
        )
        kinds = ("recorded", "in_progress", "orphans", "temp", "other")
        rows = [(kind, getattr(usage, kind).files, _bytes(getattr(usage, kind).bytes)) for kind in kinds]
        _print_table([*rows, ("symlinks", usage.symlinks, "-")], ["kind", "files", "bytes"])
        for error in usage.errors:
            print(f"musicstore: warning: {error}", file=sys.stderr)
    return EXIT_OK


def _stats_figures(stats: Stats) -> dict[str, Any]:
    figures: dict[str, Any] = dataclasses.asdict(stats)
    figures["by_status"] = {status.value: n for status, n in stats.by_status.items()}
    figures["total"] = stats.total
    figures["average_generation_seconds"] = stats.average_generation_seconds
    return figures


def _show_stats(stats: Stats, *, as_json: bool) -> None:
    if as_json:
        _print_json(_stats_figures(stats))
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


def cmd_list(args: argparse.Namespace) -> int:
    with _open(args) as store:
        page = store.list_generations(
            status=args.status, model_name=args.model, limit=args.limit, cursor=args.cursor
        )
    if args.json:
        _print_json({"items": page.items, "count": len(page.items), "next_cursor": page.next_cursor})
        return EXIT_OK
    if not page.items:
        print("no generations")
        return EXIT_OK
    rows = [
        (
            g.id,
            g.status.value,
            g.model_name,
            _when(g.created_at),
            f"{g.duration_seconds:g}",
            _bytes(g.file_size_bytes),
            _short(g.prompt),
        )
        for g in page.items
    ]
    _print_table(rows, ["id", "status", "model", "created (UTC)", "seconds", "bytes", "prompt"])
    if page.next_cursor is not None:
        print(f"\nmore: musicstore list --cursor {page.next_cursor}  (same filters)")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    with _open(args) as store:
        generation = store.get_generation(args.id)
    if generation is None:
        raise NotFound(f"no generation with id {args.id}")
    if args.json:
        _print_json(generation)
    else:
        _print_table(_generation_fields(generation), ["field", "value"])
    return EXIT_OK


def cmd_prompts(args: argparse.Namespace) -> int:
    with _open(args) as store:
        prompts = store.get_most_used_prompts(args.limit)
    if args.json:
        _print_json({"prompts": prompts})
        return EXIT_OK
    if not prompts:
        print("no prompts")
        return EXIT_OK
    rows = [
        (p.used_count, _when(p.first_used_at), _when(p.last_used_at), _short(p.text, 60)) for p in prompts
    ]
    _print_table(rows, ["uses", "first used (UTC)", "last used (UTC)", "prompt"])
    return EXIT_OK


def cmd_reconcile(args: argparse.Namespace) -> int:
    with _open(args) as store, ProgressBar("reconcile", unit="rows and files") as bar:
        report = reconcile(
            store,
            _root(args),
            repair=args.repair,
            quarantine=args.quarantine,
            delete_orphans=args.orphans == "delete",
            stale_after_seconds=args.stale_after.total_seconds(),
            progress=bar,
        )
    code = EXIT_OK if report.consistent else EXIT_INCONSISTENT
    if args.json:
        _print_json(report)
        return code
    mode = "repair" if report.repair else "report only"
    if report.repair:
        mode += f", orphans {'deleted' if report.quarantine is None else 'to ' + report.quarantine}"
    print(f"root: {report.root} ({mode})")
    print(
        f"checked {report.rows_checked:,} completed rows and {report.files_scanned:,} files "
        f"({report.referenced_files:,} recorded, {report.in_progress_files:,} in progress, "
        f"{report.fresh_temp_files:,} fresh temp, {report.unknown_files:,} other, {report.symlinks:,} "
        f"symlinks) in {report.seconds:.2f} s"
    )
    _print_section(
        "orphan files",
        [(o.path, _bytes(o.size_bytes), o.action) for o in report.orphans],
        ["path", "bytes", "action"],
        report.orphan_count,
    )
    _print_section(
        "dangling rows",
        [
            (d.id, d.file_path, d.problem, _bytes(d.expected_bytes), _bytes(d.actual_bytes), d.action)
            for d in report.dangling
        ],
        ["id", "file", "problem", "recorded", "on disk", "action"],
        report.dangling_count,
    )
    _print_section(
        "rows outside the output root (never followed; left as they are: fix or delete them by hand)",
        [(o.id, o.file_path, o.reason) for o in report.outside_root],
        ["id", "file", "reason"],
        report.outside_root_count,
    )
    _print_section(
        "stale temp files",
        [(t.path, _bytes(t.size_bytes), f"{t.age_seconds:.0f}", t.action) for t in report.stale_temp_files],
        ["path", "bytes", "age s", "action"],
        report.stale_temp_count,
    )
    for error in report.errors:
        print(f"musicstore: error: {error}", file=sys.stderr)
    if report.consistent:
        print("\nconsistent: every completed row has its file, every file has its row")
    elif report.repair:
        print(
            f"\nfound {report.orphan_count:,} orphans, {report.dangling_count:,} dangling rows, "
            f"{report.stale_temp_count:,} stale temp files: repaired (see action)"
            + _outside_note(report.outside_root_count)
        )
    else:
        print(
            f"\nfound {report.orphan_count:,} orphans, {report.dangling_count:,} dangling rows, "
            f"{report.stale_temp_count:,} stale temp files; `musicstore reconcile --repair` fixes them"
            + _outside_note(report.outside_root_count)
        )
    return code


def _outside_note(count: int) -> str:
    return f"; {count:,} rows outside the output root, left alone" if count else ""


def cmd_cleanup(args: argparse.Namespace) -> int:
    if args.older_than is None and args.status is None and args.model is None and args.max_bytes is None:
        every = " ".join(f"--status {s.value}" for s in DEFAULT_STATUSES)
        args.parser.error(
            "give at least one criterion: --older-than, --status, --model or --max-bytes "
            f"(for every finished generation: {every})"
        )
    with _open(args) as store, ProgressBar("cleanup", unit="generations") as bar:
        report = cleanup(
            store,
            _root(args),
            older_than=args.older_than,
            statuses=args.status,
            model_name=args.model,
            max_total_bytes=args.max_bytes,
            dry_run=not args.apply,
            progress=bar,
        )
    if args.json:
        _print_json(report)
    else:
        criteria = [f"status {', '.join(report.statuses)}"]
        if report.cutoff is not None:
            criteria.append(f"created before {report.cutoff}")
        if report.model_name is not None:
            criteria.append(f"model {report.model_name}")
        if report.max_total_bytes is not None:
            criteria.append(f"down to {report.max_total_bytes:,} recorded bytes")
        print(
            ("dry run, nothing deleted (--apply deletes): " if report.dry_run else "deleted: ")
            + "; ".join(criteria)
        )
        _print_section(
            "generations" + (" that would be deleted" if report.dry_run else " deleted"),
            [
                (
                    d.id,
                    d.status,
                    d.model_name,
                    d.created_at[:19].replace("T", " "),
                    _bytes(d.file_size_bytes),
                    d.file_action,
                )
                for d in report.deleted
            ],
            ["id", "status", "model", "created (UTC)", "bytes", "file"],
            report.rows_deleted,
        )
        _print_section(
            "skipped (row and file kept)",
            [(s.id, s.reason) for s in report.skipped],
            ["id", "reason"],
            report.skipped_count,
        )
        verb = "would free" if report.dry_run else "freed"
        print(
            f"\n{report.rows_deleted:,} generations, {report.files_deleted:,} files, {verb} "
            f"{report.bytes_freed:,} bytes; recorded bytes {report.total_bytes_before:,} -> "
            f"{report.total_bytes_after:,}"
            + ("" if report.budget_met is None else f" (budget {'met' if report.budget_met else 'NOT met'})")
        )
        if report.rows_changed:
            print(f"{report.rows_changed:,} generations changed meanwhile and were left alone")
    for error in report.errors:
        print(f"musicstore: error: {error}", file=sys.stderr)
    return EXIT_ERROR if report.errors else EXIT_OK


def _refuse_overwrite(path: Path | None, overwrite: bool) -> None:
    if path is not None and path.exists() and not overwrite:
        raise InvalidInput(f"{path} exists; pass --overwrite to replace it")


def cmd_backup(args: argparse.Namespace) -> int:
    if resolve(args.database).dialect == "sqlite":
        _refuse_overwrite(Path(args.destination), args.overwrite)
    with ProgressBar("backup", unit="pages") as bar:
        report = backup(args.database, args.destination, overwrite=args.overwrite, progress=bar)
    if args.json:
        _print_json(report)
    else:
        print(
            f"backed up {report.source} to {report.destination}: {report.pages:,} pages, "
            f"{report.bytes:,} bytes, integrity {report.integrity}, {report.seconds:.2f} s"
        )
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    if Path(args.backup).is_file():
        _refuse_overwrite(resolve(args.database).path, args.overwrite)
    with ProgressBar("restore", unit="pages") as bar:
        report = restore(args.backup, args.database, overwrite=args.overwrite, progress=bar)
    if args.json:
        _print_json(report)
    else:
        print(
            f"restored {report.source} as {report.destination}: {report.pages:,} pages, "
            f"{report.bytes:,} bytes, integrity {report.integrity}; reconcile the output root next"
        )
    return EXIT_OK


def cmd_requeue_expired(args: argparse.Namespace) -> int:
    with _open(args) as store:
        result = store.requeue_expired(max_attempts=args.max_attempts)
    if args.json:
        _print_json(result)
        return EXIT_OK
    print(f"requeued {len(result.requeued)}, failed {len(result.failed)} (attempts used up)")
    rows = [(gid, "pending") for gid in result.requeued] + [(gid, "failed") for gid in result.failed]
    if rows:
        print()
        _print_table(rows, ["id", "now"])
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    with ProgressBar("exporting", args.count, unit="generations") as bar:

        def echo(line: str) -> None:
            bar.close()  # erase the bar (if drawn) before a line of results
            print(line)

        stats = run_demo(args.database, count=args.count, output_root=_root(args), echo=echo, progress=bar)
    _show_stats(stats, as_json=False)
    return EXIT_OK


# --- parser -------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="musicstore",
        description="Job store and audio export for AI music generation: the Python API from a shell.",
        epilog=EPILOG,
        formatter_class=formatter,
    )
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--database",
        "-d",
        metavar="URL",
        type=not_empty,
        help=f"database URL (default: ${URL_ENV}, else {DEFAULT_URL})",
    )
    root = argparse.ArgumentParser(add_help=False)
    root.add_argument(
        "--output-root",
        "-o",
        metavar="DIR",
        type=not_empty,
        help=f"folder the audio files are under (default: ${ROOT_ENV}, else {DEFAULT_ROOT})",
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, help: str, func: Callable[[argparse.Namespace], int], *parents: argparse.ArgumentParser
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help,
            description=help,
            parents=[database, *parents],
            epilog=EPILOG,
            formatter_class=formatter,
        )
        sub.set_defaults(func=func, parser=sub)
        return sub

    command("migrate", "create or upgrade the schema", cmd_migrate, as_json)
    command("yoyo-url", "print the database URL as yoyo apply spells it, without a password", cmd_yoyo)
    source = "print the folder of the migrations installed with musicstore (yoyo apply's source)"
    commands.add_parser("migrations-path", help=source, description=source).set_defaults(func=cmd_yoyo)

    stats = command(
        "stats", "counts by status, bytes, generation time, prompt usage", cmd_stats, root, as_json
    )
    stats.add_argument(
        "--storage", action="store_true", help="add recorded bytes by status, model and UTC day"
    )
    stats.add_argument(
        "--disk",
        action="store_true",
        help="add what the output root holds (walks it), by what the rows record",
    )

    listing = command("list", "generations, newest first, a page at a time", cmd_list, as_json)
    listing.add_argument("--status", choices=[s.value for s in Status], help="only this status")
    listing.add_argument("--model", metavar="NAME", help="only this model")
    listing.add_argument(
        "--limit", type=page_size, default=20, help=f"page size (default 20, at most {MAX_PAGE})"
    )
    listing.add_argument("--cursor", help="continue after the previous page (its next_cursor)")

    show = command("show", "every field of one generation (exit code 3 if there is none)", cmd_show, as_json)
    show.add_argument("id", help="the generation id (a UUID)")

    prompts = command("prompts", "the most used prompts", cmd_prompts, as_json)
    prompts.add_argument(
        "--limit", type=page_size, default=10, help=f"how many (default 10, at most {MAX_PAGE})"
    )

    recon = command(
        "reconcile", "compare rows and files; exit code 4 if they disagree", cmd_reconcile, root, as_json
    )
    recon.add_argument("--repair", action="store_true", help="fix what differs (default: only report)")
    recon.add_argument(
        "--orphans",
        choices=["quarantine", "delete"],
        default="quarantine",
        help="with --repair: move orphan files to the quarantine folder (default) or delete them",
    )
    recon.add_argument(
        "--quarantine", metavar="DIR", type=Path, help="quarantine folder (default: <output root>.quarantine)"
    )
    recon.add_argument(
        "--stale-after",
        metavar="AGE",
        type=parse_duration,
        default=timedelta(hours=1),
        help="export temp files older than this are stale (default 1h)",
    )

    clean = command(
        "cleanup", "delete generations and their files (a dry run unless --apply)", cmd_cleanup, root, as_json
    )
    clean.add_argument(
        "--older-than", metavar="AGE", type=parse_duration, help="created before now - AGE (30d, 12h)"
    )
    clean.add_argument(
        "--status",
        action="append",
        choices=[s.value for s in Status if s is not Status.PROCESSING],
        help="only this status; repeat for several (default: completed, failed, cancelled)",
    )
    clean.add_argument("--model", metavar="NAME", help="only this model's generations")
    clean.add_argument(
        "--max-bytes",
        metavar="SIZE",
        type=parse_size,
        help="delete oldest first until the recorded bytes are at most SIZE (50GB, 500MB, 2GiB)",
    )
    clean.add_argument("--apply", "--yes", action="store_true", help="really delete (default: dry run)")

    back = command(
        "backup", "online backup of a live SQLite database (PostgreSQL: pg_dump)", cmd_backup, as_json
    )
    back.add_argument("destination", metavar="DEST", help="the backup file to write")
    back.add_argument("--overwrite", action="store_true", help="replace DEST if it exists")

    rest = command(
        "restore", "put a backup in place as the database (stop workers first)", cmd_restore, as_json
    )
    rest.add_argument("backup", metavar="BACKUP", help="the backup file")
    rest.add_argument("--overwrite", action="store_true", help="replace the database if it exists")

    requeue = command(
        "requeue-expired",
        "put generations whose lease expired back in the queue",
        cmd_requeue_expired,
        as_json,
    )
    requeue.add_argument(
        "--max-attempts",
        type=positive_int,
        default=DEFAULT_MAX_ATTEMPTS,
        help=f"fail for good once a generation had this many claims (default {DEFAULT_MAX_ATTEMPTS})",
    )

    demo = command(
        "demo", "end-to-end demo: enqueue, claim, export audio, complete, show stats", cmd_demo, root
    )
    demo.add_argument("--count", type=positive_int, default=5, help="how many generations (default 5)")
    return parser


def _error(exc: BaseException) -> None:
    message = " ".join(redact(str(exc)).split()) or type(exc).__name__
    print(f"musicstore: error: {message}", file=sys.stderr)


OPTIONAL_MODULES = {"psycopg": "postgres", "psycopg_pool": "postgres", "aiosqlite": "async", "torch": "torch"}
"""The modules of musicstore's extras: one missing is a hint to install the extra, not a traceback."""


def _missing_extra(exc: ImportError) -> str | None:
    """The hint for an optional module that is not installed, or None (an ImportError that is a bug)."""
    extra = OPTIONAL_MODULES.get((exc.name or "").partition(".")[0])
    if extra is None:
        return None
    return f"{exc.name} is not installed; this needs the {extra} extra: pip install 'musicstore[{extra}]'"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    # psycopg's pool logs each failed connection attempt as a warning; with no logging configured Python
    # would print them all on stderr, around the one-line error the command reports
    psycopg = logging.getLogger("psycopg")
    if not psycopg.handlers:
        psycopg.addHandler(logging.NullHandler())
    try:
        interrupt.restore()  # the imports are done: Ctrl-C is KeyboardInterrupt again, handled below
        args = build_parser().parse_args(argv)
        code = int(args.func(args))
        sys.stdout.flush()  # a closed pipe (`| head`) raises here, not at exit
        return code
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except NotFound as exc:
        _error(exc)
        return EXIT_NOT_FOUND
    except MusicstoreError as exc:
        _error(exc)
        return EXIT_ERROR
    except BrokenPipeError:  # `musicstore list | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except OSError as exc:
        _error(exc)
        return EXIT_ERROR
    except ImportError as exc:
        hint = _missing_extra(exc)
        if hint is None:
            raise
        print(f"musicstore: error: {hint}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(interrupt.message(), end="", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        interrupt.finish()  # done: a Ctrl-C from here to the exit changes nothing
