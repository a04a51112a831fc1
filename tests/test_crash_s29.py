"""Crash safety of exports (session 29): a Ctrl-C landing right after a write placed a file, before the
export noted it as placed; and how long the cleanup of a put whose outcome is unknown holds the row's lock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from musicstore import recording
from musicstore.filestore import LocalFileStore
from musicstore.recording.uploads import Uploads
from tests.test_crash_s28 import interrupted_export_leaves_nothing


def _claimed(store: Any, name: str) -> Any:
    store.create_generation(name, model_name="m", duration_seconds=1.0, sample_rate=16_000)
    job = store.claim_next("gpu-0")
    assert job is not None
    return job


def test_an_export_interrupted_as_its_peaks_write_returns_leaves_no_peaks_file(
    musicstore_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/recording.md: a failed placing leaves nothing at the final paths ("the audio (and any peaks file
    this call wrote) removed"); docs/queue.md: a Ctrl-C puts the worker's job back. A KeyboardInterrupt
    landing as the peaks file's write returned (renamed onto its final path beside the master), before the
    export noted it as placed, removed the master but left the peaks file, recorded by no row, under a note
    saying 'its file was removed'."""
    store = musicstore_store
    job = _claimed(store, "interrupted peaks")
    root = tmp_path / "audio"
    real = LocalFileStore.put

    def written_then_interrupted(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        real(self, key, *args, **kwargs)
        raise KeyboardInterrupt  # Ctrl-C as the put returned: the peaks file is at its final path

    monkeypatch.setattr(LocalFileStore, "put", written_then_interrupted)
    interrupted_export_leaves_nothing(store, job, root, monkeypatch)


def test_an_interrupted_peaks_write_leaves_an_older_peaks_file_of_other_bytes(
    musicstore_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cleanup of a peaks write interrupted before its rename removes the file at the peaks path only
    when it holds this export's bytes: one the write did not replace stays as it was."""
    store = musicstore_store
    job = _claimed(store, "interrupted before the rename")
    root = tmp_path / "audio"

    def interrupted(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        (root / key).write_text("older")  # what was there, which the write never replaced
        raise KeyboardInterrupt

    monkeypatch.setattr(LocalFileStore, "put", interrupted)
    audio = np.zeros((job.channels, 16_000), dtype=np.float32)
    with pytest.raises(KeyboardInterrupt):
        recording.export_generation(store, job, audio, root=root)
    monkeypatch.undo()
    (left,) = [path for path in root.rglob("*") if path.is_file()]
    assert left.name.endswith(".json") and left.read_text() == "older"


@pytest.mark.parametrize("which", [0, 1], ids=["master", "peaks"])
def test_an_upload_interrupted_as_its_put_returns_leaves_no_object(
    musicstore_store: Any, musicstore_s3_files: Any, monkeypatch: pytest.MonkeyPatch, which: int
) -> None:
    """docs/recording.md: nothing is left at the keys of an export whose placing failed; docs/queue.md: a
    Ctrl-C puts the worker's job back. A KeyboardInterrupt landing as a put returned (its reply received),
    before the export noted the object as placed, left that object at its key, recorded by no row, under a
    note saying 'its file was removed' (c144739 covered a Ctrl-C while the reply was awaited only)."""
    store = musicstore_store
    job = _claimed(store, f"interrupted upload {which}")
    real = Uploads.put
    calls: list[str] = []

    def put_then_interrupted(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        info = real(self, key, *args, **kwargs)
        calls.append(key)
        if len(calls) == which + 1:
            raise KeyboardInterrupt  # Ctrl-C as the put returned: the object is at its key
        return info

    monkeypatch.setattr(Uploads, "put", put_then_interrupted)
    audio = np.zeros((job.channels, 16_000), dtype=np.float32)
    with pytest.raises(KeyboardInterrupt) as raised:
        recording.export_generation(store, job, audio, root=musicstore_s3_files)
    monkeypatch.undo()
    assert len(calls) == which + 1
    assert any("was removed from" in note for note in raised.value.__notes__), raised.value.__notes__
    assert list(musicstore_s3_files.list()) == []
    assert store.get_generation(job.id).is_processing


def test_the_cleanup_of_a_put_of_unknown_outcome_holds_the_row_lock_one_short_attempt(
    musicstore_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/recording.md: a put that failed without saying whether it wrote the object is followed, the row
    still locked, by a HEAD of the key (and the removal of an object marked with this generation's id). The
    HEAD went through the store's client: 4 attempts, each waiting READ_TIMEOUT_SECONDS (60 s) on an
    endpoint that takes connections and never answers, about 4 minutes during which the row's lock (on
    SQLite: the database's write lock, every other writer waiting) was held after the put had given up.
    The cleanup now makes one attempt per request, with short timeouts (s3.BRIEF_*_SECONDS)."""
    import time

    from musicstore.filestore.base import StoreUnavailable
    from tests.silent_s3 import silent_s3_files

    def reply_lost(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable(f"putting {key}: the S3 endpoint did not answer")  # the put gave up

    with silent_s3_files(monkeypatch) as (files, accepted):
        monkeypatch.setattr(Uploads, "put", reply_lost)
        store = musicstore_store
        job = _claimed(store, "endpoint down")
        audio = np.zeros((job.channels, 16_000), dtype=np.float32)
        started = time.monotonic()
        try:
            with pytest.raises(StoreUnavailable) as raised:
                recording.export_generation(store, job, audio, root=files, peaks=False)
        finally:
            elapsed = time.monotonic() - started
    assert any("is unknown" in note for note in raised.value.__notes__), raised.value.__notes__
    assert len(accepted) == 1, accepted  # one HEAD attempt, not 4
    assert elapsed < 15, elapsed  # one 3 s wait (the 4 took 12 s and more, with their backoff)


def test_a_rendition_put_whose_marker_check_fails_leaves_another_hosts_object(
    musicstore_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """render_generation's docstring: "an object not marked with this generation holds the key, an orphan
    for reconcile" is left as it was (ObjectExists). When the check of the object that refused the
    conditional create failed itself (its HEAD: a flaky endpoint, EIO), the put raised that StorageError,
    and the cleanup, taking any put begun for one that may have written, deleted the other host's object.
    Now an object whose put's outcome is unknown is removed only when marked with this generation's id."""
    from musicstore import rendering
    from musicstore.errors import StorageError
    from musicstore.filestore import base
    from musicstore.rendering import records

    store = musicstore_store
    job = _claimed(store, "rendered")
    root = tmp_path / "audio"
    audio = np.zeros((job.channels, 16_000), dtype=np.float32)
    recording.export_generation(store, job, audio, root=root, peaks=False)
    real = base.put_marked
    foreign: list[Path] = []

    def another_host_first(files: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        path = root / key
        path.write_bytes(b"another host's object")  # not marked with this generation's id
        foreign.append(path)
        return real(files, key, *args, **kwargs)

    def check_failed(*args: Any, **kwargs: Any) -> bool:
        raise StorageError("looking at the object failed: Input/output error (EIO)")

    monkeypatch.setattr(records, "put_marked", another_host_first)
    monkeypatch.setattr(base, "marked_by", check_failed)
    with pytest.raises(StorageError, match="Input/output error"):
        rendering.render_generation(store, job.id, root=root, formats=["wav"])
    monkeypatch.undo()
    (path,) = foreign
    assert path.read_bytes() == b"another host's object"
    assert store.list_renditions(job.id) == []


def test_a_rendition_not_recorded_is_removed_while_its_row_is_still_locked(
    musicstore_store: Any, musicstore_sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/renditions.md: every rendition's insert takes the generation's row lock first, so while it is
    held no other render can record or put that request; a second render waits for it. When the insert
    failed after the put, the object was removed after the rollback, the lock gone: a second render of the
    request, waiting on the lock, could find the object (marked with the generation's id), replace it and
    commit its row before that removal landed, which then took the recorded rendition's object. The object
    is now removed before the lock goes (one attempt per request; the removal after the rollback stays for a
    failed commit, or where that one failed)."""
    from musicstore import rendering
    from musicstore.errors import DatabaseError, MusicstoreError
    from musicstore.store import Store, Transaction

    store = musicstore_store
    job = _claimed(store, "rendered")
    root = tmp_path / "audio"
    audio = np.zeros((job.channels, 16_000), dtype=np.float32)
    recording.export_generation(store, job, audio, root=root, peaks=False)

    def insert_failed(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise DatabaseError("inserting the rendition failed: disk I/O error")

    real_delete = LocalFileStore.delete
    others_wrote: list[bool] = []

    def delete(self: Any, key: str) -> bool:
        with Store(musicstore_sqlite_url, busy_timeout=0.2) as other:  # another session's write
            try:
                other.create_generation("meanwhile", model_name="m", duration_seconds=1.0, sample_rate=16_000)
                others_wrote.append(True)
            except MusicstoreError:
                others_wrote.append(False)  # the write lock (the row's) still held
        return bool(real_delete(self, key))

    monkeypatch.setattr(Transaction, "create_rendition", insert_failed)
    monkeypatch.setattr(LocalFileStore, "delete", delete)
    with pytest.raises(DatabaseError) as raised:
        rendering.render_generation(store, job.id, root=root, formats=["wav"])
    monkeypatch.undo()
    assert others_wrote[:1] == [False], others_wrote
    assert any("its file was removed" in note for note in raised.value.__notes__), raised.value.__notes__
    assert [p.name for p in root.rglob("*") if p.is_file() and ".streaming." in p.name] == []
