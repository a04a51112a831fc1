"""``AsyncStore`` on both backends: the same operations and semantics as ``Store``, driven with ``await``.

No pytest-asyncio: each test runs its coroutine with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from musicstore import (
    RESET_CONFIRMATION,
    ConfirmationRequired,
    DatabaseBusy,
    Generation,
    InvalidInput,
    InvalidTransition,
    LeaseLost,
    MigrationError,
    NotFound,
    Requeued,
    Status,
    Store,
    ops,
)
from musicstore.aio import OPERATION_NAMES, AsyncOperations, AsyncStore, AsyncTransaction
from musicstore.store import Operations
from tests.conftest import FakeClock, new_job
from tests.connecting import opened_async

MISSING = "01a20180-5e48-7dc6-afbf-cdf54fb09fcb"


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


async def anew_job(store: Any, prompt: str = "lofi hip hop at 90 BPM", **kwargs: Any) -> Generation:
    fields: dict[str, Any] = {"model_name": "musicgen-small", "duration_seconds": 30.0}
    fields.update(kwargs)
    job: Generation = await store.create_generation(prompt, **fields)
    return job


async def raises(kind: type[Exception], call: Awaitable[object], match: str | None = None) -> Exception:
    with pytest.raises(kind, match=match) as excinfo:
        await call
    return excinfo.value


def test_async_operations_are_the_store_operations() -> None:
    names = {name for name, value in vars(AsyncOperations).items() if hasattr(value, "op")}
    assert names == OPERATION_NAMES and len(names) == 31  # 24, the queue's 6 (migration 0008), merge_metadata
    for name in names:  # the same Operation objects from musicstore.ops, not copies
        assert vars(AsyncOperations)[name].op is vars(Operations)[name].op is getattr(ops, name)


def test_importing_musicstore_does_not_import_aiosqlite() -> None:
    code = "import sys, musicstore, musicstore.aio; assert 'aiosqlite' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_full_lifecycle(db_url: str, clock: FakeClock) -> None:
    async def main() -> None:
        async with AsyncStore.open(db_url, clock=clock) as store:
            job = await anew_job(store, sample_rate=44_100, channels=1, metadata={"bpm": 90})
            assert job.status is Status.PENDING and job.created_at == clock.now and job.attempts == 0
            assert await store.get_generation(job.id) == job
            clock.advance(1)
            other = await anew_job(store, "ambient drone", model_name="other")
            page = await store.list_generations(limit=1)
            assert [g.id for g in page.items] == [other.id] and page.next_cursor is not None
            rest = await store.list_generations(limit=1, cursor=page.next_cursor)
            assert [g.id for g in rest.items] == [job.id]
            assert [g.id for g in await store.get_pending_generations()] == [job.id, other.id]
            assert [g.id for g in await store.get_all_generations()] == [other.id, job.id]
            assert await store.count_generations() == 2
            assert await store.count_generations(model_name="other") == 1

            # claim (oldest first), heartbeat, complete
            clock.advance(1)
            claimed = await store.claim_next("gpu-0", lease_seconds=60)
            assert claimed is not None and claimed.id == job.id and claimed.worker_id == "gpu-0"
            assert claimed.status is Status.PROCESSING and claimed.attempts == 1
            assert claimed.lease_expires_at == clock.now + timedelta(seconds=60)
            clock.advance(30)
            assert await store.heartbeat(job.id, "gpu-0", lease_seconds=60) == clock.now + timedelta(
                seconds=60
            )
            clock.advance(10)
            done = await store.complete_generation(
                job.id, file_path="2026/01/01/a.wav", file_size_bytes=1234, metadata={"lufs": -16.0}
            )
            assert done.status is Status.COMPLETED and done.metadata == {"bpm": 90, "lufs": -16.0}
            assert done.generation_time_seconds == pytest.approx(40.0)
            assert await store.get_generation(job.id) == done

            # fail with retry, then finally
            assert (await store.claim_batch("gpu-1", 5))[0].id == other.id
            assert await store.fail(other.id, "CUDA out of memory", max_attempts=2) is Status.PENDING
            retried = await store.get_generation(other.id)
            assert retried is not None and retried.status is Status.PENDING and retried.worker_id is None
            await store.claim_next("gpu-1")
            assert await store.fail(other.id, "CUDA out of memory", max_attempts=2) is Status.FAILED

            # an expired lease is requeued by the fake clock, then failed for good on the last attempt
            third = await anew_job(store, "techno")
            await store.claim_next("gpu-2", lease_seconds=5)
            clock.advance(6)
            assert await store.requeue_expired() == Requeued(requeued=[third.id], failed=[])
            await store.claim_next("gpu-3", lease_seconds=5)
            clock.advance(6)
            assert await store.requeue_expired(max_attempts=2) == Requeued(requeued=[], failed=[third.id])

            # cancel, requeue by update_generation_status, delete
            fourth = await anew_job(store, "jazz")
            await store.claim_next("gpu-4")
            await store.update_generation_status(fourth.id, "pending")
            await store.cancel(fourth.id, "user asked")
            cancelled = await store.get_generation(fourth.id)
            assert cancelled is not None and cancelled.status is Status.CANCELLED
            assert cancelled.error_message == "user asked"
            await store.delete_generation(fourth.id)
            assert await store.get_generation(fourth.id) is None

            stats = await store.get_database_stats()
            assert stats.by_status[Status.COMPLETED] == 1 and stats.by_status[Status.FAILED] == 2
            assert stats.total == 3 and stats.total_file_bytes == 1234
            assert stats.unique_prompts == 4 and stats.prompt_uses == 4

            # prompts
            assert (await store.track_prompt_usage("techno")).used_count == 2
            tracked = await store.get_prompt_by_text("techno")
            assert tracked is not None and tracked.used_count == 2
            assert await store.get_prompt_by_text("never used") is None
            assert [p.text for p in await store.get_most_used_prompts(1)] == ["techno"]

            await raises(ConfirmationRequired, store.reset_database(confirm="yes"))
            await store.reset_database(confirm=RESET_CONFIRMATION)
            assert (await store.get_database_stats()).total == 0

    run(main())


def test_errors_are_the_sync_errors(db_url: str, clock: FakeClock) -> None:
    async def main() -> None:
        async with AsyncStore.open(db_url, clock=clock) as store:
            assert await store.get_generation(MISSING) is None
            for call in (
                store.cancel(MISSING),
                store.delete_generation(MISSING),
                store.fail(MISSING, "boom"),
                store.heartbeat(MISSING, "w"),
                store.complete_generation(MISSING, file_path="a.wav", file_size_bytes=1),
            ):
                await raises(NotFound, call, match=MISSING)
            await raises(InvalidInput, store.get_generation("../../etc/passwd"), match="UUID")
            await raises(InvalidInput, store.create_generation("x", model_name="m", duration_seconds=-1))
            await raises(InvalidInput, store.list_generations(cursor="not-a-cursor"), match="cursor")

            job = await anew_job(store)
            before = await store.get_generation(job.id)
            error = await raises(
                InvalidTransition, store.complete_generation(job.id, file_path="a.wav", file_size_bytes=1)
            )
            assert isinstance(error, InvalidTransition) and error.current == "pending"
            await raises(InvalidTransition, store.update_generation_status(job.id, "completed"))
            assert await store.get_generation(job.id) == before

            await store.claim_next("old", lease_seconds=10)
            clock.advance(11)
            assert (await store.requeue_expired()).requeued == [job.id]
            await store.claim_next("new")
            await raises(
                LeaseLost,
                store.complete_generation(job.id, file_path="a.wav", file_size_bytes=1, worker_id="old"),
                match="'new'",
            )
            await raises(LeaseLost, store.heartbeat(job.id, "old"))
            await raises(InvalidTransition, store.delete_generation(job.id), match="processing")

    run(main())


def test_transaction_commits_together_and_others_see_it_only_after(db_url: str) -> None:
    async def main() -> None:
        async with AsyncStore.open(db_url) as store:
            with Store(db_url) as outside:
                async with store.transaction() as tx:
                    assert isinstance(tx, AsyncTransaction)
                    a = await anew_job(tx, "a")
                    b = await anew_job(store, "b")  # the same task: joins the open transaction
                    assert await tx.get_generation(b.id) == b and await store.get_generation(a.id) == a
                    assert outside.count_generations() == 0  # another connection: not yet committed
                    # a task started here is another unit of work, like another thread: it runs outside
                    assert await asyncio.create_task(store.get_generation(a.id)) is None
                assert outside.get_generation(a.id) == a and outside.get_generation(b.id) == b
                assert await store.count_generations() == 2

    run(main())


def test_exception_in_transaction_leaves_no_trace(db_url: str) -> None:
    async def main() -> None:
        async with AsyncStore.open(db_url) as store:
            before = await store.get_database_stats()
            with pytest.raises(RuntimeError, match="abort"):
                async with store.transaction() as tx:
                    job = await anew_job(tx, "never stored")
                    await store.track_prompt_usage("never stored either")
                    raise RuntimeError("abort")
            assert await store.get_generation(job.id) is None
            assert await store.get_prompt_by_text("never stored") is None
            assert await store.get_prompt_by_text("never stored either") is None
            assert await store.get_database_stats() == before
            await raises(InvalidInput, tx.count_generations(), match="ended")  # a closed transaction
        with Store(db_url) as other:
            assert other.count_generations() == 0 and other.get_database_stats() == before

    run(main())


def test_read_only_transaction_refuses_writes(db_url: str) -> None:
    async def main() -> None:
        async with AsyncStore.open(db_url) as store:
            await anew_job(store)
            async with store.transaction(write=False) as tx:
                assert await tx.count_generations() == 1
                await raises(InvalidInput, anew_job(tx), match="write=True")
                await raises(InvalidInput, store.claim_next("w"), match="write=True")  # joined: refused too
            assert await store.count_generations(status="pending") == 1

    run(main())


def test_nested_transaction_is_refused(db_url: str) -> None:
    async def main() -> None:
        async with AsyncStore.open(db_url) as store, store.transaction():
            with pytest.raises(InvalidInput, match="already open"):
                async with store.transaction():
                    pass

    run(main())


def test_busy_is_a_typed_error(db_url: str) -> None:
    """SQLite: another writer holds the lock past busy_timeout. PostgreSQL: no pooled connection frees up."""

    async def main() -> None:
        if db_url.startswith("sqlite"):
            blocker = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")
            try:
                async with AsyncStore.open(db_url, busy_timeout=0.05) as store:
                    await raises(DatabaseBusy, anew_job(store), match="busy timeout")
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            return
        async with await opened_async(
            lambda: AsyncStore.open(db_url, busy_timeout=0.2, pool_size=1)
        ) as store:
            async with store.transaction():  # holds the only connection
                await raises(DatabaseBusy, asyncio.create_task(store.count_generations()), match="pool")
            assert await store.count_generations() == 0

    run(main())


def test_a_row_lock_held_past_busy_timeout_is_database_busy(postgres_url: str) -> None:
    """PostgreSQL: an async write behind another transaction's row lock waits busy_timeout, then DatabaseBusy
    (the pool's connections wait for a row lock as the sync store's do)."""
    import threading

    with Store(postgres_url) as holder:
        job = new_job(holder)
        locked, release = threading.Event(), threading.Event()

        def hold_lock() -> None:
            with holder.transaction() as tx:
                tx.cancel(job.id)  # the row stays locked until the block ends
                locked.set()
                release.wait(30)

        async def main() -> None:
            async with await opened_async(lambda: AsyncStore.open(postgres_url, busy_timeout=0.3)) as store:
                await raises(DatabaseBusy, asyncio.wait_for(store.cancel(job.id), 30), match="busy timeout")

        holding = threading.Thread(target=hold_lock)
        holding.start()
        try:
            assert locked.wait(60)
            run(main())
        finally:
            release.set()
            holding.join()


def test_unmigrated_database_is_a_clear_error(tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(MigrationError, match="migrate"):
            await AsyncStore.open(f"sqlite:///{tmp_path / 'empty.db'}")
        store = await AsyncStore.open(f"sqlite:///{tmp_path / 'auto.db'}", migrate=True)
        try:
            assert await store.count_generations() == 0
        finally:
            await store.close()

    run(main())


def test_sync_and_async_see_each_others_writes(db_url: str) -> None:
    async def main() -> None:
        with Store(db_url) as sync:
            async with AsyncStore.open(db_url) as store:
                made_sync = new_job(sync, "sync made")
                assert await store.get_generation(made_sync.id) == made_sync
                made_async = await anew_job(store, "async made")
                assert sync.get_generation(made_async.id) == made_async
                claimed = await store.claim_next("async-worker")
                assert claimed is not None and claimed.id == made_sync.id
                assert sync.get_generation(made_sync.id) == claimed
                sync.complete_generation(made_sync.id, file_path="a.wav", file_size_bytes=7)
                assert await store.get_generation(made_sync.id) == sync.get_generation(made_sync.id)
                assert await store.get_database_stats() == sync.get_database_stats()
                assert (await store.get_prompt_by_text("sync made")) == sync.get_prompt_by_text("sync made")

    run(main())


def test_cancelled_tasks_roll_back_and_leave_connections_usable(db_url: str) -> None:
    """A task cancelled mid-write rolls back (mid-COMMIT: it may have committed, counted once) and leaves no
    poisoned connection.

    Also guards against psycopg_pool swallowing a cancellation in getconn (psycopg#1345), which left a
    cancelled task running forever.
    """

    async def main() -> None:
        async with AsyncStore.open(db_url, busy_timeout=30, pool_size=4) as store:
            started = asyncio.Event()

            async def hold_open() -> None:
                async with store.transaction() as tx:
                    await anew_job(tx, "cancelled with its transaction")
                    started.set()
                    await asyncio.sleep(60)

            holder = asyncio.create_task(hold_open())
            await started.wait()
            holder.cancel()
            with pytest.raises(asyncio.CancelledError):
                await holder
            assert await store.get_prompt_by_text("cancelled with its transaction") is None

            wrote = [0]

            async def storm() -> None:
                while True:
                    await anew_job(store, "storm")
                    wrote[0] += 1

            tasks = [asyncio.create_task(storm()) for _ in range(8)]
            await asyncio.sleep(0.3)
            deadline = asyncio.get_running_loop().time() + 30
            while wrote[0] < len(tasks) and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)  # storming, however loaded the machine (its pool still opening)
            for task in tasks:
                task.cancel()
            _, still_running = await asyncio.wait(tasks, timeout=30)
            assert not still_running, "a cancelled task kept running: its cancellation was swallowed"
            assert all(task.cancelled() for task in tasks)
            before = await store.count_generations()
            assert before > 0, "the storm wrote nothing: the test proves nothing"
            await asyncio.gather(*(anew_job(store, f"after {i}") for i in range(10)))
            assert await store.count_generations() == before + 10
            tracked = await store.get_prompt_by_text("storm")
            assert tracked is not None and tracked.used_count == before  # each committed create counted once

    run(main())


TASKS = 20
JOBS = 300


class ConnectionSpy:
    """Wraps a connector's acquire/release: which connections are in use, and never by two tasks at once."""

    def __init__(self, connector: Any) -> None:
        self.in_use: set[int] = set()
        self.seen: set[int] = set()
        self.most_at_once = 0
        self.shared: list[int] = []
        acquire: Callable[[], Awaitable[Any]] = connector.acquire
        release: Callable[[Any], Awaitable[None]] = connector.release

        async def spied_acquire() -> Any:
            conn = await acquire()
            if id(conn) in self.in_use:
                self.shared.append(id(conn))
            self.in_use.add(id(conn))
            self.seen.add(id(conn))
            self.most_at_once = max(self.most_at_once, len(self.in_use))
            return conn

        async def spied_release(conn: Any) -> None:
            self.in_use.discard(id(conn))
            await release(conn)

        connector.acquire, connector.release = spied_acquire, spied_release


def test_concurrent_tasks_never_double_claim_or_lose_a_job(db_url: str) -> None:
    pool_size = 4

    async def worker(store: AsyncStore, name: str) -> list[str]:
        claimed = []
        while (job := await store.claim_next(name)) is not None:
            claimed.append(job.id)
            await store.complete_generation(
                job.id, file_path=f"{job.id}.wav", file_size_bytes=1, worker_id=name
            )
        return claimed

    async def main() -> None:
        async with AsyncStore.open(db_url, busy_timeout=30, pool_size=pool_size) as store:
            async with store.transaction():
                created = {(await anew_job(store, f"job {i}")).id for i in range(JOBS)}
            spy = ConnectionSpy(store._connector)
            results = await asyncio.gather(*(worker(store, f"task-{n}") for n in range(TASKS)))
            claimed = [gid for ids in results for gid in ids]
            assert len(claimed) == len(set(claimed)), "a job was claimed twice"
            assert set(claimed) == created, "a job was lost"
            assert sum(1 for ids in results if ids) > 1, "only one task got work: the test proves nothing"
            assert spy.shared == [], "two tasks used one connection at once"
            assert spy.most_at_once > 1, "the tasks never overlapped: the test proves nothing"
            assert spy.most_at_once <= pool_size
            if not db_url.startswith("postgresql"):  # SQLite: at most pool_size aiosqlite connections, reused
                # when idle; the writers contend for BEGIN IMMEDIATE and wait within busy_timeout
                assert len(spy.seen) == spy.most_at_once
            stats = await store.get_database_stats()
            assert stats.by_status[Status.COMPLETED] == JOBS == stats.total
            done = await store.list_generations(status="completed", limit=500)
            assert len(done.items) == JOBS and all(g.attempts == 1 for g in done.items)

    run(main())


def test_concurrent_creates_count_prompts_exactly(db_url: str) -> None:
    async def main() -> None:
        async with AsyncStore.open(db_url, busy_timeout=30, pool_size=4) as store:
            await asyncio.gather(
                *(anew_job(store, f"shared {i % 3}", model_name="m") for i in range(TASKS * 6))
            )
            counts = [await store.get_prompt_by_text(f"shared {i}") for i in range(3)]
            assert [p.used_count if p else None for p in counts] == [TASKS * 2] * 3
            assert (await store.get_database_stats()).prompt_uses == TASKS * 6

    run(main())


def test_closing_the_store_while_a_task_holds_a_connection(db_url: str) -> None:
    """The holder finishes its transaction normally; its connection goes back to (or closes with) its pool."""

    async def main() -> None:
        store = await AsyncStore.open(db_url)
        inside, go_on = asyncio.Event(), asyncio.Event()

        async def holder() -> str:
            async with store.transaction() as tx:
                job = await anew_job(tx, "held")
                inside.set()
                await go_on.wait()
            return job.id

        task = asyncio.create_task(holder())
        await inside.wait()
        closing = asyncio.create_task(store.close())
        await asyncio.sleep(0.1)
        go_on.set()
        outcome = await asyncio.gather(task, return_exceptions=True)
        await asyncio.wait_for(closing, 60)
        assert isinstance(outcome[0], str), repr(outcome[0])

    run(main())


def test_a_database_that_cannot_be_opened_is_a_clear_error(tmp_path: Path, postgres_url: str) -> None:
    """As Store: a DatabaseError naming the failure, not an OSError, nor DatabaseBusy ('raise pool_size')."""
    from musicstore import DatabaseError

    from .test_store import _unopenable_urls

    async def main() -> None:
        for url in _unopenable_urls(tmp_path, postgres_url):
            for migrate in (False, True):
                with pytest.raises(DatabaseError) as caught:
                    await AsyncStore.open(url, busy_timeout=0.5, migrate=migrate)
                assert not isinstance(caught.value, DatabaseBusy), (url, caught.value)

    run(main())


def test_a_connection_in_use_when_the_store_closes_is_closed_when_released(db_url: str) -> None:
    """close() cannot close a connection a task is using; it must close it when the task is done with it,
    not keep it in the closed store (on SQLite an aiosqlite thread, which keeps the process from exiting)."""

    async def main() -> None:
        store = await AsyncStore.open(db_url)
        inside, go_on = asyncio.Event(), asyncio.Event()
        held: list[Any] = []

        async def holder() -> None:
            async with store.transaction() as tx:
                await anew_job(tx, "held")
                held.append(tx._conn)
                inside.set()
                await go_on.wait()

        task = asyncio.create_task(holder())
        await inside.wait()
        await store.close()
        go_on.set()
        await task
        if db_url.startswith("sqlite"):
            assert held[0]._connection is None, "the connection was kept open after close()"
            held[0]._thread.join(30)
            assert not held[0]._thread.is_alive()
        else:
            assert held[0].closed
        reopened = await AsyncStore.open(db_url)
        try:
            assert await reopened.count_generations() == 1  # the holder's transaction committed
        finally:
            await reopened.close()

    run(main())


def test_a_task_cancelled_while_its_connection_goes_back_does_not_shrink_the_pool(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Giving a connection back (a rollback, a reset) finishes even if the task is cancelled meanwhile."""
    from musicstore.backends import postgres_async

    monkeypatch.setattr(postgres_async, "SPARE_SECONDS", 0.0)  # every connection goes back through the pool

    async def main() -> None:
        # busy_timeout 30 s (was 2): the last read waits for the only connection, back from its slowed
        # putconn (0.3 s) and reset, however loaded; a pool that shrank fails it all the same (DatabaseBusy)
        async with AsyncStore.open(postgres_url, busy_timeout=30, pool_size=1) as store:
            job = await anew_job(store)
            connector: Any = store._connector
            returning = asyncio.Event()

            async def slow_putconn(conn: Any, real: Any) -> None:
                returning.set()
                await asyncio.sleep(0.3)
                await real(conn)

            pool = connector._pool
            real_putconn = pool.putconn
            pool.putconn = lambda conn: slow_putconn(conn, real_putconn)
            reader = asyncio.create_task(store.get_generation(job.id))
            await returning.wait()
            reader.cancel()  # lands while the connection is on its way back
            with pytest.raises(asyncio.CancelledError):
                await reader
            pool.putconn = real_putconn
            assert (await store.get_generation(job.id)) is not None  # the only connection came back

    run(main())


def test_one_query_reads_run_without_their_generator_as_on_store(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that is one query runs on AsyncStore as on Store: the definition ``runner.one_query`` shares,
    no generator; the same answers as the sync store, its argument checks before any connection, and inside
    the task's transaction the transaction's read."""

    async def main() -> None:
        with Store(db_url) as sync:
            async with AsyncStore.open(db_url) as store:
                jobs = [
                    await anew_job(store, f"direct {i}", owner_key="k" if i % 2 else None) for i in range(6)
                ]
                claimed = await store.claim_next("w")
                assert claimed is not None
                await store.complete_generation(claimed.id, file_path="x/a.wav", file_size_bytes=3)
                await store.cancel(jobs[-1].id)
                reads: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
                    ("get_generation", (jobs[1].id,), {}),
                    ("get_generation", (MISSING,), {}),
                    ("list_generations", (), {"limit": 2}),
                    ("list_generations", (), {"status": "pending", "model_name": "musicgen-small"}),
                    ("get_all_generations", (), {"status": Status.CANCELLED}),
                    ("get_pending_generations", (3,), {}),
                    ("count_generations", (), {}),
                    ("count_generations", (), {"status": "pending"}),
                    ("count_generations", (), {"status": Status.COMPLETED, "model_name": "musicgen-small"}),
                    ("get_database_stats", (), {}),
                    ("get_prompt_by_text", ("direct 2",), {}),
                    ("get_most_used_prompts", (2,), {}),
                ]
                for name, _, _ in reads:  # no generator may run: each op's steps refuse
                    op = getattr(ops, name)
                    monkeypatch.setattr(op, "steps", _refuse)
                for name, args, kwargs in reads:
                    got = await getattr(store, name)(*args, **kwargs)
                    assert got == getattr(sync, name)(*args, **kwargs), name
                    assert getattr(store, name).operation is getattr(ops, name)
                await raises(InvalidInput, store.get_generation("not an id"), "canonical")
                await raises(InvalidInput, store.count_generations(status="lost"), "unknown status")
                monkeypatch.undo()
                async with store.transaction() as tx:
                    inside = await anew_job(tx, "only in the transaction")
                    assert await store.get_generation(inside.id) == inside  # the transaction's read
                    assert await store.count_generations(status="pending") == 5
                assert await store.get_generation(inside.id) == inside

    run(main())


def _refuse(*args: object, **kwargs: object) -> Any:
    raise AssertionError("a one-query read ran its generator")
