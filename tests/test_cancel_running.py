"""Cancelling a running job: the worker learns at its next progress report or heartbeat and drops the job;
``musicstore.worker.Worker`` in-process, and ``Worker`` and ``AsyncWorker`` as real subprocesses stopped by
SIGTERM, a cancel arriving during their shutdown; ``musicstore cancel``. Both backends (the async loop's
in-process tests are in ``tests/test_async_worker.py``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from musicstore import InvalidTransition, Status, Store
from musicstore.cli import main
from musicstore.errors import Cancelled
from musicstore.models import RetryPolicy
from musicstore.ops import progress
from musicstore.worker import Job, Worker, WorkerReport
from tests.conftest import FakeClock, new_job

ROOT = Path(__file__).resolve().parent.parent

WORKER = textwrap.dedent(
    """
    import sys, time
    from musicstore import Store
    from musicstore.ops import progress
    from musicstore.worker import Worker

    url, steps = sys.argv[1], int(sys.argv[2])
    store = Store(url)
    progress.coalescer(store).interval = 0.02

    def handler(job):
        print(f"started {job.id}", flush=True)
        for i in range(steps):
            job.progress(i / steps, "sampling")
            time.sleep(0.02)
        store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=1, worker_id="gpu-sub")
        print(f"done {job.id}", flush=True)

    worker = Worker(store, "gpu-sub", handler)
    with worker.handle_signals():
        report = worker.run()
    store.close()
    print(f"report done={report.done} cancelled={report.cancelled} failed={report.failed}", flush=True)
    """
)
ASYNC_WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from musicstore.aio import AsyncStore
    from musicstore.ops import progress
    from musicstore.worker import AsyncWorker

    url, steps = sys.argv[1], int(sys.argv[2])

    async def main():
        async with AsyncStore.open(url) as store:
            progress.coalescer(store).interval = 0.02

            async def handler(job):
                print(f"started {job.id}", flush=True)
                for i in range(steps):
                    await job.progress(i / steps, "sampling")
                    await asyncio.sleep(0.02)
                await store.complete_generation(
                    job.id, file_path=f"{job.id}.wav", file_size_bytes=1, worker_id="gpu-sub"
                )
                print(f"done {job.id}", flush=True)

            worker = AsyncWorker(store, "gpu-sub", handler)
            with worker.handle_signals():
                report = await worker.run()
        print(f"report done={report.done} cancelled={report.cancelled} failed={report.failed}", flush=True)

    asyncio.run(main())
    """
)
LOOPS = {"sync": WORKER, "async": ASYNC_WORKER}
"""The worker script of each loop (``Worker``, ``AsyncWorker``): the same handler, the same output."""


def _complete(store: Store) -> Any:
    def handler(job: Job) -> None:
        job.progress(0.5, "sampling")
        store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=1, worker_id="gpu-0")

    return handler


def test_a_worker_runs_jobs_fails_a_raising_handler_and_drops_a_cancelled_job(store: Store) -> None:
    new_job(store, "done")
    broken, cancelled = new_job(store, "broken"), new_job(store, "cancelled")

    def handler(job: Job) -> None:
        if job.id == broken.id:
            raise RuntimeError("the model ran out of memory")
        if job.id == cancelled.id:
            job.progress(0.1, "sampling")
            store.cancel(job.id, "the user pressed stop")
            job.progress(0.2, "decoding")  # a new stage is written at once: Cancelled
            raise AssertionError("not reached")
        _complete(store)(job)

    report = Worker(store, "gpu-0", handler, max_attempts=1).run(max_jobs=3)
    assert report == WorkerReport(done=1, cancelled=1, lost=0, failed=1)
    rows = {g.prompt: g for g in store.get_all_generations()}
    assert rows["done"].status is Status.COMPLETED and rows["done"].progress == 0.5
    assert rows["broken"].status is Status.FAILED  # its one attempt is used
    assert rows["broken"].error_message == "RuntimeError: the model ran out of memory"
    assert rows["cancelled"].status is Status.CANCELLED and rows["cancelled"].progress == 0.1
    assert rows["cancelled"].error_message == "the user pressed stop"


def test_a_failed_job_is_retried_after_the_workers_backoff(store: Store, clock: FakeClock) -> None:
    job = new_job(store)

    def handler(job: Job) -> None:
        raise RuntimeError("the GPU fell off the bus")

    worker = Worker(store, "gpu-0", handler, backoff=RetryPolicy(base_seconds=60, jitter=0))
    assert worker.run(max_jobs=1) == WorkerReport(failed=1)
    read = store.get_generation(job.id)
    assert read is not None and read.status is Status.PENDING
    assert read.run_after == clock.now + timedelta(seconds=60)
    assert store.claim_next("gpu-1") is None  # not before its backoff
    clock.advance(60)
    assert store.claim_next("gpu-1") is not None


