"""Wake-up latency: how soon an idle worker waiting for a job holds one after an enqueue.

    .venv/bin/python -m benchmarks.queue_wakeup                       # both backends, every worker, 3 runs
    .venv/bin/python -m benchmarks.queue_wakeup --backend sqlite --loop async --runs 1 --jobs 100

The worker is a real worker loop in a process of its own: ``musicstore.worker.Worker`` on a ``Store`` (the
sync loop) or ``AsyncWorker`` on an ``AsyncStore`` (the async loop), idle in ``claim_next(wait=...)``
(PostgreSQL: LISTEN/NOTIFY; SQLite: the ``PRAGMA data_version`` poll every ``SQLITE_POLL_SECONDS``); its
handler reports each job it is given and returns. The producer (this process, its own ``Store``) enqueues one
job at a time after a random pause of 20-60 ms (so the worker is idle and asleep), and waits for the worker's
report before the next. Times are ``time.time()`` in both processes (one machine). Per job: *claimed after
commit*, from the enqueue's return (its commit done) to the handler holding the job: the wake-up and the
claim's own transaction; *after enqueue call*, from just before ``create_generation`` (the enqueue's own
transaction and commit included); *woken*, from the enqueue's return to the end of the worker's sleep (about
0, or below, when the notification arrives before the enqueue call has returned); *claim*, from there to the
handler (the claim's transaction: what any wake-up, polling included, pays on top). Each run measures every
row once, the loops of a backend in turn, so that the rows of a run share the machine's load; a figure is the
median over the runs of each run's percentile, with the smallest in brackets. PostgreSQL runs on a throwaway
durable server (``musicstore.testing``'s) with ``synchronous_commit`` on (each commit, the claim's included,
waits for its WAL flush) and off.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from musicstore import Store, migrate, waiting

from .harness import command, finish, load, machine
from .queue_claims import PLAIN

LOOPS = ("sync", "async", "floor")
"""The worker of a row: ``Worker``, ``AsyncWorker``, or the floor (no musicstore code between the wake-up
and the claim: the backend's wake-up itself, then the plain claim before 0008 as one autocommit statement)."""


def _timed_sleeps(woke: list[float]) -> None:
    """Note in ``woke`` when each sleep of a wait ended (woken, or its time ran out): this process only."""
    sleep, sleep_async = waiting._sleep, waiting._sleep_async

    def timed_sleep(listener: Any, wake: waiting.Wake, seconds: float) -> None:
        sleep(listener, wake, seconds)
        woke[0] = time.time()

    async def timed_sleep_async(listener: Any, wake: waiting.Wake, seconds: float) -> None:
        await sleep_async(listener, wake, seconds)
        woke[0] = time.time()

    waiting._sleep, waiting._sleep_async = timed_sleep, timed_sleep_async


def _floor(url: str, ready: Any, results: Any, jobs: int) -> None:
    """The floor's worker: PostgreSQL, a LISTEN connection and a claiming one (autocommit: the claim is one
    statement and its commit); SQLite, ``PRAGMA data_version`` read every ``SQLITE_POLL_SECONDS`` on one
    connection and the claim on another. Raw driver calls only."""
    if url.startswith("postgresql"):
        from datetime import UTC, datetime, timedelta

        import psycopg

        params: dict[str, Any] = {"worker_id": "w"}

        with psycopg.connect(url, autocommit=True) as listen, psycopg.connect(url, autocommit=True) as claim:
            listen.execute(f"LISTEN {waiting.PENDING}")
            ready.set()
            for _ in range(jobs):
                got = None
                while got is None:
                    for _note in listen.notifies(timeout=30, stop_after=1):
                        break
                    woke = time.time()
                    params["now"] = datetime.now(UTC)
                    params["lease_expires_at"] = params["now"] + timedelta(minutes=5)
                    got = claim.execute(PLAIN["postgres"], params).fetchone()
                results.put((got[0], woke, time.time()))
        return
    import sqlite3

    path = url.removeprefix("sqlite:///")
    poll = sqlite3.connect(path, isolation_level=None)
    claim_conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    from musicstore.backends.sqlite import PRAGMAS

    for pragma in PRAGMAS:  # the store's settings (synchronous = NORMAL: a commit does not fsync in WAL mode)
        claim_conn.execute(pragma)
    version = poll.execute("PRAGMA data_version").fetchone()[0]
    ready.set()
    for _ in range(jobs):
        got = None
        while got is None:
            while (seen := poll.execute("PRAGMA data_version").fetchone()[0]) == version:
                time.sleep(waiting.SQLITE_POLL_SECONDS)
            version, woke = seen, time.time()
            micros = time.time_ns() // 1000  # the schema's timestamps on SQLite
            sqlite_params = {"worker_id": "w", "now": micros, "lease_expires_at": micros + 300_000_000}
            got = claim_conn.execute(PLAIN["sqlite"], sqlite_params).fetchone()
        results.put((got[0], woke, time.time()))
    poll.close()
    claim_conn.close()


def _worker(url: str, loop: str, ready: Any, results: Any, jobs: int) -> None:
    if loop == "floor":
        _floor(url, ready, results, jobs)
        return
    from musicstore.aio import AsyncStore
    from musicstore.worker import AsyncJob, AsyncWorker, Job, Worker

    woke = [0.0]
    _timed_sleeps(woke)

    def held(job_id: str, stop: Any) -> None:
        results.put((job_id, woke[0], time.time()))
        held.count += 1  # type: ignore[attr-defined]
        if held.count == jobs:  # type: ignore[attr-defined]
            stop()

    held.count = 0  # type: ignore[attr-defined]
    if loop == "sync":
        store = Store(url)
        try:
            store.claim_next("w", wait=0)  # connections and the listener opened before the first wait
            ready.set()

            def handler(job: Job) -> None:
                held(job.id, worker.stop)

            worker = Worker(store, "w", handler)
            worker.run()
        finally:
            store.close()
        return

    async def main() -> None:
        async with AsyncStore.open(url) as store:
            await store.claim_next("w", wait=0)
            ready.set()

            async def handler(job: AsyncJob) -> None:
                held(job.id, worker.stop)

            worker = AsyncWorker(store, "w", handler)
            await worker.run()

    asyncio.run(main())


Series = dict[str, list[float]]


def measure(url: str, loop: str, jobs: int, seed: int) -> Series:
    """Each job's latencies (ms): ``after commit``, ``after call``, ``woken``, ``claim`` (see above)."""
    ctx = mp.get_context("spawn")
    ready, results = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_worker, args=(url, loop, ready, results, jobs))
    proc.start()
    rng = random.Random(seed)
    series: Series = {"after commit": [], "after call": [], "woken": [], "claim": []}
    try:
        if not ready.wait(60):
            raise RuntimeError("the worker did not start")
        with Store(url) as producer:
            producer.create_generation("warm-up", model_name="bench", duration_seconds=1)
            results.get(timeout=30)
            for i in range(jobs - 1):
                time.sleep(rng.uniform(0.02, 0.06))
                start = time.time()
                job = producer.create_generation(f"job {i}", model_name="bench", duration_seconds=1)
                enqueued = time.time()
                claimed_id, woke_at, claimed_at = results.get(timeout=30)
                if claimed_id != job.id:
                    raise RuntimeError(f"the worker claimed {claimed_id}, not {job.id}")
                series["after commit"].append((claimed_at - enqueued) * 1000)
                series["after call"].append((claimed_at - start) * 1000)
                series["woken"].append((woke_at - enqueued) * 1000)
                series["claim"].append((claimed_at - woke_at) * 1000)
    finally:
        proc.join(60)
        if proc.is_alive():
            proc.kill()
    return series


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


