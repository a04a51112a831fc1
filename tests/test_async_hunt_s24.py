"""Regressions found hunting ``AsyncStore``'s cancellations, timeouts and event loops (session 24), both
backends where the behaviour exists on both. No pytest-asyncio: each test runs its coroutine with
``asyncio.run``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from typing import Any

from musicstore import Generation, InvalidInput, Store, waiting
from musicstore.aio import AsyncStore

BUSY = 10.0
"""The busy timeout of these tests' stores: a wait that lasts it is the bug."""


async def anew_job(store: Any, prompt: str = "lofi hip hop at 90 BPM") -> Generation:
    job: Generation = await store.create_generation(prompt, model_name="musicgen-small", duration_seconds=8)
    return job


def test_a_write_cancelled_as_its_statement_returns_leaves_no_statement_open(db_url: str) -> None:
    """A write whose task is cancelled (``asyncio.timeout``) just as its statement's result comes back to it,
    while the application keeps the error (a log, a list of finished tasks): on SQLite the statement's cursor
    stayed with the cancelled await, its statement unfinished on the connection, which went back to the pool;
    every later write on that connection then failed with ``DatabaseError: cannot commit transaction - SQL
    statements in progress`` for as long as the error was kept. The timeouts sweep the span of a write, one
    connection in the pool; every write after each must work."""

    async def main() -> None:
        kept: list[BaseException] = []
        async with AsyncStore.open(db_url, busy_timeout=BUSY, pool_size=1) as store:
            loop = asyncio.get_running_loop()
            started = loop.time()
            await anew_job(store)
            span = loop.time() - started
            for step in range(300):
                try:
                    async with asyncio.timeout(span * 2 * (step % 100) / 100):
                        await anew_job(store, "may be cancelled")
                except TimeoutError as exc:
                    kept.append(exc)  # its context, the CancelledError, holds the cancelled frames
                await anew_job(store, "after")  # raised DatabaseError on SQLite
            assert kept, "no write was cancelled"
            prompt = await store.get_prompt_by_text("after")
            assert prompt is not None and prompt.used_count == 300

    asyncio.run(main())


_LEFT_OPEN = """
import asyncio, sys
from musicstore.aio import AsyncStore

async def main():
    store = await AsyncStore.open(sys.argv[1], pool_size=3)
    await asyncio.gather(*(store.count_generations() for _ in range(3)))  # three connections, each a thread
    await store.create_generation("left open", model_name="musicgen-small", duration_seconds=8)
    print("loop over", flush=True)

asyncio.run(main())
"""


def test_a_process_whose_loop_ended_with_the_store_open_exits(db_url: str) -> None:
    """``asyncio.run`` ends with the store never closed (a service whose shutdown hook did not run, a script
    that forgot ``close``): the process exits, its committed writes kept. On SQLite it never exited: each
    aiosqlite connection runs on a thread that is not a daemon (aiosqlite 0.22), waiting for work that could
    never come, and the interpreter waits for such threads before it exits."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _LEFT_OPEN, db_url],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the process did not exit: {exc.stdout!r} {exc.stderr!r}") from None
    assert done.returncode == 0, done.stderr
    assert done.stdout == "loop over\n"
    with Store(db_url) as store:
        assert store.count_generations() == 1


def test_a_close_whose_task_is_cancelled_still_closes_the_listeners(db_url: str) -> None:
    """``close()`` cancelled as it closes the connections (an ``asyncio.timeout`` around a service's shutdown;
    cancelled after each number of event-loop turns in turn) still closes what the store's waits use: before,
    the cancel skipped it, and on PostgreSQL the hub's listening connection and its thread stayed (until the
    store was garbage-collected), its waits never woken; on SQLite the idle listeners' connections stayed
    open."""

    def listening() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "musicstore-listen" and t.is_alive()}

    earlier = listening()  # another test's store, not closed yet (collected later): not this test's

    async def main() -> None:
        for turns in range(1, 12):
            store = await AsyncStore.open(db_url, busy_timeout=BUSY)
            job = await anew_job(store)
            assert (await store.wait_for(job.id, timeout=0)).id == job.id  # its listeners made
            closing = asyncio.ensure_future(store.close())
            for _ in range(turns):
                await asyncio.sleep(0)
            closing.cancel()
            await asyncio.gather(closing, return_exceptions=True)
            listeners = waiting.listeners(store)
            assert listeners.closed, f"cancelled after {turns} turns: the listeners stay open"
            assert listeners.hub is None or not listeners.hub.started
            await store.close()
        assert not listening() - earlier

    asyncio.run(main())


def test_a_store_awaited_from_another_threads_event_loop_is_a_clear_error(db_url: str) -> None:
    """An ``AsyncStore`` belongs to the event loop it was opened in (docs/async.md); awaited meanwhile from
    another thread's loop it raises ``InvalidInput`` saying so, on both backends, and goes on working in its
    own. On SQLite the two loops shared its connections' slots: a task of one loop waited on a semaphore
    the other loop's tasks released (``RuntimeError: Non-thread-safe operation invoked on an event loop
    other than the current one``), and a task waiting for a slot hung."""
    outcomes: list[BaseException | None] = []

    async def main() -> None:
        async with AsyncStore.open(db_url, busy_timeout=BUSY, pool_size=2) as store:
            await anew_job(store, "its own loop")

            async def elsewhere() -> None:
                await asyncio.gather(*(anew_job(store, "another loop") for _ in range(3)))

            def other_thread() -> None:
                try:
                    asyncio.run(elsewhere())
                    outcomes.append(None)
                except BaseException as exc:  # the test reads it
                    outcomes.append(exc)

            thread = threading.Thread(target=other_thread)
            thread.start()
            while thread.is_alive():  # its own loop runs, and its tasks take the connections meanwhile
                await asyncio.gather(*(store.count_generations() for _ in range(3)))
                await asyncio.sleep(0.001)
            thread.join()
            assert len(outcomes) == 1 and isinstance(outcomes[0], InvalidInput), outcomes
            assert "event loop" in str(outcomes[0])
            await anew_job(store, "its own loop")
            assert await store.count_generations() == 2

    asyncio.run(main())
