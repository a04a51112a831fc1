"""PostgreSQL fixes (session 23): migrations on a database whose settings differ from the store's, the waiting
hub's LISTEN connection lost, the metrics' reads under a year-1 clock, and more found hunting."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from musicstore import Store, migrate
from musicstore.metrics import metrics_text, read_metrics
from musicstore.migrate import shipped_migrations
from musicstore.testing import FakeClock

_names = itertools.count()


@pytest.fixture
def scratch_database(musicstore_postgres_server: Any) -> Iterator[tuple[Any, str]]:
    """The test server and the name of a database the test creates (dropped after it, if it did)."""
    server = musicstore_postgres_server
    name = f"pg_fixes_s23_{os.getpid()}_{next(_names)}"
    try:
        yield server, name
    finally:
        server.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_migrate_creates_the_schema_in_a_sql_ascii_database(scratch_database: tuple[Any, str]) -> None:
    """yoyo's connection kept the database's client_encoding: in a database created with SQL_ASCII (``createdb
    -E SQL_ASCII -T template0``, a common choice of old clusters) psycopg sent text parameters as bytea and
    the first migration failed with "operator does not exist: information_schema.sql_identifier = bytea"
    (a MigrationError naming no cause). Migrations run with the store's session settings (UTF8)."""
    server, name = scratch_database
    ascii = "ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
    server.admin(f"CREATE DATABASE {name} {ascii}")
    url = server.url(name)
    assert migrate(url) == shipped_migrations()
    assert migrate(url) == []
    prompt = "caf\u00e9 \U0001f3b5 \u4e2d"
    with Store(url) as store:
        made = store.create_generation(prompt, model_name="m", duration_seconds=1, metadata={"\u4e2d": "x"})
        assert store.get_generation(made.id) == made


@pytest.mark.parametrize(
    "setting", ["client_encoding = 'SQL_ASCII'", "DateStyle = 'SQL, DMY'", "extra_float_digits = 0"]
)
def test_migrate_ignores_the_session_settings_of_the_database_and_its_role(
    scratch_database: tuple[Any, str], setting: str
) -> None:
    """A database's (or role's) settings reach yoyo's connection as they reach the store's; the migrations
    run under the store's settings whatever they are."""
    server, name = scratch_database
    server.admin(f"CREATE DATABASE {name}", f"ALTER DATABASE {name} SET {setting}")
    url = server.url(name)
    assert migrate(url) == shipped_migrations()
    with Store(url) as store:
        made = store.create_generation("caf\u00e9", model_name="m", duration_seconds=1)
        assert store.get_generation(made.id) == made


def test_metrics_under_a_clock_in_the_first_days_of_the_year_1(db_url: str) -> None:
    """The metrics' window reaching back before the year 1 counts from the calendar's start, as
    ``queue_position``'s does: a snapshot, not an OverflowError (no MusicstoreError) at each scrape."""
    clock = FakeClock(datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC))
    with Store(db_url, clock=clock) as store:
        job = store.create_generation("early", model_name="m", duration_seconds=1)
        assert store.claim_next("gpu-0", lease_seconds=1) is not None
        store.complete_generation(job.id, file_path="a.wav", file_size_bytes=1)
        store.create_generation("next", model_name="m", duration_seconds=1)
        snapshot = read_metrics(store, window=3600)
        assert snapshot.window.completions == 1 and snapshot.by_status["pending"] == 1
        assert sum(snapshot.window.generations.values()) == 2 and len(snapshot.recent) == 2
        assert b"musicstore_generations" in metrics_text(store, window=366 * 86_400)
