"""Regressions found by a hunt over the worker loop (session 22), both loops, both backends:

- a worker given the other kind of store (``AsyncWorker`` on a blocking ``Store``, ``Worker`` on an
  ``AsyncStore``) failed only at its first job, with a bare TypeError or AttributeError; an ``AsyncWorker``'s
  blocking claim had taken the job already, which stayed processing (an attempt used) until its lease expired;
- a handler that failed its job itself (``store.fail(..., retry=False)``: a prompt it cannot render) or
  retried it, then returned, had the job counted ``done``, where the same handler raising after its ``fail``
  has it counted ``failed``.
"""

from __future__ import annotations

import asyncio

import pytest

from musicstore import InvalidInput, Status, Store
from musicstore.aio import AsyncStore
from musicstore.worker import AsyncJob, AsyncWorker, Job, Worker, WorkerReport
from tests.conftest import new_job


def test_a_worker_given_the_other_kind_of_store_is_refused_when_made_and_claims_nothing(db_url: str) -> None:
    async def handler(job: AsyncJob) -> None:
        return None

    with Store(db_url) as store:
        job = new_job(store)
        with pytest.raises(InvalidInput, match="AsyncStore"):
            AsyncWorker(store, "gpu-0", handler)  # type: ignore[arg-type]

        async def main() -> None:
            async with AsyncStore.open(db_url) as astore:
                with pytest.raises(InvalidInput, match="AsyncWorker"):
                    Worker(astore, "gpu-0", lambda job: None)  # type: ignore[arg-type]

        asyncio.run(main())
        seen = store.get_generation(job.id)
        assert seen is not None and seen.status is Status.PENDING and seen.attempts == 0


@pytest.mark.parametrize("retry", [False, True])
@pytest.mark.parametrize("loop", ["sync", "async"])
def test_a_job_its_handler_failed_itself_then_returned_is_counted_failed_not_done(
    db_url: str, loop: str, retry: bool
) -> None:
    with Store(db_url) as store:
        job = new_job(store)

        def handler(job: Job) -> None:
            store.fail(job.id, "a prompt this model cannot render", retry=retry, worker_id="gpu-0")

        async def main() -> WorkerReport:
            async with AsyncStore.open(db_url) as astore:

                async def ahandler(job: AsyncJob) -> None:
                    why = "a prompt this model cannot render"
                    await astore.fail(job.id, why, retry=retry, worker_id="gpu-0")

                return await AsyncWorker(astore, "gpu-0", ahandler).run(max_jobs=1)

        report = Worker(store, "gpu-0", handler).run(max_jobs=1) if loop == "sync" else asyncio.run(main())
        assert report == WorkerReport(failed=1)
        seen = store.get_generation(job.id)
        assert seen is not None and seen.status is (Status.PENDING if retry else Status.FAILED)
