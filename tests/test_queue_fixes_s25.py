"""Regressions found in the job queue (session 25): progress coalescing and rolled-back reports, replay of a
generation that lost its file, on both backends, sync and async where both exist."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from musicstore import Status, Store
from musicstore.aio import AsyncStore
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.usage import storage_stats
from musicstore.ops import progress
from musicstore.ops.storage import get_storage, record_storage
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


def _completed_with_file(store: Store, root: Path, prompt: str, size: int) -> str:
    """A generation completed with a file of ``size`` bytes under ``root``, its storage recorded as
    ``musicstore.recording`` records it."""
    job = new_job(store, prompt, model_name="musicgen-replay")
    claimed = store.claim_next("gpu-0")
    assert claimed is not None and claimed.id == job.id
    key = f"{job.id}.wav"
    (root / key).write_bytes(b"x" * size)
    with store.transaction() as tx:
        tx.complete_generation(job.id, file_path=key, file_size_bytes=size, generation_time_seconds=3.0)
        tx.run(record_storage, job.id, storage_url=root.as_uri(), key=key, checksum="0" * 64)
    return job.id


def _bytes(store: Store) -> tuple[int, int, int, int, int, int]:
    """The recorded bytes as every total reads them: all, pending, completed, by model, by day, and the
    database stats' total."""
    stats = storage_stats(store)
    return (
        stats.file_bytes,
        stats.by_status["pending"].file_bytes,
        stats.by_status["completed"].file_bytes,
        sum(bucket.file_bytes for bucket in stats.by_model.values()),
        sum(bucket.file_bytes for bucket in stats.by_day.values()),
        store.get_database_stats().total_file_bytes,
    )


def test_a_replayed_dead_letter_that_lost_its_file_has_no_file_until_it_completes_again(
    db_url: str, tmp_path: Path
) -> None:
    """A completed generation that reconcile's repair marked failed (its master missing, or damaged: the row
    then records the bytes on disk) kept its file's size, storage, checksum and generation time when
    replayed, so a pending job recorded a file: ``storage_stats`` and ``get_database_stats`` counted its
    bytes under pending, and ``get_storage`` named a checksum and size for a job that has no file yet. Now
    ``replay`` and ``replay_all`` clear them (its ``file_path`` stays: the key its next export writes again,
    and the mark of a job completed once for idempotency); the trigger-kept totals follow, and once it
    completes again they count its new file."""
    root = tmp_path / "out"
    root.mkdir()
    with Store(db_url) as store:
        lost = _completed_with_file(store, root, "lost master", 100)
        damaged = _completed_with_file(store, root, "damaged master", 200)
        (root / f"{lost}.wav").unlink()
        (root / f"{damaged}.wav").write_bytes(b"x" * 50)
        report = reconcile(store, root, repair=True)
        assert report.dangling_count == 2
        assert _bytes(store)[0] == 50  # the damaged file's bytes on disk, under failed
        assert store.replay(lost).status is Status.PENDING
        assert store.replay_all() == [damaged]
        for gid in (lost, damaged):
            row = store.get_generation(gid)
            assert row is not None and row.is_pending
            assert (row.file_size_bytes, row.generation_time_seconds) == (None, None)
            assert row.file_path == f"{gid}.wav"
            stored = store.run(get_storage, gid)
            assert (stored.storage_url, stored.size, stored.checksum) == (None, None, None)
        assert _bytes(store) == (0, 0, 0, 0, 0, 0)
        for gid, size in ((lost, 300), (damaged, 400)):
            claimed = store.claim_next("gpu-0")
            assert claimed is not None and claimed.id == gid
            store.complete_generation(gid, file_path=f"{gid}.wav", file_size_bytes=size)
        assert _bytes(store) == (700, 0, 700, 700, 700, 700)
