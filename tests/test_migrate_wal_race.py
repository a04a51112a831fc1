"""Several processes switching a fresh SQLite file to WAL at once (what concurrent migrations of a new
database do): SQLite answers one of two would-be writers "database is locked" at once, busy timeout or not,
so the switch is tried again until the migration's deadline."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from pathlib import Path
from typing import Any

from musicstore.migrate import _switch_to_wal

PROCESSES = 8
TRIALS = 12


def _switch(args: tuple[str, Any]) -> str:
    path, barrier = args
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA busy_timeout = 5000")
        barrier.wait()
        _switch_to_wal(connection, time.monotonic() + 30)
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
            _switch_to_wal(waiting, started + 0.3)
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
        else:
            raise AssertionError("the switch went through a held exclusive lock")
        assert 0.3 <= time.monotonic() - started < 5
    finally:
        waiting.close()
        holder.execute("ROLLBACK")
        holder.close()
