"""reconcile of a local root judges only the rows whose files that root holds, on both databases.

A row records its store (``storage_url``, migration 0006): after ``copy_files`` to another folder, the rows
are that folder's, and a reconcile (with repair) of the old folder, emptied once the copy was checked, must
neither report them dangling nor mark them failed. Rows recorded before 0006 (``storage_url`` NULL) belong to
whichever root the operator names, and the same folder reached another way (a symlink, a relative path, a
``file://`` URL with a trailing slash) is the same root. Files that a row of any store records by key stay
referenced: a folder moved on disk, its rows still naming the old place, loses no file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore import Generation, Status, Store
from musicstore.filestore import LocalFileStore
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.relocate import copy_files
from musicstore.ops.storage import get_storage, record_storage
from tests.conftest import new_job
from tests.test_maintenance_s3 import rendition, status
from tests.test_reconcile import tree_snapshot


def on_disk(store: Store, folder: LocalFileStore, *, record: bool = True, peaks: bool = True) -> Generation:
    """A completed generation with its master, an mp3 rendition and (``peaks``) a recorded waveform peaks
    file under ``folder``; its store recorded (``record``) or not (a row from before migration 0006)."""
    job = new_job(store)
    claimed = store.claim_next("worker-1")
    assert claimed is not None and claimed.id == job.id
    day = f"{job.created_at:%Y/%m/%d}"
    key, data = f"{day}/{job.id}.wav", b"RIFF" + os.urandom(100)
    info = folder.put(key, data)
    metadata: dict[str, Any] = {}
    if peaks:
        body = json.dumps({"data": [0, 1, 0]}).encode()
        peaks_key = f"{day}/{job.id}.peaks.256.8.json"
        folder.put(peaks_key, body)
        metadata["peaks"] = {"key": peaks_key, "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    done = store.complete_generation(job.id, file_path=key, file_size_bytes=len(data), metadata=metadata)
    assert info.checksum is not None
    if record:
        store.run(record_storage, job.id, storage_url=folder.url, key=key, checksum=info.checksum)
    rendition(store, folder, done, b"ID3" + os.urandom(40))
    return done


def emptied(folder: LocalFileStore) -> None:
    """Every file under ``folder`` deleted (the sources, once a copy elsewhere was checked)."""
    for info in list(folder.list()):
        folder.delete(info.key)
    assert not any(folder.list())


def test_rows_copied_to_another_folder_are_left_to_it(store: Store, tmp_path: Path) -> None:
    """The docs' "Moving files between stores" with two folders: the emptied source, reconciled with repair,
    marks no moved row failed, deletes no rendition, drops no peaks record; its own rows are still judged."""
    here, there = LocalFileStore(tmp_path / "data/here"), LocalFileStore(tmp_path / "data/there")
    moved = [on_disk(store, here) for _ in range(3)]
    assert copy_files(store, there).rows_updated == 3
    emptied(here)
    stays = on_disk(store, here)  # recorded in here after the copy: here's own
    gone = on_disk(store, here)
    for info in list(here.list()):
        if gone.id in info.key and info.key.endswith((".wav", ".mp3", ".json")):
            here.delete(info.key)

    report = reconcile(store, here.root, repair=True, delete_orphans=True, verify_checksums=True)

    assert (report.rows_checked, report.rows_elsewhere) == (2, 3)
    assert (report.renditions_checked, report.renditions_elsewhere) == (2, 3)
    assert [(d.id, d.problem, d.action) for d in report.dangling] == [(gone.id, "missing", "marked_failed")]
    assert [d.action for d in report.dangling_renditions] == ["deleted_row"]
    assert [(p.id, p.problem) for p in report.dangling_peaks] == [(gone.id, "missing")]
    assert report.peaks_checked == 2 and report.orphan_count == 0 and report.outside_root_count == 0
    assert status(store, gone.id) is Status.FAILED and status(store, stays.id) is Status.COMPLETED
    for generation in moved:
        assert status(store, generation.id) is Status.COMPLETED
        assert store.run(get_storage, generation.id).storage_url == there.url
        assert len(store.list_renditions(generation.id)) == 1
        record = store.get_generation(generation.id)
        assert record is not None and "peaks" in record.metadata
    there_report = reconcile(store, there.root, verify_checksums=True)
    assert there_report.consistent and (there_report.rows_checked, there_report.rows_elsewhere) == (3, 1)


def test_a_row_without_a_store_is_judged_by_any_root(store: Store, tmp_path: Path) -> None:
    """A row from before migration 0006 (``storage_url`` NULL) belongs to the root the operator names."""
    legacy, other = LocalFileStore(tmp_path / "legacy"), LocalFileStore(tmp_path / "other")
    old = on_disk(store, legacy, record=False)
    recorded = on_disk(store, legacy)
    assert store.run(get_storage, old.id).storage_url is None
    assert reconcile(store, legacy.root, verify_checksums=True).consistent

    report = reconcile(store, other.root, repair=True)  # the files are not here: the NULL row is judged
    assert (report.rows_checked, report.rows_elsewhere, report.renditions_elsewhere) == (1, 1, 1)
    assert [(d.id, d.problem, d.action) for d in report.dangling] == [(old.id, "missing", "marked_failed")]
    assert [(p.id, p.action) for p in report.dangling_peaks] == [(old.id, "record_dropped")]
    assert report.dangling_rendition_count == 1
    assert status(store, old.id) is Status.FAILED and status(store, recorded.id) is Status.COMPLETED


def test_a_folder_moved_on_disk_loses_no_file(store: Store, tmp_path: Path) -> None:
    """Rows still name the old folder: in the new one their files are referenced (never orphans, nothing
    quarantined or deleted), the rows neither judged nor changed."""
    old = LocalFileStore(tmp_path / "old")
    made = [on_disk(store, old) for _ in range(2)]
    new = tmp_path / "new"
    os.rename(old.root, new)
    before = tree_snapshot(new)
    for orphans in ({"delete_orphans": True}, {"quarantine": tmp_path / "q"}):
        report = reconcile(store, new, repair=True, **orphans)
        assert report.consistent, report
        assert (report.files_scanned, report.referenced_files, report.peaks_files) == (6, 6, 2)
        assert (report.rows_checked, report.rows_elsewhere, report.renditions_elsewhere) == (0, 2, 2)
        assert tree_snapshot(new) == before and not (tmp_path / "q").exists()
    assert all(status(store, g.id) is Status.COMPLETED for g in made)


def test_the_same_folder_reached_another_way_is_the_same_root(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a symlink, a relative path, a ``file://`` URL with a trailing slash, an open LocalFileStore:
    the rows that name the folder are its own, judged (and a missing file found) every way."""
    real = LocalFileStore(tmp_path / "real")
    kept = on_disk(store, real)
    lost = on_disk(store, real, peaks=False)
    (real.root / str(lost.file_path)).unlink()
    link = tmp_path / "link"
    link.symlink_to(real.root, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    for root in (link, "real", "link/", f"{real.url}/", LocalFileStore("link"), link / ".." / "real"):
        report = reconcile(store, root)
        assert (report.rows_checked, report.rows_elsewhere, report.renditions_checked) == (2, 0, 2), root
        assert [(d.id, d.problem) for d in report.dangling] == [(lost.id, "missing")], root
    assert status(store, kept.id) is Status.COMPLETED


# --- the property ------------------------------------------------------------------------------------------

PLACES = ("none", "here", "here_link", "there", "gone", "bucket")
"""Where a row's file is recorded: no store (before 0006), this root (by its URL or a symlink's), another
folder, a folder since removed, an object store."""


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(st.tuples(st.sampled_from(PLACES), st.booleans()), min_size=1, max_size=8))
def test_only_own_rows_are_judged(rows: list[tuple[str, bool]], tmp_path: Path) -> None:
    """Whatever the mix, reconcile of ``here`` with repair finds dangling exactly the rows with no store or
    here's whose file is gone, marks only those failed, and leaves every other row (and every file) alone."""
    with tempfile.TemporaryDirectory(dir=tmp_path) as scratch:
        base = Path(scratch)
        here = LocalFileStore(base / "here")
        there, gone = LocalFileStore(base / "there"), LocalFileStore(base / "gone")
        (base / "here_link").symlink_to(here.root, target_is_directory=True)
        urls = {"here": here.url, "here_link": (base / "here_link").as_uri(), "there": there.url,
                "gone": gone.url, "bucket": "s3://musicstore-test/prefix/"}  # fmt: skip
        with Store(f"sqlite:///{base / 'jobs.db'}", migrate=True) as store:
            own, missing = set(), set()
            for place, lose in rows:
                made = on_disk(store, here, record=False, peaks=False)
                if place != "none":
                    checksum = store.run(get_storage, made.id).checksum or "0" * 64
                    store.run(record_storage, made.id, storage_url=urls[place], key=str(made.file_path),
                              checksum=checksum)  # fmt: skip
                if place in ("none", "here", "here_link"):
                    own.add(made.id)
                    if lose:
                        missing.add(made.id)
                if lose:
                    (here.root / str(made.file_path)).unlink()
            shutil.rmtree(gone.root)
            report = reconcile(store, here.root, repair=True, delete_orphans=True)
            local = sum(place != "bucket" for place, _ in rows)
            assert (report.rows_checked, report.rows_elsewhere) == (len(own), local - len(own))
            assert {d.id for d in report.dangling} == missing
            assert report.orphan_count == 0 and report.dangling_rendition_count == 0
            failed = {g.id for g in store.list_generations(status=Status.FAILED, limit=100).items}
            assert failed == missing


