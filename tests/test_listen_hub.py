"""The PostgreSQL hub (``musicstore.waiting._Hub``): one listening connection per store and process, shared by
all its waits, sync and async. However many waits there are, the store holds one listening server connection;
each wait is woken by the notifications that match it and only by them; a notification sent after a wait
armed is never missed (hypothesis, over random interleavings of waits registering, arming, ending and
notifications); a lost connection is made again and the waits woken; closing the store wakes and ends the
waits; a cancelled async wait leaves nothing registered; a forked child listens on a connection of its own.

The fallback re-try (``RECHECK_SECONDS``) is set far beyond each test's wait, so a wait that returns was woken
by a notification (or by the hub), not by the periodic re-try."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore import InvalidInput, Status, Store, waiting
from musicstore.aio import AsyncStore
from musicstore.waiting import hub as listening
from tests.conftest import new_job, until

LONG = 60.0
"""A wait no test reaches when the wake-up works."""


@pytest.fixture(autouse=True)
def _no_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waiting, "RECHECK_SECONDS", 3600.0)
    # no keep-alive question either: its empty query ends the 'LISTEN' that ``_listening`` finds a hub by
    monkeypatch.setattr(listening, "KEEPALIVE_SECONDS", 3600.0)


def _listening(url: str) -> list[int]:
    """The server processes of this database's listening connections (their last statement a LISTEN)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'"
        ).fetchall()
    return [int(row[0]) for row in rows]


def _hub(store: Any) -> waiting._Hub:
    hub = waiting.listeners(store).hub
    assert isinstance(hub, waiting._Hub)
    return hub


def test_250_concurrent_async_waits_share_one_listening_connection_and_return_at_once(
    postgres_url: str,
) -> None:
    """An API server awaiting many results at once: 250 ``wait_for`` on one ``AsyncStore`` hold one
    listening server connection, and each returns as its job finishes (woken: the re-try is an hour)."""
    waits = 250
    with Store(postgres_url) as other:
        jobs = [new_job(other, f"job {i}") for i in range(waits)]

        async def main() -> tuple[list[Any], list[int], list[float]]:
            async with AsyncStore.open(postgres_url) as store:
                returned: list[float] = [0.0] * waits

                async def wait(i: int) -> Any:
                    found = await store.wait_for(jobs[i].id, timeout=LONG)
                    returned[i] = time.monotonic()
                    return found

                tasks = [asyncio.ensure_future(wait(i)) for i in range(waits)]
                await asyncio.to_thread(until, lambda: _hub(store).waiters == waits)
                listening = await asyncio.to_thread(_listening, postgres_url)
                cancelled: list[float] = []
                for job in jobs:  # one at a time: each wait returns before the next job finishes
                    await asyncio.to_thread(other.cancel, job.id)
                    cancelled.append(time.monotonic())
                results = await asyncio.gather(*tasks)
                assert _hub(store).waiters == 0
                return results, listening, [returned[i] - cancelled[i] for i in range(waits)]

        results, listening, latencies = asyncio.run(main())
    assert len(listening) == 1
    assert [result.status for result in results] == [Status.CANCELLED] * waits
    assert max(latencies) < 30.0  # woken, not re-tried (an hour); the figures are the benchmark's


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_wait_is_woken_by_its_notification_only(postgres_url: str, kind: str) -> None:
    """Two waits for two jobs on one hub: finishing one job wakes its wait; the other sleeps on."""
    with Store(postgres_url) as store, Store(postgres_url) as other:
        mine, theirs = new_job(other, "mine"), new_job(other, "theirs")
        if kind == "sync":
            results: dict[str, Any] = {}

            def wait(gid: str, timeout: float) -> None:
                results[gid] = store.wait_for(gid, timeout=timeout)

            threads = [
                threading.Thread(target=wait, args=(mine.id, LONG)),
                threading.Thread(target=wait, args=(theirs.id, 1.0)),
            ]
            for thread in threads:
                thread.start()
            # both asleep; or theirs slept its second out before both were seen (a stall) and mine is
            until(lambda: _hub(store).waiters == 2 or (theirs.id in results and _hub(store).waiters == 1))
            other.cancel(mine.id)
            for thread in threads:
                thread.join()
            assert results[mine.id].status is Status.CANCELLED
            assert results[theirs.id].status is Status.PENDING  # slept its whole second
            return

        async def main() -> None:
            async with AsyncStore.open(postgres_url) as async_store:
                first = asyncio.ensure_future(async_store.wait_for(mine.id, timeout=LONG))
                second = asyncio.ensure_future(async_store.wait_for(theirs.id, timeout=1.0))

                def both_asleep() -> bool:  # or as in the sync case
                    waiters = _hub(async_store).waiters
                    return waiters == 2 or (second.done() and waiters == 1)

                await asyncio.to_thread(until, both_asleep)
                await asyncio.to_thread(other.cancel, mine.id)
                assert (await first).status is Status.CANCELLED
                assert (await second).status is Status.PENDING

        asyncio.run(main())


