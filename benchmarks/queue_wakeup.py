"""Wake-up latency: how soon an idle worker waiting for a job holds one after an enqueue.

    .venv/bin/python -m benchmarks.queue_wakeup                       # both backends, every worker, 3 runs
    .venv/bin/python -m benchmarks.queue_wakeup --backend sqlite --loop sync --runs 1 --jobs 100

The workers are real worker loops, each in a process of its own and each on a database of its own (so that
an enqueue wakes only the worker it is meant for): ``musicstore.worker.Worker`` on a ``Store`` (*sync*) or
``AsyncWorker`` on an ``AsyncStore`` (*async*), idle and waiting for work (PostgreSQL: LISTEN/NOTIFY;
SQLite: the ``PRAGMA data_version`` poll every ``SQLITE_POLL_SECONDS``); the handler reports each job it is
given and returns. Beside them, the floors, with no musicstore code at all: the backend's wake-up on a bare
driver connection, then on a second one the plain claim before 0008 as one autocommit statement (*floor*),
the store's own claim statement ``claim_fast`` as one autocommit statement (*floor: claim_fast alone*), or
BEGIN, ``claim_fast`` and COMMIT as the store sends them (*floor: the store's statements*: on PostgreSQL
BEGIN and COMMIT through libpq's ``PQexec``, as ``musicstore.backends.postgres`` sends them; on asyncio
psycopg connections too, PostgreSQL only). Read from one floor to the next, they split what a worker pays
over the bare wake-up and claim: the claim statement's own work, the two round trips of its transaction,
asyncio, and last (the sync and async rows over the store's statements) musicstore's own code.

The producer (this process, a ``Store`` per database) enqueues one job at a time after a random pause of
20-60 ms (so that the worker is idle and asleep) and waits for the worker to report it before the next. The
jobs go to the workers in rounds, each round one job to each worker in a shuffled order, so that every row
shares the machine's load of the moment with the others: the difference between a row and the floor in the
same run is what the library adds, even on a loaded machine. Times are ``time.time()`` in both processes
(one machine). Per job: *claimed after commit*, from the enqueue's return (its commit done) to the handler
holding the job; *woken*, from the enqueue's return to the end of the worker's sleep (about 0, or below,
when the notification arrives before the enqueue call has returned); *claim*, from there to the handler
holding the job (the claim's transaction); *claim CPU*, the worker thread's CPU time over the same span
(``time.thread_time``: what the worker's own code costs, whatever the load). The percentiles are over the
jobs of all runs together; *minus floor* is a row's p50 and p99 claimed after commit minus the floor's over
the same runs (in brackets: the smallest and largest of the runs' own differences). PostgreSQL runs on a
throwaway durable server (``musicstore.testing``'s) with ``synchronous_commit`` on (each commit, the
claim's included, waits for its WAL flush) and off.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from musicstore import Store, migrate, waiting

from .harness import command, finish, load, machine
from .queue_wakeup_workers import FLOOR, LOOPS, Result, _idle, _worker

NAMES = {
    "sync": "sync",
    "async": "async",
    "floor": "floor: one statement",
    "floor-fast": "floor: `claim_fast` alone",
    "floor-tx": "floor: the store's statements",
    "floor-async": "floor: the store's statements, asyncio",
}
WARM_UP = 3
"""Jobs per worker and run not counted (the first claims prepare statements and fill caches)."""


def idle_rows(name: str, urls: dict[str, str], seconds: float) -> list[str]:
    """Each loop's worker idle for ``seconds``, all at once: CPU per second and claims tried per second."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_idle, args=(url, loop, seconds, results)) for loop, url in urls.items()]
    for proc in procs:
        proc.start()
    found = {}
    try:
        for _ in procs:
            loop, cpu, tries = results.get(timeout=seconds + 60)
            found[loop] = (cpu, tries)
    finally:
        for proc in procs:
            proc.join(60)
    return [
        f"| {name}, {NAMES[loop]} | {seconds:g} | {found[loop][0] / seconds * 1000:.2f} |"
        f" {found[loop][1] / seconds:.2f} |"
        for loop in urls
        if loop in found
    ]


