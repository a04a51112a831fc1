"""``queue_wakeup``'s workers, each run in a process of its own (``spawn``: importable by their module path):
the library's ``Worker`` and ``AsyncWorker`` with their sleeps timed, the floors' loops on bare sqlite3 and
psycopg connections (``_floor_postgres``, ``_floor_async``, ``_floor_sqlite``), and the idle workers whose
cost ``--idle`` measures (``_idle``). Each reports to the producer through a queue."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

from musicstore import Store, queries, waiting

from .queue_claims_sides import PLAIN

LOOPS = ("sync", "async", "floor", "floor-fast", "floor-tx", "floor-async")
"""The worker of a row: ``Worker``, ``AsyncWorker``, and the floors, with no musicstore code between the
wake-up and the claim: the backend's wake-up on a bare connection, then the plain claim as one autocommit
statement (``floor``), the store's ``claim_fast`` as one autocommit statement (``floor-fast``), or the
store's own statements (BEGIN, ``claim_fast``, COMMIT: ``floor-tx``; on asyncio connections,
``floor-async``, PostgreSQL only)."""
FLOOR = "floor"

Result = tuple[str, str, float, float, float, float]
"""What a worker reports per job: loop, job id, woken at, its thread's CPU then, held at, its CPU then."""


def _timed_sleeps(woke: list[float]) -> None:
    """Note in ``woke`` when each sleep of a wait ended (woken, or its time ran out) and the thread's CPU time
    then: this process only."""
    sleep, sleep_async = waiting._sleep, waiting._sleep_async

    def timed_sleep(listener: Any, wake: waiting.Wake, seconds: float) -> None:
        sleep(listener, wake, seconds)
        woke[:] = [time.time(), time.thread_time()]

    async def timed_sleep_async(listener: Any, wake: waiting.Wake, seconds: float) -> None:
        await sleep_async(listener, wake, seconds)
        woke[:] = [time.time(), time.thread_time()]

    waiting._sleep, waiting._sleep_async = timed_sleep, timed_sleep_async


def _statements(dialect: str, loop: str) -> tuple[str, str, str]:
    """A floor's claim: the plain claim or the store's ``claim_fast`` alone (no BEGIN, no COMMIT: empty),
    or BEGIN, ``claim_fast`` and COMMIT."""
    if loop == FLOOR:
        return "", PLAIN[dialect], ""
    fast = queries.load(dialect, "psycopg" if dialect == "postgres" else "sqlite3")["claim_fast"].sql
    if loop == "floor-fast":
        return "", fast, ""
    return ("BEGIN" if dialect == "postgres" else "BEGIN IMMEDIATE"), fast, "COMMIT"


def _floor_postgres(url: str, loop: str, ready: Any, results: Any, jobs: int) -> None:
    """A floor's worker on PostgreSQL: a LISTEN connection and a claiming one (autocommit). Raw psycopg."""
    from datetime import UTC, datetime, timedelta

    import psycopg

    begin, claim_sql, commit = _statements("postgres", loop)
    params: dict[str, Any] = {"worker_id": "w", "default_limit": None}
    with psycopg.connect(url, autocommit=True) as listen, psycopg.connect(url, autocommit=True) as claim:
        listen.execute(f"LISTEN {waiting.PENDING}")
        command = claim.pgconn.exec_  # BEGIN and COMMIT as the store's connector sends them
        begin_sql, commit_sql = begin.encode(), commit.encode()
        ready.set()
        for _ in range(jobs):
            got = None
            while got is None:
                for _note in listen.notifies(timeout=30, stop_after=1):
                    break
                woke, cpu = time.time(), time.thread_time()
                params["now"] = datetime.now(UTC)
                params["lease_expires_at"] = params["now"] + timedelta(minutes=5)
                if begin:
                    command(begin_sql)
                got = claim.execute(claim_sql, params).fetchone()
                if commit and command(commit_sql).status != psycopg.pq.ExecStatus.COMMAND_OK:
                    raise RuntimeError("the floor's COMMIT failed")
            results.put((loop, got[0], woke, cpu, time.time(), time.thread_time()))


def _floor_async(url: str, loop: str, ready: Any, results: Any, jobs: int) -> None:
    """``floor-tx`` on asyncio connections (psycopg's ``AsyncConnection``), PostgreSQL."""
    from datetime import UTC, datetime, timedelta

    import psycopg

    begin, claim_sql, commit = _statements("postgres", "floor-tx")
    params: dict[str, Any] = {"worker_id": "w", "default_limit": None}

    async def main() -> None:
        listen = await psycopg.AsyncConnection.connect(url, autocommit=True)
        claim = await psycopg.AsyncConnection.connect(url, autocommit=True)
        async with listen, claim:
            await listen.execute(f"LISTEN {waiting.PENDING}")
            ready.set()
            for _ in range(jobs):
                got = None
                while got is None:
                    async with aclosing(listen.notifies(timeout=30, stop_after=1)) as notes:
                        async for _note in notes:
                            break
                    woke, cpu = time.time(), time.thread_time()
                    params["now"] = datetime.now(UTC)
                    params["lease_expires_at"] = params["now"] + timedelta(minutes=5)
                    await claim.execute(begin)
                    got = await (await claim.execute(claim_sql, params)).fetchone()
                    await claim.execute(commit)
                results.put((loop, got[0], woke, cpu, time.time(), time.thread_time()))

    asyncio.run(main())


