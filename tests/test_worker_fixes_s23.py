"""Regressions fixed in the worker loop (session 23), both backends:

- a ``Worker`` run without ``handle_signals`` and interrupted (Ctrl-C: ``KeyboardInterrupt``) while its
  handler ran, or as its claim committed, ended with the job left processing, its handler gone, until its
  lease expired; it now puts the job back in the queue (pending at once, whatever attempts remain) and
  re-raises the ``KeyboardInterrupt`` (a handler's ``sys.exit()``, ``SystemExit``, likewise);
- an ``AsyncStore`` claim (``AsyncWorker``'s, or ``claim_next``/``claim_batch`` awaited directly) whose task
  was cancelled as it committed, followed at once by ``AsyncStore.close()`` (as a service's shutdown does):
  the put-back of the jobs it took found the store closed, and they stayed processing until their lease
  expired; ``close()`` now waits for claims in flight, and their put-backs, first (a bounded wait);
- a handler that returned without completing, failing or retrying its job (it forgot, or returned early)
  had the job counted ``done`` and the row left processing until its lease expired, silently; the contract
  stands, and the worker now logs a WARNING naming the job (it knows from the writes of this process whether
  the handler ended it: no read of the row).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from musicstore import Generation, Status, Store
from musicstore.aio import AsyncStore
from musicstore.worker import AsyncJob, AsyncWorker, Job, Worker, WorkerReport
from tests.conftest import new_job
from tests.test_aio_fixes_s22 import _pause_after_commit

_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def _put_back(db_url: str, job: Generation) -> None:
    """``job`` is pending again, claimable at once, with no worker, its interruption kept as its error."""
    with Store(db_url) as store:
        row = store.get_generation(job.id)
        assert row is not None and row.status is Status.PENDING and row.worker_id is None, row
        assert row.run_after is None and "interrupted" in str(row.error_message)
        assert store.claim_next("next") is not None  # claimable now, even after its last attempt


def test_a_handler_interrupted_by_ctrl_c_has_its_job_put_back_and_run_raises(db_url: str) -> None:
    with Store(db_url) as store:
        job = new_job(store)
        started: list[str] = []

        def handler(job: Job) -> None:
            started.append(job.id)
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: Python's default handler raises KeyboardInterrupt
            time.sleep(30)

        with pytest.raises(KeyboardInterrupt):
            Worker(store, "gpu-0", handler, max_attempts=1).run()  # its last attempt: put back all the same
        assert started == [job.id]
    _put_back(db_url, job)


def test_a_handler_that_exits_the_process_has_its_job_put_back_and_run_raises(db_url: str) -> None:
    """``sys.exit()`` in the handler (SystemExit) ends the process as Ctrl-C does: the job is put back."""
    with Store(db_url) as store:
        job = new_job(store)
        with pytest.raises(SystemExit):
            Worker(store, "gpu-0", lambda job: sys.exit(3)).run()
    _put_back(db_url, job)


def test_a_handler_raising_keyboard_interrupt_after_completing_its_job_leaves_it_completed(
    db_url: str,
) -> None:
    with Store(db_url) as store:
        job = new_job(store)

        def handler(job: Job) -> None:
            store.complete_generation(job.id, file_path="a.wav", file_size_bytes=1, worker_id="gpu-0")
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            Worker(store, "gpu-0", handler).run()
        row = store.get_generation(job.id)
        assert row is not None and row.status is Status.COMPLETED and row.error_message is None


class _InterruptedAsItClaims(Store):
    """A store whose claim is hit by Ctrl-C just after it committed, before it returned to the worker."""

    def claim_next(self, worker_id: str, **options: Any) -> Generation | None:
        claimed = super().claim_next(worker_id, **options)
        if claimed is not None:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)  # KeyboardInterrupt here, unless the worker holds it until the claim is its
        return claimed


def test_ctrl_c_as_the_claim_commits_puts_the_claimed_job_back_and_run_raises(db_url: str) -> None:
    with _InterruptedAsItClaims(db_url) as store:
        job = new_job(store)
        ran: list[str] = []
        with pytest.raises(KeyboardInterrupt):
            Worker(store, "gpu-0", lambda job: ran.append(job.id)).run()
        assert ran == []  # the handler does not run: the interrupt ends the loop
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    _put_back(db_url, job)


_WORKER = """
import sys, time
from musicstore import Store
from musicstore.worker import Worker

def handler(job):
    print("running", job.id, flush=True)
    time.sleep(60)

with Store(sys.argv[1]) as store:
    Worker(store, "gpu-0", handler).run()
