"""Regressions found by a hunt over the worker loop (session 22), both loops, both backends:

- a worker given the other kind of store (``AsyncWorker`` on a blocking ``Store``, ``Worker`` on an
  ``AsyncStore``) failed only at its first job, with a bare TypeError or AttributeError; an ``AsyncWorker``'s
  blocking claim had taken the job already, which stayed processing (an attempt used) until its lease expired;
- a handler that failed its job itself (``store.fail(..., retry=False)``: a prompt it cannot render) or
  retried it, then returned, had the job counted ``done``, where the same handler raising after its ``fail``
  has it counted ``failed``;
- ``handle_signals`` blocks left out of order (gathered ``AsyncWorker``s, each block in its own task, one run
  ending first): the worker still running no longer stopped on SIGTERM (the handler from before the blocks
  got it: by default the process ended mid-job), and the first block's handler stayed installed for good;
- an ``AsyncWorker`` whose task was cancelled while its claim was in flight: the claim could commit after
  the cancel, its result lost, the job left processing with no handler until its lease expired;
- a handler written as a generator function (it yields): a ``Worker`` counted each job done, its body never
  run, the job left processing; an ``AsyncWorker`` failed it, telling to run it with ``Worker``;
- ``handle_signals`` given a signal twice left its own handler installed after the block;
- an ``AsyncWorker`` whose handler turned the task's cancel into another error (or swallowed it): the job
  was failed (or counted done) and the worker claimed on, the cancel lost.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator

import pytest

from musicstore import InvalidInput, Status, Store
from musicstore.aio import AsyncStore
from musicstore.worker import AsyncJob, AsyncWorker, Job, Worker, WorkerReport
from tests.conftest import new_job


def test_a_worker_given_the_other_kind_of_store_is_refused_when_made_and_claims_nothing(db_url: str) -> None:
    async def handler(job: AsyncJob) -> None:
        return None

    with Store(db_url) as store:
        job = new_job(store)
        with pytest.raises(InvalidInput, match="AsyncStore"):
            AsyncWorker(store, "gpu-0", handler)  # type: ignore[arg-type]

        async def main() -> None:
            async with AsyncStore.open(db_url) as astore:
                with pytest.raises(InvalidInput, match="AsyncWorker"):
                    Worker(astore, "gpu-0", lambda job: None)  # type: ignore[arg-type]

        asyncio.run(main())
        seen = store.get_generation(job.id)
        assert seen is not None and seen.status is Status.PENDING and seen.attempts == 0


@pytest.mark.parametrize("retry", [False, True])
@pytest.mark.parametrize("loop", ["sync", "async"])
def test_a_job_its_handler_failed_itself_then_returned_is_counted_failed_not_done(
    db_url: str, loop: str, retry: bool
) -> None:
    with Store(db_url) as store:
        job = new_job(store)

        def handler(job: Job) -> None:
            store.fail(job.id, "a prompt this model cannot render", retry=retry, worker_id="gpu-0")

        async def main() -> WorkerReport:
            async with AsyncStore.open(db_url) as astore:

                async def ahandler(job: AsyncJob) -> None:
                    why = "a prompt this model cannot render"
                    await astore.fail(job.id, why, retry=retry, worker_id="gpu-0")

                return await AsyncWorker(astore, "gpu-0", ahandler).run(max_jobs=1)

        report = Worker(store, "gpu-0", handler).run(max_jobs=1) if loop == "sync" else asyncio.run(main())
        assert report == WorkerReport(failed=1)
        seen = store.get_generation(job.id)
        assert seen is not None and seen.status is (Status.PENDING if retry else Status.FAILED)


def test_handle_signals_blocks_left_out_of_order_keep_the_later_worker_stopping_and_put_the_first_back(
    sqlite_url: str,
) -> None:
    """AsyncWorkers gathered, each with its own ``handle_signals`` block in its task, leave their blocks in
    the order their runs end: one that ends first (``max_jobs`` reached, an error) put back the handler it
    had found, so a SIGTERM no longer reached the worker still running (the process's own handler got it, by
    default the end of the process mid-job), and the last one out put back the first's handler, which stayed
    installed for good: every later SIGTERM of the process only set a finished worker's stop."""
    got: list[int] = []

    def before(signum: int, frame: object) -> None:
        got.append(signum)

    kept = signal.signal(signal.SIGTERM, before)
    try:
        with Store(sqlite_url) as store:
            first, second = (Worker(store, f"gpu-{i}", lambda job: None) for i in range(2))
            first_block, second_block = first.handle_signals(), second.handle_signals()
            first_block.__enter__()
            second_block.__enter__()
            first_block.__exit__(None, None, None)  # the first worker's run ended; the second's goes on
            os.kill(os.getpid(), signal.SIGTERM)
            assert second.stopping and got == []
            second_block.__exit__(None, None, None)
            assert signal.getsignal(signal.SIGTERM) is before
            os.kill(os.getpid(), signal.SIGTERM)
            assert got == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, kept)


