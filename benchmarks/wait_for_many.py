"""Many concurrent ``wait_for`` on one store: how soon each returns after its job finishes, how many
connections the waits hold and what the process spends while they sleep.

    .venv/bin/python -m benchmarks.wait_for_many                  # 250 async waits on one AsyncStore
    .venv/bin/python -m benchmarks.wait_for_many --waits 100 --loop sync
    .venv/bin/python -m benchmarks.wait_for_many --backend sqlite --waits 1000

An API server awaiting a result in each request: ``--waits`` coroutines (``AsyncStore``, *async*) or threads
(``Store``, *sync*) each call ``wait_for`` on a job of their own, all on one store. Once they are all asleep
(``--settle`` seconds after the last one started), the database's connections are counted in
``pg_stat_activity``: those whose last statement was a LISTEN, and all of them but the counting one. Then
another store (a second process would do the same) cancels the jobs one at a time, each after a random pause
of 2-10 ms; per job, *returned after commit* is from the cancel's return (its commit done) to its
``wait_for`` returning. Times are ``time.monotonic()`` in one process. PostgreSQL runs on a throwaway
durable server (``musicstore.testing``'s). On SQLite (``--backend sqlite``, a file in a temporary folder)
what is counted is this process's open files on the database file (the store's connections and its
poller's), and the process's CPU time per second over ``--idle`` seconds of sleeping waits (each wait re-tries
once a second, ``waiting.RECHECK_SECONDS``: that much is the waits' own, whatever wakes them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from musicstore import Status, Store, migrate
from musicstore.aio import AsyncStore

from .harness import command, load, machine


def _connections(url: str) -> tuple[int, int]:
    """This database's listening connections, and all its connections (but this one)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE query LIKE 'LISTEN%'), count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _open_files(path: Path) -> int:
    """This process's file descriptors on the SQLite database file."""
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            found += os.readlink(f"/proc/self/fd/{fd}") == str(path)
        except OSError:
            continue
    return found


def _count(url: str, idle: float) -> Counted:
    """While the waits sleep: the listening connections and all connections (PostgreSQL), or (SQLite) the
    open files on the database, twice; then the process's CPU ms per second over ``idle`` seconds."""
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        opened = _open_files(path)
        counted = (opened, opened)
    else:
        counted = _connections(url)
    cpu, wall = time.process_time(), time.monotonic()
    time.sleep(idle)
    return *counted, (time.process_time() - cpu) * 1000 / (time.monotonic() - wall)


def _finish(other: Store, ids: list[str], cancelled: dict[str, float], seed: int) -> None:
    pauses = random.Random(seed)
    for gid in ids:
        time.sleep(pauses.uniform(0.002, 0.010))
        other.cancel(gid)
        cancelled[gid] = time.monotonic()


Counted = tuple[int, int, float]


def run(url: str, loop: str, waits: int, settle: float, idle: float) -> tuple[Counted, list[float]]:
    """What ``_count`` read while the waits slept, and each wait's return after its job's cancel, in ms."""
    cancelled: dict[str, float] = {}
    returned: dict[str, float] = {}
    with Store(url) as other:
        ids = [
            other.create_generation(f"job {i}", model_name="musicgen-small", duration_seconds=8).id
            for i in range(waits)
        ]
        if loop == "async":

            async def main() -> Counted:
                async with AsyncStore.open(url) as store:

                    async def wait(gid: str) -> None:
                        found = await store.wait_for(gid, timeout=600)
                        returned[gid] = time.monotonic()
                        assert found.status is Status.CANCELLED

                    tasks = [asyncio.ensure_future(wait(gid)) for gid in ids]
                    await asyncio.sleep(settle)
                    counted = await asyncio.to_thread(_count, url, idle)
                    await asyncio.to_thread(_finish, other, ids, cancelled, 1)
                    await asyncio.gather(*tasks)
                    return counted

            counted = asyncio.run(main())
        else:
            with Store(url) as store:

                def wait(gid: str) -> None:
                    found = store.wait_for(gid, timeout=600)
                    returned[gid] = time.monotonic()
                    assert found.status is Status.CANCELLED

                threads = [threading.Thread(target=wait, args=(gid,)) for gid in ids]
                for thread in threads:
                    thread.start()
                time.sleep(settle)
                counted = _count(url, idle)
                _finish(other, ids, cancelled, 1)
                for thread in threads:
                    thread.join()
    return counted, [(returned[gid] - cancelled[gid]) * 1000 for gid in ids]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--waits", type=int, default=250, help="concurrent waits (default 250)")
    parser.add_argument("--loop", choices=["async", "sync"], default="async")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds for the waits to fall asleep")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of sleeping waits whose CPU is read")
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    args = parser.parse_args()
    started = load()
    if args.backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/wait_for_many.db"
            migrate(url)
            (opened, _, cpu), ms = run(url, args.loop, args.waits, args.settle, args.idle)
        held = f"{opened} open file(s) on the database"
    else:
        from musicstore.testing import _pgserver

        server = _pgserver.start(durable=True)
        try:
            server.admin("CREATE DATABASE wait_for_many")
            url = server.url("wait_for_many")
            migrate(url)
            (listening, connections, cpu), ms = run(url, args.loop, args.waits, args.settle, args.idle)
        finally:
            server.stop()
        held = f"{listening} listening connection(s), {connections} connection(s) in all"
    print(f"Machine: {machine()}\nLoad: {started} at the start, {load()} at the end.\n\n    {command()}\n")
    print(
        f"{args.waits} {args.loop} wait_for on one store ({args.backend}): {held} while they slept,"
        f" the process's CPU {cpu:.0f} ms/s; returned after commit (ms):"
        f" p50 {statistics.median(ms):.2f}, p99 {_percentile(ms, 0.99):.2f}, max {max(ms):.2f}"
    )


if __name__ == "__main__":
    main()
