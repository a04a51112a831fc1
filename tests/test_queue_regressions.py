"""Regressions found by a black-box hunt over the queue (issue 15), on both backends: a worker loop survives
its running job being cancelled and deleted, and a handler's error whatever its message; a progress
fraction out of range is InvalidInput whatever its size; a store's idle PostgreSQL listener listens to
nothing, so that NOTIFY traffic while nobody waits cannot pile up behind it; an idempotency key still returns
its generation once completing merged the export's figures into its metadata; a worker checks its backoff
before it claims; an AsyncWorker's pause after a busy claim ends at stop(), as a Worker's does."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest

from musicstore import (
    DatabaseBusy,
    IdempotencyConflict,
    InvalidInput,
    RetryPolicy,
    Status,
    Store,
    migrate,
    waiting,
    worker,
)
from musicstore.aio import AsyncStore
from musicstore.worker import AsyncJob, AsyncWorker, Job, Worker, WorkerReport
from tests.conftest import FakeClock, new_job, until
from tests.test_key_order import icu_postgres_url  # noqa: F401 (a fixture)
from tests.test_schema import _from, _rollback, _sql


def test_a_worker_whose_running_job_is_cancelled_and_deleted_drops_it_and_goes_on(store: Store) -> None:
    gone, kept = new_job(store, "deleted while it runs"), new_job(store, "kept")

    def handler(job: Job) -> None:
        if job.id == gone.id:  # the API server: the user deleted the generation
            store.cancel(job.id, "deleted by its user")
            store.delete_generation(job.id)
        job.progress(0.5, "sampling")  # NotFound for the deleted job
        store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=1, worker_id="gpu-0")

    report = Worker(store, "gpu-0", handler).run(max_jobs=2)
    assert report == WorkerReport(done=1, lost=1)
    assert store.get_generation(gone.id) is None
    read = store.get_generation(kept.id)
    assert read is not None and read.status is Status.COMPLETED


def test_an_async_worker_whose_running_job_is_deleted_drops_it_and_goes_on(db_url: str) -> None:
    async def main() -> tuple[WorkerReport, Status | None]:
        async with AsyncStore.open(db_url) as store:
            gone = await store.create_generation("deleted", model_name="musicgen-small", duration_seconds=8)
            kept = await store.create_generation("kept", model_name="musicgen-small", duration_seconds=8)

            async def handler(job: AsyncJob) -> None:
                if job.id == gone.id:
                    await store.cancel(job.id)
                    await store.delete_generation(job.id)
                await job.heartbeat()  # NotFound for the deleted job
                await store.complete_generation(job.id, file_path="a.wav", file_size_bytes=1, worker_id="w")

            report = await AsyncWorker(store, "w", handler).run(max_jobs=2)
            read = await store.get_generation(kept.id)
            return report, None if read is None else read.status

    assert asyncio.run(main()) == (WorkerReport(done=1, lost=1), Status.COMPLETED)


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message")


@pytest.mark.parametrize(
    ("error", "kept"),
    [
        (
            RuntimeError("bad byte \x00 in the model's output"),
            "RuntimeError: bad byte \\x00 in the model's output",
        ),
        (
            OSError("no file " + b"take-\xff.wav".decode(errors="surrogateescape")),
            "OSError: no file take-\\udcff.wav",
        ),
        (_Unprintable(), "_Unprintable: (its message could not be read)"),
    ],
)
def test_a_handler_error_any_message_fails_the_job_and_the_worker_goes_on(
    store: Store, error: Exception, kept: str
) -> None:
    broken, after = new_job(store, "broken"), new_job(store, "after")

    def handler(job: Job) -> None:
        if job.id == broken.id:
            raise error
        store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=1, worker_id="gpu-0")

    assert Worker(store, "gpu-0", handler, max_attempts=1).run(max_jobs=2) == WorkerReport(done=1, failed=1)
    read = store.get_generation(broken.id)
    assert read is not None and read.status is Status.FAILED and read.error_message == kept
    done = store.get_generation(after.id)
    assert done is not None and done.status is Status.COMPLETED


@pytest.mark.parametrize(
    "fraction", [10**400, -(10**400), 2, float("inf")], ids=["huge", "-huge", "2", "inf"]
)
def test_a_progress_fraction_out_of_range_is_invalid_input_whatever_its_size(
    store: Store, fraction: float
) -> None:
    job = new_job(store)
    assert store.claim_next("gpu-0") is not None
    with pytest.raises(InvalidInput, match="fraction must be a number from 0 to 1"):
        store.report_progress(job.id, "gpu-0", fraction, "sampling")
    read = store.get_generation(job.id)
    assert read is not None and read.progress is None


def _listening(conn: psycopg.Connection[tuple[str]]) -> set[str]:
    return {row[0] for row in conn.execute("SELECT pg_listening_channels()")}


def test_a_store_listens_on_both_channels_on_one_connection_across_its_waits(
    postgres_url: str,
) -> None:
    """The store's hub: one connection that LISTENs on both channels, made by the first wait and kept for
    the next ones (read continuously, it cannot fill its socket while nobody waits: the next test)."""
    with Store(postgres_url) as store:
        for _ in range(2):  # the first wait makes the connection, the second uses it again
            assert store.claim_next("gpu-0", wait=0.01) is None
            with psycopg.connect(postgres_url) as conn:
                rows = conn.execute(
                    "SELECT query FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'"
                ).fetchall()
            assert [row[0] for row in rows] == [f"LISTEN {waiting.PENDING}; LISTEN {waiting.FINISHED}"]
        hub = waiting.listeners(store).hub
        assert hub is not None and hub.connections == 1 and hub.waiters == 0


def test_notifications_while_a_store_waits_for_nothing_do_not_pile_up_in_the_server(
    postgres_url: str,
) -> None:
    """A store that waited once and now does not: 8 MB of notifications, more than the sockets hold. A
    listener left listening and unread blocks its server process, and the server's notification queue keeps
    them (for every session) until it is read."""
    with Store(postgres_url) as store, psycopg.connect(postgres_url, autocommit=True) as other:
        assert store.claim_next("gpu-0", wait=0.01) is None
        other.execute(
            "SELECT pg_notify(%s, repeat('x', 7900) || n) FROM generate_series(1, 1000) AS n",
            [waiting.PENDING],
        )
        usage, deadline = 1.0, time.monotonic() + 60
        while time.monotonic() < deadline:  # the queue is cut once no listener is behind (at once here)
            usage = other.execute("SELECT pg_notification_queue_usage()").fetchone()[0]  # type: ignore[index]
            if usage == 0:
                break
            time.sleep(0.05)
        assert usage == 0


def test_an_idempotent_retry_after_the_job_completed_returns_it(store: Store) -> None:
    """Completing merges the export's figures into the row's metadata: a client retrying its request after
    that gets its generation back, and a request that asked other metadata is still a conflict."""
    request: dict[str, Any] = {"model_name": "musicgen-small", "duration_seconds": 8, "owner_key": "user-42"}
    first = store.create_generation("lofi", idempotency_key="a", metadata={"bpm": 90}, **request)
    bare = store.create_generation("ambient", idempotency_key="b", **request)
    for _ in range(2):
        job = store.claim_next("gpu-0")
        assert job is not None
        figures = {"loudness_lufs": -16.0, "true_peak_dbtp": -1.0}
        store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=1, metadata=figures)
    again = store.create_generation("lofi", idempotency_key="a", metadata={"bpm": 90}, **request)
    assert again.id == first.id and again.status is Status.COMPLETED
    assert store.create_generation("ambient", idempotency_key="b", **request).id == bare.id
    for other in ({"bpm": 120}, {"bpm": 90, "genre": "jazz"}):
        with pytest.raises(IdempotencyConflict) as conflict:
            store.create_generation("lofi", idempotency_key="a", metadata=other, **request)
        assert conflict.value.existing_id == first.id
    with pytest.raises(IdempotencyConflict):
        store.create_generation("lofi, louder", idempotency_key="a", metadata={"bpm": 90}, **request)
    assert store.count_generations() == 2
    prompt = store.get_prompt_by_text("lofi")
    assert prompt is not None and prompt.used_count == 1


def test_a_worker_refuses_a_backoff_that_is_no_retry_policy_before_it_claims(store: Store) -> None:
    job = new_job(store)

    def handler(job: Job) -> None:
        raise RuntimeError("the model crashed")

    for loop in (Worker, AsyncWorker):
        with pytest.raises(InvalidInput, match="backoff must be a RetryPolicy"):
            loop(store, "gpu-0", handler, backoff=30)  # type: ignore[arg-type]
    read = store.get_generation(job.id)
    assert read is not None and read.status is Status.PENDING  # not claimed, so not left processing


def test_a_job_back_in_the_queue_shows_no_progress_of_its_last_attempt(
    store: Store, clock: FakeClock
) -> None:
    """A retry, an expired lease taken back and a replayed dead letter are pending again: what the last
    attempt's worker reported is not this attempt's progress (a UI would show a queued job 90 % done)."""
    ways: dict[str, Callable[[str], object]] = {
        "fail": lambda gid: store.fail(gid, "CUDA out of memory", worker_id="gpu-0"),
        "requeue_expired": lambda gid: (clock.advance(61), store.requeue_expired()),
        "replay": lambda gid: (store.fail(gid, "decoder crashed", retry=False), store.replay(gid)),
        "replay_all": lambda gid: (store.fail(gid, "decoder crashed", retry=False), store.replay_all()),
    }
    for how, back in ways.items():
        job = new_job(store, how)
        claimed = store.claim_next("gpu-0", lease_seconds=60)
        assert claimed is not None and claimed.id == job.id
        assert store.report_progress(job.id, "gpu-0", 0.9, "decoding")
        back(job.id)
        read = store.get_generation(job.id)
        assert read is not None and read.status is Status.PENDING, how
        assert (read.progress, read.stage, read.progress_at) == (None, None, None), how
        store.cancel(job.id)  # out of the next case's way
    failed = new_job(store, "failed for good")
    assert store.claim_next("gpu-0") is not None
    assert store.report_progress(failed.id, "gpu-0", 0.4, "sampling")
    store.fail(failed.id, "decoder crashed", retry=False)
    read = store.get_generation(failed.id)
    assert read is not None and (read.progress, read.stage) == (0.4, "sampling")  # where it stopped


@pytest.mark.parametrize("content", ["not audio", "nan samples"])
def test_the_waveform_of_a_file_that_is_no_audio_is_a_404_not_a_500(
    store: Store, tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    # sf.info's LibsndfileError (a file that is not audio) and file_peaks' InvalidAudio (NaN samples)
    # escaped the peaks API as a 500
    pytest.importorskip("starlette")
    import numpy as np
    import soundfile as sf
    from starlette.testclient import TestClient

    from musicstore.web import create_app

    job = new_job(store)
    assert store.claim_next("gpu-0") is not None
    path = tmp_path / "clip.wav"
    if content == "not audio":
        path.write_bytes(b"RIFF" + bytes(1000))
    else:
        sf.write(path, np.full(64, np.nan, dtype=np.float32), 8_000, subtype="FLOAT")
    store.complete_generation(job.id, file_path="clip.wav", file_size_bytes=path.stat().st_size)
    with TestClient(create_app(store, root=tmp_path)) as client:
        answer = client.get(f"/api/generations/{job.id}/peaks")
    assert answer.status_code == 404
    assert answer.json()["error"] == "no waveform: the audio file cannot be read as audio"
    assert any(job.id in record.getMessage() for record in caplog.records)


def test_a_worker_refuses_an_async_handler_whose_jobs_it_would_never_run(store: Store) -> None:
    # Worker called it, dropped the coroutine unawaited and counted the job done: it stayed processing
    async def handler(job: AsyncJob) -> None:
        store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=1)

    job = new_job(store)
    with pytest.raises(InvalidInput, match="AsyncWorker"):
        Worker(store, "gpu-0", handler)  # type: ignore[arg-type]
    assert store.get_generation(job.id).status is Status.PENDING  # type: ignore[union-attr]


class _StopLater(logging.Handler):
    """Calls ``stop()`` from another thread once the worker logs that its claim was busy: during its pause."""

    def __init__(self, loop: Worker | AsyncWorker) -> None:
        super().__init__(logging.WARNING)
        self.loop = loop

    def emit(self, record: logging.LogRecord) -> None:
        threading.Timer(0.05, self.loop.stop).start()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_stop_during_the_pause_after_a_busy_claim_ends_it_at_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    # AsyncWorker slept its whole pause (asyncio.sleep) whatever stop() said; Worker waits on its stop event
    monkeypatch.setattr(worker, "WAIT_SLICE_SECONDS", 3600.0)  # a stop that is not seen hangs the test
    claims: list[str] = []

    def busy(worker_id: str, **options: Any) -> None:
        claims.append(worker_id)
        raise DatabaseBusy("database is locked (another writer held it past the busy timeout)")

    async def abusy(worker_id: str, **options: Any) -> None:
        busy(worker_id)

    def handler(job: Job) -> None:
        raise AssertionError("nothing is claimed")

    async def ahandler(job: AsyncJob) -> None:
        handler(job)  # type: ignore[arg-type]

    reports: list[WorkerReport] = []
    logger = logging.getLogger(worker.__name__)

    async def main() -> WorkerReport:
        async with AsyncStore.open(db_url) as store:
            monkeypatch.setattr(store, "claim_next", abusy)
            loop = AsyncWorker(store, "gpu-0", ahandler)
            logger.addHandler(_StopLater(loop))
            return await loop.run()

    def run() -> None:
        if kind == "sync":
            with Store(db_url) as store:
                monkeypatch.setattr(store, "claim_next", busy)
                loop = Worker(store, "gpu-0", handler)
                logger.addHandler(_StopLater(loop))
                reports.append(loop.run())
        else:
            reports.append(asyncio.run(main()))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    for handler_ in [h for h in logger.handlers if isinstance(h, _StopLater)]:
        logger.removeHandler(handler_)
    assert not thread.is_alive(), "the worker slept through stop()"
    assert reports == [WorkerReport()] and claims == ["gpu-0"]  # stopped: claimed no more


def test_an_async_worker_with_a_plain_handler_ends_its_run_at_the_first_job(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # it failed every job it claimed (each retried and failed again until its attempts ran out): the whole
    # queue went to failed behind one misconfigured worker. Now the first job is failed (with retry) as
    # before, or stays completed if the handler completed it, and run() raises: no other job is claimed
    with Store(db_url) as sync:
        completed, left = new_job(sync, "completed by the plain handler"), new_job(sync, "never claimed")

        def handler(job: AsyncJob) -> None:  # a plain function: Worker's kind of handler
            sync.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=1, worker_id="w")

        async def main() -> WorkerReport:
            async with AsyncStore.open(db_url) as store:
                loop = AsyncWorker(store, "w", handler, max_attempts=1)  # type: ignore[arg-type]
                return await loop.run(max_jobs=2)

        with pytest.raises(InvalidInput) as raised:
            asyncio.run(main())
        done, untouched = sync.get_generation(completed.id), sync.get_generation(left.id)
    assert str(raised.value) == "the handler returned no awaitable (NoneType): run it with Worker on a Store"
    assert done is not None and done.status is Status.COMPLETED and done.error_message is None
    assert untouched is not None and untouched.status is Status.PENDING and untouched.attempts == 0
    assert any(completed.id in record.getMessage() for record in caplog.records)  # finished, then the error


def test_an_async_worker_with_a_plain_handler_fails_its_first_job_with_the_misfit(db_url: str) -> None:
    with Store(db_url) as sync:
        job = new_job(sync)

        async def main() -> None:
            async with AsyncStore.open(db_url) as store:
                await AsyncWorker(store, "w", lambda job: None, max_attempts=1).run(max_jobs=1)  # type: ignore[arg-type,return-value]

        with pytest.raises(InvalidInput, match="run it with Worker on a Store"):
            asyncio.run(main())
        failed = sync.get_generation(job.id)
    assert failed is not None and failed.status is Status.FAILED
    assert (
        failed.error_message
        == "InvalidInput: the handler returned no awaitable (NoneType): run it with Worker on a Store"
    )


def test_a_worker_whose_handler_returns_an_awaitable_fails_the_job_it_never_ran(store: Store) -> None:
    # a plain function around an async def passes the refusal of async handlers; its coroutine was dropped
    # unawaited and the job counted done, left processing. Then every other job met the same: run() now
    # ends at the first (failed with retry, so a worker with the right loop runs it)
    async def work(job: Job) -> None:
        store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=1)

    def handler(job: Job) -> Coroutine[Any, Any, None]:
        return work(job)

    job, other = new_job(store, "first"), new_job(store, "second")
    with pytest.raises(InvalidInput, match="run it with AsyncWorker on an AsyncStore"):
        Worker(store, "gpu-0", handler, max_attempts=1).run(max_jobs=2)
    read, untouched = store.get_generation(job.id), store.get_generation(other.id)
    assert read is not None and read.status is Status.FAILED
    assert read.error_message == (
        "InvalidInput: the handler returned an awaitable (coroutine): run it with AsyncWorker on an "
        "AsyncStore"
    )
    assert untouched is not None and untouched.status is Status.PENDING and untouched.attempts == 0


def test_a_handler_raising_invalid_input_itself_fails_its_job_and_the_worker_goes_on(store: Store) -> None:
    # only the loop's own misfit ends run(): a handler's InvalidInput is an ordinary job error
    first, second = new_job(store, "first"), new_job(store, "second")

    def handler(job: Job) -> None:
        raise InvalidInput("bpm must be positive")

    assert Worker(store, "gpu-0", handler, max_attempts=1).run(max_jobs=2) == WorkerReport(failed=2)
    assert {store.get_generation(j.id).status for j in (first, second)} == {Status.FAILED}  # type: ignore[union-attr]


class _AsyncCall:
    """A handler object whose ``__call__`` is ``async def``."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store
        self.ran: list[str] = []

    async def __call__(self, job: AsyncJob) -> None:
        self.ran.append(job.id)