def test_gathered_async_workers_whose_first_run_ends_first_still_stop_on_sigterm(sqlite_url: str) -> None:
    got: list[int] = []
    kept = signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
    try:

        async def main() -> tuple[WorkerReport, WorkerReport, bool]:
            async with AsyncStore.open(sqlite_url) as astore:
                for prompt in ("short", "long"):
                    await astore.create_generation(prompt, model_name="musicgen-small", duration_seconds=8)
                first_out = asyncio.Event()
                seen_stopping: list[bool] = []

                async def handler(job: AsyncJob) -> None:
                    if job.worker.worker_id == "gpu-1":
                        await first_out.wait()
                        os.kill(os.getpid(), signal.SIGTERM)  # the service is told to stop
                        await asyncio.sleep(0)
                        seen_stopping.append(job.stopping)
                        job.worker.stop()  # without the fix: the signal missed it, and it would wait on
                    await astore.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=1)

                async def one(worker: AsyncWorker, max_jobs: int | None) -> WorkerReport:
                    with worker.handle_signals():
                        report = await worker.run(max_jobs=max_jobs)
                    if max_jobs is not None:
                        first_out.set()
                    return report

                quick = AsyncWorker(astore, "gpu-0", handler)
                slow = AsyncWorker(astore, "gpu-1", handler)
                reports = await asyncio.gather(one(quick, 1), asyncio.sleep(0.05, None), one(slow, None))
                return reports[0], reports[2], seen_stopping == [True]

        quick_report, slow_report, stopped = asyncio.run(main())
        assert quick_report == slow_report == WorkerReport(done=1)
        assert stopped and got == []
    finally:
        signal.signal(signal.SIGTERM, kept)


@pytest.mark.parametrize("meanwhile", ["nothing", "cancelled"])
def test_an_async_worker_cancelled_while_its_claim_commits_puts_the_job_back(
    db_url: str, meanwhile: str
) -> None:
    """The claim is a write the event loop waits on (a thread's SQLite statement, a PostgreSQL round trip):
    a task cancelled meanwhile lost the claimed row, which stayed processing, its handler never run, until its
    lease expired. Here the cancel arrives just after the claim committed, before its result came back. A
    job cancelled meanwhile (its put-back then fails) stays cancelled, and the task still ends cancelled."""

    async def main() -> None:
        async with AsyncStore.open(db_url) as astore:
            job = await astore.create_generation("a job", model_name="musicgen-small", duration_seconds=8)
            claim, committed = astore.claim_next, asyncio.Event()

            async def committing(worker_id: str, **options: object) -> object:
                claimed = await claim(worker_id, **options)  # type: ignore[arg-type]
                if claimed is not None:
                    committed.set()
                    if meanwhile == "cancelled":
                        await astore.cancel(claimed.id, "the user gave up")
                await asyncio.sleep(0.05)  # the result on its way back
                return claimed

            astore.claim_next = committing  # type: ignore[method-assign,assignment]
            ran: list[str] = []

            async def handler(job: AsyncJob) -> None:
                ran.append(job.id)

            task = asyncio.create_task(AsyncWorker(astore, "gpu-0", handler).run())
            await committed.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            seen = await astore.get_generation(job.id)
            assert ran == [] and seen is not None
            if meanwhile == "cancelled":
                assert seen.status is Status.CANCELLED
            else:
                assert seen.status is Status.PENDING and seen.worker_id is None

    asyncio.run(main())