COLUMNS = [
    ("after commit", 0.5),
    ("after commit", 0.99),
    ("after call", 0.99),
    ("woken", 0.99),
    ("claim", 0.99),
]


def line(name: str, runs: list[Series], floor: list[Series] | None) -> str:
    """One row: per column the median over the runs (the smallest in brackets), the worst job of all, and the
    median over the runs of the p50 and p99 after commit over the floor's in the same run."""
    cells = []
    for key, q in COLUMNS:
        each = [percentile(run[key], q) for run in runs]
        cells.append(f"{statistics.median(each):.1f} ({min(each):.1f})")
    worst = max(max(run["after commit"]) for run in runs)
    p99s = ", ".join(f"{percentile(run['after commit'], 0.99):.1f}" for run in runs)
    ratios = "–"
    if floor is not None and floor is not runs:
        ratio = [
            statistics.median(
                percentile(run["after commit"], q) / max(percentile(bare["after commit"], q), 0.01)
                for run, bare in zip(runs, floor, strict=True)
            )
            for q in (0.5, 0.99)
        ]
        ratios = f"{ratio[0]:.2f} / {ratio[1]:.2f}"
    jobs = len(runs[0]["after commit"])
    return f"| {name} | {len(runs)} × {jobs} | {' | '.join(cells)} | {worst:.1f} | {p99s} | {ratios} |"


