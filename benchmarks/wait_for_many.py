"""Many concurrent ``wait_for`` on one store: how soon each returns after its job finishes, and how many
server connections the waits hold (PostgreSQL).

    .venv/bin/python -m benchmarks.wait_for_many                  # 250 async waits on one AsyncStore
    .venv/bin/python -m benchmarks.wait_for_many --waits 100 --loop sync

An API server awaiting a result in each request: ``--waits`` coroutines (``AsyncStore``, *async*) or threads
(``Store``, *sync*) each call ``wait_for`` on a job of their own, all on one store. Once they are all asleep
(``--settle`` seconds after the last one started), the database's connections are counted in
``pg_stat_activity``: those whose last statement was a LISTEN, and all of them but the counting one. Then
another store (a second process would do the same) cancels the jobs one at a time, each after a random pause
of 2-10 ms; per job, *returned after commit* is from the cancel's return (its commit done) to its
``wait_for`` returning. Times are ``time.monotonic()`` in one process. PostgreSQL runs on a throwaway
durable server (``musicstore.testing``'s).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import threading
import time

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


def _finish(other: Store, ids: list[str], cancelled: dict[str, float], seed: int) -> None:
    pauses = random.Random(seed)
    for gid in ids:
        time.sleep(pauses.uniform(0.002, 0.010))
        other.cancel(gid)
        cancelled[gid] = time.monotonic()


def run(url: str, loop: str, waits: int, settle: float) -> tuple[tuple[int, int], list[float]]:
    """The connections while the waits sleep, and each wait's return after its job's cancel, in ms."""
    cancelled: dict[str, float] = {}
    returned: dict[str, float] = {}
    with Store(url) as other:
        ids = [
            other.create_generation(f"job {i}", model_name="musicgen-small", duration_seconds=8).id
            for i in range(waits)
        ]
        if loop == "async":

            async def main() -> tuple[int, int]:
                async with AsyncStore.open(url) as store:

                    async def wait(gid: str) -> None:
                        found = await store.wait_for(gid, timeout=600)
                        returned[gid] = time.monotonic()
                        assert found.status is Status.CANCELLED

                    tasks = [asyncio.ensure_future(wait(gid)) for gid in ids]
                    await asyncio.sleep(settle)
                    counted = await asyncio.to_thread(_connections, url)
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
                counted = _connections(url)
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
    args = parser.parse_args()
    from musicstore.testing import _pgserver

    started = load()
    server = _pgserver.start(durable=True)
    try:
        server.admin("CREATE DATABASE wait_for_many")
        url = server.url("wait_for_many")
        migrate(url)
        (listening, connections), ms = run(url, args.loop, args.waits, args.settle)
    finally:
        server.stop()
    print(f"Machine: {machine()}\nLoad: {started} at the start, {load()} at the end.\n\n    {command()}\n")
    print(
        f"{args.waits} {args.loop} wait_for on one store: {listening} listening connection(s),"
        f" {connections} connection(s) in all while they slept; returned after commit (ms):"
        f" p50 {statistics.median(ms):.2f}, p99 {_percentile(ms, 0.99):.2f}, max {max(ms):.2f}"
    )


if __name__ == "__main__":
    main()