async def _partial_handler(job: AsyncJob, ran: list[str]) -> None:
    ran.append(job.id)


@pytest.mark.parametrize("kind", ["object", "partial", "partial of an object", "method"])
def test_a_worker_refuses_every_kind_of_async_handler_and_an_async_worker_runs_it(
    db_url: str, kind: str
) -> None:
    # an object with an async __call__ (or a partial of one) passed Worker's check: every job failed
    ran: list[str] = []
    call = _AsyncCall()
    handler: Any = {
        "object": call,
        "partial": functools.partial(_partial_handler, ran=ran),
        "partial of an object": functools.partial(call),
        "method": call.__call__,
    }[kind]
    with Store(db_url) as sync:
        job = new_job(sync)
        with pytest.raises(InvalidInput, match="AsyncWorker"):
            Worker(sync, "gpu-0", handler)
        assert sync.get_generation(job.id).status is Status.PENDING  # type: ignore[union-attr]

        async def main() -> WorkerReport:
            async with AsyncStore.open(db_url) as store:
                return await AsyncWorker(store, "w", handler).run(max_jobs=1)

        assert asyncio.run(main()) == WorkerReport(done=1)
    assert (ran or call.ran) == [job.id]


def test_a_handler_that_completes_its_job_then_raises_counts_it_done(store: Store) -> None:
    # the failure after the completion raised LeaseLost: the report said lost, for a completed job
    job = new_job(store)

    def handler(job: Job) -> None:
        store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=1, worker_id="gpu-0")
        raise RuntimeError("the cleanup after the upload failed")

    assert Worker(store, "gpu-0", handler).run(max_jobs=1) == WorkerReport(done=1)
    read = store.get_generation(job.id)
    assert read is not None and read.status is Status.COMPLETED


