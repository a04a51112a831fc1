"""Black-box findings on the operations tools (backup, restore, cleanup) and the testing kit."""

from __future__ import annotations

from pathlib import Path

import pytest

from musicstore import InvalidInput, Store
from musicstore.maintenance.backup import backup, integrity, restore


def _store_with_rows(url: str, count: int) -> None:
    with Store(url) as store:
        for n in range(count):
            store.create_generation(f"take {n}", model_name="musicgen-small", duration_seconds=5)


@pytest.mark.parametrize("name", ["take #1.db", "what?.db", "100%.db", "a%20b.db"])
def test_backup_and_restore_take_file_names_with_uri_characters(
    sqlite_url: str, tmp_path: Path, name: str
) -> None:
    """'#', '?' and '%' are plain characters in a file name: the checks read that very file.

    Before, the read-only URI was built by pasting the path: '#' or '?' cut the name short, so
    ``integrity`` created and checked an empty file beside it ('ok'), and ``restore`` copied that empty file
    over the database; '%' made the backup fail.
    """
    _store_with_rows(sqlite_url, 3)
    folder = tmp_path / "backups"
    report = backup(sqlite_url, folder / name)
    assert report.integrity == "ok" and integrity(folder / name) == "ok"
    assert sorted(p.name for p in folder.iterdir()) == [name]  # no stray file made by a cut-short name

    restored = f"sqlite:///{tmp_path / 'restored.db'}"
    restore(folder / name, restored)
    with Store(restored) as store:
        assert store.count_generations() == 3
    assert sorted(p.name for p in folder.iterdir()) == [name]


def test_integrity_of_a_missing_or_damaged_file_is_a_finding_not_an_exception(tmp_path: Path) -> None:
    assert integrity(tmp_path / "missing.db") != "ok"
    assert not (tmp_path / "missing.db").exists()  # read-only: nothing created
    (tmp_path / "junk.db").write_bytes(b"x" * 5000)
    assert integrity(tmp_path / "junk.db").startswith("not a SQLite database")
    assert integrity(tmp_path) != "ok"


@pytest.mark.parametrize("content", [b"", None])
def test_restore_refuses_a_file_that_holds_no_musicstore_database(
    sqlite_url: str, tmp_path: Path, content: bytes | None
) -> None:
    """An empty file (or an empty SQLite database) passes integrity_check; restoring it replaced the
    store with a database that holds no schema, which no Store could open."""
    _store_with_rows(sqlite_url, 2)
    other = tmp_path / "other.db"
    if content is None:
        import sqlite3

        sqlite3.connect(other).execute("CREATE TABLE notes (x)").connection.close()
    else:
        other.write_bytes(content)
    with pytest.raises(InvalidInput, match="no musicstore"):
        restore(other, sqlite_url, overwrite=True)
    with Store(sqlite_url) as store:
        assert store.count_generations() == 2
