"""Waiting for work (``claim_next(wait=...)``) and for results (``wait_for``): woken by NOTIFY on PostgreSQL
and by the ``PRAGMA data_version`` poll on SQLite, sync and async.

The fallback re-try (``RECHECK_SECONDS``) is set far beyond each test's wait, so a waiter that returns what
another connection wrote was woken by the wake-up, not by the periodic re-try (no timing is asserted)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from musicstore import InvalidInput, NotFound, Status, Store, waiting
from musicstore.aio import AsyncStore
from tests.conftest import new_job, until

MISSING = "01a20180-5e48-7dc6-afbf-cdf54fb09fcb"
LONG = 60.0
"""A wait no test reaches when the wake-up works."""


@pytest.fixture(autouse=True)
def _no_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waiting, "RECHECK_SECONDS", 3600.0)


@pytest.fixture
def other(db_url: str) -> Iterator[Store]:
    """A second store on the same database: another process's connections."""
    with Store(db_url) as opened:
        yield opened


def later(action: Callable[[], Any], delay: float = 0.2) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_pending_job_is_claimed_at_once_and_no_job_waits_out_the_timeout(store: Store) -> None:
    job = new_job(store)
    claimed = store.claim_next("gpu-0", wait=LONG)
    assert claimed is not None and claimed.id == job.id
    assert store.claim_next("gpu-0", wait=0.05) is None
    assert store.claim_next("gpu-0", wait=0) is None


def test_an_idle_waiting_worker_wakes_on_an_enqueue(store: Store, other: Store) -> None:
    thread = later(lambda: new_job(other, "arrives later"))
    claimed = store.claim_next("gpu-0", wait=LONG, lease_seconds=30)
    thread.join()
    assert claimed is not None and claimed.prompt == "arrives later" and claimed.worker_id == "gpu-0"


def test_a_waiting_worker_wakes_on_a_retry(store: Store, other: Store) -> None:
    job = new_job(store)
    assert other.claim_next("gpu-1") is not None
    thread = later(lambda: other.fail(job.id, "out of memory", retry=True))
    claimed = store.claim_next("gpu-0", wait=LONG)
    thread.join()
    assert claimed is not None and claimed.id == job.id and claimed.attempts == 2


