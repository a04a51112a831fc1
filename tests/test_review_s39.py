"""Session 39: a migration's session on a database or role with a short ``statement_timeout``."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from musicstore import MigrationError
from musicstore.backends.postgres_settings import session_refused
from musicstore.migrate import migrate


def test_a_cancelled_first_statement_is_named_for_the_statement_timeout() -> None:
    why = session_refused(psycopg.errors.QueryCanceled("canceling statement due to statement timeout"))
    assert "statement_timeout set for this role or database" in why
    assert session_refused(psycopg.OperationalError("connection refused")) == ""


def test_a_migration_under_a_short_statement_timeout_never_says_check_the_url(
    scratch_database: tuple[Any, str],
) -> None:
    """The migration's session lifts statement_timeout before its other settings; where the server cancels
    even that, the error names the setting (it said 'check the URL')."""
    server, name = scratch_database
    server.admin(f"CREATE DATABASE {name}", f"ALTER DATABASE {name} SET statement_timeout = '1ms'")
    for _ in range(3):
        try:
            migrate(server.url(name))
        except MigrationError as exc:
            assert "check the URL" not in str(exc)
            assert "statement timeout" in str(exc)


def test_a_migration_waits_lock_timeout_for_a_file_another_connection_holds(tmp_path: Path) -> None:
    """The file's check waited sqlite3's own 5 s whatever ``lock_timeout``, then said 'check the URL'."""
    path = tmp_path / "held.db"
    migrate(f"sqlite:///{path}")
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        why = "another connection held it locked past lock_timeout"
        with pytest.raises(MigrationError, match=why) as raised:
            migrate(f"sqlite:///{path}", lock_timeout=0.5)
        assert time.monotonic() - started < 4
        assert "check the URL" not in str(raised.value)
    finally:
        holder.close()
    assert migrate(f"sqlite:///{path}") == []
