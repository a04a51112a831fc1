"""Regressions found by a hunt over the worker loop (session 24):

- a Ctrl-C (``KeyboardInterrupt``) landing as a SQLite write's ``BEGIN IMMEDIATE`` returned (a handler's
  ``job.heartbeat()`` or ``job.progress(...)``, any write of a ``Store``, or ``store.transaction()``'s BEGIN)
  left the thread's connection inside that transaction: the writer lock held until the store was closed
  (every other process ``DatabaseBusy``), every later write of the store on that thread refused ("cannot
  start a transaction within a transaction"), so a ``Worker``'s put-back of the job in hand failed and the
  job stayed processing until its lease expired; the BEGIN is now inside the block that rolls back;
- a handler raising a ``BaseException`` that is not an ``Exception`` (a ``GeneratorExit``, a framework's own)
  ended a ``Worker``'s run with the job left processing until its lease expired (only ``KeyboardInterrupt``
  and ``SystemExit`` put it back), and an ``AsyncWorker``'s with any of them (``sys.exit()`` in an async
  handler too); both loops now put the job back in the queue, then raise it;
- a process forked inside ``handle_signals`` (a handler's ``multiprocessing`` with the fork start method,
  Linux's default) inherited its SIGTERM handler, which there stopped a copy of the worker and returned:
  ``Process.terminate()`` no longer ended the child (a ``join`` after it waited forever); in a forked child
  the signal now does what it did before the block.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from musicstore import DatabaseBusy, Status, Store
from musicstore.aio import AsyncStore
from musicstore.worker import AsyncJob, AsyncWorker, Job, Worker
from tests.conftest import new_job


class _InterruptedAfterBegin:
    """A SQLite connection whose next ``BEGIN IMMEDIATE`` (once ``armed``) runs, then raises
    ``KeyboardInterrupt``, as a Ctrl-C does when it lands as the statement returns."""

    def __init__(self, conn: Any, armed: list[bool]) -> None:
        self._conn, self._armed = conn, armed

    def execute(self, sql: str, *args: Any) -> Any:
        cursor = self._conn.execute(sql, *args)
        if sql == "BEGIN IMMEDIATE" and self._armed:
            self._armed.clear()
            raise KeyboardInterrupt
        return cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _interrupting(store: Store) -> list[bool]:
    """Arm (append to the list returned) ``store``'s next BEGIN to be interrupted as it returns."""
    armed: list[bool] = []
    acquire = store._connector.acquire
    store._connector.acquire = lambda: _InterruptedAfterBegin(acquire(), armed)
    return armed


def test_ctrl_c_as_a_handlers_write_begins_still_puts_the_job_back_and_frees_the_lock(
    sqlite_url: str,
) -> None:
    with Store(sqlite_url) as store:
        armed = _interrupting(store)
        job = new_job(store)

        def handler(job: Job) -> None:
            armed.append(True)
            job.heartbeat()  # Ctrl-C as its BEGIN IMMEDIATE returns

        with pytest.raises(KeyboardInterrupt):
            Worker(store, "gpu-0", handler).run()
        with Store(sqlite_url, busy_timeout=0.5) as other:  # the lock is free: not DatabaseBusy
            row = other.get_generation(job.id)
            assert row is not None and row.status is Status.PENDING
            assert "interrupted" in str(row.error_message)
            claimed = other.claim_next("gpu-1")
            assert claimed is not None and claimed.id == job.id
        assert new_job(store, "the store still writes").status is Status.PENDING


def test_ctrl_c_as_a_transaction_begins_leaves_no_transaction_open(sqlite_url: str) -> None:
    with Store(sqlite_url) as store:
        armed = _interrupting(store)
        armed.append(True)
        with pytest.raises(KeyboardInterrupt), store.transaction():
            raise AssertionError("not reached")
        with Store(sqlite_url, busy_timeout=0.5) as other:
            new_job(other, "another process writes")
        assert new_job(store, "the store still writes").status is Status.PENDING
        with store.transaction() as tx:
            assert tx.get_database_stats().total == 2


class _Abort(BaseException):
    """A handler's ``BaseException`` of its own (not an ``Exception``), as some frameworks raise."""


BASE_EXCEPTIONS: dict[str, Callable[[], BaseException]] = {
    "SystemExit": lambda: SystemExit(3),
    "KeyboardInterrupt": KeyboardInterrupt,
    "GeneratorExit": GeneratorExit,
    "its own": lambda: _Abort("stop everything"),
}


