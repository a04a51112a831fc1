"""Session 29's hunt in maintenance: each test failed before its fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from musicstore import Store
from musicstore.filestore import FileStore, LocalFileStore
from musicstore.maintenance import relocate as relocating
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
