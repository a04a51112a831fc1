"""Session 24's lead fixes, each with the test that failed before it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from musicstore import Status, Store
from musicstore.aio import AsyncStore
from musicstore.errors import Cancelled
from musicstore.worker import AsyncJob, AsyncWorker, Job, Worker, WorkerReport
from tests.conftest import FakeClock, new_job


def test_a_handler_that_catches_its_jobs_cancel_and_returns_is_counted_cancelled(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """It was counted done, with a WARNING that the job 'stays processing until its lease expires': it is
    cancelled."""
    job = new_job(store)

    def handler(job: Job) -> None:
        store.cancel(job.id, "the user pressed stop")
        try:
            job.heartbeat()
        except Cancelled:
            return  # dropping the work, as asked

    with caplog.at_level(logging.WARNING, logger="musicstore.worker"):
        assert Worker(store, "gpu-0", handler).run(max_jobs=1) == WorkerReport(cancelled=1)
    assert "stays processing" not in caplog.text
    read = store.get_generation(job.id)
    assert read is not None and read.status is Status.CANCELLED


def test_an_async_handler_that_catches_its_jobs_cancel_and_returns_is_counted_cancelled(
    db_url: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with Store(db_url, clock=clock) as sync:
        job = new_job(sync)

    async def main() -> WorkerReport:
        async with AsyncStore.open(db_url, clock=clock) as store:

            async def handler(job: AsyncJob) -> None:
                await store.cancel(job.id)
                try:
                    await job.progress(0.5, "decoding")
                except Cancelled:
                    return

            return await AsyncWorker(store, "gpu-0", handler).run(max_jobs=1)

    with caplog.at_level(logging.WARNING, logger="musicstore.worker"):
        assert asyncio.run(main()) == WorkerReport(cancelled=1)
    assert "stays processing" not in caplog.text
    with Store(db_url, clock=clock) as sync:
        read = sync.get_generation(job.id)
        assert read is not None and read.status is Status.CANCELLED


def test_a_handler_that_returns_unfinished_is_still_warned_of_and_counted_done(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """The contract beside the fix: no Cancelled seen, the job left to its lease, as before."""
    new_job(store)
    with caplog.at_level(logging.WARNING, logger="musicstore.worker"):
        assert Worker(store, "gpu-0", lambda job: None).run(max_jobs=1) == WorkerReport(done=1)
    assert "stays processing" in caplog.text