def test_the_command_says_what_it_left_to_other_folders(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from musicstore.cli import main

    here, there = LocalFileStore(tmp_path / "here"), LocalFileStore(tmp_path / "there")
    with Store(db_url) as store:
        on_disk(store, here)
        on_disk(store, there)
    assert main(["reconcile", "--database", db_url, "-o", str(here.root)]) == 0
    out = capsys.readouterr().out
    assert "checked 1 completed rows" in out
    assert "left 1 rows and 1 renditions to the folders they record (storage_url)" in out


def test_cleanup_of_a_folder_leaves_the_rows_copied_elsewhere(store: Store, tmp_path: Path) -> None:
    """``cleanup -o here`` after ``copy_files`` to ``there``: the moved rows are there's (skipped with the
    reason, their rows and files kept); here's own row is cleaned up."""
    from musicstore.maintenance.retention import cleanup

    here, there = LocalFileStore(tmp_path / "data/here"), LocalFileStore(tmp_path / "data/there")
    moved = [on_disk(store, here) for _ in range(3)]
    assert copy_files(store, there).rows_updated == 3
    own = on_disk(store, here)
    kept = sorted(info.key for info in there.list())

    report = cleanup(store, here.root, statuses=["completed"], dry_run=False)

    assert report.rows_deleted == 1 and store.get_generation(own.id) is None
    assert report.skipped_count == 3
    assert all(str(there.url) in item.reason for item in report.skipped)
    assert all(store.get_generation(g.id) is not None for g in moved)
    assert sorted(info.key for info in there.list()) == kept
