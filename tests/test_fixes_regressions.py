"""Regressions of defects found by the hunts and fixed afterwards (maintenance, progress, renditions, copies);
each test failed before its fix. Both database backends, and both file stores where the feature has both."""

from __future__ import annotations

from pathlib import Path

import pytest

from musicstore import InvalidInput, Store
from musicstore.filestore import FileStore
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.relocate import copy_files

ORPHAN = "2026/01/01/0190a1b2-0000-7000-8000-000000000001.wav"


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
