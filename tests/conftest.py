"""Shared fixtures: migrated databases on both backends, and a clock the test moves by hand.

``db_url`` (and ``store``) run a test once on SQLite and once on a throwaway PostgreSQL server. PostgreSQL
tests skip with the reason when the server binaries or psycopg are missing, except on CI (``CI=true``),
where they fail instead: there they must run.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from musicstore import Generation, Store, masking
from musicstore.filestore import FileStore, open_filestore
from musicstore.testing import FakeClock

# musicstore's own suite is the first user of its pytest plugin (musicstore.testing.plugin): these fixtures
# are thin names over it. On CI the PostgreSQL half must run, never skip.
if os.environ.get("CI") == "true":
    os.environ.setdefault("MUSICSTORE_TEST_POSTGRES", "required")

__all__ = ["FakeClock", "new_job"]

# Hypothesis' defaults fail a test whose example ran past 200 ms (``deadline``: DeadlineExceeded, or Flaky
# when the example re-ran in time) or whose data took long to draw (``too_slow``): on a loaded CI machine (2
# cores, PostgreSQL, SeaweedFS and Chromium beside the suite) any example may stall that long. The tests
# assert behaviour, never speed (benchmarks/ times it), so no example is timed in a test that does not say
# otherwise (a module's explicit ``settings(...)`` starts from this profile).
settings.register_profile(
    "musicstore", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("musicstore")


@pytest.fixture(scope="module", autouse=True)
def _forget_the_modules_secrets() -> Iterator[None]:
    """The passwords a module registers (hostile ones, with pieces as short as 3 characters, e.g. "2540" or
    "0000") stay masked for the rest of the process by design; forget them after the module, so that later
    modules' messages are not masked by them (CI saw ids shown as "...af53-***3612383c6" and
    "01a23d86-***-7721-...")."""
    before = set(masking._secrets)
    yield
    with masking._lock:
        masking._secrets.intersection_update(before)


@pytest.fixture
def sqlite_url(musicstore_sqlite_url: str) -> str:
    return musicstore_sqlite_url


@pytest.fixture
def postgres_url(musicstore_postgres_url: str) -> str:
    return musicstore_postgres_url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database: the test runs once per backend."""
    return str(request.getfixturevalue(f"{request.param}_url"))


_scratch_names = itertools.count()


@pytest.fixture
def scratch_database(
    request: pytest.FixtureRequest, musicstore_postgres_server: Any
) -> Iterator[tuple[Any, str]]:
    """The test server and the name of a database the test creates (dropped after it, if it did), named
    after the test's module (``test_pg_s29``: ``pg_s29_<pid>_<n>``)."""
    server = musicstore_postgres_server
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    name = f"{module}_{os.getpid()}_{next(_scratch_names)}"
    try:
        yield server, name
    finally:
        server.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def objects(musicstore_s3_files: Any) -> Any:
    """The object store under a fresh prefix of the test S3 server (``musicstore_s3_url``)."""
    return musicstore_s3_files


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FileStore]:
    """A file store, once a folder under ``tmp_path/audio`` and once a fresh prefix of the test S3 server."""
    if request.param == "s3":
        url = request.getfixturevalue("musicstore_s3_url")
    else:
        (tmp_path / "audio").mkdir()
        url = (tmp_path / "audio").as_uri()
    opened = open_filestore(url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(params=["sqlite", "postgres"])
def target_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """An empty migrated store on each backend, beside the SQLite source (a copy's target)."""
    if request.param == "sqlite":
        url = sqlite_url.replace(".db", "-target.db")
        Store(url, migrate=True).close()
        return url
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def clock(musicstore_clock: FakeClock) -> FakeClock:
    return musicstore_clock


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Any:
    from musicstore import Store

    with Store(db_url, clock=clock) as opened:
        yield opened


def new_job(store: Any, prompt: str = "lofi hip hop at 90 BPM", **kwargs: Any) -> Generation:
    """Create a generation with sensible defaults."""
    fields: dict[str, Any] = {"model_name": "musicgen-small", "duration_seconds": 30.0}
    fields.update(kwargs)
    result: Generation = store.create_generation(prompt, **fields)
    return result


def until(condition: Callable[[], bool], seconds: float = 60.0, *, pause: float = 0.01) -> None:
    """Return once ``condition()`` holds, asking every ``pause`` seconds; fail the test after ``seconds``
    (60 s by default: a condition that holds is only waited for as long as it takes, however loaded)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds:g} s"
        time.sleep(pause)
