"""The lead's fixes of session 25, each with the test that failed before it."""

from __future__ import annotations

import asyncio

from musicstore import Store
from musicstore.aio import AsyncStore
from tests.conftest import new_job


def test_a_job_of_a_paused_key_has_no_eta(db_url: str) -> None:
    """``queue_position`` gives no ETA (None) for a pending job whose owner key is paused (a limit of 0): no
    claim takes it until the key is resumed. Before, it gave (ahead + 1) / throughput, as for any job: 60 s
    for a job that would never run. Resumed, or under a limit above 0, the ETA is back; sync and async."""
    with Store(db_url) as store:
        done = new_job(store, "done")
        assert store.claim_next("gpu-0") is not None
        store.complete_generation(done.id, file_path="done.wav", file_size_bytes=1)  # a throughput
        job = new_job(store, "paused", owner_key="alice")
        store.set_owner_limit("alice", 0)
        assert store.queue_position(job.id).eta_seconds is None

        async def read() -> int | float | None:
            async with AsyncStore.open(db_url) as async_store:
                return (await async_store.queue_position(job.id)).eta_seconds

        assert asyncio.run(read()) is None
        store.set_owner_limit("alice", 1)
        assert store.queue_position(job.id).eta_seconds is not None
        store.set_owner_limit("alice", None)
        assert store.queue_position(job.id).eta_seconds is not None
        other = new_job(store, "no key")
        assert store.queue_position(other.id).eta_seconds is not None