def test_a_notification_between_a_try_and_the_sleep_is_not_lost(db_url: str) -> None:
    """A job enqueued after a try found nothing, before its sleep: the sleep returns at once (the wait is
    armed before each try), so the next try claims it, not the re-try an hour later."""
    with Store(db_url) as store, Store(db_url) as other:
        tries: list[Any] = []

        def attempt() -> Any:
            found = store.claim_next("gpu-0")
            if not tries:
                new_job(other, "between the try and the sleep")
            tries.append(found)
            return found

        started = time.monotonic()
        claimed = waiting.wait(store, waiting.WORK, waiting.plan(LONG, waiting.claimed), attempt)
        assert claimed is not None and claimed.prompt == "between the try and the sleep"
        assert len(tries) == 2 and time.monotonic() - started < LONG


def _run_wait(url: str, kind: str, hubs: list[waiting._Hub], gid: str) -> Any:
    """``wait_for(gid)`` on a new store of ``kind`` whose hub listens before (noted in ``hubs``)."""
    if kind == "sync":
        with Store(url) as store:
            assert store.claim_next("gpu-0", wait=0.01) is None  # the hub listens
            hubs.append(_hub(store))
            return store.wait_for(gid, timeout=LONG)

    async def main() -> Any:
        async with AsyncStore.open(url) as store:
            assert await store.claim_next("gpu-0", wait=0.01) is None
            hubs.append(_hub(store))
            return await store.wait_for(gid, timeout=LONG)

    return asyncio.run(main())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_lost_listening_connection_is_made_again_and_the_waits_are_woken(
    postgres_url: str, kind: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The hub's server process is terminated while a wait sleeps: the hub listens on a new connection and
    the next notification wakes the wait as before (the re-try is an hour); the loss is logged (a warning,
    never a secret of the URL)."""
    caplog.set_level(logging.WARNING, logger="musicstore.waiting")
    monkeypatch.setattr(listening, "RECONNECT_SECONDS", 0.05)  # read by the hub, in waiting/hub.py
    with Store(postgres_url) as other:
        job = new_job(other)
        assert other.claim_next("gpu-9") is not None
        hubs: list[waiting._Hub] = []

        def terminate_then_finish() -> None:
            until(lambda: bool(hubs) and hubs[0].waiters == 1)
            (pid,) = _listening(postgres_url)
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                # waits (60 s) for its exit: else its row in pg_stat_activity may outlast the hub's new
                # connection (the server sends its 'terminating connection' before it ends), two listening
                admin.execute("SELECT pg_terminate_backend(%s, 60000)", [pid])
            until(lambda: hubs[0].connections == 2)
            assert len(_listening(postgres_url)) == 1
            other.cancel(job.id)

        thread = threading.Thread(target=terminate_then_finish)
        thread.start()
        result = _run_wait(postgres_url, kind, hubs, job.id)
        thread.join()
    assert result.status is Status.CANCELLED and hubs[0].connections == 2
    lost = [r for r in caplog.records if r.name == "musicstore.waiting" and "connection is lost" in r.message]
    assert len(lost) == 1 and lost[0].levelno == logging.WARNING


def test_many_sync_waits_share_one_listening_connection(postgres_url: str) -> None:
    """Threads each waiting on one ``Store`` (a threaded API server): one listening connection, and each
    wait returns as its job finishes."""
    waits = 20
    with Store(postgres_url) as store, Store(postgres_url) as other:
        jobs = [new_job(other, f"job {i}") for i in range(waits)]
        results: list[Any] = [None] * waits

        def wait(i: int) -> None:
            results[i] = store.wait_for(jobs[i].id, timeout=LONG)

        threads = [threading.Thread(target=wait, args=(i,)) for i in range(waits)]
        for thread in threads:
            thread.start()
        until(lambda: _hub(store).waiters == waits)
        assert len(_listening(postgres_url)) == 1
        for job in jobs:
            other.cancel(job.id)
        for thread in threads:
            thread.join()
        assert [result.status for result in results] == [Status.CANCELLED] * waits
        assert _hub(store).waiters == 0 and _hub(store).connections == 1


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_closing_the_store_ends_its_waits_and_its_listening_connection(postgres_url: str, kind: str) -> None:
    """A wait asleep when its store closes is woken and ends (the store is closed: ``InvalidInput``), not
    an hour later; the listening connection is closed; a new wait is refused."""
    with Store(postgres_url) as other:
        job = new_job(other)
    if kind == "sync":
        store = Store(postgres_url)
        errors: list[BaseException] = []

        def wait() -> None:
            try:
                store.wait_for(job.id, timeout=LONG)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=wait)
        thread.start()
        until(lambda: _hub(store).waiters == 1)
        store.close()
        thread.join(30)
        assert not thread.is_alive() and isinstance(errors[0], InvalidInput)
        with pytest.raises(InvalidInput, match="closed"):
            store.wait_for(job.id, timeout=LONG)
    else:

        async def main() -> None:
            store = await AsyncStore.open(postgres_url)
            task = asyncio.ensure_future(store.wait_for(job.id, timeout=LONG))
            await asyncio.to_thread(until, lambda: _hub(store).waiters == 1)
            await store.close()
            with pytest.raises(InvalidInput):
                await asyncio.wait_for(task, 30)
            with pytest.raises(InvalidInput, match="closed"):
                await store.wait_for(job.id, timeout=LONG)

        asyncio.run(main())
    # the server ends the closed connection's process after the client's Terminate: not at once
    until(lambda: _listening(postgres_url) == [])
    assert _listening(postgres_url) == []


def test_a_cancelled_async_wait_leaves_nothing_registered(postgres_url: str) -> None:
    """An async wait cancelled while it sleeps, or while the hub's first connection is being made,
    leaves no registration behind; the hub serves the next waits."""

    async def main() -> None:
        async with AsyncStore.open(postgres_url) as store:
            starting = asyncio.ensure_future(store.claim_next("gpu-0", wait=LONG))
            await asyncio.sleep(0)  # in the hub's first connect (a thread)
            starting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await starting
            hub = _hub(store)
            assert hub.waiters == 0
            for _ in range(3):
                sleeping = [asyncio.ensure_future(store.claim_next(f"gpu-{i}", wait=LONG)) for i in range(5)]
                await asyncio.to_thread(until, lambda: hub.waiters == 5)
                for task in sleeping:
                    task.cancel()
                await asyncio.gather(*sleeping, return_exceptions=True)
                assert hub.waiters == 0
            with Store(postgres_url) as other:
                waiting_task = asyncio.ensure_future(store.claim_next("gpu-0", wait=LONG))
                await asyncio.to_thread(until, lambda: hub.waiters == 1)
                job = await asyncio.to_thread(new_job, other)
                claimed = await waiting_task
                assert claimed is not None and claimed.id == job.id and hub.waiters == 0

    asyncio.run(main())


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_listens_on_a_connection_of_its_own(postgres_url: str) -> None:
    """A child forked from a process whose store listens makes its own listening connection for its
    waits (woken by notifications all the same) and leaves its parent's alone."""
    import os

    with Store(postgres_url) as store, Store(postgres_url) as other:
        assert store.claim_next("gpu-0", wait=0.01) is None
        (parent,) = _listening(postgres_url)
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - the child reports through the pipe
            code = 1
            try:
                claimed = store.claim_next("gpu-child", wait=LONG)
                os.write(write, (claimed.id if claimed is not None else "none").encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        until(lambda: len(_listening(postgres_url)) == 2)
        job = new_job(other, "for the child")
        got = os.read(read, 64).decode()
        os.close(read)
        _, status = os.waitpid(child, 0)
        assert status == 0 and got == job.id
        until(lambda: _listening(postgres_url) == [parent])
        second = new_job(other, "for the parent")
        assert other.claim_next("gpu-9") is not None
        results: list[Any] = []
        thread = threading.Thread(target=lambda: results.append(store.wait_for(second.id, timeout=LONG)))
        thread.start()
        until(lambda: _hub(store).waiters == 1)
        other.cancel(second.id)
        thread.join()
        assert results[0].status is Status.CANCELLED and _hub(store).connections == 1


_WAKES = [waiting.WORK, waiting.Wake(waiting.PENDING), *(waiting.finished(p) for p in "ab")]
_NOTES = [(channel, payload) for channel in (waiting.PENDING, waiting.FINISHED) for payload in ("", "a", "b")]
_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("register"), st.integers(0, 5), st.integers(0, len(_WAKES) - 1)),
        st.tuples(st.just("arm"), st.integers(0, 5), st.just(0)),
        st.tuples(st.just("end"), st.integers(0, 5), st.just(0)),
        st.tuples(st.just("notify"), st.integers(0, len(_NOTES) - 1), st.just(0)),
    ),
    max_size=30,
)