def _floor_sqlite(url: str, loop: str, ready: Any, results: Any, jobs: int) -> None:
    """A floor's worker on SQLite: ``PRAGMA data_version`` read every ``SQLITE_POLL_SECONDS`` on one
    connection, the claim on another (with the store's PRAGMAs). Raw sqlite3."""
    import sqlite3

    from musicstore.backends.sqlite import PRAGMAS

    begin, claim_sql, commit = _statements("sqlite", loop)
    path = url.removeprefix("sqlite:///")
    poll = sqlite3.connect(path, isolation_level=None)
    claim = sqlite3.connect(path, isolation_level=None, timeout=30)
    for pragma in PRAGMAS:  # the store's settings (synchronous = NORMAL: a commit does not fsync in WAL mode)
        claim.execute(pragma)
    version = poll.execute("PRAGMA data_version").fetchone()[0]
    ready.set()
    for _ in range(jobs):
        got = None
        while got is None:
            while (seen := poll.execute("PRAGMA data_version").fetchone()[0]) == version:
                time.sleep(waiting.SQLITE_POLL_SECONDS)
            version, woke, cpu = seen, time.time(), time.thread_time()
            micros = time.time_ns() // 1000  # the schema's timestamps on SQLite
            params = {"worker_id": "w", "now": micros, "lease_expires_at": micros + 300_000_000}
            params["default_limit"] = None
            if begin:
                claim.execute(begin)
            got = claim.execute(claim_sql, params).fetchone()
            if commit:
                claim.execute(commit)
        results.put((loop, got[0], woke, cpu, time.time(), time.thread_time()))
    poll.close()
    claim.close()


def _worker(url: str, loop: str, ready: Any, results: Any, jobs: int) -> None:
    if loop == "floor-async":
        _floor_async(url, loop, ready, results, jobs)
        return
    if loop.startswith(FLOOR):
        (_floor_postgres if url.startswith("postgresql") else _floor_sqlite)(url, loop, ready, results, jobs)
        return
    from musicstore.aio import AsyncStore
    from musicstore.worker import AsyncJob, AsyncWorker, Job, Worker

    woke = [0.0, 0.0]
    _timed_sleeps(woke)
    count = [0]

    def held(job_id: str, stop: Callable[[], None]) -> None:
        results.put((loop, job_id, woke[0], woke[1], time.time(), time.thread_time()))
        count[0] += 1
        if count[0] == jobs:
            stop()

    if loop == "sync":
        with Store(url) as store:
            store.claim_next("w", wait=0)  # connections and the listener opened before the first wait
            ready.set()

            def handler(job: Job) -> None:
                held(job.id, worker.stop)

            worker = Worker(store, "w", handler)
            worker.run()
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


def _idle(url: str, loop: str, seconds: float, results: Any) -> None:
    """An idle worker for ``seconds``, no job enqueued: reports its process's CPU time and how many claims it
    tried (counted by the store's clock, which each claim reads once; the floors try none)."""
    tries = [0]
    if loop.startswith(FLOOR):
        start = time.process_time()
        if url.startswith("postgresql"):
            import psycopg

            with psycopg.connect(url, autocommit=True) as listen:
                listen.execute(f"LISTEN {waiting.PENDING}")
                start = time.process_time()
                for _note in listen.notifies(timeout=seconds):
                    pass
        else:
            import sqlite3

            poll = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:  # as the floor's worker polls, never woken
                poll.execute("PRAGMA data_version").fetchone()
                time.sleep(waiting.SQLITE_POLL_SECONDS)
            poll.close()
        results.put((loop, time.process_time() - start, 0))
        return
    from datetime import UTC, datetime

    from musicstore.aio import AsyncStore
    from musicstore.worker import AsyncWorker, Worker

    def clock() -> datetime:  # read once by each claim's try
        tries[0] += 1
        return datetime.now(UTC)

    def never(job: Any) -> None:
        raise AssertionError("no job is enqueued")

    async def never_async(job: Any) -> None:
        never(job)

    if loop == "sync":
        with Store(url, clock=clock) as store:
            worker = Worker(store, "w", never)
            timer = threading.Timer(seconds, worker.stop)
            start = time.process_time()
            timer.start()
            worker.run()
            cpu = time.process_time() - start
    else:

        async def main() -> float:
            async with AsyncStore.open(url, clock=clock) as store:
                worker = AsyncWorker(store, "w", never_async)
                asyncio.get_running_loop().call_later(seconds, worker.stop)
                start = time.process_time()
                await worker.run()
                return time.process_time() - start

        cpu = asyncio.run(main())
    results.put((loop, cpu, tries[0]))