def test_the_queue_table_shows_a_key_with_jobs_processing_and_none_pending(db_url: str) -> None:
    # the table listed the pending levels only: user-7's running job was in the totals and the JSON, not in it
    from tests.test_cli import run

    with Store(db_url) as store:
        new_job(store, "vip", owner_key="user-7", priority=10)
        new_job(store, "system")
        store.set_owner_limit("user-7", 3)
        claimed = store.claim_next("gpu-0")
        assert claimed is not None and claimed.owner_key == "user-7"
    table = run("queue", "--database", db_url)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("pending 1, processing 1,")
    rows = [line.split() for line in lines[4:]]
    assert [row[:4] for row in rows] == [["0", "(none)", "1", "0"], ["-", "user-7", "0", "0"]]
    assert rows[1][-3:] == ["-", "1", "3"]  # no oldest pending; running 1 of its limit 3


def test_queue_position_counts_only_the_jobs_the_claim_takes_first_not_those_waiting_for_run_after(
    store: Store, clock: FakeClock
) -> None:
    # `ahead` counted the lane's higher-priority (and older) pending jobs whose run_after had not passed:
    # the claim takes none of them before this job
    later = clock.now + timedelta(minutes=5)
    new_job(store, "tomorrow's intro", owner_key="user-42", priority=10, run_after=later)
    new_job(store, "a retry in backoff", owner_key="user-42", run_after=later)
    ready = new_job(store, "urgent", owner_key="user-42", priority=5)
    job = new_job(store, "lofi", owner_key="user-42")
    assert store.queue_position(job.id).ahead == 1  # only `ready`
    claimed = store.claim_next("gpu-0")
    assert claimed is not None and claimed.id == ready.id
    assert store.queue_position(job.id).ahead == 0
    clock.advance(301)  # both are due now: the claim takes them first
    assert store.queue_position(job.id).ahead == 2
    assert [store.claim_next("gpu-0").id for _ in range(3)][-1] == job.id  # type: ignore[union-attr]


