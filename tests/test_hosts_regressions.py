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
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from musicstore import AsyncStore, Requeued, Status, Store, recording, runner
from musicstore.errors import ClockSkewWarning, LeaseLost
from musicstore.filestore import FileStore, open_filestore
from musicstore.maintenance.retention import cleanup
from musicstore.recording import export_generation
from musicstore.runner import CLOCK_SKEW_SECONDS
from musicstore.testing import FakeClock

pytestmark = pytest.mark.postgres


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
    with Store(postgres_url, busy_timeout=0.5) as maintenance:
        uploading = maintenance.create_generation("a slow upload", model_name="m", duration_seconds=1)
        crashed = maintenance.create_generation("a dead worker's job", model_name="m", duration_seconds=1)
        assert maintenance.claim_next("gpu-a", lease_seconds=1).id == uploading.id  # type: ignore[union-attr]
        assert maintenance.claim_next("gpu-b", lease_seconds=1).id == crashed.id  # type: ignore[union-attr]
        locked, release = context.Event(), context.Event()
        host = context.Process(
            target=_slow_completer, args=(postgres_url, uploading.id, "gpu-a", locked, release)
        )
        host.start()
        try:
            assert locked.wait(60), "the other host never locked its row"
            time.sleep(1.2)  # both leases have run out
            started = time.monotonic()
            taken = maintenance.requeue_expired(max_attempts=1 if last_attempt else 3)
            assert time.monotonic() - started < 0.4  # did not wait for the other host's lock
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
    with Store(postgres_url, busy_timeout=0.5) as store:
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
            assert time.monotonic() - started < 0.4  # did not wait for the other host's lock
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
