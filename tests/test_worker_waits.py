"""How ``Worker`` and ``AsyncWorker`` wait for work (``waiting.until``), both backends: an idle worker claims
once per sleep (not twice at the end of each slice of ``WAIT_SLICE_SECONDS``, as a ``claim_next(wait=...)``
per slice did: its last try, then the next call's first), and a worker stopped while asleep claims nothing
more, even when an enqueue wakes it. The sleeps are real (NOTIFY or the ``data_version`` poll) and short;
what is asserted is the order of the tries and sleeps, never a time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

from musicstore import InvalidInput, Status, Store, waiting, worker
from musicstore.aio import AsyncStore
from musicstore.testing import FakeClock
from tests.conftest import new_job


class Recorder(FakeClock):
    """A store's clock that notes each claim's try: ``claim_next`` reads the clock once per try."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def __call__(self) -> datetime:
        self.events.append("try")
        return self.now


@pytest.fixture(autouse=True)
def _short_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "WAIT_SLICE_SECONDS", 0.02)


def _record_sleeps(monkeypatch: pytest.MonkeyPatch, events: list[str], before: Callable[[int], None]) -> None:
    """Note each sleep of a wait in ``events`` as it ends; ``before(n)`` runs as the nth sleep begins."""
    sleep, sleep_async = waiting._sleep, waiting._sleep_async
    count = [0]

    def recorded(listener: Any, wake: waiting.Wake, seconds: float) -> None:
        count[0] += 1
        before(count[0])
        sleep(listener, wake, seconds)
        events.append("sleep")

    async def recorded_async(listener: Any, wake: waiting.Wake, seconds: float) -> None:
        count[0] += 1
        before(count[0])
        await sleep_async(listener, wake, seconds)
        events.append("sleep")

    monkeypatch.setattr(waiting, "_sleep", recorded)
    monkeypatch.setattr(waiting, "_sleep_async", recorded_async)


def _never(job: Any) -> None:
    raise AssertionError(f"no job was to be claimed, {job.id} was")


async def _never_async(job: Any) -> None:
    _never(job)


def _run(db_url: str, loop: str, clock: FakeClock) -> worker.WorkerReport:
    """Run an idle worker of ``loop`` (kept in ``holder``, for the sleeps to stop) until it stops."""
    if loop == "sync":
        with Store(db_url, clock=clock) as store:
            running = worker.Worker(store, "gpu-0", _never)
            holder.append(running)
            return running.run()

    async def main() -> worker.WorkerReport:
        async with AsyncStore.open(db_url, clock=clock) as store:
            running = worker.AsyncWorker(store, "gpu-0", _never_async)
            holder.append(running)
            return await running.run()

    return asyncio.run(main())


holder: list[Any] = []


@pytest.fixture(autouse=True)
def _holder() -> Iterator[None]:
    holder.clear()
    yield
    holder.clear()


@pytest.mark.parametrize("loop", ["sync", "async"])
def test_an_idle_worker_claims_once_per_sleep_and_not_after_it_is_stopped(
    db_url: str, loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []

    def before(n: int) -> None:
        if n == 3:
            holder[0].stop()  # asked to stop while asleep: no claim after this sleep

    _record_sleeps(monkeypatch, events, before)
    report = _run(db_url, loop, Recorder(events))
    assert report == worker.WorkerReport()
    assert events == ["try", "sleep"] * 3


@pytest.mark.parametrize("loop", ["sync", "async"])
def test_a_worker_stopped_while_asleep_claims_nothing_even_when_an_enqueue_wakes_it(
    db_url: str, loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    enqueued: list[str] = []

    def before(n: int) -> None:
        if n == 1:
            holder[0].stop()
            with Store(db_url) as other:  # another process's enqueue, while the worker sleeps
                enqueued.append(new_job(other, "arrives after the stop").id)

    _record_sleeps(monkeypatch, events, before)
    assert _run(db_url, loop, Recorder(events)) == worker.WorkerReport()
    assert events == ["try", "sleep"]
    with Store(db_url) as store:
        job = store.get_generation(enqueued[0])
        assert job is not None and job.status is Status.PENDING


@pytest.mark.parametrize("loop", ["sync", "async"])
def test_a_worker_refuses_to_wait_inside_a_transaction(db_url: str, loop: str) -> None:
    if loop == "sync":
        with Store(db_url) as store, store.transaction(), pytest.raises(InvalidInput, match="transaction"):
            worker.Worker(store, "gpu-0", _never).run()
        return

    async def main() -> None:
        async with AsyncStore.open(db_url) as store, store.transaction():
            with pytest.raises(InvalidInput, match="transaction"):
                await worker.AsyncWorker(store, "gpu-0", _never_async).run()

    asyncio.run(main())
