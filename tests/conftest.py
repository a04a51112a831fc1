"""Shared fixtures: migrated databases on both backends, and a clock the test moves by hand.

``db_url`` (and ``store``) run a test once on SQLite and once on a throwaway PostgreSQL server. PostgreSQL
tests skip with the reason when the server binaries or psycopg are missing, except on CI (``CI=true``),
where they fail instead: there they must run.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from musicstore import Generation, Store, migrate
from tests import pgserver

ON_CI = os.environ.get("CI") == "true"
TEMPLATE_DB = "musicstore_template"


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def postgres_missing() -> str | None:
    """Why PostgreSQL tests cannot run here, or None."""
    if pgserver.find_bindir() is None:
        return "PostgreSQL server binaries not found (apt-get install postgresql)"
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        return "psycopg/psycopg_pool not installed (pip install -e '.[postgres]')"
    return None


def admin(server: pgserver.Server, *statements: str) -> None:
    import psycopg

    with psycopg.connect(server.url(), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pgserver.Server]:
    reason = postgres_missing()
    if reason:
        if ON_CI:
            pytest.fail(f"PostgreSQL tests must run on CI: {reason}")
        pytest.skip(reason)
    server = pgserver.start()
    try:
        admin(server, f"CREATE DATABASE {TEMPLATE_DB}")
        migrate(server.url(TEMPLATE_DB))
        yield server
    finally:
        server.stop()


_databases = itertools.count()


@pytest.fixture
def postgres_url(pg_server: pgserver.Server) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database (a copy of the migrated template)."""
    name = f"test_{os.getpid()}_{next(_databases)}"
    admin(pg_server, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    yield pg_server.url(name)
    admin(pg_server, f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, migrated once per session and copied for each test."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, migrated_template: Path) -> str:
    """The URL of a fresh, migrated SQLite database in this test's temp dir."""
    path = tmp_path / "store.db"
    path.write_bytes(migrated_template.read_bytes())
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database: the test runs once per backend."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Iterator[Store]:
    with Store(db_url, clock=clock) as opened:
        yield opened


def new_job(store: Any, prompt: str = "lofi hip hop at 90 BPM", **kwargs: Any) -> Generation:
    """Create a generation with sensible defaults."""
    fields: dict[str, Any] = {"model_name": "musicgen-small", "duration_seconds": 30.0}
    fields.update(kwargs)
    result: Generation = store.create_generation(prompt, **fields)
    return result
