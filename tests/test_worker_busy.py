"""A worker loop outlives a claim that waited past the busy timeout: another writer held SQLite's lock (a
long maintenance write), the claim raised ``DatabaseBusy``, the loop logged it, paused and claimed again,
for ``Worker`` and ``AsyncWorker`` alike. The lock is let go by the warning itself: no sleep decides."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from musicstore import DatabaseError, Status, Store, worker
from musicstore.aio import AsyncStore
from tests.conftest import new_job


class _Release(logging.Handler):
    """Ends the other writer's transaction when the worker logs that its claim waited for it."""

    def __init__(self, holder: sqlite3.Connection) -> None:
        super().__init__(logging.WARNING)
        self.holder = holder
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        if self.holder.in_transaction:
            self.holder.rollback()


@pytest.fixture(autouse=True)
def _short_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "WAIT_SLICE_SECONDS", 0.02)


@pytest.mark.parametrize("loop", ["sync", "async"])
def test_a_claim_past_the_busy_timeout_is_tried_again(sqlite_url: str, loop: str) -> None:
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    with Store(sqlite_url) as store:
        job = new_job(store)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the writer lock, held as a long maintenance write would
    release = _Release(holder)
    logger = logging.getLogger(worker.__name__)
    logger.addHandler(release)
    handled: list[str] = []

    def complete(store: Any, generation_id: str) -> Any:
        handled.append(generation_id)
        return store.complete_generation(generation_id, file_path=f"{generation_id}.wav", file_size_bytes=1)

    try:
        if loop == "sync":
            with Store(sqlite_url, busy_timeout=0.05) as store:
                report = worker.Worker(store, "gpu-0", lambda j: complete(store, j.id)).run(max_jobs=1)
        else:

            async def main() -> worker.WorkerReport:
                async with AsyncStore.open(sqlite_url, busy_timeout=0.05) as store:

                    async def handler(j: worker.AsyncJob) -> None:
                        handled.append(j.id)
                        await store.complete_generation(j.id, file_path=f"{j.id}.wav", file_size_bytes=1)

                    return await worker.AsyncWorker(store, "gpu-0", handler).run(max_jobs=1)

            report = asyncio.run(main())
    finally:
        logger.removeHandler(release)
        holder.close()
    assert release.messages and all("claiming again" in m for m in release.messages)
    assert handled == [job.id]
    assert (report.done, report.failed, report.lost) == (1, 0, 0)
    with Store(sqlite_url) as store:
        done = store.get_generation(job.id)
        assert done is not None and done.status is Status.COMPLETED


def test_another_database_error_still_ends_the_loop(sqlite_url: str) -> None:
    """Only a busy database is waited out: a missing schema (``MigrationError``, a ``DatabaseError``) ends
    ``run`` with it."""
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    with Store(sqlite_url) as store:
        running = worker.Worker(store, "gpu-0", lambda j: None)
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE generations")
        with pytest.raises(DatabaseError):
            running.run(max_jobs=1)
