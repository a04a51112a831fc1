"""Migrations and CLI hunt (session 26): the schema's life (an up-to-date database migrated while another
process writes) and the command line."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest

from musicstore import Store, migrate
from musicstore.errors import MigrationError
from musicstore.urls import resolve


def test_migrate_of_an_up_to_date_sqlite_database_does_not_wait_for_another_writer(sqlite_url: str) -> None:
    """migrate() (and Store(url, migrate=True), a worker's start) on a database that has every migration
    returns [] at once, having only read (docs/migrations.md). Before, yoyo's probe of transactional DDL (a
    CREATE TABLE rolled back) waited for another process's write transaction, up to lock_timeout (60 s by
    default), and then read the lock as 'no transactional DDL'."""
    path = resolve(sqlite_url).path
    assert path is not None
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process's long write: a cleanup, a copy-files page
        started = time.monotonic()
        assert migrate(sqlite_url, lock_timeout=60) == []
        with Store(sqlite_url, migrate=True) as store:
            assert store.count_generations() == 0
        assert time.monotonic() - started < 30  # not lock_timeout (60 s)
    finally:
        writer.execute("ROLLBACK")
        writer.close()


_LATER = "0099.paused-status"
"""A migration of a later musicstore that allows a status this version does not know."""


def _a_later_status(url: str) -> str:
    """A generation whose status a later musicstore's schema allows ('paused'), recorded with its migration,
    as that version would leave the database for this one (a rolling upgrade). Returns its id."""
    with Store(url) as store:
        gid = store.create_generation("paused by a later version", model_name="m", duration_seconds=1).id
    path = resolve(url).path
    assert path is not None
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA ignore_check_constraints = ON")  # the later schema's CHECK allows it
        conn.execute("UPDATE generations SET status = 'paused' WHERE id = ?", (gid,))
        conn.execute(
            "INSERT INTO _yoyo_migration (migration_hash, migration_id, applied_at_utc) VALUES (?, ?, ?)",
            ("later", _LATER, "2026-12-06 00:00:00"),
        )
    return gid


@pytest.mark.filterwarnings("ignore::musicstore.errors.NewerSchemaWarning")
def test_a_status_a_later_musicstore_wrote_is_a_migration_error_not_a_key_error(sqlite_url: str) -> None:
    """Docs (migrations.md, cli.md): on a database a later musicstore migrated, what still works works, and a
    read that cannot be made is a MigrationError (the CLI: one line, exit code 1). Before, a row in a status
    this version does not know raised a bare KeyError from every read of it (get, list, cancel's answer,
    get_storage a ValueError) and the CLI printed its traceback."""
    from musicstore.models import Generation, Stats
    from musicstore.ops.storage import get_storage

    gid = _a_later_status(sqlite_url)
    with Store(sqlite_url) as store:
        with pytest.raises(MigrationError, match="'paused', which this musicstore does not know"):
            store.get_generation(gid)
        with pytest.raises(MigrationError, match="'paused'"):
            store.list_generations(limit=10)
        with pytest.raises(MigrationError, match="'paused'"):
            store.run(get_storage, gid)
        assert store.count_generations(status="pending") == 0  # what still works, works
    row = dict.fromkeys(Generation.__dataclass_fields__) | {"id": gid, "status": "paused"}
    row |= {"duration_seconds": 1.0, "created_at": 0, "metadata": "{}"}
    with pytest.raises(MigrationError, match="'paused'"):
        Generation.from_row(row)
    with pytest.raises(MigrationError, match="'paused'"):
        Stats.from_totals([("paused", 1, 0, 0, 0, 0, 0)])


@pytest.mark.parametrize("command", [["show", "{id}"], ["list"], ["list", "--json"], ["cancel", "{id}"]])
def test_the_cli_says_a_status_a_later_musicstore_wrote_in_one_line(
    sqlite_url: str, command: list[str]
) -> None:
    gid = _a_later_status(sqlite_url)
    result = subprocess.run(
        [sys.executable, "-m", "musicstore", *(a.format(id=gid) for a in command), "--database", sqlite_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("musicstore: error: ")]
    assert len(errors) == 1 and "'paused'" in errors[0], result.stderr
    assert all(line.startswith("musicstore: ") for line in result.stderr.splitlines())
