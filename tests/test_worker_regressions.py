"""Regressions of the worker loop (``musicstore.worker``), both loops, both backends where a backend matters:

- a job whose handler raised while another writer held the database (a long maintenance write on SQLite, a
  row lock on PostgreSQL): its ``fail`` waited past the busy timeout, and ``DatabaseBusy`` ended ``run``
  with the job left processing (its error lost) until its lease expired;
- an ``AsyncWorker`` handler whose own await was cancelled (a future another task cancelled: the model
  server's request, an executor shut down) while the worker's task was not: the ``CancelledError`` ended
  ``run`` with the job left processing, where ``Worker`` fails such a job (``concurrent.futures``'
  ``CancelledError`` is an ``Exception``) and goes on;
- a job the handler completed, then reported progress on (``LeaseLost``), counted lost;
- a job the handler retried itself (``fail(retry=True)``, ``export_generation(on_error="retry")``), then
  raised, counted lost (the worker's fail found it pending, or claimed by another worker), and one it failed
  for good, then let a heartbeat's ``LeaseLost`` pass, lost too; while one ``requeue_expired`` failed on its
  last attempt before the handler raised was counted failed, as if the handler had failed it;
- a handler's error not logged at all (its traceback lost; nothing kept when the job was cancelled meanwhile);
- ``claim_options`` and ``handle_signals``' signals checked only at use (a bare TypeError or OSError, a
  SIGTERM handler left installed), and nested ``handle_signals`` blocks of several workers stopping only the
  last.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from musicstore import DatabaseBusy, InvalidInput, Status, Store, worker
from musicstore.aio import AsyncStore
from musicstore.models import RetryPolicy
from musicstore.worker import AsyncJob, AsyncWorker, Job, Worker, WorkerReport
from tests.conftest import FakeClock, new_job

LOOPS = ["sync", "async"]


@pytest.fixture(autouse=True)
def _short_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "WAIT_SLICE_SECONDS", 0.02)


class _Lock:
    """Another writer's hold on the job's row (SQLite: the writer lock; PostgreSQL: the row's lock), taken by
    ``hold`` and let go when the worker logs a warning (that it will try again)."""

    def __init__(self, url: str, generation_id: str) -> None:
        self.url, self.generation_id = url, generation_id
        self.conn: Any = None
        self.warnings: list[str] = []

    def hold(self) -> None:
        if self.url.startswith("sqlite"):
            self.conn = sqlite3.connect(Path(self.url.removeprefix("sqlite:///")), isolation_level=None)
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            self.conn = psycopg.connect(self.url)  # a transaction opens with the first statement
            self.conn.execute("SELECT id FROM generations WHERE id = %s FOR UPDATE", (self.generation_id,))

    def release(self) -> None:
        if self.conn is not None:
            self.conn.rollback()
            self.conn.close()
            self.conn = None


class _Released(logging.Handler):
    def __init__(self, lock: _Lock) -> None:
        super().__init__(logging.WARNING)
        self.held = lock

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno != logging.WARNING:  # the handler's error, logged before its fail
            return
        self.held.warnings.append(record.getMessage())
        self.held.release()


@contextmanager
def _released_on_warning(lock: _Lock) -> Iterator[None]:
    logger = logging.getLogger(worker.__name__)
    handler = _Released(lock)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        lock.release()


def _run(url: str, loop: str, body: Callable[[], None], **options: Any) -> WorkerReport:
    """Run one job of ``loop`` with a handler that calls ``body`` and raises."""

    def handler(job: Job) -> None:
        body()
        raise RuntimeError("CUDA out of memory")

    async def ahandler(job: AsyncJob) -> None:
        body()
        raise RuntimeError("CUDA out of memory")

    if loop == "sync":
        with Store(url, busy_timeout=0.05) as store:
            return Worker(store, "gpu-0", handler, **options).run(max_jobs=1)

    async def main() -> WorkerReport:
        async with AsyncStore.open(url, busy_timeout=0.05) as store:
            return await AsyncWorker(store, "gpu-0", ahandler, **options).run(max_jobs=1)

    return asyncio.run(main())


@pytest.mark.parametrize("loop", LOOPS)
def test_a_handler_error_whose_fail_waits_past_the_busy_timeout_is_failed_once_the_lock_goes(
    db_url: str, loop: str
) -> None:
    # before: DatabaseBusy ended run(), the job left processing with its error lost until its lease expired
    with Store(db_url) as store:
        job = new_job(store)
    lock = _Lock(db_url, job.id)
    with _released_on_warning(lock):
        report = _run(db_url, loop, lock.hold)
    assert report == WorkerReport(failed=1)
    assert lock.warnings and all(job.id in w and "again" in w for w in lock.warnings)
    with Store(db_url) as store:
        retried = store.get_generation(job.id)
        assert retried is not None and retried.status is Status.PENDING
        assert retried.error_message == "RuntimeError: CUDA out of memory" and retried.worker_id is None


def _cancelled_await() -> Any:
    """An await that another task cancelled (a model server's request, an executor shut down)."""
    future = asyncio.get_running_loop().create_future()
    future.cancel()
    return future


def test_an_async_handler_whose_own_await_was_cancelled_fails_its_job_and_the_worker_goes_on(
    db_url: str,
) -> None:
    # before: the CancelledError ended run() (no task had cancelled the worker), the job left processing
    handled: list[str] = []

    async def handler(job: AsyncJob) -> None:
        handled.append(job.id)
        if len(handled) == 1:
            await _cancelled_await()
        await job.worker.store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=1)

    async def main() -> tuple[WorkerReport, list[Any]]:
        async with AsyncStore.open(db_url) as store:
            make = store.create_generation
            first, second = [await make(p, model_name="m", duration_seconds=8) for p in "ab"]
            later = RetryPolicy(base_seconds=3600)  # the failed job is not claimed again here
            report = await AsyncWorker(store, "gpu-0", handler, backoff=later).run(max_jobs=2)
            return report, [await store.get_generation(g.id) for g in (first, second)]

    report, (first, second) = asyncio.run(main())
    assert report == WorkerReport(done=1, failed=1)
    assert first.status is Status.PENDING and first.error_message.startswith("CancelledError")
    assert second.status is Status.COMPLETED


def test_a_sync_handler_raising_cancelled_error_fails_its_job_as_an_async_one_does(store: Store) -> None:
    # e.g. asyncio.run(...) inside the handler whose coroutine was cancelled: no loop of the worker's was
    job = new_job(store)

    def handler(j: Job) -> None:
        raise asyncio.CancelledError()

    assert Worker(store, "gpu-0", handler).run(max_jobs=1) == WorkerReport(failed=1)
    retried = store.get_generation(job.id)
    assert retried is not None and retried.status is Status.PENDING
    assert retried.error_message is not None and retried.error_message.startswith("CancelledError")


def test_an_async_worker_whose_task_is_cancelled_mid_job_still_ends_with_cancelled_error(db_url: str) -> None:
    # the documented end of a cancelled task: CancelledError, nothing more written, the job left processing
    async def main() -> Any:
        async with AsyncStore.open(db_url) as store:
            job = await store.create_generation("a", model_name="m", duration_seconds=8)
            started = asyncio.Event()

            async def handler(j: AsyncJob) -> None:
                started.set()
                await asyncio.sleep(3600)

            task = asyncio.ensure_future(AsyncWorker(store, "gpu-0", handler).run())
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return await store.get_generation(job.id)

    left = asyncio.run(main())
    assert left.status is Status.PROCESSING and left.error_message is None


@pytest.mark.parametrize("loop", LOOPS)
def test_a_job_the_handler_completed_then_reported_progress_on_is_counted_done_not_lost(
    db_url: str, loop: str
) -> None:
    # before: the report's LeaseLost (the row is completed, by this worker) counted the completed job lost
    with Store(db_url) as store:
        job = new_job(store)

    def complete(store: Any, generation_id: str) -> Any:
        return store.complete_generation(
            generation_id, file_path=f"{generation_id}.wav", file_size_bytes=1, worker_id="gpu-0"
        )

    if loop == "sync":

        def handler(j: Job) -> None:
            complete(j.worker.store, j.id)
            j.progress(1.0, "uploaded")  # a last report, on a job that is no longer processing

        with Store(db_url) as store:
            report = Worker(store, "gpu-0", handler).run(max_jobs=1)
    else:

        async def ahandler(j: AsyncJob) -> None:
            await complete(j.worker.store, j.id)
            await j.progress(1.0, "uploaded")

        async def main() -> WorkerReport:
            async with AsyncStore.open(db_url) as store:
                return await AsyncWorker(store, "gpu-0", ahandler).run(max_jobs=1)

        report = asyncio.run(main())
    assert report == WorkerReport(done=1)
    with Store(db_url) as store:
        done = store.get_generation(job.id)
        assert done is not None and done.status is Status.COMPLETED


@pytest.mark.parametrize(
    "bad", [(signal.SIGTERM, signal.SIGKILL), (signal.SIGINT, 0), (signal.SIGTERM, "TERM")]
)
def test_handle_signals_refuses_a_signal_it_cannot_catch_and_leaves_every_handler_as_it_was(
    sqlite_url: str, bad: tuple[Any, ...]
) -> None:
    # before: SIGTERM's handler was set to stop() and left so (SIGKILL then failed with a bare OSError)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    with Store(sqlite_url) as store:
        loop = Worker(store, "gpu-0", lambda job: None)
        with pytest.raises(InvalidInput, match="signal"), loop.handle_signals(*bad):
            pytest.fail("the block ran")
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_handle_signals_outside_the_main_thread_is_invalid_input(sqlite_url: str) -> None:
    # before: Python's bare ValueError from signal.signal
    errors: list[BaseException] = []
    store = Store(sqlite_url)
    loop = Worker(store, "gpu-0", lambda job: None)

    def enter() -> None:
        try:
            with loop.handle_signals():
                pass
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    store.close()
    assert len(errors) == 1 and isinstance(errors[0], InvalidInput) and "main thread" in str(errors[0])


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("meanwhile", ["nothing", "cancelled"])
def test_a_handler_error_is_logged_with_its_traceback_whatever_became_of_the_job(
    sqlite_url: str, loop: str, meanwhile: str, caplog: pytest.LogCaptureFixture
) -> None:
    # before: nothing was logged; the row kept "type: message" (or, cancelled meanwhile, nothing at all)
    with Store(sqlite_url) as store:
        job = new_job(store)

    def body() -> None:
        if meanwhile == "cancelled":
            with Store(sqlite_url) as other:
                other.cancel(job.id, "the user gave up")

    with caplog.at_level(logging.ERROR, logger=worker.__name__):
        report = _run(sqlite_url, loop, body)
    assert report == (WorkerReport(failed=1) if meanwhile == "nothing" else WorkerReport(cancelled=1))
    logged = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], RuntimeError)]
    assert len(logged) == 1 and job.id in logged[0].getMessage()
    assert "CUDA out of memory" in caplog.text
    assert ("in ahandler" if loop == "async" else "in handler") in caplog.text  # where it was raised


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"owner_limt": 3}, "owner_limit"),  # a misspelt option: a bare TypeError at the first claim
        ({"wait": 5}, "owner_limit"),  # the worker waits itself
        ({"owner_limit": -1}, "owner_limit"),  # InvalidInput only at the first claim
        ({"lease_seconds": 0}, "lease_seconds"),  # a bad lease, found only at the first claim
        (["owner_limit"], "dict"),
    ],
)
@pytest.mark.parametrize("loop", LOOPS)
def test_bad_claim_options_are_refused_when_the_worker_is_made(
    sqlite_url: str, loop: str, options: Any, words: str
) -> None:
    async def ahandler(job: AsyncJob) -> None:
        return None

    async def make_async() -> None:
        async with AsyncStore.open(sqlite_url) as astore:
            AsyncWorker(astore, "gpu-0", ahandler, claim_options=options)

    with Store(sqlite_url) as store, pytest.raises(InvalidInput, match=words):
        if loop == "sync":
            Worker(store, "gpu-0", lambda job: None, claim_options=options)
        else:
            asyncio.run(make_async())


