"""SQLite's waits share the store's one poller (``musicstore.waiting._Poller``): one connection and one thread
that read ``PRAGMA data_version`` for every wait of the store, however many there are. Before session 25 each
wait polled a connection of its own every 5 ms: a thousand concurrent ``wait_for`` (an API server's requests)
held a thousand open files (``ulimit -n 1024`` exhausted: half of them failed, and the store's own connections
with them) and 400 idle waits cost about 70 % of a core.

The fallback re-try (``RECHECK_SECONDS``) is set far beyond each test's wait, so a wait that returns what
another connection wrote was woken by the poll."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from musicstore import InvalidInput, Status, Store, waiting
from musicstore.aio import AsyncStore
from tests.conftest import new_job, until

LONG = 60.0


@pytest.fixture(autouse=True)
def _no_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waiting, "RECHECK_SECONDS", 3600.0)


@pytest.fixture
def other(sqlite_url: str) -> Iterator[Store]:
    with Store(sqlite_url) as opened:
        yield opened


_until = partial(until, seconds=LONG)  # 300 waits falling asleep on a loaded machine


def _open_files_on(path: str) -> int:
    """How many of this process's file descriptors are the database file itself."""
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == path:
                found += 1
        except OSError:
            continue
    return found


def _pollers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "musicstore-poll" and t.is_alive()]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files through /proc")
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_many_concurrent_waits_share_one_polling_connection(sqlite_url: str, other: Store, kind: str) -> None:
    """300 concurrent ``wait_for`` (tasks of one ``AsyncStore``, or 60 threads) sleep on one connection
    between them (before, one each: 2 × 60 for the threads, whose tries run on their thread's connection),
    and each is woken when its job is cancelled by another store."""
    path = str(Store(sqlite_url).url.path)
    waits = 300 if kind == "async" else 60  # threads cost more than tasks to make
    jobs = [new_job(other, f"job {i}") for i in range(waits)]
    opened: list[int] = []

    def finish(store: Any) -> None:
        _until(lambda: waiting.listeners(store).hub.waiters == waits)
        opened.append(_open_files_on(path))
        for job in jobs:
            other.cancel(job.id)

    if kind == "sync":
        with Store(sqlite_url) as store:
            before = _open_files_on(path)
            results: list[Any] = [None] * waits

            def wait(i: int) -> None:
                results[i] = store.wait_for(jobs[i].id, timeout=LONG)

            threads = [threading.Thread(target=wait, args=(i,)) for i in range(waits)]
            for thread in threads:
                thread.start()
            finish(store)
            for thread in threads:
                thread.join()
            hub = waiting.listeners(store).hub
    else:

        async def main() -> tuple[int, list[Any], Any]:
            async with AsyncStore.open(sqlite_url) as store:
                finisher = asyncio.create_task(asyncio.to_thread(finish, store))
                found = await asyncio.gather(*(store.wait_for(job.id, timeout=LONG) for job in jobs))
                await finisher
                # its pool's connections, made as the tries ran, stay open after them: the same count
                return _open_files_on(path) - 1, list(found), waiting.listeners(store).hub

        before, results, hub = asyncio.run(main())
    # the poller's connection; a sync ``Store`` has a connection per thread, the waits' tries' own
    assert opened[0] - before <= 1 + (waits if kind == "sync" else 0)
    assert hub.connections == 1 and hub.waiters == 0
    assert [r.status for r in results] == [Status.CANCELLED] * waits


def test_a_commit_just_after_a_wait_registers_wakes_it(sqlite_url: str) -> None:
    """A wait that registers while the poller is idle (no other wait) reads the version itself, so a commit
    right after its registration, before the poller's thread reads again, still wakes it: every time of
    many, the poller idle between them."""
    with Store(sqlite_url) as store:
        assert store.claim_next("gpu-0", wait=0.01) is None  # the poller started
        poller = waiting.listeners(store).hub
        assert isinstance(poller, waiting._Poller)
        writer = sqlite3.connect(str(store.url.path), isolation_level=None)
        try:
            for i in range(100):
                waiter = waiting._ThreadWaiter(waiting.WORK)
                assert poller.register(waiter)
                try:
                    waiter.arm()
                    writer.execute(f"PRAGMA user_version = {i + 1}")  # a commit of another connection
                    assert waiter.sleep(LONG), f"not woken at {i}"
                finally:
                    poller.unregister(waiter)
        finally:
            writer.close()


