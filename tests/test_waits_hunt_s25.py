"""Session 25's hunt in the waits (``musicstore.waiting``): what a wait's registration with its store's hub
(SQLite's poller, PostgreSQL's listening hub) must survive.

The fallback re-try (``RECHECK_SECONDS``) is set far beyond each test's wait, so a wait that returns what
another connection wrote was woken by its hub."""

from __future__ import annotations

import asyncio
import threading
import time
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
        deadline = time.monotonic() + 20
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
        sleeper.join(10)
        assert not sleeper.is_alive()
        assert [g.id for g in ended] == [job.id]
