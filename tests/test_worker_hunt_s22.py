"""Regressions found by a hunt over the worker loop (session 22), both loops, both backends:

- a worker given the other kind of store (``AsyncWorker`` on a blocking ``Store``, ``Worker`` on an
  ``AsyncStore``) failed only at its first job, with a bare TypeError or AttributeError; an ``AsyncWorker``'s
  blocking claim had taken the job already, which stayed processing (an attempt used) until its lease expired.
"""

from __future__ import annotations

import asyncio

import pytest

from musicstore import InvalidInput, Status, Store
from musicstore.aio import AsyncStore
from musicstore.worker import AsyncJob, AsyncWorker, Worker
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
