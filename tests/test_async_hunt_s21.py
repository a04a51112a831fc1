"""Regressions found hunting ``AsyncStore``'s cancellations, its pool and its loops (both backends where the
behaviour exists on both). No pytest-asyncio: each test runs its coroutine with ``asyncio.run``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from musicstore import Generation, Status, Store
from musicstore.aio import AsyncStore

BUSY = 10.0
"""The busy timeout of these tests' stores: a wait that lasts it is the bug."""
PROMPT = 2.0
"""How soon a cancelled wait must have ended (seconds; generous for a loaded machine)."""


async def anew_job(store: Any, prompt: str = "lofi hip hop at 90 BPM") -> Generation:
    job: Generation = await store.create_generation(prompt, model_name="musicgen-small", duration_seconds=8)
    return job


def test_a_write_waiting_for_a_lock_ends_at_once_when_its_task_is_cancelled(db_url: str) -> None:
    """A write waiting for a lock another connection holds (SQLite's writer lock, taken by ``BEGIN
    IMMEDIATE``; PostgreSQL's row lock) ends as soon as its task is cancelled (``asyncio.timeout``), with
    nothing written, not after ``busy_timeout``; the store works on, and closes. Before, on SQLite the
    cancelled task waited out the whole busy timeout (the rollback queued behind the waiting BEGIN)."""

    async def timed_out(call: Coroutine[Any, Any, object]) -> float:
        started = time.monotonic()
        try:
            async with asyncio.timeout(0.2):
                await call
        except TimeoutError:
            return time.monotonic() - started
        raise AssertionError("the write did not wait for the lock: the test proves nothing")

    async def in_a_transaction(store: AsyncStore, gid: str) -> None:
        async with store.transaction() as tx:
            await tx.create_generation("in the block", model_name="m", duration_seconds=8)
            await tx.cancel(gid)

    async def main() -> None:
        with Store(db_url) as sync:
            job = sync.create_generation("held", model_name="musicgen-small", duration_seconds=8)
            store = await AsyncStore.open(db_url, busy_timeout=BUSY, pool_size=2)
            try:
                with sync.transaction() as holder:
                    holder.cancel(job.id)  # the writer lock (SQLite), the row's lock (PostgreSQL)
                    took = [
                        await timed_out(store.cancel(job.id)),
                        await timed_out(in_a_transaction(store, job.id)),
                    ]
                    assert max(took) < PROMPT, f"the cancelled writes waited {took} s"
                    holder.create_generation("the holder's", model_name="m", duration_seconds=8)
                assert await store.get_prompt_by_text("in the block") is None  # rolled back: nothing written
                assert (await store.get_generation(job.id)).status is Status.CANCELLED  # type: ignore[union-attr]
                await asyncio.gather(*(anew_job(store, f"after {i}") for i in range(4)))
                assert await store.count_generations() == 6
            finally:
                started = time.monotonic()
                await store.close()
            assert time.monotonic() - started < PROMPT

    asyncio.run(main())


def test_a_postgres_store_used_in_another_event_loop_is_a_clear_error_and_closes(postgres_url: str) -> None:
    """An ``AsyncStore`` belongs to the loop it was opened in (docs/async.md): on PostgreSQL its pool's
    workers are that loop's tasks. Awaited in a later ``asyncio.run``, an operation raises ``InvalidInput``
    saying so, and ``close()`` there closes its connections. Before, operations ran on the connections the
    first loop had made but the pool could no longer open any (its workers had ended with their loop: a task
    beyond them waited for the busy timeout, then ``DatabaseBusy``: raise pool_size), and ``close()`` raised
    ``RuntimeError: Event loop is closed``, leaving the connections open."""
    import psycopg

    from musicstore import InvalidInput

    opened: list[AsyncStore] = []

    async def first() -> None:
        store = await AsyncStore.open(postgres_url, pool_size=4, busy_timeout=2)
        await anew_job(store, "first loop")
        opened.append(store)

    async def second() -> None:
        store = opened[0]
        for call in (store.count_generations, lambda: anew_job(store, "second loop")):
            try:
                await call()
            except InvalidInput as exc:
                assert "event loop" in str(exc)
            else:
                raise AssertionError("an operation in another event loop ran")
        await store.close()
        async with AsyncStore.open(postgres_url) as again:  # one per loop: works
            assert await again.count_generations() == 1

    def connections() -> int:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            ).fetchone()
            return int(row[0]) if row else 0

    asyncio.run(first())
    assert connections() > 0
    asyncio.run(second())
    deadline = time.monotonic() + 5
    while connections() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert connections() == 0, "close() left the store's connections open"