def test_every_sync_caller_refuses_an_async_store_with_the_one_check(sqlite_url: str, tmp_path: Path) -> None:
    # recording, delivery and maintenance each wrote the check: recording's hint read "(from asyncio code:
    # ...)" for anything with a transaction attribute, the others "; ..." for an AsyncStore only
    from musicstore.delivery import Delivery
    from musicstore.maintenance import scan
    from musicstore.recording import export_generation

    calls: dict[str, Callable[[Any], object]] = {
        "recording": lambda s: export_generation(s, None, None, root=tmp_path),  # type: ignore[arg-type]
        "delivery": Delivery,
        "maintenance": scan.require_store,
    }
    wrong: dict[str, object] = {"AsyncStore": AsyncStore(sqlite_url), "NoneType": None}
    wrong["_Lookalike"] = type("_Lookalike", (), {"transaction": None})()
    for name, call in calls.items():
        for kind, store in wrong.items():
            with pytest.raises(InvalidInput) as refused:
                call(store)
            message = str(refused.value)
            assert ("Store, got " + kind) in message, (name, message)
            assert message.endswith(kind) == (kind != "AsyncStore"), (name, message)  # advice: to AsyncStore
            assert ("; " in message.split(", got ")[1]) == (kind == "AsyncStore"), (name, message)