@pytest.fixture
def listening_store(postgres_url: str) -> Iterator[tuple[Store, psycopg.Connection[Any]]]:
    with Store(postgres_url) as store, psycopg.connect(postgres_url, autocommit=True) as notifier:
        assert store.claim_next("gpu-0", wait=0.01) is None  # the hub listens
        yield store, notifier


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=_STEPS)
def test_no_waiter_misses_a_notification_sent_after_it_armed(
    listening_store: tuple[Store, psycopg.Connection[Any]], steps: list[tuple[str, int, int]]
) -> None:
    """Random interleavings of waits registering, arming (before a try), ending and notifications sent
    from another connection, not awaited one by one: once a last notification has come back through the
    hub, every wait still registered that a matching notification was sent to after it last armed is woken,
    and none is woken by a notification that does not match it. (A matching notification sent before a wait
    registered may still wake it, arriving after: a spurious wake-up, one more try.)"""
    store, notifier = listening_store
    hub = _hub(store)
    waiters: dict[int, waiting._ThreadWaiter] = {}
    must: dict[int, bool] = {}  # a matching notification was sent after the last arm, still registered
    may: dict[int, bool] = {}  # a matching notification was sent before it ended
    sent: list[tuple[str, str]] = []
    try:
        for action, i, k in steps:
            if action == "register" and i not in waiters:
                waiters[i] = waiting._ThreadWaiter(_WAKES[k])
                assert hub.register(waiters[i])
                must[i] = False
                may[i] = any(waiters[i].wake.matches(*note) for note in sent)
            elif action == "arm" and i in waiters:
                waiters[i].arm()
                must[i] = False
            elif action == "end" and i in waiters:
                hub.unregister(waiters.pop(i))
            elif action == "notify":
                channel, payload = _NOTES[i]
                notifier.execute("SELECT pg_notify(%s, %s)", [channel, payload])
                sent.append((channel, payload))
                for j, waiter in waiters.items():
                    if waiter.wake.matches(channel, payload):
                        must[j] = may[j] = True
        last = waiting._ThreadWaiter(waiting.finished("last"))
        assert hub.register(last)
        for j, waiter in waiters.items():  # the last notification wakes the waits for any job's too
            if waiter.wake.matches(waiting.FINISHED, "last"):
                must[j] = may[j] = True
        notifier.execute("SELECT pg_notify(%s, 'last')", [waiting.FINISHED])
        assert last.sleep(10)  # every notification before it has been delivered (one connection, in order)
        hub.unregister(last)
        for j, waiter in waiters.items():
            if must[j]:
                assert waiter.sleep(0), f"waiter {j} ({waiter.wake}) missed a notification"
            if not may[j]:
                assert not waiter.sleep(0), f"waiter {j} ({waiter.wake}) woken by nothing it waits for"
    finally:
        for waiter in waiters.values():
            hub.unregister(waiter)
    assert hub.waiters == 0