def test_good_claim_options_still_reach_each_claim(sqlite_url: str) -> None:
    with Store(sqlite_url) as store:
        first = store.create_generation("a", model_name="m", duration_seconds=8, owner_key="k")
        store.create_generation("b", model_name="m", duration_seconds=8, owner_key="k")
        done: list[str] = []
        report = Worker(
            store, "gpu-0", lambda job: done.append(job.id), claim_options={"owner_limit": 1}
        ).run(max_jobs=1)
        assert report == WorkerReport(done=1) and done == [first.id]


def test_a_lease_in_claim_options_is_the_workers_lease(sqlite_url: str) -> None:
    # claim_options={"lease_seconds": 5} claimed each job for 5 s while job.progress and job.heartbeat
    # extended it by the worker's lease_seconds (300 s by default): it is now the worker's lease, for both
    with Store(sqlite_url) as store:
        worker = Worker(
            store, "gpu-0", lambda job: None, claim_options={"lease_seconds": 5, "owner_limit": 2}
        )
        assert worker.lease_seconds == 5 and worker.claim_options == {"owner_limit": 2}
        same = Worker(store, "gpu-0", lambda job: None, lease_seconds=5, claim_options={"lease_seconds": 5})
        assert same.lease_seconds == 5 and same.claim_options == {}
        with pytest.raises(InvalidInput, match="two leases"):
            Worker(store, "gpu-0", lambda job: None, lease_seconds=60, claim_options={"lease_seconds": 5})


