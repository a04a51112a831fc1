"""Regressions found by a hunt over the worker loop (session 24):

- a Ctrl-C (``KeyboardInterrupt``) landing as a SQLite write's ``BEGIN IMMEDIATE`` returned (a handler's
  ``job.heartbeat()`` or ``job.progress(...)``, any write of a ``Store``, or ``store.transaction()``'s BEGIN)
  left the thread's connection inside that transaction: the writer lock held until the store was closed
  (every other process ``DatabaseBusy``), every later write of the store on that thread refused ("cannot
  start a transaction within a transaction"), so a ``Worker``'s put-back of the job in hand failed and the
  job stayed processing until its lease expired; the BEGIN is now inside the block that rolls back.
"""

from __future__ import annotations

from typing import Any

import pytest

from musicstore import Status, Store
from musicstore.worker import Job, Worker
from tests.conftest import new_job


class _InterruptedAfterBegin:
    """A SQLite connection whose next ``BEGIN IMMEDIATE`` (once ``armed``) runs, then raises
    ``KeyboardInterrupt``, as a Ctrl-C does when it lands as the statement returns."""

    def __init__(self, conn: Any, armed: list[bool]) -> None:
        self._conn, self._armed = conn, armed

    def execute(self, sql: str, *args: Any) -> Any:
        cursor = self._conn.execute(sql, *args)
        if sql == "BEGIN IMMEDIATE" and self._armed:
            self._armed.clear()
            raise KeyboardInterrupt
        return cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _interrupting(store: Store) -> list[bool]:
    """Arm (append to the list returned) ``store``'s next BEGIN to be interrupted as it returns."""
    armed: list[bool] = []
    acquire = store._connector.acquire
    store._connector.acquire = lambda: _InterruptedAfterBegin(acquire(), armed)
    return armed


def test_ctrl_c_as_a_handlers_write_begins_still_puts_the_job_back_and_frees_the_lock(
    sqlite_url: str,
) -> None:
    with Store(sqlite_url) as store:
        armed = _interrupting(store)
        job = new_job(store)

        def handler(job: Job) -> None:
            armed.append(True)
            job.heartbeat()  # Ctrl-C as its BEGIN IMMEDIATE returns

        with pytest.raises(KeyboardInterrupt):
            Worker(store, "gpu-0", handler).run()
        with Store(sqlite_url, busy_timeout=0.5) as other:  # the lock is free: not DatabaseBusy
            row = other.get_generation(job.id)
            assert row is not None and row.status is Status.PENDING
            assert "interrupted" in str(row.error_message)
            claimed = other.claim_next("gpu-1")
            assert claimed is not None and claimed.id == job.id
        assert new_job(store, "the store still writes").status is Status.PENDING


def test_ctrl_c_as_a_transaction_begins_leaves_no_transaction_open(sqlite_url: str) -> None:
    with Store(sqlite_url) as store:
        armed = _interrupting(store)
        armed.append(True)
        with pytest.raises(KeyboardInterrupt), store.transaction():
            raise AssertionError("not reached")
        with Store(sqlite_url, busy_timeout=0.5) as other:
            new_job(other, "another process writes")
        assert new_job(store, "the store still writes").status is Status.PENDING
        with store.transaction() as tx:
            assert tx.get_database_stats().total == 2
