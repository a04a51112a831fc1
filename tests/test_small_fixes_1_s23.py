"""Regressions of small s23 fixes: the metrics window's tie-break, copy_files' dry run at a key conflict,
backup to a dangling symlink, and reconcile's count of verified peaks files on a folder."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from musicstore import Store
from musicstore.filestore import LocalFileStore
from musicstore.metrics import read_metrics
from musicstore.ops import creation
from musicstore.testing import FakeClock

GEN: dict[str, Any] = {
    "model_name": "musicgen-small",
    "duration_seconds": 10,
    "sample_rate": 32_000,
    "channels": 2,
}

# --- the metrics window: rows of one created_at are cut by id -----------------------------------------


def test_a_cut_window_keeps_the_rows_of_one_moment_with_the_highest_ids(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows created in one microsecond, cut by ``window_limit``: the rows counted are those with the
    highest ids (newest first, then by id, as the dashboard's lists), not whichever the index walk met
    first (there: the last inserted). The ids here fall as the rows are made."""
    falling = (f"01a20180-5e48-7dc6-afbf-{n:012x}" for n in itertools.count(999, -1))
    monkeypatch.setattr(creation, "new_id", lambda: next(falling))
    first = store.create_generation("first", **GEN)  # the highest id
    for i in range(3):
        store.create_generation(f"later {i}", **GEN)
    store.cancel(first.id)
    cut = read_metrics(store, window=3600, window_limit=1)
    assert cut.window.truncated
    assert cut.window.generations["cancelled"] == 1 and cut.window.generations["pending"] == 0


# --- copy_files' dry run at a key conflict in a folder target ------------------------------------------


@pytest.mark.parametrize("conflict", ["a file at its folder", "a folder at its key"])
def test_a_dry_copy_skips_a_key_conflict_as_the_run_does(store: Store, tmp_path: Path, conflict: str) -> None:
    """A row whose key cannot be stored in the target folder (a file at one of its folders, or a folder at
    the key): the dry run reports it skipped with the run's reason (``KeyConflict``), where it counted it
    as a copy; nothing is made."""
    from musicstore.maintenance.relocate import copy_files
    from tests.test_copy_files import on_disk

    folder = LocalFileStore(tmp_path / "audio")
    (made,) = on_disk(store, folder, 1)
    target = LocalFileStore(tmp_path / "target")
    if conflict == "a file at its folder":
        target.put(f"{made.created_at:%Y/%m/%d}", b"a file where a folder goes")
    else:
        target.put(f"{made.file_path}/below.wav", b"an object below the key")
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "target").rglob("*"))
    dry = copy_files(store, target, dry_run=True)
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "target").rglob("*")) == before
    real = copy_files(store, target)
    assert [s.id for s in real.skipped] == [made.id] and "KeyConflict" in real.skipped[0].reason
    assert (dry.objects_copied, dry.rows_updated, dry.skipped_count) == (0, 0, 1)
    assert [(s.id, s.reason) for s in dry.skipped] == [(s.id, s.reason) for s in real.skipped]


# --- backup to a dangling symlink ------------------------------------------------------------------------


def test_a_backup_to_a_dangling_symlink_is_refused_before_any_copy(sqlite_url: str, tmp_path: Path) -> None:
    """Without ``overwrite`` a destination that is a symlink to a missing file is refused up front, naming
    it (it copied the whole database, then said the file "appeared while the backup ran"); with
    ``overwrite`` the link is replaced by the backup, as a link to a file is, the path it named untouched."""
    from musicstore.errors import InvalidInput
    from musicstore.maintenance.backup import backup, integrity

    with Store(sqlite_url) as store:
        store.create_generation("x", **GEN)
    link = tmp_path / "backups" / "latest.db"
    link.parent.mkdir()
    link.symlink_to(tmp_path / "gone" / "old.db")
    steps: list[int] = []
    with pytest.raises(InvalidInput, match="symlink to a missing file") as refused:
        backup(sqlite_url, link, pages=1, progress=steps.append)
    assert "appeared" not in str(refused.value) and steps == []
    assert link.is_symlink() and sorted(p.name for p in link.parent.iterdir()) == ["latest.db"]
    backup(sqlite_url, link, overwrite=True)
    assert not link.is_symlink() and integrity(link) == "ok" and not (tmp_path / "gone").exists()
    named = tmp_path / "named.txt"
    named.write_bytes(b"not a backup")
    (live := tmp_path / "backups" / "live.db").symlink_to(named)
    backup(sqlite_url, live, overwrite=True)
    assert not live.is_symlink() and integrity(live) == "ok" and named.read_bytes() == b"not a backup"