@pytest.mark.parametrize("raised", list(BASE_EXCEPTIONS))
@pytest.mark.parametrize("loop", ["sync", "async"])
def test_a_handler_raising_a_base_exception_has_its_job_put_back_and_run_raises_it(
    db_url: str, loop: str, raised: str
) -> None:
    """A ``BaseException`` that is not an ``Exception`` ends ``run`` (it is not the handler's error to fail
    the job with), but the job goes back to the queue first: a ``Worker`` did so for ``KeyboardInterrupt`` and
    ``SystemExit`` only, an ``AsyncWorker`` for none, the job left processing until its lease expired."""
    error = BASE_EXCEPTIONS[raised]()
    with Store(db_url) as store:
        job, other = new_job(store, "raises"), new_job(store, "never claimed")

        def handler(job: Job) -> None:
            raise error

        async def async_handler(job: AsyncJob) -> None:
            raise error

        async def main() -> None:
            async with AsyncStore.open(db_url) as astore:
                await AsyncWorker(astore, "gpu-0", async_handler, max_attempts=1).run()

        with pytest.raises(type(error)) as caught:
            if loop == "sync":
                Worker(store, "gpu-0", handler, max_attempts=1).run()
            else:
                asyncio.run(main())
        assert caught.value is error
        row = store.get_generation(job.id)
        assert row is not None and row.status is Status.PENDING and row.worker_id is None, row
        assert row.error_message is not None and f"interrupted ({type(error).__name__})" in row.error_message
        claimed = store.claim_next("gpu-1")  # at once, though its one attempt was used
        assert claimed is not None and claimed.id == job.id
        untouched = store.get_generation(other.id)
        assert untouched is not None and untouched.status is Status.PENDING and untouched.attempts == 0


@pytest.mark.parametrize("loop", ["sync", "async"])
def test_a_handler_raising_a_base_exception_after_completing_its_job_leaves_it_completed(
    db_url: str, loop: str
) -> None:
    with Store(db_url) as store:
        job = new_job(store)
        done: dict[str, Any] = {"file_path": "a.wav", "file_size_bytes": 1, "worker_id": "gpu-0"}

        def handler(job: Job) -> None:
            store.complete_generation(job.id, **done)
            raise _Abort

        async def main() -> None:
            async with AsyncStore.open(db_url) as astore:

                async def async_handler(job: AsyncJob) -> None:
                    await astore.complete_generation(job.id, **done)
                    raise _Abort

                await AsyncWorker(astore, "gpu-0", async_handler).run()

        with pytest.raises(_Abort):
            Worker(store, "gpu-0", handler).run() if loop == "sync" else asyncio.run(main())
        row = store.get_generation(job.id)
        assert row is not None and row.status is Status.COMPLETED and row.error_message is None


def _sleep_forever(started: Any) -> None:
    started.set()  # past the fork's own code: a SIGTERM before it could land in the parent's handler
    while True:
        time.sleep(0.05)


@pytest.mark.parametrize("nested", [False, True])
def test_a_process_forked_inside_handle_signals_still_ends_on_sigterm(sqlite_url: str, nested: bool) -> None:
    with Store(sqlite_url) as store:
        job = new_job(store)
        outer = Worker(store, "gpu-1", lambda job: None)
        exits: list[int | None] = []

        def handler(job: Job) -> None:
            context = multiprocessing.get_context("fork")
            started = context.Event()
            child = context.Process(target=_sleep_forever, args=(started,))
            child.start()
            try:
                assert started.wait(60)
                child.terminate()  # SIGTERM
                child.join(60)
                exits.append(child.exitcode)
            finally:
                if child.exitcode is None:
                    child.kill()
                    child.join()
            store.complete_generation(job.id, file_path="a.wav", file_size_bytes=1, worker_id="gpu-0")

        worker, before = Worker(store, "gpu-0", handler), signal.getsignal(signal.SIGTERM)
        with outer.handle_signals() if nested else contextlib.nullcontext(), worker.handle_signals():
            assert worker.run(max_jobs=1).done == 1
            assert not worker.stopping and not outer.stopping  # the child's SIGTERM was not theirs
            signal.raise_signal(signal.SIGTERM)  # the worker's own process still stops its workers
            assert worker.stopping and outer.stopping == nested
        assert exits == [-signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) == before
        row = store.get_generation(job.id)
        assert row is not None and row.status is Status.COMPLETED


def test_an_async_workers_base_exception_in_the_pause_after_a_busy_claim_puts_back_no_earlier_job(
    sqlite_url: str,
) -> None:
    """The job before a claim is over (here returned unfinished: left to its lease, as documented): a
    ``BaseException`` while the next claim pauses (busy) has no job in hand to put back."""
    with Store(sqlite_url) as store:
        first = new_job(store, "returned unfinished")

        async def main() -> None:
            async with AsyncStore.open(sqlite_url) as astore:
                claim_next, claims = astore.claim_next, []

                async def busy_second(*args: Any, **kwargs: Any) -> Any:
                    claims.append(1)
                    if len(claims) > 1:
                        raise DatabaseBusy("locked by another writer")
                    return await claim_next(*args, **kwargs)

                async def interrupted(seconds: float) -> bool:
                    raise SystemExit(1)

                async def handler(job: AsyncJob) -> None:
                    return None  # its job left processing

                worker = AsyncWorker(astore, "gpu-0", handler)
                astore.claim_next = busy_second  # type: ignore[method-assign]
                worker._pause = interrupted  # type: ignore[method-assign]
                await worker.run()

        with pytest.raises(SystemExit):
            asyncio.run(main())
        row = store.get_generation(first.id)
        assert row is not None and row.status is Status.PROCESSING and row.error_message is None
