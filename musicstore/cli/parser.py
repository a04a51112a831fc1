"""The command line's grammar: every subcommand, its options and help texts (``build_parser``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import timedelta
from importlib import metadata

from ..models import Status
from ..ops import DEFAULT_MAX_ATTEMPTS
from ..urls import DEFAULT_URL, URL_ENV
from ..validate import MAX_PAGE
from .arguments import (
    bitrate,
    folder,
    fraction,
    given,
    lock_timeout,
    not_empty,
    owner_limit,
    page_size,
    parse_duration,
    parse_size,
    positive_int,
    rendition_format,
    sample_rate,
)
from .commands import (
    cmd_demo,
    cmd_list,
    cmd_migrate,
    cmd_prompts,
    cmd_render,
    cmd_requeue_expired,
    cmd_show,
    cmd_stats,
    cmd_yoyo,
)
from .common import DEFAULT_ROOT, ROOT_ENV
from .maintenance_commands import cmd_backup, cmd_cleanup, cmd_copy_files, cmd_reconcile, cmd_restore
from .queue_commands import cmd_owner_limits, cmd_queue, cmd_queue_position, cmd_replay, cmd_set_owner_limit
from .serve_command import add_serve_options, cmd_serve
from .signal_commands import cmd_cancel

EPILOG = f"""\
environment:
  {URL_ENV}   database URL when --database is not given (default {DEFAULT_URL})
  {ROOT_ENV}    output root when --output-root is not given (default {DEFAULT_ROOT})

exit codes:
  0    success
  1    error (one line on stderr: musicstore: error: ...)
  2    bad arguments (usage)
  3    show, render, cancel, replay, queue-position: no generation with that id
  4    reconcile: database and files disagree (found, or found and repaired)
  130  interrupted (Ctrl-C)
  143  terminated (SIGTERM), unwound as after a Ctrl-C