def test_a_lease_or_backoff_ending_after_the_year_9999_is_invalid_input_and_nothing_is_written(
    store: Store, clock: FakeClock
) -> None:
    # now + lease overflowed datetime: a bare OverflowError from claim_next and heartbeat; a retry's backoff,
    # computed in the query, wrote a run_after beyond 9999 that no read could turn back into a datetime
    clock.now = datetime(9999, 12, 31, 23, 58, tzinfo=UTC)
    job = new_job(store)
    with pytest.raises(InvalidInput, match=r"a lease of 300 s from 9999-12-31T23:58:00\+00:00 ends after"):
        store.claim_next("gpu-0", lease_seconds=300)
    assert store.get_generation(job.id).status is Status.PENDING  # type: ignore[union-attr]
    claimed = store.claim_next("gpu-0", lease_seconds=60)  # a lease that fits is taken
    assert claimed is not None and claimed.lease_expires_at == datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    with pytest.raises(InvalidInput, match="a lease of 300 s"):
        store.heartbeat(job.id, "gpu-0", lease_seconds=300)
    with pytest.raises(InvalidInput, match="check the store's clock"):
        store.claim_batch("gpu-0", 2, lease_seconds=300)
    policy = RetryPolicy(base_seconds=10, cap_seconds=600)
    with pytest.raises(InvalidInput, match=r"a retry's backoff \(its cap_seconds\) of 600 s"):
        store.fail(job.id, "boom", worker_id="gpu-0", backoff=policy)
    clock.now = datetime(9999, 12, 31, 23, 59, 30, tzinfo=UTC)  # the lease expired
    with pytest.raises(InvalidInput, match="a retry's backoff"):
        store.requeue_expired(backoff=policy)
    read = store.get_generation(job.id)  # readable, as it was
    assert read is not None and read.status is Status.PROCESSING and read.run_after is None
    assert read.lease_expires_at == datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    assert store.fail(job.id, "boom", worker_id="gpu-0") is Status.PENDING  # no backoff: it fits


