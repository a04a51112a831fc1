"""Progress from inside a running job (coalesced writes, Cancelled and LeaseLost at a report) and a pending
job's queue position and ETA, on both backends, sync and async."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore import InvalidInput, LeaseLost, NotFound, Status, Store
from musicstore.aio import AsyncStore
from musicstore.errors import Cancelled
from musicstore.ops import progress
from musicstore.ops.progress import Coalescer, QueuePosition
from tests.conftest import FakeClock, new_job

MISSING = "01a20180-5e48-7dc6-afbf-cdf54fb09fcb"

PROGRESS_INDEXED: dict[str, tuple[dict[str, Any], str | None]] = {
    # the jobs ahead of one in its lane: ranges of the lane index (0008), stopped at the cap
    "count_lane_higher": (
        {"owner_key": "", "priority": 0, "now": datetime(2030, 1, 1, tzinfo=UTC), "cap": 100},
        "generations_lane_queue",
    ),
    # (PostgreSQL may walk its pending index by (created_at, id) instead when, as in test_plans' rows, every
    # pending job is in one lane: the same rows either way)
    "count_lane_before": (
        {
            "owner_key": "",
            "priority": 0,
            "created_at": datetime(2030, 1, 1, tzinfo=UTC),
            "id": MISSING,
            "now": datetime(2030, 1, 1, tzinfo=UTC),
            "cap": 9,
        },
        "generations_lane_queue|generations_pending",
    ),
    # completions in the ETA's window: a range of the completed index (0009)
    "count_completed_since": ({"since": datetime(2020, 1, 1, tzinfo=UTC)}, "generations_completed_at"),
}
"""The plans of this module's read queries (checked with the others' by tests/test_plans.py)."""


class Ticks:
    """A monotonic clock moved by hand, for the coalescer."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _ticking(store: Any) -> Ticks:
    ticks = Ticks()
    progress.coalescer(store).clock = ticks
    return ticks


def test_progress_is_written_and_read_back(store: Store, clock: FakeClock) -> None:
    job = new_job(store)
    assert job.progress is None and job.stage is None and job.progress_at is None
    claimed = store.claim_next("gpu-0")
    assert claimed is not None and claimed.progress is None
    clock.advance(2)
    assert store.report_progress(job.id, "gpu-0", 0.25, "sampling") is True
    read = store.get_generation(job.id)
    assert read is not None
    assert (read.progress, read.stage, read.progress_at) == (0.25, "sampling", clock.now)
    assert store.list_generations().items[0].stage == "sampling"


def test_reports_are_coalesced_per_job_and_worker(store: Store) -> None:
    ticks = _ticking(store)
    job = new_job(store)
    assert store.claim_next("gpu-0") is not None
    assert store.report_progress(job.id, "gpu-0", 0.1, "sampling")
    ticks.now += 0.5
    assert not store.report_progress(job.id, "gpu-0", 0.2, "sampling")  # too soon, same stage: dropped
    read = store.get_generation(job.id)
    assert read is not None and read.progress == 0.1
    assert store.report_progress(job.id, "gpu-0", 0.3, "decoding")  # a new stage is written at once
    ticks.now += 0.5
    assert not store.report_progress(job.id, "gpu-0", 0.4, "decoding")
    ticks.now += progress.PROGRESS_INTERVAL_SECONDS
    assert store.report_progress(job.id, "gpu-0", 0.5, "decoding")  # the interval passed
    assert store.report_progress(job.id, "gpu-0", 1.0, "decoding")  # done is written at once
    read = store.get_generation(job.id)
    assert read is not None and (read.progress, read.stage) == (1.0, "decoding")


def test_cancel_of_a_running_job_reaches_the_worker_at_its_next_report_and_heartbeat(store: Store) -> None:
    _ticking(store)
    job = new_job(store)
    assert store.claim_next("gpu-0") is not None
    assert store.report_progress(job.id, "gpu-0", 0.1, "sampling")
    store.cancel(job.id, "the user pressed stop")
    read = store.get_generation(job.id)
    assert read is not None and read.status is Status.CANCELLED and read.worker_id == "gpu-0"
    with pytest.raises(Cancelled, match="cancelled") as raised:
        store.report_progress(job.id, "gpu-0", 0.2, "decoding")
    assert raised.value.current == Status.CANCELLED
    with pytest.raises(Cancelled):
        store.heartbeat(job.id, "gpu-0")
    with pytest.raises(Cancelled):
        store.complete_generation(job.id, file_path="a.wav", file_size_bytes=1, worker_id="gpu-0")
    read = store.get_generation(job.id)
    assert read is not None and read.status is Status.CANCELLED and read.progress == 0.1


def test_a_worker_whose_job_was_taken_back_gets_lease_lost_not_cancelled(
    store: Store, clock: FakeClock
) -> None:
    job = new_job(store)
    assert store.claim_next("gpu-0", lease_seconds=10) is not None
    clock.advance(11)
    store.requeue_expired()
    with pytest.raises(LeaseLost) as raised:
        store.report_progress(job.id, "gpu-0", 0.5)
    assert not isinstance(raised.value, Cancelled)
    assert store.claim_next("gpu-1") is not None
    with pytest.raises(LeaseLost) as raised:
        store.report_progress(job.id, "gpu-0", 0.6, "other")
    assert not isinstance(raised.value, Cancelled)
    with pytest.raises(NotFound):
        store.report_progress(MISSING, "gpu-0", 0.5)


