"""Claim race: processes draining one queue, with double claims and lost jobs counted from the final rows.

    .venv/bin/python -m benchmarks.claims                              # SQLite, 20,000 jobs
    .venv/bin/python -m benchmarks.claims --backend postgres           # a durable PostgreSQL server
    .venv/bin/python -m benchmarks.claims --jobs 5000 --backend postgres --synchronous-commit off

Each run starts from a fresh queue of N pending jobs (``benchmarks.data``) and spawns its processes, each with
its own ``Store`` (or bare connection), which start together at a barrier and claim until the queue is empty.
Runs: 8 and 1 processes of the library's ``claim_next`` and of the floor (the library's ``claim_next`` SQL,
``claim_fast`` and on PostgreSQL its rare fallback, sent as the library sends it on a bare connection: on
PostgreSQL one autocommit statement, ``Operation.alone``), and 8 of ``claim_batch(10)``. A double claim is
an id claimed twice or a row with attempts > 1; a lost job is one not left ``processing`` by exactly the
claims seen.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from musicstore import Store, ops
from musicstore.errors import DatabaseBusy

from .bare import postgres_bare, sqlite_bare
from .data import postgres_database, remove_database, sqlite_database
from .harness import command, finish, load, machine

RUNS = (
    (8, "library", "musicstore claim_next"),
    (8, "floor", "floor (bare SQL)"),
    (1, "library", "musicstore claim_next"),
    (1, "floor", "floor (bare SQL)"),
    (8, "batch", "musicstore claim_batch(10)"),
)


def _claimer(url: str, mode: str, worker: str, barrier: Any, results: Any) -> None:
    """Claim until the queue is empty; report (start, end, ids, errors retried)."""
    ids: list[str] = []
    errors = 0
    if mode == "floor":
        bare = (
            sqlite_bare(Path(url.removeprefix("sqlite:///")))
            if url.startswith("sqlite")
            else postgres_bare(url)
        )
        fast, heads, text = bare.sql("claim_fast"), bare.sql("queue_heads"), bare.sql("claim_lane_head")
        ex = bare.conn.execute

        def body(params: dict[str, Any]) -> None:
            # claim_next's statement (claim_fast): the claimed row, none when nothing is ready, or (on
            # PostgreSQL, when other claimers held the lanes) a row of NULLs: then rank the lanes, take the
            # best one's head
            row = ex(fast, {**params, "default_limit": None}).fetchone()
            if row is None or row[0] is not None:
                ids.extend(row[:1] if row else ())
                return
            ranked = {"now": params["now"], "default_limit": None, "limit": 8}
            for lane, max_running, *_ in ex(heads, ranked).fetchall():
                row = ex(text, {**params, "owner_key": lane, "max_running": max_running}).fetchone()
                if row is not None:
                    ids.append(row[0])
                    return

        run = bare.writer(body, alone=ops.claim_next.alone)

        def claim() -> bool:
            now = datetime.now(UTC)
            before = len(ids)
            lease = now + timedelta(seconds=300)
            run({"worker_id": worker, "now": bare.stamp(now), "lease_expires_at": bare.stamp(lease)})
            return len(ids) > before
    else:
        store = Store(url)

        def claim() -> bool:
            if mode == "batch":
                got = [job.id for job in store.claim_batch(worker, 10)]
            else:
                job = store.claim_next(worker)
                got = [] if job is None else [job.id]
            ids.extend(got)
            return bool(got)

    barrier.wait()
    start = time.perf_counter()
    while True:
        try:
            if not claim():
                break
        except DatabaseBusy:
            errors += 1
        except Exception as exc:  # the floor's driver errors (busy, serialization): retried, counted
            if type(exc).__module__.split(".")[0] not in ("sqlite3", "psycopg"):
                raise
            errors += 1
            if mode == "floor" and url.startswith("sqlite"):
                bare.conn.rollback()
    results.put((start, time.perf_counter(), ids, errors))


@dataclass
class Race:
    label: str
    processes: int
    jobs: int
    seconds: float
    double: int
    lost: int
    errors: int

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds


def race(url: str, jobs: int, processes: int, mode: str, label: str) -> Race:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    procs = [
        ctx.Process(target=_claimer, args=(url, mode, f"w{i}", barrier, results)) for i in range(processes)
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
    claimed = [gid for g in got for gid in g[2]]
    with Store(url) as store:
        processing = {g.id for g in _all(store, "processing")}
        reclaimed = sum(1 for g in _all(store, "processing") if g.attempts > 1)
        left = store.count_generations(status="pending")
    double = len(claimed) - len(set(claimed)) + reclaimed
    lost = jobs - len(processing & set(claimed)) + left
    seconds = max(g[1] for g in got) - min(g[0] for g in got)
    result = Race(label, processes, jobs, seconds, double, lost, sum(g[3] for g in got))
    print(f"  {label:<28} {processes} proc {result.rate:9,.0f} claims/s  double={double} lost={lost} "
          f"errors={result.errors}", flush=True)  # fmt: skip
    return result


def _all(store: Store, status: str) -> list[Any]:
    out, cursor = [], None
    while True:
        page = store.list_generations(status=status, limit=1000, cursor=cursor)
        out += page.items
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--jobs", type=int, default=20_000, help="pending jobs in the queue (default 20,000)")
    p.add_argument("--runs", help="only these runs, by number (1-5, as listed in the docstring's order)")
    p.add_argument("--synchronous-commit", choices=("on", "off"), default="on", help="PostgreSQL's setting")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/musicstore-bench"), help="cached SQLite files")
    p.add_argument("--output", type=Path, help="also write the markdown report here")
    args = p.parse_args(argv)
    started, chosen = load(), [RUNS[int(i) - 1] for i in args.runs.split(",")] if args.runs else RUNS
    results = []
    server = None
    if args.backend == "postgres":
        from musicstore.testing import _pgserver

        server = _pgserver.start(durable=True)
        if args.synchronous_commit == "off":
            server.admin("ALTER SYSTEM SET synchronous_commit = off", "SELECT pg_reload_conf()")
    try:
        for processes, mode, label in chosen:
            if server is None:
                path = sqlite_database(args.workdir, args.jobs, pending=args.jobs, seed=2)
                results.append(race(f"sqlite:///{path}", args.jobs, processes, mode, label))
                remove_database(path)
            else:
                url = postgres_database(server, "queue", args.jobs, pending=args.jobs, seed=2)
                results.append(race(url, args.jobs, processes, mode, label))
                server.admin("DROP DATABASE queue")
    finally:
        if server is not None:
            server.stop()
    lines = [
        f"### Claim race on {args.backend}",
        "",
        f"Machine: {machine()}. Load: {started} at the start, {load()} at the end.",
        "",
        f"    {command()}",
        "",
        "| claimers | processes | jobs | claims/s | double claims | lost jobs | errors retried |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.label} | {r.processes} | {r.jobs:,} | {r.rate:,.0f} | {r.double} | {r.lost} | {r.errors} |"
        )
    finish("\n".join(lines) + "\n", args.output)


if __name__ == "__main__":
    main()
