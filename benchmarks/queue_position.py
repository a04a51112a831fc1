"""``queue_position`` on a long queue with a busy throughput window: µs per call, by the job's place.

    .venv/bin/python -m benchmarks.queue_position                                  # SQLite, 100k and 1M rows
    .venv/bin/python -m benchmarks.queue_position --backend postgres --sizes 100000
    .venv/bin/python -m benchmarks.queue_position --window-jobs 100000 --sizes 1000000

Each size is ``benchmarks.data``'s bulk-built database (a fresh copy on SQLite; loaded by COPY into a
throwaway server on PostgreSQL) with half its rows pending in one lane (no owner key, priority 0) and the
``--window-jobs`` newest completions moved into the last 9 minutes (a busy service: a position's default
window is 10 minutes). Timed: the position of the lane's head (0 ahead), of the job 1,000 from the head, and
of the last pending job (its count stops at ``MAX_AHEAD``), each the fastest of ``--batches`` batches of
``--calls`` calls, and the head's again with an empty window (no completion in it); one ``get_generation``
for scale (a position is that read and two or three counts). Run it against another checkout with
``PYTHONPATH=that/checkout`` to compare.
"""

from __future__ import annotations

import argparse
import platform
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from musicstore import Store

from .data import remove_database, sqlite_database

WINDOW_SPAN_MICROS = 540_000_000
"""The busy window's completions are spread over the last 9 minutes."""


def _busy_sqlite(path: Path, jobs: int) -> list[str]:
    """Move the ``jobs`` newest completions into the last 9 minutes; the pending ids in claim order."""
    now = int(datetime.now(UTC).timestamp() * 1e6)
    conn = sqlite3.connect(path, isolation_level=None)
    rows = conn.execute(
        "SELECT rowid FROM generations WHERE status = 'completed' ORDER BY completed_at DESC LIMIT ?", (jobs,)
    ).fetchall()
    step = WINDOW_SPAN_MICROS // max(jobs, 1)
    conn.execute("BEGIN")
    conn.executemany(
        "UPDATE generations SET completed_at = ? WHERE rowid = ?",
        [(now - i * step, rowid) for i, (rowid,) in enumerate(rows)],
    )
    conn.execute("COMMIT")
    ids = [
        r[0]
        for r in conn.execute("SELECT id FROM generations WHERE status = 'pending' ORDER BY created_at, id")
    ]
    conn.close()
    return ids


def _busy_postgres(url: str, jobs: int) -> list[str]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE generations g SET completed_at = now() - (r.n * %s) * interval '1 microsecond' "
            "FROM (SELECT id, row_number() OVER (ORDER BY completed_at DESC) - 1 AS n FROM generations "
            "WHERE status = 'completed' ORDER BY completed_at DESC LIMIT %s) r WHERE g.id = r.id",
            (WINDOW_SPAN_MICROS // max(jobs, 1), jobs),
        )
        conn.execute("VACUUM (ANALYZE) generations")
        rows = conn.execute("SELECT id FROM generations WHERE status = 'pending' ORDER BY created_at, id")
        return [str(r[0]) for r in rows.fetchall()]


def _time(call: Callable[[], Any], calls: int, batches: int) -> float:
    """The fastest batch's µs per call."""
    best = float("inf")
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best * 1e6


def measure(store: Store, ids: list[str], rows: int, args: argparse.Namespace) -> list[str]:
    lines = []
    marks = [
        ("head (0 ahead)", ids[0]),
        ("1,000 ahead", ids[1000]),
        (f"{len(ids) - 1:,} pending ahead", ids[-1]),
    ]
    for label, gid in marks:
        got = store.queue_position(gid)
        calls = args.calls if got.ahead is None or got.ahead < 10_000 else max(1, args.calls // 50)
        us = _time(lambda gid=gid: store.queue_position(gid), calls, args.batches)  # type: ignore[misc]
        lines.append(
            f"| {rows:,} | {label} | {got.ahead:,}{' (capped)' if got.capped else ''} | "
            f"{got.completed_per_minute:g} | {us:,.0f} |"
        )
    quiet = _time(lambda: store.queue_position(ids[0], window_seconds=0.001), args.calls, args.batches)
    lines.append(f"| {rows:,} | head, empty window | 0 | 0 | {quiet:,.0f} |")
    read = _time(lambda: store.get_generation(ids[0]), args.calls, args.batches)
    lines.append(f"| {rows:,} | (one `get_generation`, for scale) | | | {read:,.0f} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--window-jobs", type=int, default=10_000, help="completions in the last 9 minutes")
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--batches", type=int, default=5)
    p.add_argument(
        "--url", help="a PostgreSQL database built by an earlier run (--keep): measured, not built"
    )
    p.add_argument("--keep", action="store_true", help="PostgreSQL: keep the server and its databases")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/musicstore-bench"), help="cached databases")
    args = p.parse_args(argv)
    backend = "postgres" if args.url else args.backend
    print(f"queue_position, {backend}, {args.window_jobs:,} completions in the window")
    print(f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")
    print("| rows | job | ahead | completed/min | µs per call |\n| --- | --- | --- | --- | --- |")
    if args.url:  # PostgreSQL
        with Store(args.url) as store:
            ids = _busy_postgres(args.url, args.window_jobs)
            for line in measure(store, ids, 2 * len(ids), args):  # half the rows are pending
                print(line, flush=True)
        return
    server = None
    if args.backend == "postgres":
        from musicstore.testing import _pgserver

        server = _pgserver.start()
    try:
        for rows in (int(s) for s in args.sizes.split(",")):
            if server is None:
                path = sqlite_database(args.workdir, rows, pending=rows // 2)
                ids, url = _busy_sqlite(path, args.window_jobs), f"sqlite:///{path}"
            else:
                from .data import postgres_database

                url = postgres_database(server, f"qpos{rows}", rows, pending=rows // 2)
                ids = _busy_postgres(url, args.window_jobs)
                print(f"database: {url}", flush=True)
            try:
                with Store(url) as store:
                    for line in measure(store, ids, rows, args):
                        print(line, flush=True)
            finally:
                if server is None:
                    remove_database(path)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