def test_a_cancel_reaches_a_worker_at_its_heartbeat(store: Store) -> None:
    new_job(store)

    def handler(job: Job) -> None:
        store.cancel(job.id)
        job.heartbeat()

    assert Worker(store, "gpu-0", handler).run(max_jobs=1) == WorkerReport(cancelled=1)


def test_stop_finishes_the_job_in_hand_and_claims_no_more(store: Store) -> None:
    first, second = new_job(store, "first"), new_job(store, "second")

    def handler(job: Job) -> None:
        worker.stop()
        _complete(store)(job)

    worker = Worker(store, "gpu-0", handler)
    assert worker.run() == WorkerReport(done=1)
    assert [store.get_generation(g.id).status for g in (first, second)] == [  # type: ignore[union-attr]
        Status.COMPLETED,
        Status.PENDING,
    ]


def _start(db_url: str, steps: int, tmp_path: Path, loop: str) -> subprocess.Popen[str]:
    script = tmp_path / "worker.py"
    script.write_text(LOOPS[loop])
    return subprocess.Popen(
        [sys.executable, str(script), db_url, str(steps)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _started(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("started "), (line, proc.stderr.read() if proc.stderr else "")
    return line.split()[1]


def _reported(store: Store, generation_id: str, after: datetime | None) -> datetime:
    """Wait until the job's progress was written (after ``after``); when it was."""
    for _ in range(3000):
        read = store.get_generation(generation_id)
        assert read is not None and read.status is Status.PROCESSING
        if read.progress_at is not None and (after is None or read.progress_at > after):
            return read.progress_at
        time.sleep(0.01)
    raise AssertionError("the worker reported no progress")


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_sigterm_lets_the_running_job_finish_and_claims_no_more(
    db_url: str, tmp_path: Path, loop: str
) -> None:
    with Store(db_url) as store:
        jobs = [new_job(store, f"song {i}") for i in range(2)]
        proc = _start(db_url, 25, tmp_path, loop)
        running = _started(proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert f"done {running}" in out and "report done=1 cancelled=0 failed=0" in out
        statuses = {g.id: g.status for g in store.get_all_generations()}
        assert statuses[running] is Status.COMPLETED
        assert [statuses[j.id] for j in jobs].count(Status.PENDING) == 1


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_a_cancel_during_the_workers_shutdown_stops_the_job_and_the_worker(
    db_url: str, tmp_path: Path, loop: str
) -> None:
    with Store(db_url) as store:
        jobs = [new_job(store, f"song {i}") for i in range(2)]
        proc = _start(db_url, 3000, tmp_path, loop)  # a minute of work unless stopped
        running = _started(proc)
        first = _reported(store, running, None)
        proc.send_signal(signal.SIGTERM)  # shutting down: it goes on with the job in hand...
        _reported(store, running, first)
        store.cancel(running, "the user pressed stop")  # ...which is cancelled meanwhile
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "report done=0 cancelled=1 failed=0" in out and "done " not in out.replace("report done", "")
        rows = {g.id: g for g in store.get_all_generations()}
        assert rows[running].status is Status.CANCELLED and rows[running].file_path is None
        reported = rows[running].progress
        assert reported is not None and reported < 1.0
        assert [rows[j.id].status for j in jobs].count(Status.PENDING) == 1  # the other was never claimed


def test_cancel_command(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with Store(db_url) as store:
        pending, running = new_job(store, "pending"), new_job(store, "running")
        assert store.claim_next("gpu-0") is not None  # the older one: "pending"... claimed first
        claimed, waiting = (pending, running)
    assert main(["cancel", waiting.id, "--database", db_url]) == 0
    assert capsys.readouterr().out == f"cancelled {waiting.id} (was pending)\n"
    assert main(["cancel", claimed.id, "--database", db_url, "--json", "--reason", "stop"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "id": claimed.id, "status": "cancelled", "was": "processing", "worker_id": "gpu-0"
    }  # fmt: skip
    assert main(["cancel", claimed.id, "--database", db_url]) == 1  # already cancelled
    assert "cannot be cancelled" in capsys.readouterr().err
    assert main(["cancel", "01a20180-5e48-7dc6-afbf-cdf54fb09fcb", "--database", db_url]) == 3
    with Store(db_url) as store:
        progress.coalescer(store)
        with pytest.raises(Cancelled):
            store.report_progress(claimed.id, "gpu-0", 0.5)
        with pytest.raises(InvalidTransition):
            store.cancel(claimed.id)
