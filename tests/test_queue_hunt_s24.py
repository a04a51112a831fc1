"""Regressions found by a hunt over the queue (session 24), on both backends and both drivers."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from musicstore import AsyncStore, IdempotencyConflict, Status, Store
from musicstore.maintenance.reconcile import reconcile
from musicstore.testing import FakeClock
from tests.conftest import new_job

NEW: dict[str, Any] = {"model_name": "musicgen-small", "duration_seconds": 30.0}


def _complete_three(store: Store, clock: FakeClock) -> None:
    """Three completions 20 s apart: 1.5 a minute over a 120 s window (one every 40 s)."""
    for i in range(3):
        new_job(store, f"done {i}")
        claimed = store.claim_next("gpu-0")
        assert claimed is not None
        clock.advance(20)
        store.complete_generation(claimed.id, file_path=f"{claimed.id}.wav", file_size_bytes=10)


def test_the_eta_of_a_job_waiting_for_its_run_after_is_not_before_it(
    store: Store, clock: FakeClock, db_url: str
) -> None:
    # a job scheduled for tomorrow (or backing off before its retry) was given the ETA of a job due now: 40 s
    # at one completion every 40 s, though no claim takes it before tomorrow
    _complete_three(store, clock)
    tomorrow = new_job(store, "tomorrow's intro", run_after=clock.now + timedelta(days=1))
    position = store.queue_position(tomorrow.id, window_seconds=120)
    assert (position.status, position.ahead, position.completed_per_minute) == (Status.PENDING, 0, 1.5)
    assert position.eta_seconds == 86_400 + 40  # its run_after, then its own job's time at the rate
    soon = new_job(store, "in ten seconds", run_after=clock.now + timedelta(seconds=10))
    assert store.queue_position(soon.id, window_seconds=120).eta_seconds == 10 + 40
    clock.advance(10)
    assert store.queue_position(soon.id, window_seconds=120).eta_seconds == 40  # due now: as any job
    ahead = [new_job(store, f"ready {i}") for i in range(3)]
    behind = new_job(store, "in a second, behind three", run_after=clock.now + timedelta(seconds=1))
    assert store.queue_position(behind.id, window_seconds=120).ahead == 4  # `soon` and the three
    assert store.queue_position(behind.id, window_seconds=120).eta_seconds == 5 * 40  # the queue is longer
    assert store.queue_position(ahead[0].id, window_seconds=120).eta_seconds == 2 * 40

    async def from_async() -> float | None:
        async with AsyncStore.open(db_url, clock=clock) as driver:
            return (await driver.queue_position(tomorrow.id, window_seconds=120)).eta_seconds

    assert asyncio.run(from_async()) == 86_400 - 10 + 40


def test_an_idempotent_retry_of_a_job_completed_once_then_failed_by_reconcile_returns_it(
    db_url: str, tmp_path: Path
) -> None:
    # a completed job's metadata has the export's figures merged in, and a retry agreed with it only while
    # the job was completed: once reconcile's repair marked it failed (its master lost), and after its
    # replay, the same request was an IdempotencyConflict ("with another metadata")
    request: dict[str, Any] = {"metadata": {"genre": "lofi"}, "owner_key": "u", "idempotency_key": "u:1"}
    with Store(db_url) as store:
        job = new_job(store, **request)
        assert store.claim_next("gpu-0") is not None
        (tmp_path / "a.wav").write_bytes(b"x" * 10)
        figures = {"genre": "lofi", "loudness_lufs": -14.0}
        store.complete_generation(job.id, file_path="a.wav", file_size_bytes=10, metadata=figures)
        assert new_job(store, **request).id == job.id
        (tmp_path / "a.wav").unlink()
        reconcile(store, tmp_path, repair=True)
        assert store.get_generation(job.id).status is Status.FAILED  # type: ignore[union-attr]
        assert new_job(store, **request).id == job.id
        with pytest.raises(IdempotencyConflict):  # a different request is still one
            new_job(store, **{**request, "metadata": {"genre": "metal"}})
        with pytest.raises(IdempotencyConflict):
            new_job(store, **{**request, "metadata": {"genre": "lofi", "bpm": 90}})
        # a name the export writes is not compared: its value is the export's (tests/test_review_s38.py)
        louder = {"genre": "lofi", "loudness_lufs": -9.0}
        assert new_job(store, **{**request, "metadata": louder}).id == job.id
        assert store.replay(job.id).status is Status.PENDING
        assert new_job(store, **request).id == job.id

    async def from_async() -> str:
        async with AsyncStore.open(db_url) as driver:
            return (await driver.create_generation("lofi hip hop at 90 BPM", **NEW, **request)).id

    assert asyncio.run(from_async()) == job.id


def test_a_job_never_completed_agrees_only_with_its_own_metadata(db_url: str) -> None:
    with Store(db_url) as store:
        job = new_job(store, metadata={"genre": "lofi", "bpm": 90}, idempotency_key="k")
        assert store.claim_next("gpu-0") is not None
        store.fail(job.id, "out of memory", retry=False)
        with pytest.raises(IdempotencyConflict):  # fewer keys than the first request: not the same one
            new_job(store, metadata={"genre": "lofi"}, idempotency_key="k")
        assert new_job(store, metadata={"bpm": 90, "genre": "lofi"}, idempotency_key="k").id == job.id
