"""Session 27's hunt in backup/restore, copy_files and retention: each test failed before its fix."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from musicstore import InvalidInput, Store
from musicstore.filestore import LocalFileStore
from musicstore.maintenance.backup import backup, integrity, restore
from musicstore.maintenance.relocate import copy_files
from musicstore.ops.storage import get_storage
from tests.test_copy_files import on_disk


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("cut", [1, 300, 4096, 50_000])
def test_a_truncated_backup_is_refused_and_the_database_left_as_it_was(tmp_path: Path, cut: int) -> None:
    """A backup cut short (a transfer stopped, a full disk) by a few hundred bytes passed integrity_check:
    SQLite reads the missing bytes as zeros, here the end of a row's metadata. The restore put it in place,
    said "integrity ok", and the store raised JSONDecodeError reading that row."""
    source = f"sqlite:///{tmp_path / 'source.db'}"
    with Store(source, migrate=True) as store:
        for n in range(300):
            pad = {"pad": "x" * 500}
            store.create_generation(f"take {n}", model_name="m", duration_seconds=3, metadata=pad)
    whole = tmp_path / "whole.db"
    backup(source, whole)
    cut_short = tmp_path / "cut.db"
    cut_short.write_bytes(whole.read_bytes()[:-cut])
    assert integrity(cut_short).startswith("truncated: ")
    assert integrity(whole) == "ok"

    target = tmp_path / "target.db"
    with Store(f"sqlite:///{target}", migrate=True) as store:
        kept = store.create_generation("kept", model_name="m", duration_seconds=3)
    before = _digest(target), sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(InvalidInput, match="truncated"):
        restore(cut_short, f"sqlite:///{target}", overwrite=True)
    assert (_digest(target), sorted(p.name for p in tmp_path.iterdir())) == before
    with Store(f"sqlite:///{target}") as store:
        assert [g.id for g in store.list_generations().items] == [kept.id]


@pytest.mark.parametrize("pages", [2**31, 2**62])
def test_backup_pages_past_a_c_int_is_invalid_input_before_any_work(tmp_path: Path, pages: int) -> None:
    """sqlite3's backup takes its pages as a C int: 2**31 raised a bare OverflowError."""
    url = f"sqlite:///{tmp_path / 'source.db'}"
    Store(url, migrate=True).close()
    with pytest.raises(InvalidInput, match="pages must be between -1 and 2147483647"):
        backup(url, tmp_path / "copy.db", pages=pages)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source.db"]
    assert backup(url, tmp_path / "copy.db", pages=2**31 - 1).integrity == "ok"


@pytest.mark.parametrize("spelling", ["symlink", "dotdot", "file_url"])
def test_copy_files_to_the_rows_own_folder_spelled_otherwise_copies_and_repoints_nothing(
    store: Store, tmp_path: Path, spelling: str
) -> None:
    """``--to`` naming the rows' own folder by a symlink or a ``..`` counted every file "already there" and
    pointed the rows at that spelling: "copied the files of 3 generations". The docs' next step, deleting the
    old folder once the target's reconcile is consistent, then deleted the only copy. Every other maintenance
    entry takes a folder by device and inode; so does copy_files now."""
    folder = LocalFileStore(tmp_path / "audio")
    made = on_disk(store, folder, 2)
    older = on_disk(store, folder, 1, record=False)  # recorded before 0006: its folder is `source`
    (tmp_path / "link").symlink_to(tmp_path / "audio")
    to = {
        "symlink": str(tmp_path / "link"),
        "dotdot": str(tmp_path / "audio" / ".." / "audio"),
        "file_url": (tmp_path / "link").as_uri(),
    }[spelling]
    for dry_run in (True, False):
        report = copy_files(store, to, source=tmp_path / "audio", dry_run=dry_run)
        assert (report.generations_seen, report.rows_updated, report.objects_present) == (0, 0, 0)
    assert [store.run(get_storage, g.id).storage_url for g in made] == [folder.url, folder.url]
    assert store.run(get_storage, older[0].id).storage_url is None
    moved = copy_files(store, tmp_path / "elsewhere", source=tmp_path / "audio")  # another folder: copied
    assert moved.rows_updated == 3 and moved.objects_copied == 6
