"""Black-box findings on the operations tools (backup, restore, cleanup) and the testing kit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from musicstore import Generation, InvalidInput, Status, StorageError, Store
from musicstore.maintenance.backup import backup, integrity, restore
from musicstore.maintenance.retention import CleanupReport, cleanup
from musicstore.maintenance.usage import FileBucket, disk_usage
from musicstore.testing import FakeClock
from musicstore.testing import strategies as ms


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


def test_a_dry_run_counts_a_shared_file_once_as_the_cleanup_does(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    """Two rows deleted together that record one file: the cleanup deletes it (and its peaks file) once, the
    second row's action is ``missing``; the dry run counted both files, and their bytes, twice."""
    root = tmp_path / "audio"
    root.mkdir()
    (root / "shared.wav").write_bytes(b"\0" * 100)
    (root / "shared.peaks.256.8.json").write_bytes(b"{}")  # a peaks file beside the shared master
    for n in range(3):
        clock.advance(1)
        store.create_generation(f"take {n}", model_name="musicgen-small", duration_seconds=5)
        job = store.claim_next("gpu-0")
        assert job is not None
        path = "shared.wav" if n < 2 else f"{job.id}.wav"
        (root / path).write_bytes(b"\0" * 100)
        store.complete_generation(job.id, file_path=path, file_size_bytes=100)

    def outcome(report: CleanupReport) -> tuple[int, int, int, int, list[str]]:
        actions = [item.file_action.replace("would_delete", "deleted") for item in report.deleted]
        return (
            report.rows_deleted, report.files_deleted, report.bytes_freed, report.peaks_files_deleted, actions
        )  # fmt: skip

    plan = cleanup(store, root, statuses=["completed"])
    done = cleanup(store, root, statuses=["completed"], dry_run=False)
    assert outcome(done) == (3, 3, 202, 1, ["deleted", "missing", "deleted"])
    assert outcome(plan) == outcome(done)
    assert not any(root.iterdir())


@pytest.mark.parametrize(
    "narrowing",
    [
        {"max_seconds": 1e9, "min_seconds": 1e8},  # longer than create_generation takes (a day)
        {"min_seconds": 0, "max_seconds": 0.001},  # 0.0 is no duration
        {"min_seconds": 10, "max_seconds": 5},
        {"sample_rates": [44_100.5]},
        {"channels": [True]},
        {"model_names": []},
        {"model_names": [""]},
    ],
)
def test_generation_requests_refuse_narrowing_that_draws_requests_a_store_refuses(
    narrowing: dict[str, Any],
) -> None:
    """``generation_requests`` promises valid requests: narrowing outside what ``create_generation`` takes
    drew refused requests (or failed in hypothesis at the first draw) instead of InvalidInput up front."""
    with pytest.raises(InvalidInput):
        ms.generation_requests(**narrowing)


