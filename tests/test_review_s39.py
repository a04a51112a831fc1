"""Session 39: a migration's session on a database or role with a short ``statement_timeout``."""

from __future__ import annotations

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