def _rows(name: str, url: str, *, loops: list[str], runs: int, jobs: int, seed: int) -> list[str]:
    measured: dict[str, list[Series]] = {loop: [] for loop in loops}
    loads: list[str] = []
    for run in range(runs):
        shift = run % len(loops)
        for loop in loops[shift:] + loops[:shift]:  # each loop first in turn
            measured[loop].append(measure(url, loop, jobs, seed + run))
        loads.append(f"{os.getloadavg()[0]:.1f}")
    print(f"{name}: 1-minute load average after each run: {', '.join(loads)}", flush=True)
    floor = measured.get("floor")
    return [line(f"{name}, {loop}", measured[loop], floor) for loop in loops]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--loop", choices=[*LOOPS, "all"], default="all")
    parser.add_argument("--jobs", type=int, default=200, help="jobs per run and row (default 200)")
    parser.add_argument("--runs", type=int, default=3, help="runs of every row (default 3)")
    parser.add_argument("--output", type=Path, help="also write the markdown report here")
    args = parser.parse_args()
    loops = list(LOOPS) if args.loop == "all" else [args.loop]
    started = load()
    rows = []
    if args.backend in {"postgres", "both"}:
        from musicstore.testing import _pgserver

        server = _pgserver.start(durable=True)
        try:
            server.admin("CREATE DATABASE wakeup")
            url = server.url("wakeup")
            migrate(url)
            for setting in ("on", "off"):
                server.admin(f"ALTER SYSTEM SET synchronous_commit = {setting}", "SELECT pg_reload_conf()")
                name = f"PostgreSQL, LISTEN/NOTIFY, `synchronous_commit` {setting}"
                rows += _rows(name, url, loops=loops, runs=args.runs, jobs=args.jobs, seed=1)
        finally:
            server.stop()
    if args.backend in {"sqlite", "both"}:
        with tempfile.TemporaryDirectory(prefix="musicstore-wakeup-") as folder:
            url = f"sqlite:///{folder}/wakeup.db"
            migrate(url)
            poll = f"SQLite, `data_version` poll every {waiting.SQLITE_POLL_SECONDS * 1000:g} ms"
            rows += _rows(poll, url, loops=loops, runs=args.runs, jobs=args.jobs, seed=2)
    text = "\n".join(
        [
            "### Wake-up latency: enqueue to claim, idle waiting worker",
            "",
            f"Machine: {machine()}.",
            f"Load: {started} at the start, {load()} at the end.",
            "",
            f"    {command()}",
            "",
            "Milliseconds; a figure is the median over the runs of each run's percentile (the smallest in"
            " brackets). Claimed after commit: from the enqueue's return to the worker holding the job. After"
            " enqueue call: from just before `create_generation`. Woken: from the enqueue's return to the end"
            " of the worker's sleep. Claim: from there to the worker holding the job. Over floor: p50 / p99"
            " claimed after commit over the floor's in the same run (median of the runs).",
            "",
            "| backend, worker | runs × jobs | claimed after commit p50 | p99 | after enqueue call p99 |"
            " woken p99 | claim p99 | worst job | p99 of each run | over floor p50 / p99 |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
            *rows,
        ]
    )
    finish(text, args.output)


if __name__ == "__main__":
    main()
