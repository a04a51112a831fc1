"""A write that PostgreSQL aborts to break a real deadlock runs again on its own and succeeds.

The deadlock is made with a second, bare connection: it locks the running totals a status change must update,
waits until the store's ``cancel`` holds the generation's row and is blocked on those totals, then asks for
that very row. PostgreSQL aborts the store's transaction (its ``deadlock_timeout`` runs out first: the bare
connection's is raised to 30 s), the bare connection gets the row and rolls back, and the store's second try
goes through. Before ``WriteConflict`` was retried, ``cancel`` raised ``DatabaseBusy`` here.

The store's sessions look for the deadlock once, ``DEADLOCK_CHECK`` after their lock wait began (not the
server's 1 s: the bare ``UPDATE`` closing the cycle must come before it, on a loaded machine too), and their
``busy_timeout`` is longer, so that its lock timeout does not end the wait first.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from musicstore import AsyncStore, Status, Store
from musicstore.errors import DatabaseBusy, WriteConflict
from musicstore.runner import CONFLICT_RETRIES, conflict_wait

psycopg = pytest.importorskip("psycopg")

DEADLOCK_CHECK = "3s"
BUSY_TIMEOUT = 30.0


def _slow_deadlock_checks(url: str) -> None:
    """The sessions opened on ``url``'s database from now on look for a deadlock after ``DEADLOCK_CHECK``."""
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as admin:
        name = admin.info.dbname
        admin.execute(sql.SQL("ALTER DATABASE {} SET deadlock_timeout = {}").format(
            sql.Identifier(name), sql.Literal(DEADLOCK_CHECK)))  # fmt: skip


def _waiting_on_lock(bare: Any, blocked_pid_of: int) -> bool:
    """Whether some other backend waits on a lock held by ``blocked_pid_of``'s session (the bare one)."""
    row = bare.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", (blocked_pid_of,)
    ).fetchone()
    return bool(row[0])


def _deadlock_while(url: str, generation_id: str, write: Callable[[], None]) -> list[BaseException]:
    """Run ``write`` (which must update the generation's status) into a deadlock with a bare connection."""
    failures: list[BaseException] = []
    with psycopg.connect(url, autocommit=False) as bare:
        bare.execute("SET deadlock_timeout = '30s'")
        bare.execute("LOCK TABLE generation_totals, generation_model_totals IN SHARE ROW EXCLUSIVE MODE")
        pid = bare.info.backend_pid

        def run() -> None:
            try:
                write()
            except BaseException as exc:  # reported to the test below
                failures.append(exc)

        with psycopg.connect(url, autocommit=True) as monitor:
            worker = threading.Thread(target=run)
            worker.start()
            deadline = time.monotonic() + 60
            while not _waiting_on_lock(monitor, pid):
                assert time.monotonic() < deadline, "the store's write never blocked on the locked totals"
                time.sleep(0.02)
        # The store's transaction holds the generation's row and waits for the totals: ask for the row.
        bare.execute("UPDATE generations SET priority = priority WHERE id = %s", (generation_id,))
        bare.rollback()
        worker.join(timeout=30)
        assert not worker.is_alive()
    return failures


def test_a_write_aborted_by_a_deadlock_runs_again_and_succeeds(postgres_url: str) -> None:
    _slow_deadlock_checks(postgres_url)
    with Store(postgres_url, busy_timeout=BUSY_TIMEOUT) as store:
        job = store.create_generation("deadlock", model_name="musicgen", duration_seconds=5)
        failures = _deadlock_while(postgres_url, job.id, lambda: store.cancel(job.id, "stop"))
        assert failures == []
        got = store.get_generation(job.id)
        assert got is not None and got.status is Status.CANCELLED
        by_status = store.get_database_stats().by_status
        assert (by_status[Status.CANCELLED], by_status[Status.PENDING]) == (1, 0)  # moved once, not twice


def test_the_async_store_runs_it_again_too(postgres_url: str) -> None:
    _slow_deadlock_checks(postgres_url)

    async def scenario() -> None:
        async with AsyncStore.open(postgres_url) as store:
            job = await store.create_generation("deadlock", model_name="musicgen", duration_seconds=5)

            def cancel() -> None:
                async def inner() -> None:
                    async with AsyncStore.open(postgres_url, busy_timeout=BUSY_TIMEOUT) as other:
                        await other.cancel(job.id, "stop")

                asyncio.run(inner())

            assert _deadlock_while(postgres_url, job.id, cancel) == []
            got = await store.get_generation(job.id)
            assert got is not None and got.status is Status.CANCELLED

    asyncio.run(scenario())


def test_a_conflict_is_a_busy_database_to_callers_that_catch_that() -> None:
    assert issubclass(WriteConflict, DatabaseBusy)
    waits = [conflict_wait(attempt) for attempt in range(1, CONFLICT_RETRIES + 1)]
    assert all(0.005 * 2 ** (n - 1) <= w <= 0.015 * 2 ** (n - 1) for n, w in enumerate(waits, 1))
