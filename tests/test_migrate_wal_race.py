"""Several processes switching a SQLite file to WAL at once (what concurrent migrations of a new database
do, or stores opening a migrated file still in a rollback journal: a restored backup): SQLite answers one of
two would-be writers "database is locked" at once, busy timeout or not, so the switch is tried again until
the migration's deadline or the store's busy timeout."""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import multiprocessing.synchronize
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from musicstore import AsyncStore, Store, migrate
from musicstore.backends.sqlite import switch_to_wal
from musicstore.errors import DatabaseBusy

PROCESSES = 8
TRIALS = 12


def _switch(args: tuple[str, Any]) -> str:
    path, barrier = args
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA busy_timeout = 5000")
        barrier.wait()
        switch_to_wal(connection, time.monotonic() + 30)
        mode: str = connection.execute("PRAGMA journal_mode").fetchone()[0]
        return mode
    except sqlite3.Error as exc:
        return f"failed: {exc}"
    finally:
        connection.close()


def test_processes_switching_a_fresh_file_at_once_all_end_in_wal(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    outcomes: list[str] = []
    with context.Manager() as manager, context.Pool(PROCESSES) as pool:
        barrier = manager.Barrier(PROCESSES)
        for trial in range(TRIALS):
            path = tmp_path / f"fresh{trial}.db"
            with sqlite3.connect(path) as setup:
                setup.execute("CREATE TABLE t (x)")
            setup.close()
            outcomes += pool.map(_switch, [(str(path), barrier)] * PROCESSES)
    assert outcomes == ["wal"] * (PROCESSES * TRIALS)


def test_a_locked_switch_gives_up_at_its_deadline(tmp_path: Path) -> None:
    """Held out by another connection's write lock past the deadline, the switch raises, not waits on."""
    path = tmp_path / "held.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    waiting = sqlite3.connect(path, isolation_level=None, timeout=0.05)
    try:
        started = time.monotonic()
        try:
            switch_to_wal(waiting, started + 0.3)
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
        else:
            raise AssertionError("the switch went through a held exclusive lock")
        assert 0.3 <= time.monotonic() - started < 30  # at its deadline, not for as long as the lock is held
    finally:
        waiting.close()
        holder.execute("ROLLBACK")
        holder.close()


def _in_rollback_journal(path: Path) -> str:
    """A migrated database at ``path``, switched back to a rollback journal (as a restored backup can be)."""
    url = f"sqlite:///{path}"
    migrate(url)
    with sqlite3.connect(path) as setup:
        assert setup.execute("PRAGMA journal_mode = DELETE").fetchone()[0] == "delete"
    setup.close()
    return url


async def _count_async(url: str) -> int:
    async with AsyncStore(url) as store:
        return await store.count_generations()


def _open_stores(
    urls: list[str], barrier: multiprocessing.synchronize.Barrier, results: Any, asynchronous: bool
) -> None:
    for url in urls:
        barrier.wait()
        start = math.ceil((time.time() + 0.02) / 0.05) * 0.05  # the next 50 ms mark: all open at once
        while time.time() < start:
            pass
        try:
            if asynchronous:
                results.put(str(asyncio.run(_count_async(url))))
            else:
                with Store(url) as store:
                    results.put(str(store.count_generations()))
        except Exception as exc:
            results.put(f"failed: {exc}")


@pytest.mark.parametrize("asynchronous", [False, True], ids=["Store", "AsyncStore"])
def test_stores_opening_a_file_in_a_rollback_journal_at_once_all_open_it(
    tmp_path: Path, asynchronous: bool
) -> None:
    trials = TRIALS * 3 if asynchronous else TRIALS  # aiosqlite's thread spreads the opens: fewer meet
    first = _in_rollback_journal(tmp_path / "restored0.db").removeprefix("sqlite:///")
    urls = [f"sqlite:///{first}"]
    for trial in range(1, trials):  # byte copies of the first: one migration, not one a trial
        urls.append(f"sqlite:///{shutil.copyfile(first, tmp_path / f'restored{trial}.db')}")
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(PROCESSES), context.Queue()
    processes = [
        context.Process(target=_open_stores, args=(urls, barrier, results, asynchronous))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=120) for _ in range(PROCESSES * trials)]
    finally:
        for process in processes:
            process.join(10)
            process.kill()
    assert outcomes == ["0"] * (PROCESSES * trials)
    for url in urls:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as check:
            assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        check.close()


@pytest.mark.parametrize("asynchronous", [False, True], ids=["Store", "AsyncStore"])
def test_a_store_held_out_of_the_switch_gives_up_at_its_busy_timeout(
    tmp_path: Path, asynchronous: bool
) -> None:
    """A store opening a file another connection holds exclusively raises DatabaseBusy at its busy timeout."""
    url = _in_rollback_journal(tmp_path / "held.db")
    holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")

    async def count() -> int:
        async with AsyncStore(url, busy_timeout=0.3) as store:
            return await store.count_generations()

    started = time.monotonic()
    try:
        with pytest.raises(DatabaseBusy, match="locked"):
            if asynchronous:
                asyncio.run(count())
            else:
                with Store(url, busy_timeout=0.3) as store:
                    store.count_generations()
        assert 0.3 <= time.monotonic() - started < 30  # at its deadline, not for as long as the lock is held
    finally:
        holder.execute("ROLLBACK")
        holder.close()
