"""Regressions found in the job queue (session 25): progress coalescing and rolled-back reports, replay of a
generation that lost its file, on both backends, sync and async where both exist."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from musicstore import Store
from musicstore.aio import AsyncStore
from musicstore.ops import progress
from tests.conftest import FakeClock, new_job


class Ticks:
    """A monotonic clock moved by hand, for the coalescer."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Rollback(Exception):
    """Raised inside a transaction to roll it back."""


def _stage_of(store: Store, generation_id: str) -> tuple[float | None, str | None]:
    read = store.get_generation(generation_id)
    assert read is not None
    return read.progress, read.stage


def test_a_report_rolled_back_with_its_transaction_is_not_remembered_by_the_coalescer(
    store: Store,
) -> None:
    """A report written inside ``store.transaction()`` that then rolls back stored nothing: the coalescer
    remembered it all the same, so the next report of that stage within the interval was dropped (returned
    False) and the row kept no progress at all. Its next report is written now; a report inside a
    transaction that commits is remembered as before (the next within the interval dropped)."""
    ticks = Ticks()
    progress.coalescer(store).clock = ticks
    job = new_job(store)
    assert store.claim_next("gpu-0") is not None
    with pytest.raises(Rollback), store.transaction():
        assert store.report_progress(job.id, "gpu-0", 0.25, "sampling")
        assert not store.report_progress(job.id, "gpu-0", 0.3, "sampling")  # coalesced within the transaction
        raise Rollback
    assert _stage_of(store, job.id) == (None, None)
    ticks.now += 0.1
    assert store.report_progress(job.id, "gpu-0", 0.3, "sampling")  # was dropped: nothing was stored
    assert _stage_of(store, job.id) == (0.3, "sampling")
    ticks.now += 0.1
    # a rolled-back report of a new stage: the coalescer is back to the last written report ("sampling")
    with pytest.raises(Rollback), store.transaction():
        assert store.report_progress(job.id, "gpu-0", 0.5, "decoding")
        raise Rollback
    assert not store.report_progress(job.id, "gpu-0", 0.35, "sampling")  # "sampling" written 0.1 s ago
    assert store.report_progress(job.id, "gpu-0", 0.5, "decoding")
    ticks.now += 0.1
    with store.transaction():  # committed: remembered
        assert store.report_progress(job.id, "gpu-0", 0.6, "mixing")
    assert not store.report_progress(job.id, "gpu-0", 0.65, "mixing")
    assert _stage_of(store, job.id) == (0.6, "mixing")


def test_an_async_report_rolled_back_with_its_transaction_is_not_remembered(
    db_url: str, clock: FakeClock
) -> None:
    """As above, for ``AsyncStore``: a report in a transaction its block's error rolls back is forgotten; one
    in a transaction that commits is remembered."""

    async def main() -> None:
        async with AsyncStore.open(db_url, clock=clock) as store:
            ticks = Ticks()
            progress.coalescer(store).clock = ticks
            job = await store.create_generation("lofi", model_name="musicgen-small", duration_seconds=8)
            assert await store.claim_next("gpu-0") is not None
            with pytest.raises(Rollback):
                async with store.transaction():
                    assert await store.report_progress(job.id, "gpu-0", 0.25, "sampling")
                    assert not await store.report_progress(job.id, "gpu-0", 0.3, "sampling")
                    raise Rollback
            ticks.now += 0.1
            assert await store.report_progress(job.id, "gpu-0", 0.3, "sampling")
            read: Any = await store.get_generation(job.id)
            assert (read.progress, read.stage) == (0.3, "sampling")
            ticks.now += 0.1
            async with store.transaction():
                assert await store.report_progress(job.id, "gpu-0", 0.6, "mixing")
            assert not await store.report_progress(job.id, "gpu-0", 0.65, "mixing")

    asyncio.run(main())
