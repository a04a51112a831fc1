"""Session 29's hunt in maintenance: each test failed before its fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from musicstore import InvalidInput, Store
from musicstore.filestore import FileStore, LocalFileStore
from musicstore.maintenance import bucket_rows, row_checks
from musicstore.maintenance import relocate as relocating
from musicstore.maintenance.backup import backup, restore
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.relocate import copy_files
from tests.test_copy_files import on_disk, where
from tests.test_maintenance_s3 import keys


def test_copy_files_never_points_a_row_at_a_copy_a_reconcile_of_the_target_deleted_meanwhile(
    store: Store, objects: FileStore, tmp_path: Path, monkeypatch: Any
) -> None:
    """copy_files puts a page's copies, then points the rows at them: until then the copies are orphans in
    the bucket, and a ``reconcile --repair --orphans delete`` of the bucket run in that window deleted them.
    The rows were pointed at the bucket anyway: dangling rows, which the next repair marked failed, their
    only files left in the folder as orphans there."""
    folder = LocalFileStore(tmp_path / "audio")
    made = on_disk(store, folder, 2)
    run = store.run

    def meanwhile(op: Any, *args: Any) -> Any:
        if op is relocating.relocate:
            monkeypatch.setattr(store, "run", run)
            swept = reconcile(store, objects, repair=True, delete_orphans=True)
            assert swept.orphan_count == 4  # the two masters and their renditions, not recorded here yet
        return run(op, *args)

    monkeypatch.setattr(store, "run", meanwhile)
    report = copy_files(store, objects)
    monkeypatch.undo()
    assert (report.rows_updated, report.rows_changed) == (0, 2)
    assert {where(store, g.id) for g in made} == {folder.url}  # still the folder's, whose files are there
    assert reconcile(store, objects).consistent and reconcile(store, folder.root).consistent
    again = copy_files(store, objects)  # the next run copies them again and points the rows there
    assert again.rows_updated == 2 and {where(store, g.id) for g in made} == {objects.url}
    assert len(keys(objects)) == 4 and reconcile(store, objects).consistent


def _moved_meanwhile(
    store: Store, monkeypatch: Any, read: Any, old: Path | FileStore, new: Path | FileStore
) -> None:
    """The first time the operation ``read`` (a reconcile's page of rows) finds rows, ``copy_files`` moves
    the store's two rows to ``new`` and every file of ``old`` (a folder, or a bucket) is deleted, before
    that page is checked: the copy and the documented next step, meanwhile."""
    run = store.run

    def meanwhile(op: Any, *args: Any) -> Any:
        result = run(op, *args)
        if op is read and result:
            monkeypatch.setattr(store, "run", run)
            assert copy_files(store, new).rows_updated == 2
            if isinstance(old, Path):
                for path in old.rglob("*.*"):
                    path.unlink()
            else:
                for key in keys(old):
                    old.delete(key)
        return result

    monkeypatch.setattr(store, "run", meanwhile)


@pytest.mark.parametrize("read", ["completed_files_after", "renditions_after"])
def test_reconcile_never_fails_a_row_that_copy_files_moved_out_of_its_folder_meanwhile(
    store: Store, tmp_path: Path, monkeypatch: Any, read: str
) -> None:
    """A reconcile of the old folder that read a page of rows (or of renditions) before copy_files moved
    them, and met their files deleted after the move (the documented next step: delete the old folder once
    the copy is checked), marked the generations failed, or deleted the renditions' rows: rows whose files
    are whole in the new store, judged by a folder that no longer holds them. A failed row is what
    ``cleanup --status failed`` deletes, with its files in the new store. The repairs' conditional
    statements now ask that the row (a rendition's generation) is still in the store it was read in; such a
    row is left (action ``changed``)."""
    old, new = LocalFileStore(tmp_path / "audio"), tmp_path / "moved"
    made = on_disk(store, old, 2)
    _moved_meanwhile(store, monkeypatch, getattr(row_checks, read), tmp_path / "audio", new)
    report = reconcile(store, tmp_path / "audio", repair=True)
    assert [d.action for d in report.dangling + report.dangling_renditions] == ["changed", "changed"]
    for generation in made:
        row = store.get_generation(generation.id)
        assert row is not None and row.is_completed
        assert len(store.list_renditions(generation.id)) == 1
        assert where(store, generation.id) == LocalFileStore(new).url
    assert reconcile(store, new).consistent and reconcile(store, tmp_path / "audio").consistent


def test_a_bucket_reconcile_never_fails_a_row_that_copy_files_moved_out_of_it_meanwhile(
    store: Store, objects: FileStore, tmp_path: Path, monkeypatch: Any
) -> None:
    """As for a folder: a bucket's rows read before copy_files moved them to a folder, their objects deleted
    after the move (``reconcile --repair --orphans delete`` of the bucket, the documented next step), were
    marked failed, and their renditions' rows deleted."""
    made = on_disk(store, objects, 2)  # type: ignore[arg-type]
    _moved_meanwhile(store, monkeypatch, bucket_rows.stored_files_after, objects, tmp_path / "moved")
    report = reconcile(store, objects, repair=True, delete_orphans=True)
    assert {d.action for d in report.dangling + report.dangling_renditions} == {"changed"}
    for generation in made:
        row = store.get_generation(generation.id)
        assert row is not None and row.is_completed
        assert len(store.list_renditions(generation.id)) == 1
    assert reconcile(store, tmp_path / "moved").consistent and reconcile(store, objects).consistent


def test_a_backup_to_a_path_ending_with_a_slash_is_refused_not_written_as_a_file(tmp_path: Path) -> None:
    """``backup(url, "backups/")`` (``musicstore backup backups/``), the folder not made yet, wrote the backup
    as a file named ``backups``: ``Path`` drops the slash. A path ending with one names a folder: refused, as
    an existing folder is, before any work; so is such a ``restore`` backup path (it read the file
    ``b.db`` for ``b.db/``)."""
    url = f"sqlite:///{tmp_path / 'source.db'}"
    Store(url, migrate=True).close()
    with pytest.raises(InvalidInput, match="ends with '/': that names a folder"):
        backup(url, f"{tmp_path / 'backups'}/")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source.db"]
    backup(url, tmp_path / "b.db")
    with pytest.raises(InvalidInput, match="ends with '/'"):
        restore(f"{tmp_path / 'b.db'}/", f"sqlite:///{tmp_path / 'restored.db'}")
    assert not (tmp_path / "restored.db").exists()
    done = subprocess.run(
        [sys.executable, "-m", "musicstore", "backup", "--database", url, "backups/"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("musicstore: error: destination ends with '/'")
    assert not (tmp_path / "backups").exists()


def test_reconcile_keeps_the_peaks_record_of_a_row_copy_files_moved_out_of_its_folder_meanwhile(
    store: Store, tmp_path: Path, monkeypatch: Any
) -> None:
    """The same race for the waveform peaks file an export records (``metadata["peaks"]``): its record was
    dropped, though the file is whole in the new store. It is kept now (action ``changed``)."""
    from tests.test_peaks_maintenance import _exported

    made = [_exported(store, LocalFileStore(tmp_path / "audio")).generation for _ in range(2)]
    assert all("peaks" in g.metadata for g in made)
    read = row_checks.completed_files_after
    _moved_meanwhile(store, monkeypatch, read, tmp_path / "audio", tmp_path / "moved")
    report = reconcile(store, tmp_path / "audio", repair=True)
    # each row's peaks file and its normalised file (listed with its own key)
    assert [p.action for p in report.dangling_peaks] == ["changed"] * 4
    for generation in made:
        row = store.get_generation(generation.id)
        assert row is not None and row.is_completed and row.metadata["peaks"] == generation.metadata["peaks"]
    assert reconcile(store, tmp_path / "moved").consistent
