"""Shared fixtures: a migrated SQLite file per test and a clock the test moves by hand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from musicstore import Store, migrate


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database file, migrated once per session and copied for each test."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def db_url(tmp_path: Path, migrated_template: Path) -> str:
    """The URL of a fresh, migrated SQLite database in this test's temp dir."""
    path = tmp_path / "store.db"
    path.write_bytes(migrated_template.read_bytes())
    return f"sqlite:///{path}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Iterator[Store]:
    with Store(db_url, clock=clock) as opened:
        yield opened


def new_job(store: Store, prompt: str = "lofi hip hop at 90 BPM", **kwargs: object):  # type: ignore[no-untyped-def]
    """Create a generation with sensible defaults."""
    fields: dict[str, object] = {"model_name": "musicgen-small", "duration_seconds": 30.0}
    fields.update(kwargs)
    return store.create_generation(prompt, **fields)  # type: ignore[arg-type]
