"""Session 27's hunt in backup/restore, copy_files and retention: each test failed before its fix."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from musicstore import InvalidInput, Store
from musicstore.maintenance.backup import backup, integrity, restore


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
