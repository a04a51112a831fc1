"""Session 25's hunt in the waits (``musicstore.waiting``): what a wait's registration with its store's hub
(SQLite's poller, PostgreSQL's listening hub) must survive.

The fallback re-try (``RECHECK_SECONDS``) is set far beyond each test's wait, so a wait that returns what
another connection wrote was woken by its hub."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from musicstore import InvalidInput, Store, waiting
from musicstore.aio import AsyncStore
from tests.conftest import new_job

LONG = 60.0
BAD_IDS: list[Any] = [123, b"0", None, ["x"], {"id": 1}, 1.5]


@pytest.fixture(autouse=True)
def _no_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waiting, "RECHECK_SECONDS", 3600.0)


@pytest.fixture
def other(db_url: str) -> Iterator[Store]:
    with Store(db_url) as opened:
        yield opened


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_a_wait_for_a_bad_id_is_refused_before_it_registers(db_url: str, bad: Any) -> None:
    """``wait_for`` of an id that is not a generation id (not even a string) raises ``InvalidInput`` and
    registers nothing with the hub. Before, the wait registered first and met the id's check only at its
    first try: on PostgreSQL an unhashable id raised a bare ``TypeError`` from the registration, and on
    SQLite a commit seen while it was registered killed the poller's thread (``sorted`` of an int among the
    awaited ids' strings: ``TypeError``)."""
    with Store(db_url) as store:
        with pytest.raises(InvalidInput, match="generation id"):
            store.wait_for(bad, timeout=LONG)

        async def main() -> None:
            async with await AsyncStore.open(db_url) as astore:
                with pytest.raises(InvalidInput, match="generation id"):
                    await astore.wait_for(bad, timeout=LONG)

        asyncio.run(main())
        hub = store.__dict__.get("_listeners")
        assert hub is None or hub.hub.waiters == 0


def test_waits_for_bad_ids_among_commits_leave_the_poller_waking_the_others(sqlite_url: str) -> None:
    """Many ``wait_for`` of a bad id while other connections commit: the poller's thread goes on, and a
    good ``wait_for`` asleep meanwhile is woken when its job finishes. Before, the poller's thread died at
    the first commit it saw while a bad id was registered (within a fraction of a second here), and the
    good wait was never woken again (only by its 1 s re-try)."""
    with Store(sqlite_url) as store, Store(sqlite_url) as writer:
        job = new_job(store)
        ended: list[Any] = []
        sleeper = threading.Thread(target=lambda: ended.append(store.wait_for(job.id, timeout=LONG)))
        sleeper.start()
        hub = waiting.listeners(store).hub
        deadline = time.monotonic() + 60
        while hub.waiters == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        stop = threading.Event()

        def commit() -> None:
            while not stop.is_set():
                new_job(writer, "another")

        committer = threading.Thread(target=commit)
        committer.start()
        try:
            until = time.monotonic() + 2.0
            while time.monotonic() < until and hub.started:
                with pytest.raises(InvalidInput):
                    store.wait_for(123, timeout=0)  # type: ignore[arg-type]
        finally:
            stop.set()
            committer.join(LONG)
        assert hub.started
        writer.cancel(job.id)
        sleeper.join(LONG)
        assert not sleeper.is_alive()
        assert [g.id for g in ended] == [job.id]


def _abandoned(store: Store, job_id: str) -> list[weakref.ref[asyncio.Task[Any]]]:
    """Two awaited waits of ``store``'s hub (as ``AsyncStore``'s ``claim_next(wait=...)`` and ``wait_for`` of
    ``job_id`` sleep) in an event loop then closed while they sleep, not by ``asyncio.run`` (no task
    cancelled)."""
    pool = waiting.listeners(store)

    async def sleep(wake: waiting.Wake) -> None:
        listener = await pool.acquire_async(wake)
        await listener.sleep(LONG)

    loop = asyncio.new_event_loop()
    tasks = [loop.create_task(sleep(waiting.WORK)), loop.create_task(sleep(waiting.finished(job_id)))]
    deadline = time.monotonic() + 60
    while pool.hub.waiters < 2:
        assert time.monotonic() < deadline
        loop.run_until_complete(asyncio.sleep(0.01))
    loop.close()
    return [weakref.ref(task) for task in tasks]


def test_the_waits_of_a_closed_event_loop_are_dropped_when_woken(db_url: str, other: Store) -> None:
    """Waits left asleep in an event loop closed without cancelling its tasks are unregistered when the hub
    next wakes them (SQLite: at the next commit, whatever it wrote, ``wait_for``'s too), and a wait of
    another thread is still woken. Before, they stayed registered for ever, each holding its task (whose
    last reference was the hub's: never collected), and the SQLite poller went on polling every 5 ms."""
    awaited = new_job(other, "awaited")
    store = Store(db_url)
    tasks = _abandoned(store, awaited.id)
    hub = waiting.listeners(store).hub
    assert hub.waiters == 2
    deadline = time.monotonic() + 60
    left = 0 if db_url.startswith("sqlite") else 1  # PostgreSQL: the wait_for is woken by its job only
    while hub.waiters > left:
        assert time.monotonic() < deadline, f"{hub.waiters} waits of a closed loop still registered"
        other.cancel(new_job(other, "a commit").id)  # PostgreSQL: a pending and a finished notification
        time.sleep(0.05)
    live = new_job(other, "live")
    ended: list[Any] = []
    sleeper = threading.Thread(target=lambda: ended.append(store.wait_for(live.id, timeout=LONG)))
    sleeper.start()
    time.sleep(0.2)
    other.cancel(awaited.id)
    other.cancel(live.id)
    sleeper.join(LONG)
    assert [g.id for g in ended] == [live.id]
    while hub.waiters:
        assert time.monotonic() < deadline, f"{hub.waiters} waits of a closed loop still registered"
        time.sleep(0.01)
    gc.collect()
    assert [task() for task in tasks] == [None, None]  # collected (their coroutines closed)
    store.close()