@pytest.mark.parametrize("loop", LOOPS)
def test_a_stopping_worker_whose_fail_stays_busy_ends_run_with_the_error(sqlite_url: str, loop: str) -> None:
    # the retry of a busy fail does not keep a stopped worker alive: the lock is never let go here
    with Store(sqlite_url) as store:
        job = new_job(store)
    lock = _Lock(sqlite_url, job.id)
    holder: list[Any] = []

    def hold_and_stop() -> None:
        lock.hold()
        holder[0].stop()  # SIGTERM while the handler ran

    def handler(j: Job) -> None:
        hold_and_stop()
        raise RuntimeError("CUDA out of memory")

    async def ahandler(j: AsyncJob) -> None:
        hold_and_stop()
        raise RuntimeError("CUDA out of memory")

    async def main() -> WorkerReport:
        async with AsyncStore.open(sqlite_url, busy_timeout=0.05) as store:
            holder.append(AsyncWorker(store, "gpu-0", ahandler))
            return await holder[0].run()  # type: ignore[no-any-return]

    try:
        with pytest.raises(DatabaseBusy):
            if loop == "sync":
                with Store(sqlite_url, busy_timeout=0.05) as store:
                    holder.append(Worker(store, "gpu-0", handler))
                    holder[0].run()
            else:
                asyncio.run(main())
    finally:
        lock.release()
    with Store(sqlite_url) as store:
        left = store.get_generation(job.id)
        assert left is not None and left.status is Status.PROCESSING  # its lease will expire


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_nested_handle_signals_of_several_workers_stop_them_all(sqlite_url: str, sig: signal.Signals) -> None:
    # before: each block's handler replaced the one before, so a SIGTERM stopped only the innermost worker and
    # the others went on claiming: the gather of several AsyncWorkers never ended
    async def handler(job: AsyncJob) -> None:
        return None

    async def main() -> list[WorkerReport]:
        async with AsyncStore.open(sqlite_url) as store:
            workers = [AsyncWorker(store, f"task-{n}", handler) for n in range(3)]
            with workers[0].handle_signals(), workers[1].handle_signals(), workers[2].handle_signals():
                runs = asyncio.gather(*(w.run() for w in workers))
                await asyncio.sleep(0.05)
                os.kill(os.getpid(), sig)
                return await asyncio.wait_for(runs, 60)

    before = signal.getsignal(sig)
    assert asyncio.run(main()) == [WorkerReport()] * 3
    assert signal.getsignal(sig) == before  # every handler put back