def test_a_lease_that_leaves_the_utc_years_in_a_zone_behind_utc_is_invalid_input(
    store: Store, clock: FakeClock
) -> None:
    clock.now = datetime(9999, 12, 31, 18, 30, tzinfo=timezone(timedelta(hours=-5)))  # 23:30 UTC
    new_job(store)
    with pytest.raises(InvalidInput, match="a lease of 3600 s"):
        store.claim_next("gpu-0", lease_seconds=3600)


def test_wait_for_without_a_timeout_waits_until_the_job_finishes(db_url: str) -> None:
    """``wait_for(generation_id)``, as an API server awaiting a result calls it, waits until the job is
    finished (sync and async alike); before, ``timeout`` had no default (TypeError)."""
    with Store(db_url) as store, Store(db_url) as other:
        job = new_job(store)
        assert other.claim_next("gpu-0") is not None
        finisher = threading.Timer(
            0.2, other.complete_generation, [job.id], {"file_path": "a.wav", "file_size_bytes": 1}
        )
        finisher.start()
        done = store.wait_for(job.id)
        finisher.join()
        assert done.status is Status.COMPLETED

        second = new_job(store)
        assert other.claim_next("gpu-0") is not None

        async def main() -> Status:
            async with AsyncStore.open(db_url) as async_store:
                canceller = threading.Timer(0.2, other.cancel, [second.id])
                canceller.start()
                try:
                    return (await async_store.wait_for(second.id)).status
                finally:
                    canceller.join()

        assert asyncio.run(main()) is Status.CANCELLED


