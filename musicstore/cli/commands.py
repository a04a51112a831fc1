"""The commands that read and feed the store: migrate, yoyo-url, migrations-path, stats, list, show, prompts,
requeue-expired, render and demo. Each takes the parsed arguments and returns an exit code (``EXIT_*``)."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import sys
from datetime import datetime
from typing import Any

from ..errors import InvalidInput, NotFound
from ..maintenance.usage import disk_usage, storage_stats
from ..migrate import migrate, migrations_path, yoyo_url
from ..models import Generation, RetryPolicy, Stats
from ..ops import Rendition
from ..ops.storage import get_storage
from ..store import Store
from ..urls import resolve, without_password
from .common import EXIT_OK, open_store, output_root
from .output import bytes_text, moment_text, print_json, print_section, print_table, short_text
from .progress import ProgressBar
from .table import escape_controls


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


def cmd_migrate(args: argparse.Namespace) -> int:
    # a SIGTERM (main's interrupt.terminating) releases its lock
    applied = migrate(args.database, lock_timeout=args.lock_timeout.total_seconds())
    # opened as every other command opens it: a schema a later musicstore migrated (migrate() goes on, for a
    # rolling upgrade) is a warning line here too, not a silent "applied 0 migration(s)"
    Store(args.database).close()
    if args.json:
        print_json({"database": without_password(resolve(args.database).url), "applied": applied})
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
    with open_store(args) as store:
        stats = store.get_database_stats()
        storage = storage_stats(store) if args.storage else None
        usage = None
        if args.disk:
            with ProgressBar("scanning", unit="files") as bar:
                usage = disk_usage(store, output_root(args), progress=bar)
    if args.json:
        figures = _stats_figures(stats)
        if storage is not None:
            figures["storage"] = storage
        if usage is not None:
            figures["disk"] = usage
        print_json(figures)
        return EXIT_OK
    _show_stats(stats, as_json=False)
    if storage is not None:
        oldest, newest = (
            moment_text(None if text is None else datetime.fromisoformat(text))  # storage_stats' ISO text
            for text in (storage.oldest_created_at, storage.newest_created_at)
        )
        print(
            f"\nrecorded: {storage.generations:,} generations, {storage.file_bytes:,} bytes, created "
            f"{oldest} .. {newest} (UTC)"
            f"\nrenditions: {storage.renditions:,}, {storage.rendition_bytes:,} bytes"
        )
        for title, buckets in (
            ("status", storage.by_status),
            ("model", storage.by_model),
            ("day", storage.by_day),
        ):
            rows = [(key, b.generations, bytes_text(b.file_bytes)) for key, b in buckets.items()]
            print_section(f"by {title}", rows, [title, "generations", "bytes"], len(rows))
    if usage is not None:
        print(
            f"\ndisk under {escape_controls(str(usage.root))}: {usage.files:,} files, {usage.bytes:,} bytes "
            f"(the database records {usage.database_file_bytes:,} bytes of masters; their renditions and "
            "peaks files count as recorded too)"
        )
        kinds = ("recorded", "in_progress", "orphans", "temp", "other")
        rows = [(kind, getattr(usage, kind).files, bytes_text(getattr(usage, kind).bytes)) for kind in kinds]
        print_table([*rows, ("symlinks", usage.symlinks, "-")], ["kind", "files", "bytes"])
        for error in usage.errors:
            print(f"musicstore: warning: {escape_controls(str(error))}", file=sys.stderr)
    return EXIT_OK


def _stats_figures(stats: Stats) -> dict[str, Any]:
    figures: dict[str, Any] = dataclasses.asdict(stats)
    figures["by_status"] = {status.value: n for status, n in stats.by_status.items()}
    figures["total"] = stats.total
    figures["average_generation_seconds"] = stats.average_generation_seconds
    return figures


def _show_stats(stats: Stats, *, as_json: bool) -> None:
    if as_json:
        print_json(_stats_figures(stats))
        return
    rows = [(status.value, n) for status, n in stats.by_status.items()]
    rows += [("total", stats.total)]
    print_table(rows, ["status", "generations"])
    average = stats.average_generation_seconds
    print(
        f"\nfiles: {stats.total_file_bytes:,} bytes  audio: {stats.completed_audio_seconds:.1f} s  "
        f"mean generation time: {'-' if average is None else f'{average:.3f} s'}  "
        f"prompts: {stats.unique_prompts} unique, {stats.prompt_uses} uses"
    )


def cmd_list(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        page = store.list_generations(
            status=args.status, model_name=args.model, limit=args.limit, cursor=args.cursor
        )
    if args.json:
        print_json({"items": page.items, "count": len(page.items), "next_cursor": page.next_cursor})
        return EXIT_OK
    if not page.items:
        print("no generations")
        return EXIT_OK
    rows = [
        (
            g.id,
            g.status.value,
            g.model_name,
            moment_text(g.created_at),
            f"{g.duration_seconds:g}",
            bytes_text(g.file_size_bytes),
            short_text(g.prompt),
        )
        for g in page.items
    ]
    print_table(rows, ["id", "status", "model", "created (UTC)", "seconds", "bytes", "prompt"])
    if page.next_cursor is not None:
        print(f"\nmore: musicstore list --cursor {page.next_cursor}  (same filters)")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        generation = store.get_generation(args.id)
        renditions = [] if generation is None else store.list_renditions(generation.id)
        stored = None if generation is None else store.run(get_storage, generation.id)
    if generation is None or stored is None:
        raise NotFound(f"no generation with id {args.id}")
    where = {"storage_url": stored.storage_url, "storage_key": stored.key, "checksum": stored.checksum}
    if args.json:
        print_json(
            {**dataclasses.asdict(generation), **where, "renditions": [r.as_dict() for r in renditions]}
        )
    else:
        print_table(
            _generation_fields(generation) + [(k, v or "-") for k, v in where.items()], ["field", "value"]
        )
        if renditions:
            print("\nrenditions:")
            _rendition_table(renditions)
    return EXIT_OK


def _level(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _rendition_table(renditions: list[Rendition]) -> None:
    rows = [
        (r.id, r.format, r.profile, bytes_text(r.file_size_bytes), _level(r.loudness_lufs),
         _level(r.true_peak_dbtp), r.loudness_status, r.storage_key)
        for r in renditions
    ]  # fmt: skip
    print_table(rows, ["id", "format", "profile", "bytes", "LUFS", "dBTP", "loudness", "file"])


def cmd_render(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..audio.codecs import rendition_specs
    from ..rendering import render_generation

    formats, bitrate_kbps = args.format or ["mp3"], args.bitrate
    if args.sample_rate is not None:  # RenditionSpecs with the rate (and the bitrate, as render_generation
        specs = rendition_specs(formats, bitrate_kbps)  # gives it to the names of mp3 and opus)
        formats, bitrate_kbps = [replace(s, sample_rate=args.sample_rate) for s in specs], None
    with open_store(args) as store:
        made = render_generation(
            store,
            args.id,
            root=output_root(args),
            formats=formats,
            profile=args.profile,
            bitrate_kbps=bitrate_kbps,
        )
    if args.json:
        print_json({"generation_id": args.id, "renditions": [r.as_dict() for r in made]})
    else:
        _rendition_table(made)
    return EXIT_OK


def cmd_prompts(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        prompts = store.get_most_used_prompts(args.limit)
    if args.json:
        print_json({"prompts": prompts})
        return EXIT_OK
    if not prompts:
        print("no prompts")
        return EXIT_OK
    rows = [
        (p.used_count, moment_text(p.first_used_at), moment_text(p.last_used_at), short_text(p.text, 60))
        for p in prompts
    ]
    print_table(rows, ["uses", "first used (UTC)", "last used (UTC)", "prompt"])
    return EXIT_OK


def cmd_requeue_expired(args: argparse.Namespace) -> int:
    backoff = _backoff(args)
    with open_store(args) as store:
        result = store.requeue_expired(max_attempts=args.max_attempts, backoff=backoff)
    if args.json:
        print_json(result)
        return EXIT_OK
    print(f"requeued {len(result.requeued)}, failed {len(result.failed)} (attempts used up)")
    rows = [(gid, "pending") for gid in result.requeued] + [(gid, "failed") for gid in result.failed]
    if rows:
        print()
        print_table(rows, ["id", "now"])
    return EXIT_OK


def _backoff(args: argparse.Namespace) -> RetryPolicy | None:
    """``--backoff``, ``--backoff-cap`` and ``--jitter`` as a RetryPolicy (None without ``--backoff``: at
    once); a bad one, or a cap or jitter without ``--backoff``, is a usage error."""
    if args.backoff is None:
        if args.backoff_cap is not None or args.jitter is not None:
            args.parser.error("--backoff-cap and --jitter shape a --backoff: give --backoff too")
        return None
    settings: dict[str, float] = {"base_seconds": args.backoff.total_seconds()}
    if args.backoff_cap is not None:
        settings["cap_seconds"] = args.backoff_cap.total_seconds()
    if args.jitter is not None:
        settings["jitter"] = args.jitter
    try:
        return RetryPolicy(**settings)
    except InvalidInput as exc:
        parser: argparse.ArgumentParser = args.parser
        parser.error(f"--backoff, --backoff-cap, --jitter: {exc}")


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    jobs: list[dict[str, Any]] = []
    with ProgressBar("exporting", args.count, unit="generations") as bar:

        def echo(line: str) -> None:
            bar.close()  # erase the bar (if drawn) before a line of results
            if not args.json:
                print(line)

        stats = run_demo(
            args.database, count=args.count, output_root=output_root(args), echo=echo, progress=bar,
            renditions=args.renditions, profile=args.profile, collect=jobs,
        )  # fmt: skip
    if args.json:
        print_json({"generations": jobs, "stats": _stats_figures(stats)})
        return EXIT_OK
    _show_stats(stats, as_json=False)
    return EXIT_OK
