"""Wake-up latency: how soon an idle worker waiting in ``claim_next(wait=...)`` holds a job after an enqueue.

    .venv/bin/python -m benchmarks.queue_wakeup                       # PostgreSQL and SQLite, 300 jobs each
    .venv/bin/python -m benchmarks.queue_wakeup --backend sqlite --jobs 100

One worker process waits in ``claim_next("w", wait=30)`` (PostgreSQL: LISTEN/NOTIFY; SQLite: the ``PRAGMA
data_version`` poll every ``SQLITE_POLL_SECONDS``). The producer (this process, its own ``Store``) enqueues
one job at a time after a random pause of 20-60 ms (so the worker is idle and asleep), and waits for the
worker's claim before the next. Two latencies, to the moment the worker's ``claim_next`` returned the job
(``time.time()`` in both processes, one machine): from the enqueue's return (its commit done: what the
wake-up and the claim's own transaction add) and from just before ``create_generation`` was called (the
enqueue's transaction and commit included). PostgreSQL runs on a throwaway durable server
(``musicstore.testing``'s), with ``synchronous_commit`` on (each commit waits for its WAL flush) and off.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from musicstore import Store, migrate, waiting

from .harness import command, finish, load, machine


def _worker(url: str, ready: Any, results: Any, jobs: int) -> None:
    woke = [0.0]
    sleep = waiting._sleep

    def timed_sleep(listener: Any, wake: waiting.Wake, seconds: float) -> None:
        sleep(listener, wake, seconds)
        woke[0] = time.time()  # the sleep ended: the worker was woken (or its sleep ran out)

    waiting._sleep = timed_sleep  # this process only: when each sleep ended
    store = Store(url)
    try:
        store.claim_next("w", wait=0)  # connections and the listener opened before the first measured wait
        ready.set()
        for _ in range(jobs):
            claimed = store.claim_next("w", wait=30)
            now = time.time()
            results.put((None if claimed is None else claimed.id, woke[0], now))
    finally:
        store.close()


def measure(url: str, jobs: int, seed: int) -> tuple[list[float], ...]:
    """Latencies (ms) to the claim from the enqueue's return and from its start, from the enqueue's return
    to the end of the worker's sleep (the wake-up alone), and from there to the claim (its transaction)."""
    ctx = mp.get_context("spawn")
    ready, results = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_worker, args=(url, ready, results, jobs))
    proc.start()
    rng = random.Random(seed)
    latencies, enqueues, wakes, claims = [], [], [], []
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
                latencies.append((claimed_at - enqueued) * 1000)
                enqueues.append((claimed_at - start) * 1000)
                wakes.append((woke_at - enqueued) * 1000)
                claims.append((claimed_at - woke_at) * 1000)
    finally:
        proc.join(60)
        if proc.is_alive():
            proc.kill()
    return latencies, enqueues, wakes, claims


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def line(name: str, *series: list[float]) -> str:
    after_commit = series[0]
    figures = [f"{_pct(v, q):.1f}" for v in series for q in (0.5, 0.99)]
    return f"| {name} | {len(after_commit)} | {' | '.join(figures)} | {max(after_commit):.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=300, help="jobs per backend (default 300)")
    parser.add_argument("--output", type=Path, help="also write the markdown report here")
    args = parser.parse_args()
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
                name = f"PostgreSQL (LISTEN/NOTIFY), synchronous_commit {setting}"
                rows.append(line(name, *measure(url, args.jobs, 1)))
        finally:
            server.stop()
    if args.backend in {"sqlite", "both"}:
        with tempfile.TemporaryDirectory(prefix="musicstore-wakeup-") as folder:
            url = f"sqlite:///{folder}/wakeup.db"
            migrate(url)
            poll = f"SQLite (data_version poll every {waiting.SQLITE_POLL_SECONDS * 1000:g} ms)"
            rows.append(line(poll, *measure(url, args.jobs, 2)))
    text = "\n".join(
        [
            "### Wake-up latency: enqueue to claim, idle waiting worker",
            "",
            f"Machine: {machine()}.",
            f"Load: {started} at the start, {load()} at the end.",
            "",
            f"    {command()}",
            "",
            "Claimed after commit: from the enqueue's return to the worker holding the job (the wake-up and"
            " the claim's own transaction). After enqueue call: from just before `create_generation`. Woken:"
            " from the enqueue's return to the end of the worker's sleep (can be negative: the NOTIFY leaves"
            " at the commit, before the enqueue call returns). Claim: from the end of the sleep to the worker"
            " holding the job (the claim's own transaction: the floor of any wake-up).",
            "",
            "| backend | jobs | claimed after commit p50 ms | p99 | after enqueue call p50 ms | p99 |"
            " woken p50 ms | p99 | claim p50 ms | p99 | max claimed after commit ms |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows,
        ]
    )
    finish(text, args.output)


if __name__ == "__main__":
    main()
