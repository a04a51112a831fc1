"""Several GPU hosts sharing one PostgreSQL database (and one bucket): each host a process with its own Store.

Regressions found by driving the store the way a fleet does: workers on one host completing jobs while
another host runs the periodic maintenance (``requeue_expired``) against the same database.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import tempfile
import threading
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from musicstore import AsyncStore, Requeued, Status, Store, recording, runner
from musicstore.errors import ClockSkewWarning, DatabaseBusy, InvalidTransition, LeaseLost
from musicstore.filestore import FileStore, LocalFileStore, open_filestore
from musicstore.maintenance.reconcile import DanglingRow, reconcile
from musicstore.maintenance.relocate import copy_files
from musicstore.maintenance.retention import cleanup
from musicstore.ops.storage import get_storage, record_storage
from musicstore.recording import export_generation
from musicstore.runner import CLOCK_SKEW_SECONDS
from musicstore.testing import FakeClock

pytestmark = pytest.mark.postgres

HELD_UP = 20.0
"""The ``busy_timeout`` of a store that meets a row another host's transaction holds: a call that waited for
its lock would take this long, then raise DatabaseBusy; one that skipped it returns well within half of it,
however loaded the machine (a bound of 0.4 s, with 0.5 s, was a wall-clock race with the call's own work)."""


def _status(store: Store, generation_id: str) -> Status:
    found = store.get_generation(generation_id)
    assert found is not None
    return found.status


def _slow_completer(url: str, job_id: str, worker: str, locked: Any, release: Any) -> None:
    """Another host's worker recording its job: the row is locked by the completing transaction while its
    upload runs (``export_generation`` puts the object inside that transaction), here until ``release``."""
    with Store(url) as host, host.transaction() as tx:
        tx.complete_generation(job_id, file_path=f"{job_id}.wav", file_size_bytes=10, worker_id=worker)
        locked.set()
        release.wait(30)


def _locking_then_completing(url: str, job_id: str, worker: str, locked: Any, release: Any) -> None:
    """``_slow_completer`` with the row locked by FOR UPDATE until ``release``, then completed: the
    completion itself also holds its session's shard of generation_totals, which the test's requeue_expired
    meets when both sessions' pids fall in one shard (one run in 16; the shards' trade-off, not the row lock
    that test is about)."""
    import psycopg

    with psycopg.connect(url) as other:
        other.execute("SELECT id FROM generations WHERE id = %s FOR UPDATE", [job_id])
        locked.set()
        release.wait(30)
    with Store(url) as host:
        host.complete_generation(job_id, file_path=f"{job_id}.wav", file_size_bytes=10, worker_id=worker)


@pytest.mark.parametrize("last_attempt", [False, True])
def test_requeue_expired_is_not_held_up_by_a_job_another_host_is_completing(
    postgres_url: str, last_attempt: bool
) -> None:
    """A row locked by another host's completing transaction (its upload in flight, its lease run out
    meanwhile) is skipped by ``requeue_expired``, which takes back the other expired jobs at once. Before, its
    UPDATE waited for that row's lock, then raised DatabaseBusy after busy_timeout and took back nothing: no
    expired job of the fleet went back to the queue while one slow upload of an expired lease ran. The same
    for a lease run out on its last attempt (failed, not requeued)."""
    context = multiprocessing.get_context("spawn")
    with Store(postgres_url, busy_timeout=HELD_UP) as maintenance:
        uploading = maintenance.create_generation("a slow upload", model_name="m", duration_seconds=1)
        crashed = maintenance.create_generation("a dead worker's job", model_name="m", duration_seconds=1)
        assert maintenance.claim_next("gpu-a", lease_seconds=1).id == uploading.id  # type: ignore[union-attr]
        assert maintenance.claim_next("gpu-b", lease_seconds=1).id == crashed.id  # type: ignore[union-attr]
        locked, release = context.Event(), context.Event()
        host = context.Process(
            target=_locking_then_completing, args=(postgres_url, uploading.id, "gpu-a", locked, release)
        )
        host.start()
        try:
            assert locked.wait(60), "the other host never locked its row"
            time.sleep(1.2)  # both leases have run out
            started = time.monotonic()
            taken = maintenance.requeue_expired(max_attempts=1 if last_attempt else 3)
            assert time.monotonic() - started < HELD_UP / 2  # did not wait for the other host's lock
            expected = ([], [crashed.id]) if last_attempt else ([crashed.id], [])
            assert (taken.requeued, taken.failed) == expected
        finally:
            release.set()
            host.join(60)
        assert host.exitcode == 0
        assert _status(maintenance, uploading.id) is Status.COMPLETED  # its commit landed
        after = Status.FAILED if last_attempt else Status.PENDING
        assert _status(maintenance, crashed.id) is after
        assert maintenance.requeue_expired(max_attempts=1) == Requeued([], [])


def _skewed(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """This process as a host whose clock is off by ``seconds`` (ahead when positive): the default clock's
    reading (``runner.now``, what ``utcnow`` stores answer with) moved, as a wrong system clock moves it."""
    monkeypatch.setattr(runner, "now", lambda: datetime.now(UTC) + timedelta(seconds=seconds))


@pytest.mark.parametrize("seconds", [90.0, -90.0])
def test_a_host_whose_clock_is_off_is_warned_when_it_opens_a_store(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, seconds: float
) -> None:
    """Leases, retries and requeue_expired's cut-off are each host's clock: a host 90 s ahead takes back the
    live jobs of the others (their leases of 60 s look expired to it), one 90 s behind writes leases the
    others see as run out when they are made. Opening a store on PostgreSQL with the default clock compares it
    with the server's and warns (ClockSkewWarning) beyond CLOCK_SKEW_SECONDS, sync and async: before, nothing
    said so and the jobs were lost silently."""
    with Store(postgres_url) as fleet:  # a host with a good clock
        job = fleet.create_generation("a live job", model_name="m", duration_seconds=1)
        claimed = fleet.claim_next("gpu-a", lease_seconds=60)
        assert claimed is not None and claimed.id == job.id
        _skewed(monkeypatch, seconds)
        with pytest.warns(ClockSkewWarning) as warned:
            skewed = Store(postgres_url)
        with skewed:
            message = str(warned[0].message)
            assert f"{abs(seconds):.0f} s {'ahead of' if seconds > 0 else 'behind'}" in message, message
            assert "synchronise" in message and postgres_url.rsplit("@", 1)[-1] in message
            taken = skewed.requeue_expired()
            assert taken.requeued == ([job.id] if seconds > 0 else [])  # what the warning is about

        async def open_async() -> None:
            with pytest.warns(ClockSkewWarning):
                store = await AsyncStore.open(postgres_url)
            await store.close()

        asyncio.run(open_async())


def test_a_host_whose_clock_agrees_with_the_server_is_not_warned(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within CLOCK_SKEW_SECONDS no warning; a store given its own clock (a FakeClock in tests, years off)
    is not compared: that clock is the caller's choice."""
    _skewed(monkeypatch, CLOCK_SKEW_SECONDS / 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClockSkewWarning)
        Store(postgres_url).close()
        Store(postgres_url, clock=FakeClock()).close()

        async def open_async() -> None:
            await (await AsyncStore.open(postgres_url, clock=FakeClock())).close()
            await (await AsyncStore.open(postgres_url)).close()

        asyncio.run(open_async())


def _export_killed_mid_upload(url: str, s3: str, environ: dict[str, str], temp: str, job_id: str) -> None:
    """A worker host exporting its job to the bucket, killed (SIGKILL) while its upload runs."""
    os.environ.update(environ)
    os.environ["TMPDIR"] = temp
    tempfile.tempdir = None  # read TMPDIR again
    files = open_filestore(s3)

    def killed(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGKILL)

    files.put = killed  # type: ignore[method-assign]
    with Store(url) as store:
        job = store.get_generation(job_id)
        assert job is not None
        export_generation(store, job, np.zeros((job.channels, 3200), dtype=np.float32), root=files)


def test_a_worker_killed_mid_upload_leaves_no_temp_files_behind_for_good(
    postgres_url: str, musicstore_s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export to a bucket encodes the clip into a temp folder (``$TMPDIR/musicstore-export-*``) and puts
    it from there. A worker killed while it uploads (the OOM killer, a preempted GPU host, a deploy's
    SIGKILL) left that folder and the whole clip in it for good: every such kill leaked a clip's bytes on
    the host. An export now removes the folders of exporters that are gone (their pid and start time recorded
    in the folder) once unchanged for STALE_EXPORT_SECONDS, and only those: a live exporter's folder is kept,
    and so is a recent one (its maker may run in a pid namespace this process cannot see)."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    environ = {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
    context = multiprocessing.get_context("spawn")
    with Store(postgres_url) as store:
        for _ in range(2):
            store.create_generation("a take", model_name="m", duration_seconds=1, sample_rate=32000)
        crashed, job = store.claim_next("gpu-a"), store.claim_next("gpu-b")
        assert crashed is not None and job is not None
        host = context.Process(
            target=_export_killed_mid_upload,
            args=(postgres_url, musicstore_s3_url, environ, str(temp), crashed.id),
        )
        host.start()
        host.join(120)
        assert host.exitcode == -signal.SIGKILL
        left = sorted(temp.glob("musicstore-export-*"))
        assert len(left) == 1 and any(left[0].rglob(f"{crashed.id}.wav"))  # what the kill left
        live = temp / "musicstore-export-live"  # a folder of an exporter still running: this process
        live.mkdir()
        (live / "owner").write_text(f"{os.getpid()} -\n")
        young = temp / "musicstore-export-young"  # its maker gone, but maybe in a pid namespace not ours
        young.mkdir()
        (young / "owner").write_text(f"{2**31 - 2} -\n")  # no such process here
        old = time.time() - recording.STALE_EXPORT_SECONDS - 60
        for folder in (left[0], live):
            os.utime(folder, (old, old))
        monkeypatch.setenv("TMPDIR", str(temp))
        monkeypatch.setattr(tempfile, "tempdir", None)
        monkeypatch.setattr(recording, "_swept", {})  # as in a process that has not swept yet
        files = open_filestore(musicstore_s3_url)
        try:
            done = export_generation(store, job, np.zeros((job.channels, 3200), dtype=np.float32), root=files)
        finally:
            files.close()
        assert done.generation.is_completed
        assert sorted(temp.iterdir()) == [live, young]  # the dead exporter's folder is gone, its own too


def _holding_the_row(url: str, generation_id: str, locked: Any, release: Any) -> None:
    """Another host recording something made from a generation's master (a rendition, its peaks): the
    generation's row is locked by that transaction while the file is put, here until ``release``."""
    with Store(url) as host, host.transaction() as tx:
        tx.merge_metadata(generation_id, {"peaks": {"key": "in flight"}})
        locked.set()
        release.wait(30)


def test_cleanup_is_not_held_up_by_a_generation_another_host_is_rendering(
    postgres_url: str, tmp_path: Path
) -> None:
    """Retention skips a row another host's transaction holds (a rendition or peaks being recorded: the
    generation's row stays locked while the file is put) and deletes the others at once; the skipped row is
    counted in ``rows_changed`` (kept, with its file) for the next run. Before, its DELETE waited for that
    lock, then the whole cleanup raised DatabaseBusy after busy_timeout and deleted nothing."""
    root = tmp_path / "audio"
    root.mkdir()
    context = multiprocessing.get_context("spawn")
    with Store(postgres_url, busy_timeout=HELD_UP) as store:
        ids = []
        for n in range(3):
            store.create_generation(f"take {n}", model_name="m", duration_seconds=1)
            job = store.claim_next("gpu-a")
            assert job is not None
            (root / f"{job.id}.wav").write_bytes(b"RIFF" * 4)
            store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=16)
            ids.append(job.id)
        locked, release = context.Event(), context.Event()
        host = context.Process(target=_holding_the_row, args=(postgres_url, ids[1], locked, release))
        host.start()
        try:
            assert locked.wait(60), "the other host never locked its row"
            started = time.monotonic()
            report = cleanup(store, root, older_than=timedelta(0), dry_run=False)
            assert time.monotonic() - started < HELD_UP / 2  # did not wait for the other host's lock
        finally:
            release.set()
            host.join(60)
        assert host.exitcode == 0
        assert (report.rows_deleted, report.rows_changed, report.files_deleted) == (2, 1, 2)
        assert [store.get_generation(i) is None for i in ids] == [True, False, True]
        assert sorted(p.name for p in root.iterdir()) == [f"{ids[1]}.wav"]
        again = cleanup(store, root, older_than=timedelta(0), dry_run=False)  # the next run takes it
        assert (again.rows_deleted, again.files_deleted) == (1, 1) and not any(root.iterdir())


def test_an_export_of_a_claim_taken_back_is_refused_even_under_the_same_worker_id(
    db_url: str, where: FileStore
) -> None:
    """Hosts named alike (each host's workers called gpu-0...gpu-7, or a hung worker and the one restarted in
    its place under its name): host A's claim runs out and is taken back, host B's gpu-0 claims the job again.
    A's export must get LeaseLost, as a worker that lost its lease does, and leave B's attempt alone: the
    row is checked to be still A's claim (its attempt and claim time), not only its worker id. Before, A's
    stale attempt completed the row under B's feet (B's export then failed with LeaseLost)."""
    clock = FakeClock()
    with Store(db_url, clock=clock) as store:
        job = store.create_generation("a take", model_name="m", duration_seconds=1, sample_rate=32000)
        mine = store.claim_next("gpu-0", lease_seconds=10)
        assert mine is not None and mine.id == job.id
        clock.advance(11)
        assert store.requeue_expired().requeued == [job.id]
        theirs = store.claim_next("gpu-0", lease_seconds=10)  # host B's gpu-0
        assert theirs is not None and theirs.id == job.id
        audio = np.zeros((job.channels, 3200), dtype=np.float32)
        with pytest.raises(LeaseLost):
            export_generation(store, mine, audio, root=where)
        assert not [o.key for o in where.list()]  # nothing of A's attempt was put
        row = store.get_generation(job.id)
        assert row is not None and row.status is Status.PROCESSING and row.attempts == 2
        done = export_generation(store, theirs, audio, root=where)
        assert done.generation.is_completed and done.generation.attempts == 2


def _holding_rows(url: str, generation_ids: list[str], rendition: Any, locked: Any, release: Any) -> None:
    """Another host's transaction holding rows reconcile repairs: each generation's row (a rendition or its
    peaks being recorded: the row stays locked while the file is put) and a rendition's row (another
    reconcile about to delete it: locked, not deleted, as a delete would also hold its session's shard of
    rendition_totals, which this test's reconcile meets in one run of 16: the shards' own trade-off, not the
    row lock this test is about), here until ``release``."""
    import psycopg

    with Store(url) as host, host.transaction() as tx, psycopg.connect(url) as other:
        for gid in generation_ids:
            tx.merge_metadata(gid, {"rendering": "in flight"})
        if rendition is not None:
            lock = "SELECT id FROM renditions WHERE id = %s FOR UPDATE"
            held = other.execute(lock, [rendition.id]).fetchall()
            assert [str(row[0]) for row in held] == [str(rendition.id)]
        locked.set()
        release.wait(30)


def test_reconcile_repairs_are_not_held_up_by_rows_another_host_holds(
    postgres_url: str, tmp_path: Path
) -> None:
    """Reconcile's repairs (a dangling master marked failed, a dangling peaks record dropped, a dangling
    rendition's row deleted) skip a row another host's transaction holds and repair the others at once; the
    skipped ones are reported ``changed``, left for the next run. Before, the first such row made the repair
    wait for its lock, then the whole reconcile raised DatabaseBusy after busy_timeout."""
    root = tmp_path / "audio"
    root.mkdir()
    settings: dict[str, Any] = {
        "settings": {"format": "mp3", "sample_rate": 32_000, "channels": 2, "bitrate_mode": "constant",
                     "bitrate_kbps": 192},
        "profile": "streaming", "target_lufs": -14.0, "ceiling_dbtp": -1.0, "duration_seconds": 1.0,
        "loudness_lufs": -14.0, "true_peak_dbtp": -1.5, "loudness_status": "normalized",
    }  # fmt: skip
    context = multiprocessing.get_context("spawn")
    with Store(postgres_url, busy_timeout=HELD_UP) as store:
        ids = []
        for n in range(6):
            store.create_generation(f"take {n}", model_name="m", duration_seconds=1)
            job = store.claim_next("gpu-a")
            assert job is not None
            (root / f"{job.id}.wav").write_bytes(b"RIFF" * 4)
            store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=16)
            ids.append(job.id)
        for gid in ids[:2]:  # dangling masters
            (root / f"{gid}.wav").unlink()
        for gid in ids[2:4]:  # dangling peaks records
            store.merge_metadata(
                gid, {"peaks": {"key": f"{gid}.peaks.256.8.json", "bytes": 9, "sha256": "0" * 64}}
            )
        for gid in ids[4:]:  # dangling renditions
            store.create_rendition(
                gid,
                storage_key=f"{gid}.streaming.0123abcd.mp3",
                file_size_bytes=9,
                checksum="0" * 64,
                **settings,
            )
        held = store.list_renditions(ids[5])[0]
        locked, release = context.Event(), context.Event()
        row = DanglingRow(held.id, held.storage_key, "missing", 9, None)
        host = context.Process(
            target=_holding_rows, args=(postgres_url, [ids[1], ids[3]], row, locked, release)
        )
        host.start()
        try:
            assert locked.wait(60), "the other host never locked its rows"
            started = time.monotonic()
            report = reconcile(store, root, repair=True)
            assert time.monotonic() - started < HELD_UP / 2  # did not wait for the other host's locks
        finally:
            release.set()
            host.join(60)
        assert host.exitcode == 0
        assert [(r.id, r.action) for r in report.dangling] == [(ids[0], "marked_failed"), (ids[1], "changed")]
        assert sorted((r.id, r.action) for r in report.dangling_peaks) == sorted(
            [(ids[2], "record_dropped"), (ids[3], "changed")]
        )
        gone = store.list_renditions(ids[4])
        assert gone == [] and [r.action for r in report.dangling_renditions if r.id != held.id] == [
            "deleted_row"
        ]
        assert [r.action for r in report.dangling_renditions if r.id == held.id] == ["changed"]
        assert [_status(store, i) for i in ids[:2]] == [Status.FAILED, Status.COMPLETED]
        again = reconcile(store, root, repair=True)  # the next run takes what was skipped
        assert [(r.id, r.action) for r in again.dangling] == [(ids[1], "marked_failed")]
        assert [(r.id, r.action) for r in again.dangling_peaks] == [(ids[3], "record_dropped")]
        assert [(r.id, r.action) for r in again.dangling_renditions] == [(held.id, "deleted_row")]
        assert reconcile(store, root).consistent


def test_copy_files_is_not_held_up_by_a_generation_another_host_is_rendering(
    postgres_url: str, tmp_path: Path
) -> None:
    """copy_files skips pointing a row at its copy while another host's transaction holds the row (a
    rendition or peaks of it being recorded) and moves the others at once; the skipped one is counted in
    ``rows_changed`` and moved by the next run. Before, its UPDATE waited for that lock, then the whole copy
    raised DatabaseBusy after busy_timeout."""
    source, target = LocalFileStore(tmp_path / "a"), LocalFileStore(tmp_path / "b")
    context = multiprocessing.get_context("spawn")
    with Store(postgres_url, busy_timeout=HELD_UP) as store:
        ids = []
        for n in range(3):
            store.create_generation(f"take {n}", model_name="m", duration_seconds=1)
            job = store.claim_next("gpu-a")
            assert job is not None
            info = source.put(f"{job.id}.wav", b"RIFF" * (4 + n))
            assert info.checksum is not None
            store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=info.size)
            store.run(record_storage, job.id, storage_url=source.url, key=info.key, checksum=info.checksum)
            ids.append(job.id)
        locked, release = context.Event(), context.Event()
        host = context.Process(target=_holding_rows, args=(postgres_url, [ids[1]], None, locked, release))
        host.start()
        try:
            assert locked.wait(60), "the other host never locked its row"
            started = time.monotonic()
            report = copy_files(store, target)
            assert time.monotonic() - started < HELD_UP / 2  # did not wait for the other host's lock
        finally:
            release.set()
            host.join(60)
        assert host.exitcode == 0
        assert (report.rows_updated, report.rows_changed) == (2, 1)
        where = [store.run(get_storage, i).storage_url for i in ids]
        assert where == [target.url, source.url, target.url]
        again = copy_files(store, target)  # the next run moves it
        assert again.rows_updated == 1 and store.run(get_storage, ids[1]).storage_url == target.url


@pytest.mark.parametrize("upload_seconds", [0.3, 30])
def test_cancel_of_a_job_being_completed_waits_and_reports_what_happened(
    postgres_url: str, upload_seconds: float
) -> None:
    """Cancelling a job whose worker is recording it (its upload in flight inside the completing
    transaction) waits for that transaction, as on SQLite's single writer: when it commits within
    busy_timeout the cancel reports the job completed (InvalidTransition, current=completed, nothing
    changed); an upload longer than busy_timeout makes the cancel DatabaseBusy, the row left to the worker.
    Never skipped: the job is processing until that commit, a cancel that skipped it would say so wrongly."""
    context = multiprocessing.get_context("spawn")
    # the short upload's commit (another process told to go on, then committing) within busy_timeout however
    # loaded the machine: 20 s; the long one (released only at the end) past it: 2 s
    busy = HELD_UP if upload_seconds < 1 else 2
    with Store(postgres_url, busy_timeout=busy) as store:
        job = store.create_generation("a job being recorded", model_name="m", duration_seconds=1)
        assert store.claim_next("gpu-a") is not None
        locked, release = context.Event(), context.Event()
        host = context.Process(target=_slow_completer, args=(postgres_url, job.id, "gpu-a", locked, release))
        host.start()
        try:
            assert locked.wait(60), "the other host never locked its row"
            if upload_seconds < 1:
                threading.Timer(upload_seconds, release.set).start()
                with pytest.raises(InvalidTransition) as raised:
                    store.cancel(job.id, "the user pressed stop")
                assert raised.value.current == Status.COMPLETED
            else:
                with pytest.raises(DatabaseBusy):
                    store.cancel(job.id, "the user pressed stop")
        finally:
            release.set()
            host.join(60)
        assert host.exitcode == 0
        assert _status(store, job.id) is Status.COMPLETED