Series = dict[str, list[float]]
KEYS = ("after commit", "woken", "claim", "claim cpu")


def measure(urls: dict[str, str], jobs: int, seed: int) -> dict[str, Series]:
    """One run: ``jobs`` (after ``WARM_UP``) to each loop's worker, in shuffled rounds; each job's latencies
    (ms): ``after commit``, ``woken``, ``claim``, ``claim cpu`` (see above)."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    total = jobs + WARM_UP
    workers: dict[str, Any] = {}
    stores: dict[str, Store] = {}
    rng = random.Random(seed)
    series: dict[str, Series] = {loop: {key: [] for key in KEYS} for loop in urls}
    try:
        for loop, url in urls.items():
            ready = ctx.Event()
            proc = ctx.Process(target=_worker, args=(url, loop, ready, results, total))
            proc.start()
            workers[loop] = (proc, ready)
        for loop, (_, ready) in workers.items():
            if not ready.wait(60):
                raise RuntimeError(f"the {loop} worker did not start")
            stores[loop] = Store(urls[loop])
        loops = list(urls)
        for n in range(total):
            rng.shuffle(loops)
            for loop in loops:
                time.sleep(rng.uniform(0.02, 0.06))
                job = stores[loop].create_generation(f"job {n}", model_name="bench", duration_seconds=1)
                enqueued = time.time()
                try:
                    got: Result = results.get(timeout=30)
                except queue.Empty:
                    raise RuntimeError(f"the {loop} worker did not claim {job.id} within 30 s") from None
                which, claimed_id, woke_at, woke_cpu, held_at, held_cpu = got
                if (which, claimed_id) != (loop, job.id):
                    raise RuntimeError(f"the {which} worker claimed {claimed_id}, not {job.id} ({loop})")
                if n < WARM_UP:
                    continue
                kept = series[loop]
                kept["after commit"].append((held_at - enqueued) * 1000)
                kept["woken"].append((woke_at - enqueued) * 1000)
                kept["claim"].append((held_at - woke_at) * 1000)
                kept["claim cpu"].append((held_cpu - woke_cpu) * 1000)
    finally:
        for store in stores.values():
            store.close()
        for proc, _ in workers.values():
            proc.join(60)
            if proc.is_alive():
                proc.kill()
    return series


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def pooled(runs: list[Series], key: str) -> list[float]:
    return [value for run in runs for value in run[key]]


def line(name: str, runs: list[Series], floor: list[Series] | None) -> str:
    """One row: percentiles over the jobs of all runs; minus the floor's in the same runs (the runs' own
    differences' range in brackets)."""
    after, claim = pooled(runs, "after commit"), pooled(runs, "claim")
    cells = [
        f"{percentile(after, 0.5):.2f}",
        f"{percentile(after, 0.99):.1f}",
        f"{percentile(pooled(runs, 'woken'), 0.99):.1f}",
        f"{percentile(claim, 0.5):.2f}",
        f"{percentile(claim, 0.99):.1f}",
        f"{percentile(pooled(runs, 'claim cpu'), 0.5):.2f}",
    ]
    minus = "–"
    if floor is not None and floor is not runs:
        bare = pooled(floor, "after commit")
        parts = []
        for q in (0.5, 0.99):
            each = [
                percentile(run["after commit"], q) - percentile(other["after commit"], q)
                for run, other in zip(runs, floor, strict=True)
            ]
            parts.append(
                f"{percentile(after, q) - percentile(bare, q):+.2f} ({min(each):+.1f}…{max(each):+.1f})"
            )
        minus = " / ".join(parts)
    p99s = ", ".join(f"{percentile(run['after commit'], 0.99):.1f}" for run in runs)
    return f"| {name} | {len(after)} | {' | '.join(cells)} | {minus} | {max(after):.1f} | {p99s} |"


