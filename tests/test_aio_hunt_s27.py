"""AsyncStore hunt, session 27: an event loop that ends (``asyncio.run`` returning, without ``close()``) while
a cancelled SQLite write still waits for the writer lock on its aiosqlite thread."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import threading
import time
from typing import Any

import pytest

from musicstore import AsyncStore
from musicstore.urls import resolve


def _lock_is_free_soon(path: Any, seconds: float = 30.0) -> bool:
    """Whether another connection takes SQLite's writer lock within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        conn = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                return False
        finally:
            conn.close()
        time.sleep(0.02)


@pytest.mark.parametrize("how", ["cancelled", "left running"])
def test_a_loop_ending_as_a_cancelled_write_waits_for_the_lock_leaves_the_lock_free_and_the_store_whole(
    sqlite_url: str, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write waits for SQLite's writer lock (another connection holds it) when its task is cancelled (by
    the caller, or by ``asyncio.run`` as it ends with the task still running), and the event loop ends
    without ``close()``; the lock is released after. Its ``BEGIN IMMEDIATE`` then takes the lock on the
    connection's thread, whose rollback follows. Before, the thread raised 'Event loop is closed' handing
    the BEGIN's result to the closed loop and ended, the rollback never ran: the dead thread's connection
    held the writer lock for the rest of the process (every other writer, in any process, DatabaseBusy);
    and the connection's slot stayed taken, so the store in a later ``asyncio.run`` had one connection
    fewer (with ``pool_size=1``: none, every operation DatabaseBusy)."""
    died: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_value))
    path = resolve(sqlite_url).path
    assert path is not None
    # busy_timeout 30 s: with 2 s, a stall of the event loop of ~1.7 s past its 0.3 s sleep let the write's
    # wait for the lock run out (DatabaseBusy, not cancelled) before the cancel
    store = AsyncStore(sqlite_url, pool_size=1, busy_timeout=30)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")

    async def first() -> None:
        write = asyncio.ensure_future(store.create_generation("late", model_name="m", duration_seconds=1))
        await asyncio.sleep(0.3)  # its BEGIN IMMEDIATE waits for the lock
        if how == "cancelled":
            write.cancel()
            with pytest.raises(asyncio.CancelledError):
                await write
        # else: asyncio.run cancels it as it ends

    try:
        asyncio.run(first())
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    time.sleep(0.5)  # the cancelled write's BEGIN IMMEDIATE takes the lock (its busy handler: 100 ms naps)
    assert _lock_is_free_soon(path)
    assert died == []

    async def second() -> int:
        async with store:
            await store.create_generation("next", model_name="m", duration_seconds=1)
            return await store.count_generations()

    assert asyncio.run(asyncio.wait_for(second(), 60)) == 1
    assert died == []


def test_a_transaction_in_an_async_generator_finalized_by_its_loop_leaves_the_task_free(db_url: str) -> None:
    """An async generator that yields inside ``store.transaction()`` and is dropped (an ``async for`` left
    with ``break``, a stream whose client went away) is finalized by its event loop, in a task of its own:
    its transaction rolls back there. Before, its end reset the ContextVar of open transactions with a
    token of the task that opened it (ValueError, 'Task exception was never retrieved'), and that task kept
    the ended transaction as its own: every later operation it awaited on the store raised 'this transaction
    has ended; open a new one', for good."""

    async def main() -> None:
        failures: list[Any] = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: failures.append(context))
        async with AsyncStore.open(db_url) as store:

            async def rows() -> Any:
                async with store.transaction() as tx:
                    await tx.create_generation("never kept", model_name="m", duration_seconds=1)
                    yield 1
                    await tx.create_generation("never made", model_name="m", duration_seconds=1)

            stream = rows()
            assert await stream.__anext__() == 1
            del stream
            gc.collect()  # finalized: the loop runs its aclose() in a task of its own
            for _ in range(50):
                await asyncio.sleep(0.01)
            assert await store.count_generations() == 0  # rolled back, and this task is out of it
            job = await store.create_generation("kept", model_name="m", duration_seconds=1)
            async with store.transaction() as tx:  # not refused as nested
                assert await tx.get_generation(job.id) == job
            assert await store.wait_for(job.id, timeout=0) == job
        assert failures == []

    asyncio.run(main())
