"""Hunt of session 24 in recording, prompts, retention, transfer and usage: what was found, pinned on both
database backends (and on a folder and a bucket where files are involved)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from musicstore import Generation, Store
from musicstore.filestore import FileStore, open_filestore
from musicstore.maintenance.relocate import copy_files
from musicstore.maintenance.retention import cleanup
from musicstore.ops.storage import get_storage, record_storage
from tests.conftest import FakeClock, new_job


def completed_at(store: Store, files: FileStore, clock: FakeClock, key: str, data: bytes) -> Generation:
    """A completed generation whose master is ``data`` at ``key`` in ``files``, recorded there."""
    clock.advance(1)
    job = new_job(store)
    claimed = store.claim_next("gpu-0")
    assert claimed is not None and claimed.id == job.id
    files.put(key, data)
    done: Generation = store.complete_generation(job.id, file_path=key, file_size_bytes=len(data))
    checksum = hashlib.sha256(data).hexdigest()
    store.run(record_storage, job.id, storage_url=files.url, key=key, checksum=checksum)
    return done


def _outcome(report: Any) -> Any:
    return (
        [(d.id, d.file_action.replace("would_delete", "deleted"), d.peaks_deleted) for d in report.deleted],
        report.files_deleted,
        report.peaks_files_deleted,
        report.bytes_freed,
    )


def test_a_dry_run_over_pages_deletes_the_peaks_a_kin_master_kept_as_the_real_run_does(
    store: Store, where: FileStore, clock: FakeClock
) -> None:
    """album/t.flac and album/t.wav share the peaks named after their stem. Deleted a page each (batch=1),
    the real run keeps the peaks with t.flac (t.wav stays recorded) and deletes them with t.wav (page 2:
    t.flac is gone); the dry run still saw t.flac's row on page 2 and said the peaks would stay, where
    the dry run is to say what the real run deletes."""
    flac = completed_at(store, where, clock, "album/t.flac", b"fLaC" + b"\1" * 20)
    wav = completed_at(store, where, clock, "album/t.wav", b"RIFF" + b"\2" * 30)
    where.put("album/t.peaks.256.8.json", b'{"version": 2}')

    dry = cleanup(store, where, statuses=["completed"], batch=1)
    real = cleanup(store, where, statuses=["completed"], batch=1, dry_run=False)
    expected = ([(flac.id, "deleted", 0), (wav.id, "deleted", 1)], 3, 1, 24 + 34 + 14)
    assert _outcome(real) == expected
    assert _outcome(dry) == expected  # it said ([..., (wav.id, "deleted", 0)], 2, 0, 58)
    assert sorted(o.key for o in where.list()) == []


def _copied(report: Any) -> Any:
    return (
        report.rows_updated,
        report.objects_copied,
        report.objects_present,
        report.bytes_copied,
        report.peaks_copied,
        report.skipped_count,
    )


def test_a_dry_copy_counts_a_file_two_rows_record_once_as_the_run_copies_it(
    store: Store, where: FileStore, clock: FakeClock, tmp_path: Path
) -> None:
    """Two generations record album/t.wav (a shared custom path), and the peaks beside it carry its stem:
    the run copies each file once and finds it there for the second row; the dry run counted both rows'
    copies (4 objects, 2 present where the run said 2 and 2)."""
    data = b"RIFF" + b"\3" * 40
    first = completed_at(store, where, clock, "album/t.wav", data)
    second = completed_at(store, where, clock, "album/t.wav", data)
    assert first.id != second.id
    where.put("album/t.peaks.256.8.json", b'{"version": 2}')
    (tmp_path / "moved").mkdir()
    target = open_filestore((tmp_path / "moved").as_uri())
    dry = copy_files(store, target, dry_run=True)
    real = copy_files(store, target)
    assert sorted(o.key for o in target.list()) == ["album/t.peaks.256.8.json", "album/t.wav"]
    assert _copied(real) == (2, 2, 2, 44 + 14, 2, 0)
    assert _copied(dry) == _copied(real)  # it said (2, 4, 0, 116, 2, 0)


def test_a_source_of_another_size_than_its_row_is_refused_before_anything_is_written(
    store: Store, tmp_path: Path
) -> None:
    """A row recorded before 0006 (no store, no checksum) whose file has since another size: the run put the
    copy, then found its size wrong and skipped the row, leaving the copy in the target (an orphan there,
    and a second run said the target's key 'exists with other bytes'); the dry run said the size and wrote
    nothing. Now the run refuses it as the dry run does, before the put."""
    old = tmp_path / "old"
    (old / "2026").mkdir(parents=True)
    job = new_job(store)
    assert store.claim_next("gpu-0") is not None
    (old / "2026" / f"{job.id}.wav").write_bytes(b"RIFF" + b"\4" * 20)  # 24 bytes; the row says 30
    store.complete_generation(job.id, file_path=f"2026/{job.id}.wav", file_size_bytes=30)
    (tmp_path / "new").mkdir()
    target = open_filestore((tmp_path / "new").as_uri())
    dry = copy_files(store, target, source=old, dry_run=True)
    reasons = []
    for _ in range(2):
        real = copy_files(store, target, source=old)
        assert _copied(real) == _copied(dry) == (0, 0, 0, 0, 0, 1)
        reasons.append(real.skipped[0].reason)
        assert list(target.list()) == []  # the copy was left here
    assert reasons[0] == reasons[1] == dry.skipped[0].reason
    assert "has 24 bytes, the row recorded 30" in reasons[0]


def test_copy_files_from_a_folder_takes_its_rows_in_any_spelling_of_it(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    """``only_from`` (``--from``) named by a symlink to the folder the rows record, or with ``..``, is that
    store, as reconcile and cleanup take a folder in any spelling (same device and inode): it copied
    nothing and said so with exit code 0 (the URLs compared as text)."""
    audio = tmp_path / "data" / "audio"
    audio.mkdir(parents=True)
    (tmp_path / "link").symlink_to(audio, target_is_directory=True)
    files = open_filestore(audio.as_uri())
    done = completed_at(store, files, clock, "2026/01/01/take.wav", b"RIFF" + b"\5" * 10)
    files.close()
    (tmp_path / "elsewhere").mkdir()
    for spelling in (
        tmp_path / "link",
        tmp_path / "data" / ".." / "data" / "audio",
        (tmp_path / "link").as_uri(),
    ):
        report = copy_files(store, tmp_path / "moved", only_from=str(spelling), dry_run=True)
        assert (report.generations_seen, report.rows_updated, report.objects_copied) == (1, 1, 1), spelling
    other = copy_files(store, tmp_path / "moved", only_from=str(tmp_path / "elsewhere"), dry_run=True)
    assert (other.generations_seen, other.rows_updated) == (0, 0)  # another folder is not this one
    moved = copy_files(store, tmp_path / "moved", only_from=str(tmp_path / "link"))
    assert moved.rows_updated == 1
    assert store.run(get_storage, done.id).storage_url == (tmp_path / "moved").as_uri()