def test_the_poller_reads_nothing_while_no_wait_is_registered(
    sqlite_url: str, other: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polls happen only while a wait sleeps: an idle store costs no reads (and its thread sleeps)."""
    reads: list[float] = []
    version = waiting._Poller._version

    def counted(self: waiting._Poller, conn: sqlite3.Connection) -> int:
        reads.append(time.monotonic())
        return version(self, conn)

    monkeypatch.setattr(waiting._Poller, "_version", counted)
    with Store(sqlite_url) as store:
        thread = threading.Thread(target=lambda: store.claim_next("gpu-0", wait=LONG))
        thread.start()
        # a wait of 0.3 s left a loaded machine's poller thread time for fewer than 10 reads: the wait now
        # sleeps until they are in, then a job ends it
        _until(lambda: len(reads) >= 10)
        new_job(other)
        thread.join(LONG)
        assert len(reads) >= 10  # it polled while the wait slept
        # a poll that saw the wait registered just before it left may still read once (its thread paused
        # between its check and its read): the count settles first, then stays
        deadline, settled = time.monotonic() + 10, -1
        while len(reads) != settled:
            assert time.monotonic() < deadline, "the poller went on reading with no wait registered"
            settled = len(reads)
            time.sleep(0.5)
        time.sleep(0.3)
        assert len(reads) == settled
        assert len(_pollers()) >= 1


def test_closing_the_store_wakes_its_sleeping_waits_which_end(sqlite_url: str) -> None:
    """A sync and an async wait asleep when the store closes are woken and end with ``InvalidInput`` (the
    store is closed), not after the (hour-long) re-try; the poller's thread ends with the store."""
    store = Store(sqlite_url)
    job = new_job(store)
    outcomes: list[BaseException] = []

    def wait() -> None:
        try:
            store.wait_for(job.id, timeout=LONG)
        except BaseException as exc:
            outcomes.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    _until(lambda: waiting.listeners(store).hub.waiters == 1)
    started = time.monotonic()
    store.close()
    thread.join(LONG)
    assert time.monotonic() - started < 30  # not the re-try (an hour) nor the wait's LONG
    assert [type(o) for o in outcomes] == [InvalidInput]
    assert not waiting.listeners(store).hub.started

    async def main() -> BaseException | None:
        async with AsyncStore.open(sqlite_url) as astore:
            job = await asyncio.to_thread(new_job, Store(sqlite_url), "async")
            task = asyncio.create_task(astore.wait_for(job.id, timeout=LONG))
            while waiting.listeners(astore).hub.waiters == 0:
                await asyncio.sleep(0.01)
            await astore.close()
            try:
                await asyncio.wait_for(task, 30)
            except InvalidInput as exc:
                return exc
            return None

    assert isinstance(asyncio.run(main()), InvalidInput)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_polls_on_a_connection_of_its_own(sqlite_url: str, other: Store) -> None:
    """A child forked while its parent's store polls makes its own poller at its first wait (woken by a
    commit all the same), and its parent's goes on waking the parent's waits."""
    with Store(sqlite_url) as store:
        assert store.claim_next("gpu-0", wait=0.01) is None
        parent = waiting.listeners(store).hub
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
        time.sleep(0.3)
        job = new_job(other, "for the child")
        got = os.read(read, 64).decode()
        os.close(read)
        _, status = os.waitpid(child, 0)
        assert status == 0 and got == job.id
        assert parent.connections == 1
        results: list[Any] = []
        thread = threading.Thread(target=lambda: results.append(store.claim_next("gpu-0", wait=LONG)))
        thread.start()
        _until(lambda: parent.waiters == 1)
        second = new_job(other, "for the parent")
        thread.join(LONG)
        assert [r.id for r in results] == [second.id]


def test_a_finished_job_wakes_its_own_waits_only(
    sqlite_url: str, other: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit that finishes one awaited job of 20 wakes the wait for it and no other: the poller asks
    which awaited jobs are still pending or processing (one query) instead of waking every wait to read its
    row (20 reads per commit; with 1,000 waits, 1,000). The waits for work are woken by any commit still."""
    reads: list[str] = []
    run = Store.run

    def counted(self: Store, op: Any, /, *args: Any, **kwargs: Any) -> Any:
        found = run(self, op, *args, **kwargs)
        if getattr(op, "__name__", "") == "get_generation":
            reads.append(args[0])  # once the read is done: a read still running could see the cancel below
        return found

    monkeypatch.setattr(Store, "run", counted)
    waits = 20
    jobs = [new_job(other, f"job {i}") for i in range(waits)]
    with Store(sqlite_url) as store:
        results: dict[str, Any] = {}

        def wait(gid: str) -> None:
            results[gid] = store.wait_for(gid, timeout=LONG)

        threads = [threading.Thread(target=wait, args=(job.id,)) for job in jobs]
        for thread in threads:
            thread.start()
        hub = waiting.listeners(store).hub
        _until(lambda: hub.waiters == waits and len(reads) == waits)
        for _ in range(3):
            new_job(other, "a commit that finishes nothing awaited")
        other.cancel(jobs[0].id)
        threads[0].join(LONG)
        assert results[jobs[0].id].status is Status.CANCELLED
        time.sleep(0.2)  # any wrongly woken wait would have read its row by now
        assert sorted(reads) == sorted([job.id for job in jobs] + [jobs[0].id])
        for job in jobs[1:]:
            other.cancel(job.id)
        for thread in threads:
            thread.join(LONG)
    assert all(results[job.id].status is Status.CANCELLED for job in jobs)


def test_a_wait_for_a_job_deleted_meanwhile_ends_with_not_found(sqlite_url: str, other: Store) -> None:
    """A job deleted while its ``wait_for`` sleeps is gone from ``unfinished_among``'s answer: the wait is
    woken and raises ``NotFound`` (not after the hour-long re-try)."""
    from musicstore import NotFound

    job = new_job(other)
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            with Store(sqlite_url) as store:
                store.wait_for(job.id, timeout=LONG)
        except NotFound as exc:
            outcome.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.3)
    other.delete_generation(job.id)
    thread.join(LONG)
    assert [type(o) for o in outcome] == [NotFound]


def test_unfinished_among_looks_each_id_up_by_the_primary_key(sqlite_url: str) -> None:
    """The poller's query walks the list of awaited ids and looks each up (never a scan of the pending and
    processing jobs, however many there are)."""
    from musicstore.queries import load

    sql = load("sqlite", "sqlite3")["unfinished_among"].sql
    with Store(sqlite_url) as store:
        conn = sqlite3.connect(str(store.url.path))
        try:
            plan = "\n".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", {"ids": "[]"}))
        finally:
            conn.close()
    assert "SEARCH g USING INDEX sqlite_autoindex_generations_1 (id=?)" in plan, plan
    assert "SCAN g" not in plan and "SCAN generations" not in plan, plan