def test_a_job_dead_lettered_by_its_lease_while_the_handler_blocked_is_counted_lost(sqlite_url: str) -> None:
    # the handler's own LeaseLost on a row failed by requeue_expired (its lease ran out on the last attempt):
    # taken back, not finished by the handler (a completed row, which only a worker makes, counts done)
    clock = FakeClock()
    with Store(sqlite_url, clock=clock) as store:
        job = new_job(store)

        def handler(j: Job) -> None:
            clock.advance(120)  # blocked past its 60 s lease without a heartbeat
            assert store.requeue_expired(max_attempts=1).failed == [j.id]
            j.heartbeat()  # LeaseLost: the row is failed, and still names this worker

        report = Worker(store, "gpu-0", handler, lease_seconds=60).run(max_jobs=1)
        assert report == WorkerReport(lost=1)
        dead = store.get_generation(job.id)
        assert dead is not None and dead.status is Status.FAILED and dead.worker_id == "gpu-0"


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("meanwhile", ["retried", "retried and claimed by another worker", "failed"])
@pytest.mark.parametrize("then", ["raises", "heartbeat"])
def test_a_job_its_handler_retried_itself_is_counted_failed_not_lost(
    db_url: str, loop: str, meanwhile: str, then: str
) -> None:
    # before: the worker's fail (or the handler's heartbeat) got LeaseLost, the row pending (or another
    # worker's), and the report counted lost a job its own handler had handed back; a job the handler failed
    # for good, then let a heartbeat's LeaseLost pass, was lost too
    with Store(db_url) as store:
        job = new_job(store)
    claimed_again = meanwhile == "retried and claimed by another worker"
    retry = meanwhile != "failed"

    def after(store: Store) -> None:
        if claimed_again:
            taken = store.claim_next("gpu-1")
            assert taken is not None and taken.id == job.id

    if loop == "sync":

        def handler(j: Job) -> None:
            j.worker.store.fail(j.id, "CUDA out of memory", retry=retry, worker_id="gpu-0")
            after(j.worker.store)
            if then == "heartbeat":
                j.heartbeat()  # LeaseLost, passed on
            raise RuntimeError("CUDA out of memory")

        with Store(db_url) as store:
            report = Worker(store, "gpu-0", handler).run(max_jobs=1)
    else:

        async def ahandler(j: AsyncJob) -> None:
            await j.worker.store.fail(j.id, "CUDA out of memory", retry=retry, worker_id="gpu-0")
            if claimed_again:
                taken = await j.worker.store.claim_next("gpu-1")
                assert taken is not None and taken.id == job.id
            if then == "heartbeat":
                await j.heartbeat()
            raise RuntimeError("CUDA out of memory")

        async def main() -> WorkerReport:
            async with AsyncStore.open(db_url) as store:
                return await AsyncWorker(store, "gpu-0", ahandler).run(max_jobs=1)

        report = asyncio.run(main())
    assert report == WorkerReport(failed=1)
    with Store(db_url) as store:
        row = store.get_generation(job.id)
    assert row is not None
    if claimed_again:
        assert row.status is Status.PROCESSING and row.worker_id == "gpu-1" and row.attempts == 2
    else:
        assert row.status is (Status.PENDING if retry else Status.FAILED) and row.attempts == 1