def test_a_burst_of_waits_leaves_no_more_idle_listeners_than_the_store_keeps(db_url: str) -> None:
    """After many concurrent waits (an API server's burst of ``wait_for``), a store keeps only its one hub's
    connection: the waits shared it (PostgreSQL's listening connection; SQLite's poller since session 25,
    before which a store kept up to 4 SQLite listeners of its own, one per concurrent wait)."""
    waits = 12
    with Store(db_url) as store:
        jobs = [new_job(store, f"job {i}") for i in range(waits)]
        started = threading.Barrier(waits + 1)

        def wait(gid: str) -> None:
            started.wait()
            assert store.wait_for(gid, timeout=60).status is Status.CANCELLED

        threads = [threading.Thread(target=wait, args=(job.id,)) for job in jobs]
        for thread in threads:
            thread.start()
        started.wait()
        hub = waiting.listeners(store).hub
        until(lambda: hub.waiters == waits, 50)  # every wait holds a listener (within the waits' 60 s)
        for job in jobs:
            store.cancel(job.id)
        for thread in threads:
            thread.join()
        assert hub.waiters == 0 and hub.connections == 1
        if db_url.startswith("postgresql"):
            assert _listening_connections(db_url) == 1


# --- owner keys in byte order on every backend (migration 0019) --------------------------------------------

OWNER_KEYS = ["a-c", "a_c", "aZ", "ab", "A-b", "a.b", "B", "é", "z-z", "z_z", "Zz"]
"""Keys an ICU (or a glibc locale's) collation sorts otherwise than their bytes: '_' before '-', 'a' before
'B', accents beside their letter."""


@pytest.fixture(params=["sqlite", "postgres", "postgres-icu"])
def keyed_url(request: pytest.FixtureRequest) -> str:
    fixture = {"sqlite": "sqlite_url", "postgres": "postgres_url", "postgres-icu": "icu_postgres_url"}
    url: str = request.getfixturevalue(fixture[request.param])
    return url


def test_the_queue_lists_owner_keys_in_byte_order_on_every_backend(keyed_url: str) -> None:
    """``queue_depth`` (levels and running) and ``get_owner_limits`` (``musicstore queue``, the web API)
    list owner keys in byte order (Python's ``sorted``), as SQLite does; on a PostgreSQL database created
    with a locale they came in the locale's order, so the same queue read differently by backend."""
    with Store(keyed_url) as store:
        for key in OWNER_KEYS:
            for priority in (0, 5):
                new_job(store, owner_key=key, priority=priority)
            store.set_owner_limit(key, 3)
        new_job(store)  # no key: '' sorts first
        for _ in range(len(OWNER_KEYS) + 1):
            assert store.claim_next("w", owner_limit=100) is not None
        depth = store.queue_depth()
        limits = store.get_owner_limits()
    expected = sorted(OWNER_KEYS)
    levels = [(level.owner_key or "", -level.priority) for level in depth.levels]
    assert levels == sorted(levels) and {key for key, _ in levels} == set(expected)
    assert list(depth.running) == sorted(depth.running, key=lambda key: key or "")
    assert len(depth.running) > 2
    assert list(limits) == expected


