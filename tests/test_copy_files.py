"""copy_files: the files of existing rows (masters, renditions, peaks files) from a folder to S3 (a real
SeaweedFS) and back, on both databases: verified before any row changes, idempotent, resumable after an
interruption."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from musicstore import Generation, Store
from musicstore.delivery import Delivery
from musicstore.filestore import FileStore, LocalFileStore
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.relocate import copy_files
from musicstore.ops.storage import get_storage, record_storage
from tests.conftest import new_job
from tests.test_maintenance_s3 import RENDITION, keys


def on_disk(store: Store, folder: LocalFileStore, n: int, *, record: bool = True) -> list[Generation]:
    """``n`` completed generations with a file and an mp3 rendition under ``folder``."""
    made = []
    for i in range(n):
        job = new_job(store)
        claimed = store.claim_next("worker-1")
        assert claimed is not None
        key = f"{job.created_at:%Y/%m/%d}/{job.id}.wav"
        data = b"RIFF" + bytes([i]) * (100 + i)
        info = folder.put(key, data)
        done = store.complete_generation(job.id, file_path=key, file_size_bytes=len(data))
        assert info.checksum is not None
        if record:
            store.run(record_storage, job.id, storage_url=folder.url, key=key, checksum=info.checksum)
        mp3 = b"ID3" + bytes([i]) * 40
        mp3_key = f"{job.created_at:%Y/%m/%d}/{job.id}.streaming.0123abcd.mp3"
        folder.put(mp3_key, mp3)
        store.create_rendition(
            job.id, storage_key=mp3_key, file_size_bytes=len(mp3), checksum=hashlib.sha256(mp3).hexdigest(),
            **RENDITION,
        )  # fmt: skip
        made.append(done)
    return made


def where(store: Store, gid: str) -> str | None:
    return store.run(get_storage, gid).storage_url


def test_a_folder_to_s3_and_back(store: Store, objects: FileStore, tmp_path: Path) -> None:
    folder = LocalFileStore(tmp_path / "audio")
    made = on_disk(store, folder, 3)
    dry = copy_files(store, objects, dry_run=True)
    assert (dry.rows_updated, dry.objects_copied, keys(objects)) == (3, 6, set())  # what would be copied
    assert {where(store, g.id) for g in made} == {folder.url}
    report = copy_files(store, objects)
    assert (report.rows_updated, report.objects_copied, report.renditions_copied) == (3, 6, 3)
    assert report.skipped_count == 0 and keys(objects) == {o.key for o in folder.list()}
    assert {where(store, g.id) for g in made} == {objects.url}
    with Delivery(store) as delivery:  # read from the bucket, verified against the rows' checksums
        assert delivery.read_audio(made[0].id).startswith(b"RIFF")
    assert reconcile(store, objects, verify_checksums=True).consistent
    again = copy_files(store, objects)  # nothing left to copy
    assert (again.generations_seen, again.rows_updated) == (0, 0)
    back = LocalFileStore(tmp_path / "back")
    home = copy_files(store, back, only_from=objects.url)
    assert (home.rows_updated, home.objects_copied) == (3, 6)
    assert {where(store, g.id) for g in made} == {back.url}
    assert reconcile(store, back.root).consistent


def test_an_interrupted_copy_resumes(
    store: Store, objects: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = LocalFileStore(tmp_path / "audio")
    made = on_disk(store, folder, 4)
    real_put = type(objects).put
    calls = {"n": 0}

    def put(self: Any, key: str, data: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # Ctrl-C as the third generation's master goes out
        return real_put(self, key, data, **kwargs)

    monkeypatch.setattr(type(objects), "put", put)
    with pytest.raises(KeyboardInterrupt):
        copy_files(store, objects, batch=2)
    moved = [where(store, g.id) == objects.url for g in made]
    assert moved == [True, True, False, False]  # the first page committed; the second changed nothing
    monkeypatch.setattr(type(objects), "put", real_put)
    report = copy_files(store, objects, batch=2)
    assert report.rows_updated == 2 and report.skipped_count == 0
    assert {where(store, g.id) for g in made} == {objects.url}
    assert reconcile(store, objects, verify_checksums=True).consistent


def test_copies_made_by_a_run_whose_rows_did_not_change_are_kept(
    store: Store, objects: FileStore, tmp_path: Path
) -> None:
    folder = LocalFileStore(tmp_path / "audio")
    made = on_disk(store, folder, 1)
    key = f"{made[0].created_at:%Y/%m/%d}/{made[0].id}.wav"
    objects.put(key, b"".join(folder.get(key)))  # an earlier run copied it, then stopped
    report = copy_files(store, objects)
    assert (report.objects_present, report.objects_copied, report.rows_updated) == (1, 1, 1)


def test_other_bytes_at_the_key_and_a_damaged_source_are_never_copied(
    store: Store, objects: FileStore, tmp_path: Path
) -> None:
    folder = LocalFileStore(tmp_path / "audio")
    clash, damaged, fine = on_disk(store, folder, 3)
    clash_key = f"{clash.created_at:%Y/%m/%d}/{clash.id}.wav"
    objects.put(clash_key, b"someone else's")
    damaged_key = f"{damaged.created_at:%Y/%m/%d}/{damaged.id}.wav"
    size = (folder.root / damaged_key).stat().st_size
    (folder.root / damaged_key).write_bytes(b"X" * size)  # same size, other bytes
    report = copy_files(store, objects)
    assert report.rows_updated == 1 and where(store, fine.id) == objects.url
    reasons = {s.id: s.reason for s in report.skipped}
    assert "exists with other bytes" in reasons[clash.id] and "ChecksumMismatch" in reasons[damaged.id]
    assert where(store, clash.id) == where(store, damaged.id) == folder.url
    assert b"".join(objects.get(clash_key)) == b"someone else's"
    assert damaged_key not in keys(objects)


def test_rows_recorded_before_0006_need_their_folder(
    store: Store, objects: FileStore, tmp_path: Path
) -> None:
    folder = LocalFileStore(tmp_path / "audio")
    made = on_disk(store, folder, 2, record=False)
    report = copy_files(store, objects)
    assert report.rows_updated == 0 and report.skipped_count == 2
    report = copy_files(store, objects, source=folder.root)
    assert report.rows_updated == 2
    stored = store.run(get_storage, made[0].id)
    assert stored.storage_url == objects.url and stored.checksum is not None  # the checksum is recorded


def test_the_command(
    store: Store, db_url: str, objects: FileStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from musicstore.cli import EXIT_OK, main

    folder = LocalFileStore(tmp_path / "audio")
    with_peaks(store, folder, on_disk(store, folder, 2))
    base = ["copy-files", "--database", db_url, "--to", objects.url]
    assert main([*base, "--dry-run"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "would copy the files of 2 generations" in out and "2 renditions, 4 peaks files)" in out
    assert main([*base, "--from", str(folder.root), "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert (report["rows_updated"], report["objects_copied"], report["peaks_copied"]) == (2, 8, 4)


def with_peaks(store: Store, folder: LocalFileStore, made: list[Generation]) -> set[str]:
    """Beside each master: its recorded peaks file (``metadata["peaks"]``, as the export records it) and one
    of another resolution found by name (``render_peaks`` of an earlier call); returns their keys."""
    put = set()
    for i, g in enumerate(made):
        stem = f"{g.created_at:%Y/%m/%d}/{g.id}"
        recorded = json.dumps({"version": 2, "bits": 8, "data": [i, -i]}).encode()
        info = folder.put(f"{stem}.peaks.256.8.json", recorded)
        assert info.checksum is not None
        record = {"key": info.key, "samples_per_pixel": 256, "bits": 8, "bytes": info.size,
                  "sha256": info.checksum}  # fmt: skip
        store.merge_metadata(g.id, {"peaks": record})
        other = folder.put(f"{stem}.peaks.64.16.split.json", json.dumps({"version": 2, "n": i}).encode())
        put |= {info.key, other.key}
    return put


def test_the_peaks_files_travel_with_their_master(store: Store, objects: FileStore, tmp_path: Path) -> None:
    folder = LocalFileStore(tmp_path / "audio")
    made = on_disk(store, folder, 3)
    peaks = with_peaks(store, folder, made)
    dry = copy_files(store, objects, dry_run=True)
    assert (dry.rows_updated, dry.peaks_copied, keys(objects)) == (3, 6, set())
    report = copy_files(store, objects)
    assert (report.rows_updated, report.objects_copied, report.peaks_copied) == (3, 12, 6), report
    assert keys(objects) == {o.key for o in folder.list()} and peaks <= keys(objects)
    recorded = made[0].id
    key = store.get_generation(recorded).metadata["peaks"]["key"]  # type: ignore[union-attr]
    assert b"".join(objects.get(key)) == b"".join(folder.get(key))
    there = reconcile(store, objects, verify_checksums=True)
    assert there.consistent and (there.peaks_files, there.orphan_count) == (6, 0)
    back = LocalFileStore(tmp_path / "back")
    home = copy_files(store, back, only_from=objects.url)
    assert (home.rows_updated, home.objects_copied, home.peaks_copied) == (3, 12, 6)
    assert keys(back) == keys(objects)
    here = reconcile(store, back.root)
    assert here.consistent and (here.peaks_files, here.orphan_count) == (6, 0)


def test_peaks_copied_by_an_interrupted_run_are_kept(
    store: Store, objects: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = LocalFileStore(tmp_path / "audio")
    made = on_disk(store, folder, 1)
    with_peaks(store, folder, made)
    real_put = type(objects).put
    calls = {"n": 0}

    def put(self: Any, key: str, data: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # Ctrl-C as the second peaks file goes out
        return real_put(self, key, data, **kwargs)

    monkeypatch.setattr(type(objects), "put", put)
    with pytest.raises(KeyboardInterrupt):
        copy_files(store, objects)
    assert where(store, made[0].id) == folder.url
    monkeypatch.setattr(type(objects), "put", real_put)
    report = copy_files(store, objects)
    assert (report.objects_present, report.objects_copied, report.rows_updated) == (3, 1, 1)
    assert report.skipped_count == 0 and keys(objects) == {o.key for o in folder.list()}


def test_a_damaged_or_missing_recorded_peaks_file_keeps_the_row(
    store: Store, objects: FileStore, tmp_path: Path
) -> None:
    folder = LocalFileStore(tmp_path / "audio")
    damaged, missing, fine = on_disk(store, folder, 3)
    with_peaks(store, folder, [damaged, missing, fine])
    damaged_key = f"{damaged.created_at:%Y/%m/%d}/{damaged.id}.peaks.256.8.json"
    size = (folder.root / damaged_key).stat().st_size
    (folder.root / damaged_key).write_bytes(b"X" * size)  # same size, other bytes
    folder.delete(f"{missing.created_at:%Y/%m/%d}/{missing.id}.peaks.256.8.json")
    report = copy_files(store, objects)
    assert report.rows_updated == 1 and where(store, fine.id) == objects.url
    reasons = {s.id: s.reason for s in report.skipped}
    assert "ChecksumMismatch" in reasons[damaged.id] and "peaks" in reasons[missing.id]
    assert where(store, damaged.id) == where(store, missing.id) == folder.url
    assert damaged_key not in keys(objects)
    dry = copy_files(store, objects, dry_run=True)  # both found, as the run finds them, nothing copied
    assert {s.id for s in dry.skipped} == {damaged.id, missing.id} and dry.rows_updated == 0
