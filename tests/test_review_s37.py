"""Session 37: the S3 endpoint is the one boto3 would take, a file of the user's is never a temp file, and
libpq's ``PGCONNECT_TIMEOUT`` is kept.

The store read ``AWS_ENDPOINT_URL`` and passed it to boto3 as its argument, so ``AWS_ENDPOINT_URL_S3`` (the
service's own, which boto3 puts first) was overridden by it; with only ``AWS_ENDPOINT_URL_S3`` set, or an
``endpoint_url`` in the config file, boto3 sent every request there while the store took itself for AWS:
virtual-hosted addressing, redirects followed, ``(AWS)`` in its messages. Reconcile's temp-file patterns
were case-insensitive as a whole, so an hour-old ``.Take.DEADBEEF0000.WAV`` of the user's was a "stale
temp file" that repair removed. libpq takes ``PGCONNECT_TIMEOUT`` for a URL without ``connect_timeout``; the
store passed its own over it.
"""

from __future__ import annotations

import http.server
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from musicstore import InvalidInput, Status, Store
from musicstore.backends.postgres_settings import connect_settings
from musicstore.filestore import S3FileStore, StoreUnavailable, open_filestore
from musicstore.maintenance.reconcile import is_temp_name, reconcile
from musicstore.storage_names import s3_location, store_url
from musicstore.urls import resolve


def _round_trip(url: str) -> S3FileStore:
    files = open_filestore(url)
    assert isinstance(files, S3FileStore)
    try:
        files.put("2026/12/07/a.wav", b"RIFF one")
        assert b"".join(files.get("2026/12/07/a.wav")) == b"RIFF one"
    finally:
        files.close()
    return files