@pytest.mark.parametrize(
    ("fraction", "stage"),
    [(-0.1, None), (1.01, None), (math.nan, None), (math.inf, None), (True, None), ("0.5", None), (0.5, ""),
     (0.5, "x" * (progress.MAX_STAGE_CHARS + 1)), (0.5, 3)],
)  # fmt: skip
def test_bad_reports_are_refused_even_when_they_would_be_coalesced(
    store: Store, fraction: Any, stage: Any
) -> None:
    _ticking(store)
    job = new_job(store)
    assert store.claim_next("gpu-0") is not None
    assert store.report_progress(job.id, "gpu-0", 0.1)
    with pytest.raises(InvalidInput):
        store.report_progress(job.id, "gpu-0", fraction, stage)
    with pytest.raises(InvalidInput):
        store.report_progress("not-an-id", "gpu-0", 0.1)


def test_queue_position_counts_the_jobs_ahead_in_claim_order(store: Store, clock: FakeClock) -> None:
    jobs = []
    for i in range(4):
        jobs.append(new_job(store, f"song {i}"))
        clock.advance(1)
    assert [store.queue_position(j.id).ahead for j in jobs] == [0, 1, 2, 3]
    first = store.claim_next("gpu-0")
    assert first is not None and first.id == jobs[0].id
    position = store.queue_position(jobs[0].id)
    assert (position.status, position.ahead, position.eta_seconds) == (Status.PROCESSING, None, None)
    assert [store.queue_position(j.id).ahead for j in jobs[1:]] == [0, 1, 2]
    assert store.queue_position(jobs[3].id).eta_seconds is None  # nothing completed yet: no rate
    with pytest.raises(NotFound):
        store.queue_position(MISSING)
    with pytest.raises(InvalidInput):
        store.queue_position(jobs[1].id, window_seconds=0)


def test_queue_position_follows_priority_within_a_lane_and_counts_only_its_lane(
    store: Store, clock: FakeClock
) -> None:
    def job(name: str, **kwargs: Any) -> str:
        clock.advance(1)
        return new_job(store, name, **kwargs).id

    old_low = job("old, low priority", owner_key="alice")
    alice = [job(f"alice {i}", owner_key="alice", priority=5) for i in range(3)]
    bob = job("bob", owner_key="bob")
    keyless = [job("no key"), job("no key, urgent", priority=9)]
    assert [store.queue_position(g).ahead for g in alice] == [0, 1, 2]
    assert store.queue_position(old_low).ahead == 3  # higher priorities first, whatever their age
    assert store.queue_position(bob).ahead == 0  # alice's backlog is another lane
    assert [store.queue_position(g).ahead for g in keyless] == [1, 0]


def test_eta_comes_from_completions_in_the_window(store: Store, clock: FakeClock) -> None:
    for i in range(3):
        new_job(store, f"done {i}")
    for _ in range(3):
        claimed = store.claim_next("gpu-0")
        assert claimed is not None
        clock.advance(20)
        store.complete_generation(claimed.id, file_path=f"{claimed.id}.wav", file_size_bytes=10)
    waiting = [new_job(store, f"waiting {i}") for i in range(2)]
    position = store.queue_position(waiting[1].id, window_seconds=120)
    assert position == QueuePosition(waiting[1].id, Status.PENDING, 1, False, 1.5, 120.0, 80)
    clock.advance(600)  # the completions leave the window
    assert store.queue_position(waiting[1].id, window_seconds=120).eta_seconds is None


@given(
    reports=st.lists(
        st.tuples(
            st.floats(0, 3, allow_nan=False),
            st.sampled_from([None, "a", "b"]),
            st.sampled_from([0.0, 0.5, 1.0]),
        ),
        max_size=40,
    )
)
@settings(max_examples=200, deadline=None)
def test_coalescing_never_drops_a_change_of_stage_nor_writes_faster_than_the_interval(
    reports: list[tuple[float, str | None, float]],
) -> None:
    """Property: a report is written iff it is the first, its stage differs from the last written one, it is
    done (1.0), or the interval passed since the last write."""
    ticks = Ticks()
    coalescer = Coalescer(1.0, clock=ticks)
    last: tuple[float, str | None] | None = None
    for step, label, done in reports:
        ticks.now += step
        due = coalescer.due("g", "w", done, label)
        expected = last is None or label != last[1] or done >= 1.0 or ticks.now - last[0] >= 1.0
        assert due == expected
        if due:
            coalescer.wrote("g", "w", label)
            last = (ticks.now, label)
    assert coalescer.due("g", "w", 0.0, "c")  # a label never written is always due


def test_coalescer_remembers_a_bounded_number_of_jobs() -> None:
    coalescer = Coalescer(10.0, clock=Ticks())
    for i in range(progress._TRACKED + 10):
        coalescer.wrote(str(i), "w", None)
    assert len(coalescer._last) == progress._TRACKED
    newest = str(progress._TRACKED + 9)
    assert coalescer.due("0", "w", 0.0, None) and not coalescer.due(newest, "w", 0.0, None)


def test_async_progress_cancel_and_queue_position(db_url: str, clock: FakeClock) -> None:
    async def main() -> None:
        async with AsyncStore.open(db_url, clock=clock) as store:
            progress.coalescer(store).clock = Ticks()
            first = await store.create_generation("a", model_name="m", duration_seconds=1)
            second = await store.create_generation("b", model_name="m", duration_seconds=1)
            assert (await store.queue_position(second.id)).ahead == 1
            assert await store.claim_next("gpu-0") is not None
            assert (await store.queue_position(second.id)).ahead == 0
            assert await store.report_progress(first.id, "gpu-0", 0.5, "sampling")
            assert not await store.report_progress(first.id, "gpu-0", 0.6, "sampling")
            read = await store.get_generation(first.id)
            assert read is not None and (read.progress, read.stage) == (0.5, "sampling")
            await store.cancel(first.id)
            with pytest.raises(Cancelled):
                await store.report_progress(first.id, "gpu-0", 0.7, "decoding")

    asyncio.run(main())
