"""``queue`` (the queue's depth by priority and owner key, the oldest pending age, the longest ready wait),
``replay ID|--all`` (dead letters back in the queue), ``owner-limits`` and ``set-owner-limit KEY N|none``
(per-key limits), ``queue-position ID`` (a pending job's place and ETA)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import NotFound
from ..ids import check_id
from .common import EXIT_OK, open_store
from .output import moment_text, print_json, print_table
from .table import printable

NO_KEY = "(none)"
"""How the table shows jobs without an owner key (JSON: null); a key is never shown so (``owner_cell``)."""


def owner_cell(key: str | None) -> str:
    """An owner key as the table shows it: ``NO_KEY`` for none, a key as it is unless it begins with ``(``
    or ``"``, which is quoted (its own quotes doubled, as in CSV): a key spelled ``(none)`` reads
    ``"(none)"``, never the no-key lane."""
    if key is None:
        return NO_KEY
    return '"' + key.replace('"', '""') + '"' if key.startswith(("(", '"')) else key


def cmd_queue(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        depth = store.queue_depth()
        limits = store.get_owner_limits()
    age, wait = depth.oldest_pending_age_seconds, depth.longest_ready_wait_seconds
    running = sum(depth.running.values())
    if args.json:
        figures: dict[str, Any] = {
            "at": depth.at,
            "pending": depth.pending,
            "processing": running,
            "oldest_pending_age_seconds": age,
            "longest_ready_wait_seconds": wait,
            "by_priority_and_owner": [
                {
                    "priority": level.priority,
                    "owner_key": level.owner_key,
                    "pending": level.pending,
                    "deferred": level.deferred,
                    "oldest_created_at": level.oldest_created_at,
                    "ready_since": level.ready_since,
                }
                for level in sorted(depth.levels, key=lambda lv: (-lv.priority, lv.owner_key or ""))
            ],
            "running": [
                {"owner_key": key, "running": n} for key, n in sorted(depth.running.items(), key=_by_key)
            ],
            "owner_limits": limits,
        }
        print_json(figures)
        return EXIT_OK
    oldest = "-" if age is None else f"{age:,.1f} s"
    ready = "-" if wait is None else f"{wait:,.1f} s"
    print(
        f"pending {depth.pending:,}, processing {running:,}, oldest pending waited {oldest}, "
        f"longest ready wait {ready}"
    )
    if depth.levels or running:
        print()
        rows: list[tuple[object, ...]] = []
        queued: set[str | None] = set()
        for level in sorted(depth.levels, key=lambda lv: (-lv.priority, lv.owner_key or "")):
            # a key's processing jobs on its first (highest-priority) row only: the column sums to the total
            shown = "" if level.owner_key in queued else depth.running.get(level.owner_key, 0)
            queued.add(level.owner_key)
            rows.append(
                (
                    level.priority,
                    owner_cell(level.owner_key),
                    level.pending,
                    level.deferred,
                    moment_text(level.oldest_created_at),
                    shown,
                    _limit(limits, level.owner_key),
                )
            )
        rows += [  # keys with jobs processing and none pending: after the others, no priority
            ("-", owner_cell(key), 0, 0, "-", n, _limit(limits, key))
            for key, n in sorted(depth.running.items(), key=_by_key)
            if n and key not in queued
        ]
        print_table(rows, ["priority", "owner", "pending", "deferred", "oldest", "running", "limit"])
    return EXIT_OK


def _limit(limits: dict[str, int], key: str | None) -> int | str:
    return limits.get(key, "-") if key else "-"


def _by_key(item: tuple[str | None, int]) -> str:
    return item[0] or ""


def cmd_replay(args: argparse.Namespace) -> int:
    if (args.id is None) == (not args.all):
        args.parser.error("replay takes a generation id or --all (one of them)")
    with open_store(args) as store:
        if args.all:
            ids = store.replay_all()
        else:
            gid = check_id(args.id)
            if store.get_generation(gid) is None:
                raise NotFound(f"no generation with id {gid}")
            ids = [store.replay(gid).id]
    if args.json:
        print_json({"replayed": ids})
    else:
        print(f"replayed {len(ids)} dead letter{'s' if len(ids) != 1 else ''}: pending again, attempts reset")
        if ids:
            print()
            print_table([(gid, "pending") for gid in ids], ["id", "now"])
    return EXIT_OK


def cmd_owner_limits(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        limits = store.get_owner_limits()
    if args.json:
        print_json({"owner_limits": limits})
    elif limits:
        rows = [(key, n, "paused" if n == 0 else "") for key, n in limits.items()]
        print_table(rows, ["owner", "limit", "note"])
    else:
        print("no owner key has a limit of its own (each takes the claim's owner_limit)")
    return EXIT_OK


def cmd_set_owner_limit(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        store.set_owner_limit(args.owner_key, args.max_running)
    key, n = args.owner_key, args.max_running
    if args.json:
        print_json({"owner_key": key, "max_running": n})
    elif n is None:
        print(f"{printable(key)}: no limit of its own (the claim's owner_limit applies)")
    elif n == 0:
        print(f"{printable(key)}: paused (limit 0: no job of it is claimed until the limit is raised)")
    else:
        print(f"{printable(key)}: at most {n:,} processing at once")
    return EXIT_OK


def cmd_queue_position(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        where = store.queue_position(args.id)
    if args.json:
        print_json(
            {
                "id": where.generation_id,
                "status": where.status.value,
                "ahead": where.ahead,
                "capped": where.capped,
                "completed_per_minute": where.completed_per_minute,
                "window_seconds": where.window_seconds,
                "eta_seconds": where.eta_seconds,
            }
        )
        return EXIT_OK
    if where.ahead is None:
        print(f"{where.generation_id} is {where.status.value}, not in the queue")
        return EXIT_OK
    ahead = f"{where.ahead:,}{' or more' if where.capped else ''}"
    eta = "no ETA" if where.eta_seconds is None else f"done in about {where.eta_seconds:,.0f} s"
    print(
        f"{where.generation_id}: {ahead} ahead in its lane; {where.completed_per_minute:,.1f} completed a "
        f"minute over the last {where.window_seconds:,.0f} s; {eta}"
    )
    return EXIT_OK