def _triggers(url: str) -> list[tuple[object, ...]]:
    if url.startswith("sqlite"):
        return _sql(url, "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
    return _sql(
        url,
        "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger"
        " WHERE tgrelid = 'generations'::regclass AND NOT tgisinternal ORDER BY tgname",
    )


def test_0019_rolls_back_and_applies_again_on_a_queue_with_owner_keys(keyed_url: str) -> None:
    """Applied to a queue: the keys, lanes and limits keep their values and the lanes' triggers their
    definitions; rolled back, the database's collation again (the ICU order on that database); applied
    again, byte order, and the queue works."""
    with Store(keyed_url) as store:
        for key in OWNER_KEYS:
            new_job(store, owner_key=key)
            store.set_owner_limit(key, 2)
        assert store.claim_next("w") is not None
    lanes = "SELECT owner_key, running, head_id FROM owner_lanes"
    before_lanes, triggers = sorted(_sql(keyed_url, lanes)), _triggers(keyed_url)
    _rollback(keyed_url, "0019")
    assert sorted(_sql(keyed_url, lanes)) == before_lanes
    assert migrate(keyed_url) == _from("0019")
    assert sorted(_sql(keyed_url, lanes)) == before_lanes and _triggers(keyed_url) == triggers
    _rollback(keyed_url, "0019")
    assert _triggers(keyed_url) == triggers
    ordered = _sql(keyed_url, "SELECT owner_key FROM owner_limits ORDER BY owner_key")
    limits = [str(key) for (key,) in ordered]
    assert sorted(limits) == sorted(OWNER_KEYS)
    if "icu" in keyed_url:
        assert limits != sorted(OWNER_KEYS)  # the locale's order, not Python's
    assert migrate(keyed_url) == _from("0019")
    assert _triggers(keyed_url) == triggers
    with Store(keyed_url) as store:
        assert list(store.get_owner_limits()) == sorted(OWNER_KEYS)
        job = new_job(store, owner_key="a_c")  # the lanes' triggers at work
        assert store.claim_next("w", owner_limit=100) is not None
        store.cancel(job.id)
        levels = [level.owner_key for level in store.queue_depth().levels]
        assert levels == sorted(levels, key=lambda key: key or "")


def _listening_connections(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'"
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_many_concurrent_waits_hold_one_listening_connection(
    postgres_url: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent waits on one store (an API server's ``wait_for`` in each request) share one listening
    connection (the store's hub) and each is woken by its job's notification (the re-try is set to an hour).
    Before d2d6c44 each wait opened a server connection of its own: 250 of them took every slot of the server
    (``too many clients`` for every client of the database, the waits themselves included); with d2d6c44's
    cap of 16 the waits beyond it re-tried each second instead of being woken."""
    monkeypatch.setattr(waiting, "RECHECK_SECONDS", 3600.0)
    waits = 40
    with Store(postgres_url) as store:
        jobs = [new_job(store, f"job {i}") for i in range(waits)]
        seen: list[int] = []
        watched: list[Any] = []  # the store whose waits these are, once they may start

        def finish() -> None:
            deadline = time.monotonic() + 50  # within the waits' 60 s
            while not watched or waiting.listeners(watched[0]).hub.waiters < waits:  # every wait is asleep
                if time.monotonic() > deadline:
                    break  # counted as it is: the waits are cancelled, the count is asserted
                time.sleep(0.01)
            seen.append(_listening_connections(postgres_url))
            for job in jobs:
                store.cancel(job.id)

        finisher = threading.Thread(target=finish)
        finisher.start()
        if kind == "sync":
            results: list[Any] = [None] * waits

            def wait(i: int) -> None:
                results[i] = store.wait_for(jobs[i].id, timeout=60)

            threads = [threading.Thread(target=wait, args=(i,)) for i in range(waits)]
            watched.append(store)
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        else:

            async def main() -> list[Any]:
                async with AsyncStore.open(postgres_url) as async_store:
                    watched.append(async_store)
                    return await asyncio.gather(*(async_store.wait_for(job.id, timeout=60) for job in jobs))

            results = asyncio.run(main())
        finisher.join()
    assert seen == [1]
    assert [result.status for result in results] == [Status.CANCELLED] * waits


def test_requeue_expired_from_the_shell_takes_a_backoff(db_url: str) -> None:
    """``musicstore requeue-expired --backoff 60s [--backoff-cap 10m] [--jitter 0]`` backs the jobs it takes
    back off as ``requeue_expired(backoff=RetryPolicy(...))`` does: a cron job taking back the claims of a
    crashed worker no longer hands them at once to the next worker (the command had no way to say it).
    Without ``--backoff`` they are claimable at once, as before."""
    from tests.test_cli import run

    with Store(db_url) as store:
        delayed = new_job(store, "delayed")
        assert store.claim_next("gpu-0", lease_seconds=0.01) is not None
        time.sleep(0.05)  # its lease ran out
        before = datetime.now(UTC)
        result = run("requeue-expired", "--database", db_url, "--backoff", "60s", "--jitter", "0", "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["requeued"] == [delayed.id]
        row = store.get_generation(delayed.id)
        assert row is not None and row.status is Status.PENDING and row.run_after is not None
        assert before + timedelta(seconds=59) <= row.run_after <= datetime.now(UTC) + timedelta(seconds=60)
        assert store.claim_next("gpu-1") is None  # backing off

        at_once = new_job(store, "at once")
        assert store.claim_next("gpu-0", lease_seconds=0.01) is not None
        time.sleep(0.05)
        result = run("requeue-expired", "--database", db_url)
        assert result.returncode == 0, result.stderr
        claimed = store.claim_next("gpu-1")
        assert claimed is not None and claimed.id == at_once.id

    alone = run("requeue-expired", "--database", db_url, "--jitter", "0.2")
    assert alone.returncode == 2 and "--backoff" in alone.stderr  # a usage error: jitter of no backoff
    bad = run("requeue-expired", "--database", db_url, "--backoff", "1s", "--jitter", "2")
    assert bad.returncode == 2 and "jitter" in bad.stderr