@pytest.mark.parametrize(
    "narrowing", [{"statuses": ["bogus"]}, {"statuses": [None]}, {"max_attempts": 0}, {"max_attempts": 1.5}]
)
def test_generations_refuse_bad_narrowing_with_invalid_input(narrowing: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        ms.generations(**narrowing)


@settings(max_examples=20, deadline=None)
@given(row=ms.generations(statuses="completed"))
def test_generations_take_one_status_as_a_string(row: Generation) -> None:
    """As cleanup's ``statuses`` does; before, the string was split into letters ('c' is not a valid
    Status)."""
    assert row.status is Status.COMPLETED


@pytest.mark.parametrize(
    "narrowing",
    [
        {"batch": 0},  # drew a batch of 1
        {"batch": -1},
        {"sample_rate": 0},  # drew NaN time
        {"min_seconds": 3, "max_seconds": 1},
        {"max_seconds": 0},
        {"loudness_db": (-12.0, -40.0)},
        {"loudness_db": (-20.0, 6.0)},  # louder than full scale cannot be unclipped
    ],
)
def test_audio_refuses_bad_narrowing_with_invalid_input(narrowing: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        ms.audio(**narrowing)


def test_backup_and_restore_refuse_bad_arguments_with_invalid_input(sqlite_url: str, tmp_path: Path) -> None:
    """A non-callable progress raised TypeError from inside the copy, a destination of None TypeError."""
    copy = tmp_path / "copy.db"
    with pytest.raises(InvalidInput, match="progress"):
        backup(sqlite_url, copy, progress=5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="destination"):
        backup(sqlite_url, None)  # type: ignore[arg-type]
    assert not copy.exists()
    backup(sqlite_url, copy)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with pytest.raises(InvalidInput, match="progress"):
        restore(copy, other, progress=5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="backup_path"):
        restore(None, other)  # type: ignore[arg-type]
    assert not (tmp_path / "other.db").exists()


def test_backup_and_restore_into_a_folder_that_cannot_be_made_raise_storage_error(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A destination under a file: a bare FileExistsError / NotADirectoryError came out before."""
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(StorageError):
        backup(sqlite_url, tmp_path / "a-file" / "copy.db")
    backup(sqlite_url, tmp_path / "copy.db")
    with pytest.raises(StorageError):
        restore(tmp_path / "copy.db", f"sqlite:///{tmp_path / 'a-file' / 'restored.db'}")


def test_disk_usage_refuses_bad_batch_and_progress(store: Store, tmp_path: Path) -> None:
    """progress=5 raised TypeError at the end of the walk; batch=0 ZeroDivisionError with a progress, and
    was accepted (as was batch='x') without one."""
    for bad in ({"progress": 5}, {"batch": 0}, {"batch": "x"}, {"batch": 0, "progress": print}):
        with pytest.raises(InvalidInput):
            disk_usage(store, tmp_path, **bad)


def test_disk_usage_days_come_from_real_dates_only(store: Store, tmp_path: Path) -> None:
    """A folder path shaped like the layout but no date ('2026/13/45/') was reported as day '2026-13-45';
    such a file is dated by its modification time, as any file outside the layout."""
    import os

    root = tmp_path / "audio"
    for rel in ("2026/13/45/notes.txt", "2026/02/30/notes.txt", "2026/02/28/notes.txt"):
        (root / rel).parent.mkdir(parents=True)
        (root / rel).write_text("x")
        os.utime(root / rel, (86_400 * 3, 86_400 * 3))  # 1970-01-04
    assert disk_usage(store, root).by_day == {
        "1970-01-04": FileBucket(files=2, bytes=2),
        "2026-02-28": FileBucket(files=1, bytes=1),
    }


def test_backup_refuses_the_databases_journal_name(sqlite_url: str, tmp_path: Path) -> None:
    """A backup written as '<db>-journal' was reported done, and SQLite deleted it as a stale rollback
    journal the next time the database was opened: refused as '-wal' and '-shm' are."""
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    with pytest.raises(InvalidInput, match="database itself"):
        backup(sqlite_url, f"{database}-journal")
    assert not Path(f"{database}-journal").exists()


_CRASH_MID_TRANSACTION = """
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode = DELETE")
conn.execute("PRAGMA cache_size = 2")  # spill: the rollback journal and the database file both written
conn.execute("BEGIN IMMEDIATE")
conn.execute("DELETE FROM generations")
os._exit(0)  # no commit, no rollback: a hot journal stays beside the database
"""


def test_restore_never_lets_a_stale_rollback_journal_replay_onto_the_backup(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A process that crashed mid-transaction in rollback-journal mode leaves a hot '<db>-journal'. restore
    moved '-wal'/'-shm' aside but not it: the next open rolled that journal back onto the restored copy,
    which then held the newer rows (80, not the backup's 20) and failed integrity_check."""
    import subprocess
    import sys

    _store_with_rows(sqlite_url, 20)
    backup(sqlite_url, tmp_path / "copy.db")
    _store_with_rows(sqlite_url, 60)
    database = sqlite_url.removeprefix("sqlite:///")
    subprocess.run([sys.executable, "-c", _CRASH_MID_TRANSACTION, database], check=True)
    assert Path(f"{database}-journal").exists()

    restore(tmp_path / "copy.db", sqlite_url, overwrite=True)
    with Store(sqlite_url) as store:
        assert store.count_generations() == 20
    assert integrity(database) == "ok"
    assert not Path(f"{database}-journal").exists()


def test_maintenance_refuses_an_async_store_up_front(sqlite_url: str, tmp_path: Path) -> None:
    """An AsyncStore raised "'coroutine' object is not subscriptable" (cleanup), or walked the whole root
    before failing (disk_usage); a Store is required, said in one InvalidInput before any work."""
    import asyncio

    from musicstore import AsyncStore
    from musicstore.maintenance.usage import storage_stats

    calls: dict[str, Any] = {
        "storage_stats": storage_stats,
        "disk_usage": lambda store: disk_usage(store, tmp_path),
        "cleanup": lambda store: cleanup(store, tmp_path, statuses=["failed"]),
    }

    async def check() -> None:
        async_store = AsyncStore(sqlite_url)
        try:
            for call in calls.values():
                for wrong in (async_store, sqlite_url, None):
                    with pytest.raises(InvalidInput, match="Store"):
                        call(wrong)
        finally:
            await async_store.close()

    asyncio.run(check())


@pytest.mark.parametrize(
    ("admin_url", "expected"),
    [
        ("postgresql://admin@db:5432/postgres", "postgresql://admin@db:5432/musicstore_x"),
        (
            "postgresql://admin@db/postgres?sslmode=require",
            "postgresql://admin@db/musicstore_x?sslmode=require",
        ),
        (
            "postgresql:///postgres?host=/var/run/postgresql&user=admin",
            "postgresql:///musicstore_x?host=/var/run/postgresql&user=admin",
        ),
    ],
)
def test_external_postgres_server_urls_keep_the_admin_urls_parameters(admin_url: str, expected: str) -> None:
    """``$MUSICSTORE_TEST_POSTGRES_URL`` with a query: the fixtures' database URLs were cut at the last '/',
    which dropped ``?sslmode=...`` or, with a socket folder in ``?host=``, cut inside the query."""
    from musicstore.testing._pgserver import External

    assert External(admin_url).url("musicstore_x") == expected


def test_an_external_s3_store_keeps_the_users_session_token_and_profile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``$MUSICSTORE_TEST_S3_URL`` (a store you run) with temporary credentials or a profile: the
    ``musicstore_s3_url`` fixture deleted ``AWS_SESSION_TOKEN`` and ``AWS_PROFILE`` for every test, so
    temporary keys were sent without their token (refused) and a profile's keys were not found; the
    throwaway server still gets neither."""
    from musicstore.testing import plugin
    from musicstore.testing._seaweed import External

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token")
    monkeypatch.setenv("AWS_PROFILE", "team")
    server = External.from_environment("s3://bucket/tests")
    assert server.environ["AWS_SESSION_TOKEN"] == "token" and server.environ["AWS_PROFILE"] == "team"
    assert server.options["session_token"] == "token"
    assert "token" not in repr(server)

    class Client:
        def get_paginator(self, name: str) -> Any:
            return type("Pages", (), {"paginate": lambda self, **kw: []})()

        def list_multipart_uploads(self, **kw: Any) -> dict[str, Any]:
            return {}

        def close(self) -> None:
            pass

    monkeypatch.setattr(External, "client", lambda self: Client())
    fixture = plugin.musicstore_s3_url.__wrapped__  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as inner:
        steps = fixture(server, inner)
        assert next(steps).startswith("s3://bucket/tests/test-")
        assert os.environ["AWS_SESSION_TOKEN"] == "token" and os.environ["AWS_PROFILE"] == "team"
        with pytest.raises(StopIteration):
            next(steps)