def test_many_waiting_workers_take_each_job_once(store: Store, other: Store) -> None:
    # 4 waits, 3 jobs: one wait must run out (its length is the test's runtime), and a job made after every
    # wait had run out would be left; 8 s: only a stall of several seconds before the enqueues could do that
    got: list[str | None] = []

    def work(name: str) -> None:
        claimed = store.claim_next(name, wait=8.0)
        got.append(None if claimed is None else claimed.id)

    workers = [threading.Thread(target=work, args=(f"gpu-{i}",)) for i in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(0.2)
    made = [new_job(other, f"job {i}").id for i in range(3)]
    for worker in workers:
        worker.join()
    assert sorted(g for g in got if g is not None) == sorted(made) and got.count(None) == 1


def test_a_worker_held_back_by_its_keys_limit_wakes_when_a_job_of_the_key_finishes(
    store: Store, other: Store
) -> None:
    store.set_owner_limit("alice", 1)
    first, second = new_job(store, "one", owner_key="alice"), new_job(store, "two", owner_key="alice")
    running = other.claim_next("gpu-1")
    assert running is not None and running.id == first.id
    finish = lambda: other.complete_generation(first.id, file_path="a.wav", file_size_bytes=1)  # noqa: E731
    thread = later(finish)
    claimed = store.claim_next("gpu-0", wait=LONG)  # alice's limit holds it back until the first finishes
    thread.join()
    assert claimed is not None and claimed.id == second.id


def test_a_failed_poll_is_made_again_and_the_wait_still_woken(sqlite_url: str) -> None:
    """SQLite: a read of the store's poller that fails (its connection lost) wakes the waits, and the poller
    makes its connection again in the background (after ``RECONNECT_SECONDS``) and goes on waking them: a
    job enqueued after the loss is claimed by the wait that was sleeping then. (PostgreSQL's hub does the
    same with its listening connection: tests/test_listen_hub.py.)"""
    with Store(sqlite_url) as store, Store(sqlite_url) as other:
        assert store.claim_next("gpu-0", wait=0.01) is None
        poller = waiting.listeners(store).hub
        assert isinstance(poller, waiting._Poller) and poller.connections == 1
        results: list[Any] = []
        thread = threading.Thread(target=lambda: results.append(store.claim_next("gpu-0", wait=LONG)))
        thread.start()
        until(lambda: poller.waiters == 1)
        with poller._reading:
            assert poller._conn is not None
            poller._conn.close()  # as a lost connection: the thread's next read fails
        until(lambda: poller.connections == 2)
        job = new_job(other, "after the loss")
        thread.join(LONG)
        assert [r.id for r in results] == [job.id] and poller.waiters == 0


@pytest.mark.parametrize("finish", ["complete", "fail", "cancel"])
def test_wait_for_returns_the_finished_job(store: Store, other: Store, finish: str) -> None:
    job = new_job(store)
    assert other.claim_next("gpu-1") is not None
    actions: dict[str, Callable[[], Any]] = {
        "complete": lambda: other.complete_generation(job.id, file_path="a.wav", file_size_bytes=10),
        "fail": lambda: other.fail(job.id, "broken", retry=False),
        "cancel": lambda: other.cancel(job.id),
    }
    thread = later(actions[finish])
    done = store.wait_for(job.id, timeout=LONG)
    thread.join()
    assert done.is_finished and done.status is {
        "complete": Status.COMPLETED, "fail": Status.FAILED, "cancel": Status.CANCELLED
    }[finish]  # fmt: skip


def test_wait_for_is_not_woken_by_another_job(store: Store, other: Store) -> None:
    mine, theirs = new_job(store, "mine"), new_job(store, "theirs")
    thread = later(lambda: other.cancel(theirs.id))
    read = store.wait_for(mine.id, timeout=0.6)
    thread.join()
    assert read.status is Status.PENDING and not read.is_finished


def test_wait_for_at_once_and_its_errors(store: Store) -> None:
    job = new_job(store)
    store.cancel(job.id)
    assert store.wait_for(job.id, timeout=LONG).status is Status.CANCELLED
    with pytest.raises(NotFound):
        store.wait_for(MISSING, timeout=1)
    with pytest.raises(InvalidInput):
        store.wait_for("not an id", timeout=1)
    for bad in (-1, float("nan"), "1", None):
        with pytest.raises(InvalidInput):
            store.wait_for(job.id, timeout=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            store.claim_next("gpu-0", wait=bad if bad is not None else -1)  # type: ignore[arg-type]
    with store.transaction() as tx, pytest.raises(InvalidInput, match="transaction"):
        store.claim_next("gpu-0", wait=1)
    assert tx.closed


def test_listeners_are_kept_for_the_next_wait_and_closed_with_the_store(db_url: str) -> None:
    """Every wait of a store registers with its one hub (PostgreSQL's LISTEN connection, SQLite's poller):
    one connection for all its waits, closed with the store."""
    store = Store(db_url)
    assert store.claim_next("gpu-0", wait=0.01) is None
    pool = waiting.listeners(store)
    assert pool.hub.connections == 1 and pool.hub.waiters == 0
    assert store.claim_next("gpu-0", wait=0.01) is None
    assert pool.hub.connections == 1  # the same connection again
    store.close()
    assert pool.closed and not pool.hub.started


def test_async_waits(db_url: str, other: Store) -> None:
    async def main() -> None:
        async with AsyncStore.open(db_url) as store:
            thread = later(lambda: new_job(other, "for the async worker"))
            claimed = await store.claim_next("gpu-0", wait=LONG)
            thread.join()
            assert claimed is not None and claimed.prompt == "for the async worker"
            gid = claimed.id
            thread = later(lambda: other.complete_generation(gid, file_path="a.wav", file_size_bytes=1))
            done = await store.wait_for(claimed.id, timeout=LONG)
            thread.join()
            assert done.status is Status.COMPLETED
            assert await store.claim_next("gpu-0", wait=0.05) is None
            # two tasks waiting at once on one store, each with a listener of its own
            first, second = (asyncio.ensure_future(store.claim_next(f"gpu-{i}", wait=LONG)) for i in (1, 2))
            await asyncio.sleep(0.2)
            await asyncio.to_thread(lambda: [new_job(other, f"job {i}") for i in range(2)])
            got = await asyncio.gather(first, second)
            assert all(g is not None for g in got) and len({g.id for g in got if g}) == 2
            async with store.transaction():
                with pytest.raises(InvalidInput, match="transaction"):
                    await store.wait_for(claimed.id, timeout=1)

    asyncio.run(main())


def test_an_async_sleep_woken_by_a_notification_returns_and_leaves_nothing_registered(
    postgres_url: str,
) -> None:
    """An async sleep woken by a notification sent before it began (after its waiter armed) returns at once;
    released, the waiter is no longer registered with the store's hub."""

    async def main() -> None:
        async with AsyncStore.open(postgres_url) as store:
            pool = waiting.listeners(store)
            listener = await pool.acquire_async(waiting.WORK)
            try:
                listener.arm()
                with Store(postgres_url) as other:
                    await asyncio.to_thread(new_job, other, "wakes the sleeper")
                await waiting._sleep_async(listener, waiting.WORK, LONG)  # the notification is waiting
            finally:
                pool.release(listener)
            assert pool.hub is not None and pool.hub.waiters == 0

    asyncio.run(main())