def _yields(job: Job) -> Iterator[float]:  # a handler written as a generator: its body never runs
    yield 0.5


async def _ayields(job: AsyncJob) -> AsyncIterator[float]:
    yield 0.5


def _around(job: Job) -> Iterator[float]:  # a plain function that calls one
    return _yields(job)


def _around_async(job: AsyncJob) -> AsyncIterator[float]:
    return _ayields(job)


@pytest.mark.parametrize("loop", ["sync", "async"])
def test_a_handler_that_yields_is_refused_when_the_worker_is_made(sqlite_url: str, loop: str) -> None:
    """A generator function's body never runs: a ``Worker`` counted each job done, left processing; an
    ``AsyncWorker`` failed it, telling to run the handler with ``Worker``, where it would never run either."""

    async def make_async() -> None:
        async with AsyncStore.open(sqlite_url) as astore:
            AsyncWorker(astore, "gpu-0", _ayields)  # type: ignore[arg-type]

    with Store(sqlite_url) as store, pytest.raises(InvalidInput, match="yield"):
        Worker(store, "gpu-0", _yields) if loop == "sync" else asyncio.run(make_async())


@pytest.mark.parametrize("loop", ["sync", "async"])
def test_a_handler_returning_a_generator_fails_its_job_and_ends_run(db_url: str, loop: str) -> None:
    """Only the result tells of a plain function around a generator function (a lambda): a ``Worker`` counted
    the job done, its work never run, and it stayed processing until its lease expired."""
    with Store(db_url) as store:
        job = new_job(store)

        async def main() -> None:
            async with AsyncStore.open(db_url) as astore:
                await AsyncWorker(astore, "gpu-0", _around_async).run(max_jobs=1)  # type: ignore[arg-type]

        with pytest.raises(InvalidInput, match="generator") as raised:
            if loop == "sync":
                Worker(store, "gpu-0", _around).run(max_jobs=1)
            else:
                asyncio.run(main())
        seen = store.get_generation(job.id)
        assert seen is not None and seen.status is Status.PENDING
        assert seen.error_message == f"InvalidInput: {raised.value}" and "yield" in seen.error_message


def test_handle_signals_given_a_signal_twice_puts_its_handler_back(sqlite_url: str) -> None:
    """The second install of the same signal replaced the first's record of the handler before: the block put
    back its own first handler, which stayed, and every later SIGTERM only set a finished worker's stop."""
    got: list[int] = []
    kept = signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
    try:
        before = signal.getsignal(signal.SIGTERM)
        with Store(sqlite_url) as store:
            worker = Worker(store, "gpu-0", lambda job: None)
            with worker.handle_signals(signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
                os.kill(os.getpid(), signal.SIGTERM)
                assert worker.stopping and got == []
            assert signal.getsignal(signal.SIGTERM) is before
            os.kill(os.getpid(), signal.SIGTERM)
            assert got == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, kept)


@pytest.mark.parametrize("swallow", ["raises another error", "returns"])
def test_an_async_worker_whose_task_is_cancelled_ends_even_when_its_handler_swallows_the_cancel(
    db_url: str, swallow: str
) -> None:
    """A handler that turned the worker task's ``CancelledError`` into an error of its own (a model client
    wrapping it) had its job failed and the worker went on claiming: the cancel was lost, and a shutdown that
    awaits the task (``asyncio.run``'s, a TaskGroup's) waited for ever; one that swallowed it, the same."""

    async def main() -> None:
        async with AsyncStore.open(db_url) as astore:
            job = await astore.create_generation("a job", model_name="musicgen-small", duration_seconds=8)
            running = asyncio.Event()

            async def handler(job: AsyncJob) -> None:
                running.set()
                try:
                    await asyncio.sleep(30)
                except asyncio.CancelledError:
                    if swallow == "raises another error":
                        raise RuntimeError("the model server's request was interrupted") from None

            task = asyncio.create_task(AsyncWorker(astore, "gpu-0", handler).run(max_jobs=1))
            await running.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            seen = await astore.get_generation(job.id)
            assert seen is not None and seen.status is Status.PROCESSING  # nothing more written
            assert seen.error_message is None

    asyncio.run(main())
