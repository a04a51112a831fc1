"""The maintenance commands: reconcile, cleanup, backup and restore (musicstore.maintenance from a shell)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InvalidInput
from ..maintenance.backup import backup, restore
from ..maintenance.reconcile import DanglingRow, reconcile
from ..maintenance.relocate import copy_files
from ..maintenance.retention import DEFAULT_STATUSES, cleanup
from ..urls import resolve
from .common import EXIT_ERROR, EXIT_INCONSISTENT, EXIT_OK, open_store, output_root
from .output import bytes_text, print_json, print_section
from .progress import ProgressBar
from .table import escape_controls


def cmd_reconcile(args: argparse.Namespace) -> int:
    with open_store(args) as store, ProgressBar("reconcile", unit="rows and files") as bar:
        report = reconcile(
            store,
            output_root(args),
            repair=args.repair,
            quarantine=args.quarantine,
            delete_orphans=args.orphans == "delete",
            stale_after_seconds=args.stale_after.total_seconds(),
            progress=bar,
            verify_checksums=getattr(args, "verify_checksums", False),
        )
    code = EXIT_OK if report.consistent else EXIT_INCONSISTENT
    if args.json:
        print_json(report)
        _say_errors(report.errors)  # on stderr too, as cleanup's: a cron job's log of the JSON says nothing
        return code
    mode = "repair" if report.repair else "report only"
    if report.repair:
        mode += f", orphans {'deleted' if report.quarantine is None else 'to ' + report.quarantine}"
    print(escape_controls(f"root: {report.root} ({mode})"))  # typed paths: one line, no terminal escape
    print(
        f"checked {report.rows_checked:,} completed rows and {report.files_scanned:,} files "
        f"({report.referenced_files:,} recorded, {report.in_progress_files:,} in progress, "
        f"{report.fresh_temp_files:,} fresh temp, {report.unknown_files:,} other, {report.symlinks:,} "
        f"symlinks) in {report.seconds:.2f} s"
    )
    if report.rows_elsewhere or report.renditions_elsewhere:
        print(
            f"left {report.rows_elsewhere:,} rows and {report.renditions_elsewhere:,} renditions to the "
            "folders they record (storage_url)"
        )
    print_section(
        "orphan files",
        [(o.path, bytes_text(o.size_bytes), o.action) for o in report.orphans],
        ["path", "bytes", "action"],
        report.orphan_count,
    )
    print_section(
        "dangling rows",
        _dangling_rows(report.dangling),
        DANGLING_COLUMNS,
        report.dangling_count,
    )
    print_section(
        "dangling renditions (repair deletes their rows: make them again)",
        _dangling_rows(report.dangling_renditions),
        DANGLING_COLUMNS,
        report.dangling_rendition_count,
    )
    print_section(
        "recorded waveform peaks files missing or damaged (repair drops the record: render_peaks makes them "
        "again)",
        [
            (p.id, p.key, p.problem, bytes_text(p.expected_bytes), bytes_text(p.actual_bytes), p.action)
            for p in report.dangling_peaks
        ],
        ["id", "peaks file", "problem", "recorded", "found", "action"],
        report.dangling_peaks_count,
    )
    print_section(
        "rows outside the output root (never followed; left as they are: fix or delete them by hand)",
        [(o.id, o.kind, o.file_path, o.reason) for o in report.outside_root],
        ["id", "of", "file", "reason"],
        report.outside_root_count,
    )
    print_section(
        "stale temp files",
        [
            (t.path, bytes_text(t.size_bytes), f"{t.age_seconds:.0f}", t.action)
            for t in report.stale_temp_files
        ],
        ["path", "bytes", "age s", "action"],
        report.stale_temp_count,
    )
    if report.abandoned_upload_count or report.fresh_uploads:
        print_section(
            "abandoned multipart uploads (repair aborts them)",
            [
                (u.key, "-" if u.age_seconds is None else f"{u.age_seconds:.0f}", u.action)
                for u in report.abandoned_uploads
            ],
            ["key", "age s", "action"],
            report.abandoned_upload_count,
        )
    _say_errors(report.errors)
    if report.consistent:
        print(
            "\nconsistent: every completed row has its file, every file has its row"
            + (
                f" ({report.already_repaired:,} repaired by another process meanwhile: already_repaired)"
                if report.already_repaired
                else ""
            )
        )
    elif report.repair:
        print(
            f"\nfound {report.orphan_count:,} orphans, {report.dangling_count:,} dangling rows, "
            f"{report.dangling_rendition_count:,} dangling renditions, "
            f"{report.dangling_peaks_count:,} damaged peaks records, "
            f"{report.stale_temp_count + report.abandoned_upload_count:,} stale temp files or uploads: "
            + (
                f"repair attempted (see action), with {len(report.errors):,} "
                + ("error" if len(report.errors) == 1 else "errors")
                + " (above)"
                if report.errors
                else "repaired (see action)"
            )
            + _outside_note(report.outside_root_count)
        )
    else:
        print(
            f"\nfound {report.orphan_count:,} orphans, {report.dangling_count:,} dangling rows, "
            f"{report.dangling_rendition_count:,} dangling renditions, "
            f"{report.dangling_peaks_count:,} damaged peaks records, "
            f"{report.stale_temp_count + report.abandoned_upload_count:,} stale temp files or uploads; "
            + (f"the check is incomplete: {len(report.errors):,} error(s) above; " if report.errors else "")
            + "`musicstore reconcile --repair` fixes them"
            + _outside_note(report.outside_root_count)
        )
    return code


def _say_errors(errors: list[str]) -> None:
    """Each error of a run, one line on stderr (with ``--json`` too: they are in its ``errors`` as well)."""
    for error in errors:
        print(f"musicstore: error: {escape_controls(str(error))}", file=sys.stderr)


DANGLING_COLUMNS = ["id", "file", "problem", "recorded", "on disk", "action"]


def _dangling_rows(items: list[DanglingRow]) -> list[tuple[str, ...]]:
    """A table row for each dangling generation or rendition row."""
    return [
        (d.id, d.file_path, d.problem, bytes_text(d.expected_bytes), bytes_text(d.actual_bytes), d.action)
        for d in items
    ]


def _outside_note(count: int) -> str:
    return f"; {count:,} rows outside the output root, left alone" if count else ""


def cmd_cleanup(args: argparse.Namespace) -> int:
    if args.older_than is None and args.status is None and args.model is None and args.max_bytes is None:
        every = " ".join(f"--status {s.value}" for s in DEFAULT_STATUSES)
        args.parser.error(
            "give at least one criterion: --older-than, --status, --model or --max-bytes "
            f"(for every finished generation: {every})"
        )
    with open_store(args) as store, ProgressBar("cleanup", unit="generations") as bar:
        report = cleanup(
            store,
            output_root(args),
            older_than=args.older_than,
            statuses=args.status,
            model_name=args.model,
            max_total_bytes=args.max_bytes,
            dry_run=not args.apply,
            progress=bar,
        )
    if args.json:
        print_json(report)
    else:
        criteria = [f"status {', '.join(report.statuses)}"]
        if report.cutoff is not None:
            criteria.append(f"created before {report.cutoff}")
        if report.model_name is not None:
            criteria.append(f"model {report.model_name}")
        if report.max_total_bytes is not None:
            criteria.append(f"down to {report.max_total_bytes:,} recorded bytes")
        print(  # a typed model name: one line, no terminal escape
            ("dry run, nothing deleted (--apply deletes): " if report.dry_run else "deleted: ")
            + escape_controls("; ".join(criteria))
        )
        print_section(
            "generations" + (" that would be deleted" if report.dry_run else " deleted"),
            [
                (
                    d.id,
                    d.status,
                    d.model_name,
                    d.created_at[:19].replace("T", " "),
                    bytes_text(d.file_size_bytes),
                    d.file_action,
                )
                for d in report.deleted
            ],
            ["id", "status", "model", "created (UTC)", "bytes", "file"],
            report.rows_deleted,
        )
        print_section(
            "skipped (row and file kept)",
            [(s.id, s.reason) for s in report.skipped],
            ["id", "reason"],
            report.skipped_count,
        )
        verb = "would free" if report.dry_run else "freed"
        print(
            f"\n{report.rows_deleted:,} generations, {report.files_deleted:,} files"
            + (f" ({report.peaks_files_deleted:,} waveform peaks)" if report.peaks_files_deleted else "")
            + f", {verb} "
            f"{report.bytes_freed:,} bytes; recorded bytes {report.total_bytes_before:,} -> "
            f"{report.total_bytes_after:,}"
            + ("" if report.budget_met is None else f" (budget {'met' if report.budget_met else 'NOT met'})")
        )
        if report.rows_changed:
            print(f"{report.rows_changed:,} generations changed meanwhile and were left alone")
        if report.lanes_deleted:
            gone = "would be deleted" if report.dry_run else "deleted"
            print(
                f"{report.lanes_deleted:,} owner keys' lanes with no job left, last served before the "
                f"cutoff, {gone}"
            )
    for error in report.errors:
        print(f"musicstore: error: {escape_controls(str(error))}", file=sys.stderr)
    return EXIT_ERROR if report.errors else EXIT_OK


def _refuse_overwrite(path: Path | None, overwrite: bool) -> None:
    """A folder is never replaced (--overwrite is for a database file): said before any work is done."""
    if path is not None and path.is_dir():
        raise InvalidInput(f"{path} is a folder; give the path of a database file (in it, say)")
    if path is not None and path.exists() and not overwrite:
        raise InvalidInput(f"{path} exists; pass --overwrite to replace it")


def cmd_backup(args: argparse.Namespace) -> int:
    if resolve(args.database).dialect == "sqlite":
        _refuse_overwrite(Path(args.destination), args.overwrite)
    with ProgressBar("backup", unit="pages") as bar:
        report = backup(args.database, args.destination, overwrite=args.overwrite, progress=bar)
    if args.json:
        print_json(report)
    else:
        print(
            escape_controls(
                f"backed up {report.source} to {report.destination}: {report.pages:,} pages, "
                f"{report.bytes:,} bytes, integrity {report.integrity}, {report.seconds:.2f} s"
            )
        )
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    if Path(args.backup).is_file():
        _refuse_overwrite(resolve(args.database).path, args.overwrite)
    with ProgressBar("restore", unit="pages") as bar:
        report = restore(args.backup, args.database, overwrite=args.overwrite, progress=bar)
    if args.json:
        print_json(report)
    else:
        print(
            escape_controls(  # typed paths: one line, no terminal escape (as backup's)
                f"restored {report.source} as {report.destination}: {report.pages:,} pages, "
                f"{report.bytes:,} bytes, integrity {report.integrity}; reconcile the output root next"
            )
        )
    return EXIT_OK


def cmd_copy_files(args: argparse.Namespace) -> int:
    with open_store(args) as store, ProgressBar("copy-files", unit="generations") as bar:
        report = copy_files(
            store,
            args.to,
            source=args.source,
            only_from=args.only_from,
            dry_run=args.dry_run,
            progress=bar,
        )
    if args.json:
        print_json(report)
    else:
        verb = "would copy" if report.dry_run else "copied"
        print(
            f"{verb} the files of {report.rows_updated:,} generations to {report.target} "
            f"({report.objects_copied:,} objects, {report.bytes_copied:,} bytes; {report.objects_present:,} "
            f"already there; {report.renditions_copied:,} renditions, {report.peaks_copied:,} peaks files) "
            f"in {report.seconds:.2f} s"
        )
        print_section(
            "skipped (row and files unchanged)",
            [(s.id, s.key, s.reason) for s in report.skipped],
            ["id", "key", "reason"],
            report.skipped_count,
        )
        if report.rows_changed:
            print(f"{report.rows_changed:,} generations changed meanwhile and were left alone; run again")
        if report.dry_run:
            print("dry run: nothing copied, no row changed")
    return EXIT_ERROR if report.skipped_count else EXIT_OK