"""


def test_a_worker_process_sent_sigint_puts_its_job_back_and_exits_with_keyboard_interrupt(
    db_url: str,
) -> None:
    with Store(db_url) as store:
        job = new_job(store)
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, db_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_ENV,
    )  # fmt: skip
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().split() == ["running", job.id]
        worker.send_signal(signal.SIGINT)
        _, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode != 0 and "KeyboardInterrupt" in err, err
    _put_back(db_url, job)


async def _never(job: AsyncJob) -> None:
    raise AssertionError("the handler of a job whose claim was cancelled ran")


CLAIMS: dict[str, Callable[[AsyncStore], Awaitable[object]]] = {
    "claim_next": lambda store: store.claim_next("gpu-0"),
    "claim_batch": lambda store: store.claim_batch("gpu-0", 3),
    "AsyncWorker": lambda store: AsyncWorker(store, "gpu-0", _never).run(),
}


class _SlowToFail(AsyncStore):
    """A store whose ``fail`` (a put-back's) takes a few event-loop turns before it starts, as one waiting
    for a pooled connection does."""

    async def fail(self, *args: Any, **kwargs: Any) -> Any:
        for _ in range(5):
            await asyncio.sleep(0)
        return await super().fail(*args, **kwargs)


@pytest.mark.parametrize("slow", [False, True])
@pytest.mark.parametrize("how", list(CLAIMS))
def test_a_claim_cancelled_as_it_commits_then_the_store_closed_at_once_still_puts_its_jobs_back(
    db_url: str, how: str, slow: bool
) -> None:
    async def main() -> None:
        store = await (_SlowToFail if slow else AsyncStore).open(db_url)
        for i in range(2):
            await store.create_generation(f"job {i}", model_name="m", duration_seconds=8)
        committed = asyncio.Event()
        _pause_after_commit(store, committed)
        task = asyncio.ensure_future(CLAIMS[how](store))
        await committed.wait()
        task.cancel()
        await store.close()  # at once: the cancelled task has not run since
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    with Store(db_url) as store:
        assert store.count_generations(status=Status.PROCESSING) == 0
        assert store.count_generations(status=Status.PENDING) == 2


def _run(db_url: str, loop: str, handler: Any, **options: Any) -> WorkerReport:
    """One job run by ``handler`` (a plain function of the job id and a store of the loop's kind)."""
    if loop == "sync":
        with Store(db_url) as store:
            return Worker(store, "gpu-0", lambda job: handler(job, store), **options).run(max_jobs=1)

    async def main() -> WorkerReport:
        async with AsyncStore.open(db_url) as astore:

            async def run(job: AsyncJob) -> None:
                result = handler(job, astore)
                if asyncio.iscoroutine(result):
                    await result

            return await AsyncWorker(astore, "gpu-0", run, **options).run(max_jobs=1)

    return asyncio.run(main())


_UNFINISHED = "returned without completing or failing"


@pytest.mark.parametrize("loop", ["sync", "async"])
def test_a_handler_that_returns_with_its_job_unfinished_is_warned_of_the_job_counted_done_as_before(
    db_url: str, loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The contract stands (a handler's return means done, the job left to its lease), and the worker now
    says so at WARNING, naming the job: a handler that forgot to complete its job is found in the log."""
    with Store(db_url) as store:
        job = new_job(store)
    with caplog.at_level(logging.WARNING, logger="musicstore.worker"):
        report = _run(db_url, loop, lambda job, store: None)
    assert report == WorkerReport(done=1)
    warned = [r for r in caplog.records if _UNFINISHED in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING and job.id in warned[0].getMessage()
    with Store(db_url) as store:
        row = store.get_generation(job.id)
        assert row is not None and row.status is Status.PROCESSING and row.worker_id == "gpu-0"


def _in_another_process(db_url: str, call: str) -> None:
    code = f"from musicstore import Store\nwith Store({db_url!r}) as store:\n    store.{call}\n"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=_ENV)


def _complete(job: Job | AsyncJob, store: Any) -> Any:
    return store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=1, worker_id="gpu-0")


@pytest.mark.parametrize("loop", ["sync", "async"])
def test_a_handler_that_completes_its_job_in_this_process_is_counted_done_without_a_warning(
    db_url: str, loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Completed through the worker's store or through another store of this process: both writes are
    seen, so no warning; completed by another process: done too,
    with the warning (the worker reads no row)."""
    for how in ("same store", "other store", "other process"):
        with Store(db_url) as store:
            job = new_job(store)

        def handler(job: Job | AsyncJob, store: Any, how: str = how) -> Any:
            if how == "same store":
                return _complete(job, store)
            if how == "other store":
                with Store(db_url) as other:
                    return _complete(job, other)
            _in_another_process(db_url, f"complete_generation({job.id!r}, file_path='a.wav', "
                                "file_size_bytes=1, worker_id='gpu-0')")  # fmt: skip
            return None

        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="musicstore.worker"):
            assert _run(db_url, loop, handler) == WorkerReport(done=1)
        warned = [r for r in caplog.records if _UNFINISHED in r.getMessage()]
        assert len(warned) == (1 if how == "other process" else 0), how
        with Store(db_url) as store:
            row = store.get_generation(job.id)
            assert row is not None and row.status is Status.COMPLETED and row.error_message is None
