"""Migrations and CLI hunt (session 26): the schema's life (an up-to-date database migrated while another
process writes) and the command line."""

from __future__ import annotations

import sqlite3
import time

from musicstore import Store, migrate
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
        assert migrate(sqlite_url, lock_timeout=20) == []
        with Store(sqlite_url, migrate=True) as store:
            assert store.count_generations() == 0
        assert time.monotonic() - started < 5
    finally:
        writer.execute("ROLLBACK")
        writer.close()