def test_the_s3_services_own_endpoint_variable_comes_before_the_global_one(
    musicstore_s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    assert _round_trip(musicstore_s3_url).endpoint_url == endpoint


def test_the_s3_services_own_endpoint_variable_alone_is_the_stores_endpoint(
    musicstore_s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    files = _round_trip(musicstore_s3_url)
    assert files.endpoint_url == endpoint and endpoint in repr(files)


def _config_file(monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    """``config`` as boto3's config file, no endpoint in the environment; boto3's default session (which read
    the file once) made again."""
    import boto3

    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


def test_the_config_files_endpoint_is_the_stores_endpoint_addressed_by_path(
    musicstore_s3_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    config = tmp_path / "config"
    config.write_text(f"[default]\nendpoint_url = {endpoint}\n")
    _config_file(monkeypatch, config)
    files = _round_trip(musicstore_s3_url)
    assert files.endpoint_url == endpoint
    reopened = open_filestore(musicstore_s3_url)
    try:
        bucket, prefix = s3_location(musicstore_s3_url)
        url = reopened.presigned_url("2026/12/07/a.wav", expires=60)
    finally:
        reopened.close()
    assert url.startswith(f"{endpoint}/{bucket}/{prefix}2026/12/07/a.wav?")  # path-style, as one given


def test_a_config_files_endpoint_is_checked_as_one_given(
    musicstore_s3_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text("[default]\nendpoint_url = http://127.0.0.1:8333?x=1\n")
    _config_file(monkeypatch, config)
    with pytest.raises(Exception, match="takes no query or fragment"):
        open_filestore(musicstore_s3_url)


@pytest.mark.parametrize("blank", ["", "  "])
def test_the_s3_services_endpoint_variable_set_but_empty_is_refused(
    monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", blank)
    with pytest.raises(InvalidInput, match=r"\$AWS_ENDPOINT_URL_S3 is set but empty"):
        S3FileStore("bucket")


def test_told_to_ignore_configured_endpoints_the_store_goes_to_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:10")
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "True")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "key")
    files = S3FileStore("bucket")  # no request is sent
    try:
        assert files.endpoint_url is None and "endpoint_url=None" in repr(files)
        assert S3FileStore("bucket", endpoint_url="http://127.0.0.1:11").endpoint_url == "http://127.0.0.1:11"
    finally:
        files.close()


GID = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


@pytest.mark.parametrize(
    "name",
    [
        f".{GID}.wav.k2j4_9az.tmp",
        f".{GID}.WAV.k2j4_9az.tmp",  # the target's extension, in its case
        f".{GID}.0123456789ab.flac",
        f".{GID}.0123456789ab.FLAC",
        f".{GID}.mp3-128.0123abcd.0123456789ab.MP3",
    ],
)
def test_the_writers_temp_names_are_temp_names_in_any_extension_case(name: str) -> None:
    assert is_temp_name(name)


@pytest.mark.parametrize(
    "name",
    [
        ".Take.DEADBEEF0000.WAV",
        f".{GID}.0123456789AB.flac",
        f".{GID}.wav.k2j4_9az.TMP",
        f".{GID}.mp3-128.0123ABCD.0123456789ab.mp3",
    ],
)
def test_names_no_writer_makes_are_not_temp_names(name: str) -> None:
    assert not is_temp_name(name)


def test_repair_quarantines_an_old_hidden_file_of_the_users_and_removes_a_stale_staged_file(
    store: Any, tmp_path: Path
) -> None:
    root = tmp_path / "audio"
    old = time.time() - 7200
    mine = root / "2026/12/07/.Take.DEADBEEF0000.WAV"
    staged = root / f"2026/12/07/.{uuid.uuid4()}.0123456789ab.WAV"
    for path in (mine, staged):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"RIFF")
        os.utime(path, (old, old))
    report = reconcile(store, root, repair=True)
    assert [t.path for t in report.stale_temp_files] == [staged.relative_to(root).as_posix()]
    assert not staged.exists()
    (orphan,) = report.orphans  # an audio file no row names: quarantined, its bytes kept
    assert orphan.path == mine.relative_to(root).as_posix() and orphan.moved_to is not None
    assert Path(orphan.moved_to).read_bytes() == b"RIFF"


@pytest.mark.parametrize("variable", ["9", " 9 "])
def test_pgconnect_timeout_in_the_environment_is_kept_as_a_urls_own(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """libpq takes ``PGCONNECT_TIMEOUT`` for a URL that sets no ``connect_timeout``; the store's own (its
    ``busy_timeout``'s) was passed over it to every connection."""
    monkeypatch.setenv("PGCONNECT_TIMEOUT", variable)
    assert "connect_timeout" not in connect_settings(postgres_url, 30.0)
    store = Store(postgres_url, busy_timeout=30.0)
    try:
        with store._connector.pool.connection() as conn:
            assert conn.info.get_parameters()["connect_timeout"].strip() == "9"
            assert "connect_timeout=30" not in conn.info.dsn
    finally:
        store.close()
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "  ")  # blank: libpq would refuse it; the store's own is kept
    assert connect_settings(postgres_url, 30.0)["connect_timeout"] == "30"


@pytest.mark.parametrize("control", ["\t", "\x7f", "\x85", "\x9f"])
def test_a_url_of_another_scheme_with_any_control_character_is_refused(control: str) -> None:
    """As an ``s3://`` or ``file://`` URL is (``_check_no_control``: C0, DEL and C1): the C1 ones passed."""
    with pytest.raises(InvalidInput, match="without credentials or control characters"):
        store_url(f"gs://bucket/mu{control}sic")
    assert store_url("gs://bucket/music") == "gs://bucket/music"


# --- an endpoint that is no S3 server: a web server's or a proxy's answer to every request ---------------


class _Answering(http.server.BaseHTTPRequestHandler):
    """Answers every request with the server's ``status`` and an HTML page (nginx's welcome page, a proxy's
    block page), as a web server or a proxy in front of the wrong port does."""

    PAGE = b"<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head><body>hi</body></html>\n"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(getattr(self.server, "status", 200))
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.PAGE)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(self.PAGE)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _answer  # noqa: N815 (http.server's names)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=[200, 405, 407])
def web_server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answering)
    server.status = request.param  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret-not-shown")
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_every_call_to_a_web_server_is_store_unavailable(web_server: str) -> None:
    """A 200 page was an object (``head`` its size, ``get`` its bytes), an empty listing, a deleted
    object; a HEAD's 405 or 407 a plain ``StorageError``: reconcile marked every row failed."""
    files = S3FileStore("bucket", "music/", endpoint_url=web_server, max_attempts=1)
    calls: list[Callable[[], object]] = [
        lambda: files.put("2026/12/07/a.wav", b"RIFF"),
        lambda: files.head("2026/12/07/a.wav"),
        lambda: b"".join(files.get("2026/12/07/a.wav")),
        lambda: files.delete("2026/12/07/a.wav"),
        lambda: list(files.list()),
        lambda: list(files.uploads()),
    ]
    try:
        for call in calls:
            with pytest.raises(StoreUnavailable, match=r"no S3 endpoint|is it the S3 endpoint") as caught:
                call()
            assert "s3cret" not in str(caught.value) and "PROXY" in str(caught.value)
    finally:
        files.close()


def test_reconcile_against_a_web_server_stops_and_fails_no_row(
    web_server: str, musicstore_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from musicstore.ops.storage import record_storage

    store = musicstore_store
    monkeypatch.setenv("AWS_ENDPOINT_URL", web_server)
    job = store.create_generation("lofi", model_name="m", duration_seconds=1)
    assert store.claim_next("w") is not None
    key = f"2026/12/07/{job.id}.wav"
    store.complete_generation(job.id, file_path=key, file_size_bytes=1000)
    store.run(record_storage, job.id, storage_url="s3://bucket/music/", key=key, checksum="ab" * 32)
    with pytest.raises(StoreUnavailable):
        reconcile(store, "s3://bucket/music/", repair=True, delete_orphans=True)
    found = store.get_generation(job.id)
    assert found is not None and found.status is Status.COMPLETED


# --- the profile's region; S3 Transfer Acceleration in the config file -----------------------------------


def _signed_region(url: str) -> str:
    credential = parse_qs(urlsplit(url).query)["X-Amz-Credential"][0]
    return credential.split("/")[2]


@pytest.mark.parametrize("endpoint", [None, "http://127.0.0.1:9"])
def test_the_profiles_region_signs_the_stores_requests(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str | None
) -> None:
    """Without ``region`` or ``AWS_REGION``, the store signed for us-east-1 where boto3 takes the profile's:
    every presigned URL of a bucket elsewhere was refused (AWS, or a provider with its own region)."""
    import boto3

    config = tmp_path / "config"
    config.write_text("[default]\nregion = eu-west-3\n")
    for name in (
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret-not-shown")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    with S3FileStore("bucket", endpoint_url=endpoint) as files:  # no request is sent
        assert _signed_region(files.presigned_url("a.wav", expires=60)) == "eu-west-3"
    monkeypatch.setenv("AWS_REGION", "ap-south-1")  # the variable before the profile, as boto3 orders them
    with S3FileStore("bucket", endpoint_url=endpoint) as files:
        assert _signed_region(files.presigned_url("a.wav", expires=60)) == "ap-south-1"
    config.write_text("[default]\n")
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    with S3FileStore("bucket", endpoint_url=endpoint) as files:  # none anywhere: us-east-1, as before
        assert _signed_region(files.presigned_url("a.wav", expires=60)) == "us-east-1"


def test_transfer_acceleration_in_the_config_file_leaves_a_custom_endpoint_working(
    musicstore_s3_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """botocore refuses S3 Accelerate with a custom endpoint: every request failed (its
    'EndpointResolutionError')."""
    import boto3

    config = tmp_path / "config"
    config.write_text("[default]\ns3 =\n  use_accelerate_endpoint = true\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    assert _round_trip(musicstore_s3_url).endpoint_url == os.environ["AWS_ENDPOINT_URL"]


# --- migrate: PGCONNECT_TIMEOUT, and a role's statement_timeout ------------------------------------------


def _migration_backend(url: str) -> Any:
    from musicstore.migrate import _backend

    return _backend(resolve(url).yoyo_url, "postgres")


def test_migrate_keeps_pgconnect_timeout(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its connections took ``CONNECT_SECONDS`` (10 s) over ``PGCONNECT_TIMEOUT``, as the store's did."""
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "45")
    backend = _migration_backend(postgres_url)
    try:
        assert backend.connection.info.get_parameters()["connect_timeout"] == "45"
    finally:
        backend.connection.close()


def test_a_migrations_session_has_no_statement_timeout_of_the_databases(postgres_url: str) -> None:
    """A database's (or role's) ``statement_timeout`` of 500 ms ended a migration waiting for its tables'
    locks, or building an index, at each try; the store's own sessions keep it (docs/operations.md)."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as admin:
        name = admin.execute("SELECT current_database()").fetchone()
        assert name is not None
        admin.execute(
            psycopg.sql.SQL("ALTER DATABASE {} SET statement_timeout = '500ms'").format(
                psycopg.sql.Identifier(name[0])
            )
        )
        admin.execute(
            psycopg.sql.SQL("ALTER DATABASE {} SET idle_in_transaction_session_timeout = '1s'").format(
                psycopg.sql.Identifier(name[0])
            )
        )
    backend = _migration_backend(postgres_url)
    try:
        shown = backend.connection.execute(
            "SELECT current_setting('statement_timeout'),"
            " current_setting('idle_in_transaction_session_timeout')"
        ).fetchone()
        assert shown == ("0", "0")
    finally:
        backend.connection.close()
    with psycopg.connect(postgres_url, autocommit=True) as other:  # the database's own, for other sessions
        assert other.execute("SHOW statement_timeout").fetchone() == ("500ms",)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_proxy_that_cannot_be_reached_is_named(
    musicstore_s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``HTTP_PROXY`` set for the host routes the endpoint at 127.0.0.1 through it too: the error blamed the
    endpoint, which was up. Its password is in no message."""
    monkeypatch.setenv("HTTP_PROXY", f"http://puser:proxy-pass-99@127.0.0.1:{_closed_port()}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    files = S3FileStore(*s3_location(musicstore_s3_url), max_attempts=1)
    try:
        with pytest.raises(StoreUnavailable, match=r"the proxy .* could not be reached: NO_PROXY") as caught:
            files.put("2026/12/07/a.wav", b"RIFF")
        assert "proxy-pass-99" not in str(caught.value)
    finally:
        files.close()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    _round_trip(musicstore_s3_url)


def test_a_tls_failure_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A CA bundle that does not exist (or a certificate the host does not trust) was 'cannot reach the S3
    endpoint' alone, the reason only in the exception's cause."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret-not-shown")
    endpoint = f"https://127.0.0.1:{listener.getsockname()[1]}"
    try:
        with (
            S3FileStore("bucket", endpoint_url=endpoint, max_attempts=1) as files,
            pytest.raises(StoreUnavailable, match=r"TLS failed .*AWS_CA_BUNDLE"),
        ):
            files.head("a.wav")
    finally:
        listener.close()
