"""A cancel, or a lost lease, reaches a worker at its very next progress report, a coalesced one too (it
reads the row, no write): claim, report, cancel, report raised nothing before session 28 (the second report
was dropped by the coalescer without a check). Both backends, sync and async, the cancel from another
store (an API server's)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from musicstore import AsyncStore, Status, Store
from musicstore.errors import Cancelled, LeaseLost, NotFound
from tests.conftest import FakeClock, new_job


def test_a_dropped_report_raises_cancelled(store: Any, db_url: str, clock: FakeClock) -> None:
    job = new_job(store)
    assert store.claim_next("w1") is not None
    assert store.report_progress(job.id, "w1", 0.1, "sampling") is True
    assert store.report_progress(job.id, "w1", 0.2, "sampling") is False  # dropped, the job still ours
    with Store(db_url, clock=clock) as api:  # the API server's store
        api.cancel(job.id, "the user pressed stop")
    with pytest.raises(Cancelled):
        store.report_progress(job.id, "w1", 0.3, "sampling")
    after = store.get_generation(job.id)
    assert after.status == Status.CANCELLED and after.progress == pytest.approx(0.1)  # nothing written


def test_a_dropped_report_raises_lease_lost_and_not_found(store: Any, clock: FakeClock) -> None:
    job = new_job(store)
    assert store.claim_next("w1", lease_seconds=10) is not None
    assert store.report_progress(job.id, "w1", 0.1, "sampling") is True
    clock.advance(11)
    assert store.requeue_expired().requeued == [job.id]
    assert store.claim_next("w2") is not None
    with pytest.raises(LeaseLost) as lost:
        store.report_progress(job.id, "w1", 0.2, "sampling")
    assert not isinstance(lost.value, Cancelled)
    other = new_job(store, "ambient drones")
    assert store.claim_next("w3") is not None
    assert store.report_progress(other.id, "w3", 0.1, "sampling") is True
    store.cancel(other.id)
    store.delete_generation(other.id)
    with pytest.raises(NotFound):
        store.report_progress(other.id, "w3", 0.2, "sampling")


def test_async_dropped_report_raises_cancelled(db_url: str, clock: FakeClock) -> None:
    async def main() -> None:
        async with AsyncStore(db_url, clock=clock) as store:
            job = await store.create_generation("lofi", model_name="m", duration_seconds=5.0)
            assert await store.claim_next("w1") is not None
            assert await store.report_progress(job.id, "w1", 0.1, "sampling") is True
            assert await store.report_progress(job.id, "w1", 0.2, "sampling") is False
            await store.cancel(job.id)
            with pytest.raises(Cancelled):
                await store.report_progress(job.id, "w1", 0.3, "sampling")

    asyncio.run(main())