def _rows(name: str, urls: dict[str, str], *, runs: int, jobs: int, seed: int) -> list[str]:
    if runs == 0:  # the idle workers' cost alone
        return []
    measured: dict[str, list[Series]] = {loop: [] for loop in urls}
    loads: list[str] = []
    for run in range(runs):
        for loop, series in measure(urls, jobs, seed + run).items():
            measured[loop].append(series)
        loads.append(f"{os.getloadavg()[0]:.1f}")
    print(f"{name}: 1-minute load average after each run: {', '.join(loads)}", flush=True)
    floor = measured.get(FLOOR)
    return [line(f"{name}, {NAMES[loop]}", measured[loop], floor) for loop in urls]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument(
        "--loop",
        choices=[*LOOPS, "all"],
        action="append",
        help="a worker to measure (repeat for several; default all); the floor is always measured",
    )
    parser.add_argument("--jobs", type=int, default=200, help="jobs per run and worker (default 200)")
    parser.add_argument("--runs", type=int, default=3, help="runs (default 3; 0: the idle workers alone)")
    parser.add_argument(
        "--idle", type=float, default=10.0, help="seconds of the idle workers' cost (default 10; 0: none)"
    )
    parser.add_argument("--output", type=Path, help="also write the markdown report here")
    args = parser.parse_args()
    chosen = args.loop or ["all"]
    loops = list(LOOPS) if "all" in chosen else [loop for loop in LOOPS if loop in chosen or loop == FLOOR]
    started = load()
    rows: list[str] = []
    idle: list[str] = []
    if args.backend in {"postgres", "both"}:
        from musicstore.testing import _pgserver

        server = _pgserver.start(durable=True)
        try:
            urls = {}
            for loop in loops:
                database = "wakeup_" + loop.replace("-", "_")
                server.admin(f"CREATE DATABASE {database}")
                urls[loop] = server.url(database)
                migrate(urls[loop])
            for setting in ("on", "off"):
                server.admin(f"ALTER SYSTEM SET synchronous_commit = {setting}", "SELECT pg_reload_conf()")
                name = f"PostgreSQL, LISTEN/NOTIFY, `synchronous_commit` {setting}"
                rows += _rows(name, urls, runs=args.runs, jobs=args.jobs, seed=1)
            if args.idle > 0:
                idle += idle_rows("PostgreSQL, LISTEN/NOTIFY", urls, args.idle)
        finally:
            server.stop()
    if args.backend in {"sqlite", "both"}:
        with tempfile.TemporaryDirectory(prefix="musicstore-wakeup-") as folder:
            urls = {loop: f"sqlite:///{folder}/{loop}.db" for loop in loops if loop != "floor-async"}
            for url in urls.values():
                migrate(url)
            poll = f"SQLite, `data_version` poll every {waiting.SQLITE_POLL_SECONDS * 1000:g} ms"
            rows += _rows(poll, urls, runs=args.runs, jobs=args.jobs, seed=2)
            if args.idle > 0:
                idle += idle_rows(poll, urls, args.idle)
    idle_table = [
        "",
        "Idle workers, all at once, no job enqueued: the worker process's CPU time (ms per second) and the"
        " claims it tried (per second).",
        "",
        "| backend, worker | seconds | CPU ms/s | claims tried/s |",
        "| --- | ---: | ---: | ---: |",
        *idle,
    ]
    text = "\n".join(
        [
            "### Wake-up latency: enqueue to claim, idle waiting worker",
            "",
            f"Machine: {machine()}.",
            f"Load: {started} at the start, {load()} at the end.",
            "",
            f"    {command()}",
            "",
            "Milliseconds, over the jobs of all runs (the workers' jobs interleaved, so that each row"
            " shares the machine's load with the floor). Claimed after commit: from the enqueue's return to"
            " the worker holding the job. Woken: from the enqueue's return to the end of the worker's sleep."
            " Claim: from there to the worker holding the job; claim CPU: the worker thread's CPU time over"
            " it. Minus floor: p50 / p99 claimed after commit minus the floor's (one statement) over the same"
            " runs (the runs' own differences, smallest…largest, in brackets).",
            "",
            "| backend, worker | jobs | claimed after commit p50 | p99 | woken p99 | claim p50 | claim p99 |"
            " claim CPU p50 | minus floor p50 / p99 | worst job | p99 of each run |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
            *rows,
            *(idle_table if idle else []),
        ]
    )
    finish(text, args.output)


if __name__ == "__main__":
    main()
