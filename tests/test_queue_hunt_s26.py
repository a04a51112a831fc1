"""Queue hunt, session 26: what a worker waiting for work (``claim_next(wait=...)``, ``Worker``) is woken by.

The fallback re-try (``RECHECK_SECONDS``) is set far beyond each test's wait, so a waiter that returns a job
was woken by the wake-up, not by the periodic re-try."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from musicstore import Store, waiting
from musicstore.aio import AsyncStore
from tests.conftest import new_job
from tests.test_wakeups import later

WAIT = 10.0
"""A wait no test reaches when the wake-up works (the re-try is an hour away; a wait that was never woken
claims the job at its deadline, with its last try)."""
WOKEN = 5.0
"""Well within ``WAIT``: a wait that took longer was not woken."""


@pytest.fixture(autouse=True)
def _no_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waiting, "RECHECK_SECONDS", 3600.0)


@pytest.fixture
def other(db_url: str) -> Iterator[Store]:
    """A second store on the same database: an operator's shell, another process's connections."""
    with Store(db_url) as opened:
        yield opened


@pytest.mark.parametrize("resumed", [None, 1])
def test_a_waiting_worker_wakes_when_a_paused_key_is_resumed(
    store: Store, other: Store, resumed: int | None
) -> None:
    """``set_owner_limit(key, None)`` (or a limit above 0) after a pause makes the key's jobs claimable: a
    worker asleep in ``claim_next(wait=...)`` takes them at once, on both backends. On PostgreSQL nothing
    notified it (only a job becoming pending or finished does), so it slept until its 1 s re-try: an
    operator's ``musicstore set-owner-limit KEY none`` reached idle workers up to a second late, where
    SQLite's poll woke them within milliseconds."""
    other.set_owner_limit("user-7", 0)
    job = new_job(store, owner_key="user-7")
    assert store.claim_next("gpu-0") is None  # paused
    thread = later(lambda: other.set_owner_limit("user-7", resumed), 0.3)
    started = time.monotonic()
    claimed = store.claim_next("gpu-0", wait=WAIT)
    waited = time.monotonic() - started
    thread.join()
    assert claimed is not None and claimed.id == job.id
    assert waited < WOKEN, f"not woken: claimed after {waited:.1f} s"


def test_a_waiting_worker_wakes_when_a_key_limit_is_raised(store: Store, other: Store) -> None:
    """A key at its limit with a job waiting: raising the limit frees a place, as a finished job does."""
    other.set_owner_limit("label", 1)
    first, second = new_job(store, owner_key="label"), new_job(store, owner_key="label")
    taken = store.claim_next("gpu-0")
    assert taken is not None and taken.id == first.id
    assert store.claim_next("gpu-1") is None  # at its limit
    thread = later(lambda: other.set_owner_limit("label", 2), 0.3)
    started = time.monotonic()
    claimed = store.claim_next("gpu-1", wait=WAIT)
    waited = time.monotonic() - started
    thread.join()
    assert claimed is not None and claimed.id == second.id
    assert waited < WOKEN, f"not woken: claimed after {waited:.1f} s"


def test_an_awaited_waiting_claim_wakes_when_a_paused_key_is_resumed(db_url: str, other: Store) -> None:
    """The same for ``AsyncStore.claim_next(wait=...)`` (an ``AsyncWorker``'s claim)."""
    import asyncio

    other.set_owner_limit("user-9", 0)
    job = new_job(other, owner_key="user-9")

    async def main() -> tuple[str | None, float]:
        async with AsyncStore.open(db_url) as store:
            thread = later(lambda: other.set_owner_limit("user-9", None), 0.3)
            started = time.monotonic()
            claimed = await store.claim_next("gpu-0", wait=WAIT)
            waited = time.monotonic() - started
            thread.join()
            return None if claimed is None else claimed.id, waited

    claimed, waited = asyncio.run(main())
    assert claimed == job.id
    assert waited < WOKEN, f"not woken: claimed after {waited:.1f} s"


# -- progress reports and a short lease ----------------------------------------------------------------------


def test_the_coalescer_writes_a_report_before_half_a_short_lease_passed() -> None:
    """A report that extends a lease (``lease_seconds``) is due once half of that lease passed since the
    pair's last written one, even when the coalescing interval is longer; a long lease changes nothing."""
    from datetime import timedelta

    from musicstore.ops.progress import Coalescer

    now = [0.0]
    coalescer = Coalescer(1.0, clock=lambda: now[0])
    short, long = timedelta(seconds=0.5), timedelta(seconds=300)
    assert coalescer.due("g", "w", 0.1, "sampling", short)
    coalescer.wrote("g", "w", "sampling")
    now[0] = 0.2
    assert not coalescer.due("g", "w", 0.2, "sampling", short)
    assert not coalescer.due("g", "w", 0.2, "sampling", long)
    now[0] = 0.25
    assert coalescer.due("g", "w", 0.3, "sampling", short)  # half the lease: written, the lease extended
    assert not coalescer.due("g", "w", 0.3, "sampling", long)  # the interval still rules
    assert not coalescer.due("g", "w", 0.3, "sampling")
    now[0] = 1.0
    assert coalescer.due("g", "w", 0.4, "sampling", long)


def test_a_worker_that_reports_often_keeps_a_lease_shorter_than_the_interval(db_url: str) -> None:
    """A ``Worker`` whose ``lease_seconds`` is under its store's coalescing interval
    (``PROGRESS_INTERVAL_SECONDS``, 1 s; 60 s here), its handler reporting its progress every 50 ms for
    twice its lease: each written report extends the lease. Before, only one report an interval was
    written, so the lease ran out between two of them and ``requeue_expired`` took the job back (the worker
    then counted it lost), though the docs say a worker that reports its progress keeps its job.

    A 4 s lease (a report written every 2 s): a stall of the thread shorter than about 2 s anywhere in its
    loop cannot let the lease run out (with 0.6 s, one of 0.3 s could)."""
    from musicstore.ops.progress import coalescer
    from musicstore.worker import Job, Worker

    lease = 4.0
    with Store(db_url) as store, Store(db_url) as reaper:
        coalescer(store).interval = 60.0  # far beyond the handler's run: only the half-lease rule writes
        job = new_job(store)
        taken: list[str] = []

        def handler(running: Job) -> None:
            end = time.monotonic() + 2 * lease
            while time.monotonic() < end:
                running.progress(0.5, "sampling")
                taken.extend(reaper.requeue_expired(max_attempts=10).requeued)
                time.sleep(0.05)
            store.complete_generation(running.id, file_path="a.wav", file_size_bytes=1, worker_id="gpu-0")

        report = Worker(store, "gpu-0", handler, lease_seconds=lease).run(max_jobs=1)
        assert taken == [] and report.done == 1 and report.lost == 0, report
        done = store.get_generation(job.id)
        assert done is not None and done.is_completed and done.attempts == 1