Every read command takes --json for scripts. See docs/cli.md.
"""


def installed_version() -> str:
    """The installed distribution's version (its metadata), as ``pip show musicstore`` gives it."""
    try:
        return metadata.version("musicstore")
    except metadata.PackageNotFoundError:
        return "(not installed: run from a source tree without pip install)"


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="musicstore",
        description="Job store and audio export for AI music generation: the Python API from a shell.",
        epilog=EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
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
        help=f"folder or s3://BUCKET/PREFIX of the audio files (default: ${ROOT_ENV}, else {DEFAULT_ROOT})",
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

    migrating = command("migrate", "create or upgrade the schema", cmd_migrate, as_json)
    migrating.add_argument(
        "--lock-timeout",
        type=lock_timeout,
        default=timedelta(seconds=60),
        metavar="DURATION",
        help="how long to wait for another migrating process's lock (default 60s; 0s: for ever)",
    )
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

    render = command(
        "render", "make and record renditions of a completed generation's master", cmd_render, root, as_json
    )
    render.add_argument("id", help="the generation id (a UUID)")
    render.add_argument(
        "--format",
        action="append",
        type=rendition_format,
        metavar="{mp3,opus,vorbis,flac,wav}",
        help="a rendition format, in any case (repeat for several; default mp3)",
    )
    render.add_argument(
        "--profile",
        choices=["streaming", "podcast", "broadcast"],
        default="streaming",
        help="loudness profile (default streaming: -14 LUFS, -1 dBTP)",
    )
    render.add_argument("--bitrate", type=bitrate, help="mp3/opus bitrate in kbps, e.g. 192k")
    render.add_argument(
        "--sample-rate",
        type=sample_rate,
        metavar="HZ",
        help="every rendition's sample rate, e.g. 48000 or 44.1k (default the master's; opus 48k)",
    )

    add_serve_options(
        command("serve", "the read-only web dashboard and /metrics (docs/dashboard.md)", cmd_serve, root)
    )

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
        "--quarantine",
        metavar="DIR",
        type=folder,
        help="quarantine folder (default: <output root>.quarantine)",
    )
    recon.add_argument(
        "--stale-after",
        metavar="AGE",
        type=parse_duration,
        default=timedelta(hours=1),
        help="export temp files and multipart uploads older than this are stale (default 1h)",
    )
    recon.add_argument(
        "--verify-checksums",
        action="store_true",
        help="read every recorded file or object (local or s3:// root), compare its SHA-256 with the row's",
    )

    copying = command(
        "copy-files",
        "copy the files of completed generations to another store and point their rows there (resumable)",
        cmd_copy_files,
        as_json,
    )
    copying.add_argument(
        "--to", required=True, type=not_empty, metavar="URL", help="the store: s3://BUCKET/PREFIX or a folder"
    )
    copying.add_argument(
        "--from",
        dest="only_from",
        type=not_empty,
        metavar="URL",
        help="only rows whose files are in this store (s3://BUCKET/PREFIX or a folder)",
    )
    copying.add_argument(
        "--source",
        type=not_empty,
        metavar="DIR",
        help="the folder of rows recorded before migration 0006 (they name no store)",
    )
    copying.add_argument(
        "--dry-run", action="store_true", help="copy nothing, change no row: say what would be copied"
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
        help="delete oldest first until the recorded bytes (files, renditions) are at most SIZE (50GB, 2GiB)",
    )
    clean.add_argument("--apply", "--yes", action="store_true", help="really delete (default: dry run)")

    back = command(
        "backup", "online backup of a live SQLite database (PostgreSQL: pg_dump)", cmd_backup, as_json
    )
    back.add_argument("destination", metavar="DEST", type=given, help="the backup file to write")
    back.add_argument("--overwrite", action="store_true", help="replace DEST if it exists")

    rest = command(
        "restore", "put a backup in place as the database (stop workers first)", cmd_restore, as_json
    )
    rest.add_argument("backup", metavar="BACKUP", type=given, help="the backup file")
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
    requeue.add_argument(
        "--backoff",
        type=parse_duration,
        metavar="DURATION",
        help="claimable again only after this (e.g. 30s), doubled at each attempt: a RetryPolicy's base"
        " (default: at once)",
    )
    requeue.add_argument(
        "--backoff-cap",
        type=parse_duration,
        metavar="DURATION",
        help="the longest backoff (default 10m); with --backoff",
    )
    requeue.add_argument(
        "--jitter",
        type=fraction,
        metavar="FRACTION",
        help="up to this part of each backoff is taken off at random, 0 to 1 (default 0.5); with --backoff",
    )

    command(
        "queue", "pending generations by priority and owner key, the oldest pending age", cmd_queue, as_json
    )
    command("owner-limits", "owner keys with a limit of their own, and the limit", cmd_owner_limits, as_json)
    limit = command(
        "set-owner-limit",
        "limit how many generations of an owner key may be processing at once (0 pauses the key)",
        cmd_set_owner_limit,
        as_json,
    )
    limit.add_argument("owner_key", metavar="KEY", help="the owner key (a user or tenant id)")
    limit.add_argument(
        "max_running",
        metavar="N",
        type=owner_limit,
        help="the most processing at once (0: paused); none: back to the claim's owner_limit",
    )
    position = command(
        "queue-position",
        "where a pending generation stands: jobs ahead in its lane, recent throughput, an ETA",
        cmd_queue_position,
        as_json,
    )
    position.add_argument("id", help="the generation id (a UUID)")
    replay = command(
        "replay",
        "put dead letters (failed generations) back in the queue, attempts reset",
        cmd_replay,
        as_json,
    )
    replay.add_argument("id", nargs="?", help="the generation id (a UUID)")
    replay.add_argument("--all", action="store_true", help="every failed generation, in one transaction")

    cancel = command(
        "cancel",
        "cancel a pending or running generation (a running one's worker stops at its next report)",
        cmd_cancel,
        as_json,
    )
    cancel.add_argument("id", help="the generation id (a UUID)")
    cancel.add_argument("--reason", metavar="TEXT", help="kept on the row as its error message")

    demo = command(
        "demo", "end-to-end demo: enqueue, claim, export audio, complete, show stats", cmd_demo, root, as_json
    )
    demo.add_argument("--count", type=positive_int, default=5, help="how many generations (default 5)")
    demo.add_argument(
        "--renditions",
        metavar="FORMATS",
        default="",
        help="also make each job's renditions, e.g. mp3,opus (mp3, opus, vorbis, flac, wav)",
    )
    demo.add_argument(
        "--profile",
        choices=["streaming", "podcast", "broadcast"],
        default="streaming",
        help="the renditions' loudness profile (default streaming: -14 LUFS, -1 dBTP)",
    )
    return parser
