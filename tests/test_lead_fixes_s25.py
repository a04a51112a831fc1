"""The lead's fixes of session 25, each with the test that failed before it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

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


def test_the_generation_page_names_a_requeued_jobs_start_its_last_claim(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A retry keeps the last claim's ``started_at`` (the unkeyed lane's round robin reads it): the page of a
    job pending again names that time "Last claimed", not "Started" beside a pending badge; a job that
    runs shows "Started"."""
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from musicstore.web import create_app

    with Store(sqlite_url) as store:
        job = new_job(store)
        assert store.claim_next("gpu-0") is not None
        with TestClient(create_app(store, root=tmp_path)) as client:
            running = client.get(f"/generations/{job.id}").text
            store.fail(job.id, "out of memory", max_attempts=3)
            again = client.get(f"/generations/{job.id}").text
    assert "<th>Started</th>" in running and "Last claimed" not in running
    assert "<th>Last claimed</th>" in again and "<th>Started</th>" not in again