def test_a_job_export_generation_retried_is_counted_failed_not_lost(db_url: str, tmp_path: Path) -> None:
    # the handler of the issue: export_generation(..., on_error="retry") puts the job back and raises
    import numpy as np

    from musicstore import InvalidAudio
    from musicstore.recording import export_generation

    with Store(db_url) as store:
        job = new_job(store)

        def handler(j: Job) -> None:
            audio = np.full((j.generation.channels, 4000), np.nan, dtype=np.float32)
            export_generation(store, j.generation, audio, root=tmp_path, on_error="retry")

        report = Worker(store, "gpu-0", handler).run(max_jobs=1)
        assert report == WorkerReport(failed=1)
        row = store.get_generation(job.id)
        assert row is not None and row.status is Status.PENDING and "non-finite" in (row.error_message or "")
    assert InvalidAudio.__name__ in (row.error_message or "")


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("taken", ["requeued", "dead-lettered"])
def test_a_job_taken_back_by_its_lease_before_the_handler_raised_is_counted_lost(
    db_url: str, loop: str, taken: str
) -> None:
    # requeue_expired (another process's) took the job back, then the handler raised: the worker's fail gets
    # LeaseLost on a pending row, or on a failed row still naming this worker (fail_expired: no attempt left),
    # which was counted failed as if the handler had failed it
    clock = FakeClock()
    with Store(db_url, clock=clock) as store:
        job = new_job(store)
    attempts = 1 if taken == "dead-lettered" else 3

    def take_back() -> None:
        clock.advance(120)  # past the 60 s lease, no heartbeat
        with Store(db_url, clock=clock) as other:
            done = other.requeue_expired(max_attempts=attempts)
        assert (done.failed if taken == "dead-lettered" else done.requeued) == [job.id]

    if loop == "sync":

        def handler(j: Job) -> None:
            take_back()
            raise RuntimeError("CUDA out of memory")

        with Store(db_url, clock=clock) as store:
            report = Worker(store, "gpu-0", handler, lease_seconds=60).run(max_jobs=1)
    else:

        async def ahandler(j: AsyncJob) -> None:
            await asyncio.to_thread(take_back)
            raise RuntimeError("CUDA out of memory")

        async def main() -> WorkerReport:
            async with AsyncStore.open(db_url, clock=clock) as store:
                return await AsyncWorker(store, "gpu-0", ahandler, lease_seconds=60).run(max_jobs=1)

        report = asyncio.run(main())
    assert report == WorkerReport(lost=1)
    with Store(db_url) as store:
        row = store.get_generation(job.id)
    assert row is not None
    assert row.status is (Status.FAILED if taken == "dead-lettered" else Status.PENDING)
    assert row.error_message is not None and "lease expired" in row.error_message
