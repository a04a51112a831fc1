"""``musicstore.worker.AsyncWorker``: the asyncio worker loop on an ``AsyncStore``, both backends, and the one
plan (``_Loop.plan``) that it and ``Worker`` answer: fed the same outcomes, both keep the same report and
make the same calls (hypothesis, with stores that only record). The SIGTERM tests of both loops, as real
subprocesses, are in ``tests/test_cancel_running.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore import LeaseLost, Status, Store
from musicstore.aio import AsyncStore
from musicstore.errors import Cancelled, InvalidInput
from musicstore.models import Generation, RetryPolicy
from musicstore.worker import AsyncJob, AsyncWorker, Job, Worker, WorkerReport
from tests.conftest import FakeClock, new_job


def _run(db_url: str, clock: FakeClock, body: Callable[[AsyncStore], Awaitable[None]]) -> None:
    async def main() -> None:
        async with AsyncStore.open(db_url, clock=clock) as store:
            await body(store)

    asyncio.run(main())


async def _complete(store: AsyncStore, job: AsyncJob) -> None:
    await job.progress(0.5, "sampling")
    await store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=1, worker_id="gpu-0")


def test_an_async_worker_runs_jobs_fails_a_raising_handler_and_drops_a_cancelled_job(
    db_url: str, clock: FakeClock
) -> None:
    async def body(store: AsyncStore) -> None:
        await store.create_generation("done", model_name="m", duration_seconds=8)
        broken = await store.create_generation("broken", model_name="m", duration_seconds=8)
        cancelled = await store.create_generation("cancelled", model_name="m", duration_seconds=8)

        async def handler(job: AsyncJob) -> None:
            assert not job.stopping and job.generation.status is Status.PROCESSING
            if job.id == broken.id:
                raise RuntimeError("the model ran out of memory")
            if job.id == cancelled.id:
                await job.progress(0.1, "sampling")
                await store.cancel(job.id, "the user pressed stop")
                await job.progress(0.2, "decoding")  # a new stage is written at once: Cancelled
                raise AssertionError("not reached")
            await _complete(store, job)

        report = await AsyncWorker(store, "gpu-0", handler, max_attempts=1).run(max_jobs=3)
        assert report == WorkerReport(done=1, cancelled=1, lost=0, failed=1)
        rows = {g.prompt: g for g in await store.get_all_generations()}
        assert rows["done"].status is Status.COMPLETED and rows["done"].progress == 0.5
        assert rows["broken"].status is Status.FAILED  # its one attempt is used
        assert rows["broken"].error_message == "RuntimeError: the model ran out of memory"
        assert rows["cancelled"].status is Status.CANCELLED and rows["cancelled"].progress == 0.1
        assert rows["cancelled"].error_message == "the user pressed stop"

    _run(db_url, clock, body)


def test_an_async_workers_failed_job_is_retried_after_its_backoff(db_url: str, clock: FakeClock) -> None:
    async def body(store: AsyncStore) -> None:
        job = await store.create_generation("flaky", model_name="m", duration_seconds=8)

        async def handler(job: AsyncJob) -> None:
            raise RuntimeError("the GPU fell off the bus")

        worker = AsyncWorker(store, "gpu-0", handler, backoff=RetryPolicy(base_seconds=60, jitter=0))
        assert await worker.run(max_jobs=1) == WorkerReport(failed=1)
        read = await store.get_generation(job.id)
        assert read is not None and read.status is Status.PENDING and read.attempts == 1
        assert read.error_message == "RuntimeError: the GPU fell off the bus"
        assert read.run_after == clock.now + timedelta(seconds=60)
        assert await store.claim_next("gpu-1") is None  # not before its backoff
        clock.advance(60)
        assert await store.claim_next("gpu-1") is not None

    _run(db_url, clock, body)


def test_an_async_worker_learns_of_a_cancel_at_its_heartbeat_and_of_a_lost_lease(
    db_url: str, clock: FakeClock
) -> None:
    async def body(store: AsyncStore) -> None:
        first = await store.create_generation("cancelled", model_name="m", duration_seconds=8)
        await store.create_generation("taken back", model_name="m", duration_seconds=8)

        beating: list[str] = []  # a failed assert in the handler would be the job's failure: count instead

        async def handler(job: AsyncJob) -> None:
            if job.id == first.id:
                await store.cancel(job.id)
            else:  # its lease runs out and another worker takes it
                clock.advance(31)
                if (await store.requeue_expired()).requeued == [job.id]:
                    taken = await store.claim_next("gpu-1")
                    if taken is not None and taken.id == job.id:
                        beating.append(job.id)
            beating.append(job.id)
            await job.heartbeat()

        worker = AsyncWorker(store, "gpu-0", handler, lease_seconds=30)
        assert await worker.run(max_jobs=2) == WorkerReport(cancelled=1, lost=1)
        assert beating[0] == first.id and len(beating) == 3  # the second was taken by gpu-1 first
        taken_back = await store.get_generation(beating[1])
        assert taken_back is not None and taken_back.worker_id == "gpu-1" and taken_back.is_processing

    _run(db_url, clock, body)


def test_stop_lets_the_async_job_in_hand_finish_and_claims_no_more(db_url: str, clock: FakeClock) -> None:
    async def body(store: AsyncStore) -> None:
        first = await store.create_generation("first", model_name="m", duration_seconds=8)
        second = await store.create_generation("second", model_name="m", duration_seconds=8)

        async def handler(job: AsyncJob) -> None:
            worker.stop()
            assert job.stopping
            await _complete(store, job)

        worker = AsyncWorker(store, "gpu-0", handler)
        assert await worker.run() == WorkerReport(done=1)
        statuses = [(await store.get_generation(g.id)).status for g in (first, second)]  # type: ignore[union-attr]
        assert statuses == [Status.COMPLETED, Status.PENDING]

    _run(db_url, clock, body)


def test_an_idle_async_worker_is_woken_by_an_enqueue_and_stops_when_told(
    db_url: str, clock: FakeClock
) -> None:
    async def body(store: AsyncStore) -> None:
        ran: list[str] = []

        async def handler(job: AsyncJob) -> None:
            ran.append(job.generation.prompt)
            await _complete(store, job)

        worker = AsyncWorker(store, "gpu-0", handler)
        running = asyncio.ensure_future(worker.run())
        await asyncio.sleep(0.2)  # asleep in claim_next(wait=...)
        with Store(db_url, clock=clock) as other:  # another process's enqueue
            await asyncio.to_thread(new_job, other, "arrives later")
        while not ran:
            await asyncio.sleep(0.01)
        worker.stop()
        assert await asyncio.wait_for(running, 30) == WorkerReport(done=1)
        assert ran == ["arrives later"]

    _run(db_url, clock, body)


def test_bad_worker_settings_are_refused(sqlite_url: str) -> None:
    async def handler(job: AsyncJob) -> None:
        return None

    async def body(store: AsyncStore) -> None:
        for bad in ({"lease_seconds": 0}, {"max_attempts": 0}, {"lease_seconds": float("nan")}):
            with pytest.raises(InvalidInput):
                AsyncWorker(store, "gpu-0", handler, **bad)
        with pytest.raises(InvalidInput):
            AsyncWorker(store, "", handler)
        with pytest.raises(InvalidInput):
            await AsyncWorker(store, "gpu-0", handler).run(max_jobs=0)

    _run(sqlite_url, FakeClock(), body)


# The one plan, answered by both loops: stores that record the calls and hand out scripted outcomes.

OUTCOMES = ["done", "cancelled", "lost", "raises", "raises+cancelled", "raises+lost", "idle"]
GID = "01a20180-5e48-7dc6-afbf-cdf54fb09fcb"
JOB = Generation(GID, "p", "m", None, 1.0, 32_000, 2, Status.PROCESSING, datetime(2026, 1, 1, tzinfo=UTC))


class _Script:
    """What the claims return and what the handler and ``fail`` raise, per claimed job, in order."""

    def __init__(self, outcomes: list[str], worker: list[Any]) -> None:
        self.outcomes, self.worker = list(outcomes), worker
        self.calls: list[str] = []
        self.current = ""

    def claim(self, worker_id: str, options: dict[str, Any]) -> Generation | None:
        self.calls.append(f"claim {worker_id} {sorted(options.items())}")
        if not self.outcomes:
            self.worker[0].stop()  # the script is over: the loop ends after this claim
            return None
        self.current = self.outcomes.pop(0)
        if self.current == "idle":
            return None
        return JOB

    def handle(self) -> None:
        self.calls.append("handle")
        if self.current == "cancelled":
            raise Cancelled("cancelled")
        if self.current == "lost":
            raise LeaseLost("lost")
        if self.current.startswith("raises"):
            raise ValueError("x" * 2000)

    def fail(self, generation_id: str, message: str, options: dict[str, Any]) -> None:
        self.calls.append(f"fail {generation_id} {message[:11]} {len(message)} {sorted(options.items())}")
        if self.current == "raises+cancelled":
            raise Cancelled("cancelled as it failed")
        if self.current == "raises+lost":
            raise LeaseLost("taken back as it failed")


class _SyncStore:
    """Waits as a store does (``musicstore.waiting``), on a SQLite listener that no commit ever wakes."""

    url = SimpleNamespace(dialect="sqlite", path=":memory:")
    _translating = nullcontext()

    def __init__(self, script: _Script) -> None:
        self.script = script

    def claim_next(self, worker_id: str, **options: Any) -> Generation | None:
        return self.script.claim(worker_id, options)

    def fail(self, generation_id: str, message: str, **options: Any) -> None:
        self.script.fail(generation_id, message, options)


class _AsyncStore(_SyncStore):
    async def claim_next(self, worker_id: str, **options: Any) -> Generation | None:  # type: ignore[override]
        await asyncio.sleep(0)
        return self.script.claim(worker_id, options)

    async def fail(self, generation_id: str, message: str, **options: Any) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        self.script.fail(generation_id, message, options)


def _expected(outcomes: list[str], max_jobs: int | None) -> WorkerReport:
    report = WorkerReport()
    for outcome in outcomes:
        if max_jobs is not None and report.claimed >= max_jobs:
            break
        if outcome == "done":
            report.done += 1
        elif outcome in {"cancelled", "raises+cancelled"}:
            report.cancelled += 1
        elif outcome in {"lost", "raises+lost"}:
            report.lost += 1
        elif outcome == "raises":
            report.failed += 1
    return report


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(OUTCOMES), max_size=12), st.one_of(st.none(), st.integers(1, 8)))
def test_both_loops_answer_one_plan_alike(outcomes: list[str], max_jobs: int | None) -> None:
    policy = RetryPolicy(base_seconds=5, jitter=0)
    settings_ = {
        "lease_seconds": 42.0,
        "max_attempts": 2,
        "backoff": policy,
        "claim_options": {"owner_limit": 3},
    }

    sync_holder: list[Any] = []
    sync_script = _Script(outcomes, sync_holder)

    def sync_handler(job: Job) -> None:
        assert job.id == GID
        sync_script.handle()

    sync_worker = Worker(_SyncStore(sync_script), "gpu-0", sync_handler, **settings_)  # type: ignore[arg-type]
    sync_holder.append(sync_worker)
    with patch("musicstore.worker.WAIT_SLICE_SECONDS", 0.001):  # an idle claim's sleep
        sync_report = sync_worker.run(max_jobs=max_jobs)

    async_holder: list[Any] = []
    async_script = _Script(outcomes, async_holder)

    async def async_handler(job: AsyncJob) -> None:
        assert job.id == GID
        async_script.handle()

    async_worker = AsyncWorker(_AsyncStore(async_script), "gpu-0", async_handler, **settings_)  # type: ignore[arg-type]
    async_holder.append(async_worker)
    with patch("musicstore.worker.WAIT_SLICE_SECONDS", 0.001):
        async_report = asyncio.run(async_worker.run(max_jobs=max_jobs))

    assert sync_report == async_report == _expected(outcomes, max_jobs)
    assert sync_script.calls == async_script.calls
    claims = [c for c in sync_script.calls if c.startswith("claim")]
    assert set(claims) <= {f"claim gpu-0 {sorted({'lease_seconds': 42.0, 'owner_limit': 3}.items())}"}
    for call in sync_script.calls:
        if call.startswith("fail"):  # the error, cut to its first 1000 characters, and the worker's retry
            retry = {"retry": True, "max_attempts": 2, "worker_id": "gpu-0", "backoff": policy}
            assert call == f"fail {GID} ValueError: 1000 {sorted(retry.items())}"


def test_an_error_outside_the_handler_ends_both_loops(sqlite_url: str) -> None:
    """A claim that raises is no job's outcome: ``run`` raises it (nothing is counted or failed)."""

    class Broken(_SyncStore):
        def claim_next(self, worker_id: str, **options: Any) -> Generation | None:
            raise InvalidInput("bad claim option")

    class AsyncBroken(_SyncStore):
        async def claim_next(self, worker_id: str, **options: Any) -> Generation | None:  # type: ignore[override]
            raise InvalidInput("bad claim option")

    script = _Script([], [])
    with pytest.raises(InvalidInput, match="bad claim option"):
        Worker(Broken(script), "gpu-0", lambda job: None).run()  # type: ignore[arg-type]

    async def nothing(job: AsyncJob) -> None:
        return None

    with pytest.raises(InvalidInput, match="bad claim option"):
        asyncio.run(AsyncWorker(AsyncBroken(script), "gpu-0", nothing).run())  # type: ignore[arg-type]
