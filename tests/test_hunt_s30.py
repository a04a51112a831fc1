"""Acceptance-style probes of issues 13 and 14 (session 30), through the public API: an ``AWS_ENDPOINT_URL``
that is no S3 endpoint (another port of the fixtures' real SeaweedFS: its master, its filer; an http-to-https
redirect; a front denying with an HTML page), which the docs promise to be one typed line
(``StoreUnavailable``), and what cleanup does through it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from musicstore import Store
from musicstore.audio import synthesize_music
from musicstore.filestore import FileStore, ObjectNotFound, StoreUnavailable, open_filestore
from musicstore.maintenance.retention import cleanup
from musicstore.recording import export_generation


def _port(server: Any, name: str) -> int:
    """The port of ``weed mini``'s ``name`` server (master, filer...); skips for a store of the user's."""
    for argument in getattr(server, "command", []):
        found = re.fullmatch(rf"-{name}\.port=(\d+)", argument)
        if found:
            return int(found.group(1))
    pytest.skip(f"not a SeaweedFS of the fixture's own: no {name} port to point at")


def _through(server: Any, url: str, name: str) -> FileStore:
    """The bucket of ``url`` with the right credentials and the endpoint of another port of its server."""
    options = dict(server.options, endpoint_url=f"http://127.0.0.1:{_port(server, name)}")
    return open_filestore(url, **options)


def test_an_endpoint_answering_a_bare_404_is_store_unavailable_not_a_missing_object(
    musicstore_s3_server: Any, musicstore_s3_url: str
) -> None:
    """SeaweedFS's master port answers 404 without an S3 error code to every request: a put, a read, a
    listing and a delete through it said "no such object" (``ObjectNotFound``; ``delete`` returned False),
    as if the bucket were there and empty. The store cannot be used: ``StoreUnavailable``, no secret."""
    files = _through(musicstore_s3_server, musicstore_s3_url, "master")
    try:
        attempts = _operations(files)
        del attempts["head"]  # below: a HEAD's 404 has no body to tell it from a missing object's
        for what, attempt in attempts.items():
            with pytest.raises(StoreUnavailable) as raised:
                attempt()
            message = str(raised.value)
            assert "S3 endpoint" in message and "\n" not in message, what
            assert musicstore_s3_server.secret_access_key not in message
        with pytest.raises(ObjectNotFound):  # a HEAD has no body: its 404 is all any server says
            files.head("2026/01/31/a.wav")
    finally:
        files.close()


def test_an_endpoint_answering_no_s3_body_is_a_typed_error(
    musicstore_s3_server: Any, musicstore_s3_url: str
) -> None:
    """SeaweedFS's filer port answers a PUT with 201 and a JSON body: the put raised botocore's
    ``ResponseParserError`` (no ``StorageError``: an export or a CLI command printed a traceback), its message
    quoting the server's body over two lines."""
    files = _through(musicstore_s3_server, musicstore_s3_url, "filer")
    try:
        with pytest.raises(StoreUnavailable) as raised:
            files.put("2026/01/31/a.wav", b"RIFF....WAVEfmt ")
        assert "S3 endpoint" in str(raised.value) and "\n" not in str(raised.value)
    finally:
        files.close()


def test_cleanup_through_another_port_deletes_no_row(
    musicstore_s3_server: Any, musicstore_s3_url: str, musicstore_s3_files: FileStore, tmp_path: Path
) -> None:
    """``cleanup --apply`` of the bucket with ``AWS_ENDPOINT_URL`` at the master port: every HEAD said 404,
    the one listing that asks whether the bucket is there said a plain "no such object", taken for "the
    bucket is there": the candidate rows were deleted, their objects reported "missing" and left in the
    bucket for good (freed 0 bytes). It now stops with ``StoreUnavailable`` before any row goes."""
    store = Store(f"sqlite:///{tmp_path}/jobs.db", migrate=True)
    try:
        store.create_generation("rain on a tin roof", model_name="m", duration_seconds=1)
        job = store.claim_next("gpu-0")
        assert job is not None
        recorded = export_generation(
            store, job, synthesize_music(1.0, job.sample_rate, seed=1), root=musicstore_s3_files
        )
        files = _through(musicstore_s3_server, musicstore_s3_url, "master")
        try:
            with pytest.raises(StoreUnavailable):
                cleanup(store, files, statuses=["completed"], dry_run=False)
        finally:
            files.close()
        kept = store.get_generation(job.id)
        assert kept is not None and kept.status == "completed"
        assert (
            recorded.key is not None and musicstore_s3_files.head(recorded.key).checksum == recorded.checksum
        )
    finally:
        store.close()


class _Front:
    """A local HTTP server that stands where the S3 endpoint should be and answers every request alike:
    ``status``, an HTML ``body`` and ``headers(request)`` (counted in ``requests``)."""

    def __init__(
        self, status: int, body: bytes, headers: Callable[[BaseHTTPRequestHandler], dict[str, str]]
    ) -> None:
        front = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                front.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(status)
                for name, value in {**headers(self), "Content-Type": "text/html"}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any  # noqa: N815 (http.server's names)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _https_redirect() -> _Front:
    """What stands at an ``http://`` endpoint of a server served over https only (nginx's ``return 301
    https://$host$request_uri``): every request answered ``301`` to the same path over https."""
    return _Front(
        301,
        b"<html><body>301 Moved Permanently</body></html>",
        lambda request: {"Location": f"https://{request.headers['Host']}{request.path}"},
    )


def _denying_front() -> _Front:
    """A web application firewall or an authenticating proxy in front of the server: every request refused
    ``403 Forbidden`` with an HTML page, as such fronts answer (no S3 error code in it)."""
    return _Front(
        403,
        b"<html><head><title>403 Forbidden</title></head><body>Request blocked</body></html>",
        lambda request: {},
    )


def _operations(files: FileStore) -> dict[str, Callable[[], object]]:
    """Each kind of request a file store makes, on a key of the test's bucket."""
    return {
        "put": lambda: files.put("2026/01/31/a.wav", b"RIFF....WAVEfmt "),
        "head": lambda: files.head("2026/01/31/a.wav"),
        "get": lambda: b"".join(files.get("2026/01/31/a.wav")),
        "list": lambda: list(files.list()),
        "delete": lambda: files.delete("2026/01/31/a.wav"),
        "uploads": lambda: list(files.uploads()),
    }


def test_an_endpoint_that_redirects_is_one_typed_error_at_once(tmp_path: Path) -> None:
    """botocore answers a redirect that names no bucket region by asking the region with a ``HeadBucket``,
    redirected in turn: about 80 requests deep, every operation of the store ended in Python's
    ``RecursionError`` (no ``StorageError``; the CLI printed a 3,000-line traceback). Now each is
    ``StoreUnavailable``, one line, after two requests (the one made, and the ``HeadBucket`` botocore asks
    the bucket's region with, which AWS answers with it)."""
    front = _https_redirect()
    files = open_filestore(
        "s3://musicstore-test/music",
        endpoint_url=front.url,
        access_key_id="AKIAEXAMPLE",
        secret_access_key="redirected-secret",
    )
    try:
        attempts = _operations(files)
        for what, attempt in attempts.items():
            front.requests = 0
            with pytest.raises(StoreUnavailable) as raised:
                attempt()
            assert "redirect" in str(raised.value) and "\n" not in str(raised.value), what
            assert "redirected-secret" not in str(raised.value)
            assert front.requests <= 2, what  # the request and botocore's HeadBucket for the region
        database = f"sqlite:///{tmp_path}/jobs.db"
        Store(database, migrate=True).close()
        environment = dict(
            os.environ,
            AWS_ENDPOINT_URL=front.url,
            AWS_ACCESS_KEY_ID="AKIAEXAMPLE",
            AWS_SECRET_ACCESS_KEY="x-y",
        )
        command = [
            sys.executable,
            "-m",
            "musicstore",
            "reconcile",
            "-d",
            database,
            "-o",
            "s3://musicstore-test/m",
        ]
        done = subprocess.run(
            command, check=False, env=environment, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 1 and done.stderr.startswith(
            "musicstore: error: listing s3://musicstore-test/m/"
        )
        assert done.stderr.count("\n") == 1 and "redirect" in done.stderr
    finally:
        files.close()
        front.close()


def test_a_denial_with_an_html_page_is_access_denied_for_every_operation() -> None:
    """A 403 whose body is an HTML page (botocore finds no error code in it) was access denied
    (``StoreUnavailable``) for a HEAD, whose body is empty, and a plain ``StorageError`` "failed: 403" for a
    put, a read or a listing: ``copy-files`` then skipped every row one by one where it stops at a store it
    cannot use."""
    front = _denying_front()
    files = open_filestore(
        "s3://musicstore-test/music",
        endpoint_url=front.url,
        access_key_id="AKIAEXAMPLE",
        secret_access_key="s",
    )
    try:
        attempts = _operations(files)
        for what, attempt in attempts.items():
            with pytest.raises(StoreUnavailable, match="access denied") as raised:
                attempt()
            assert "\n" not in str(raised.value), what
    finally:
        files.close()
        front.close()


@pytest.mark.parametrize(
    "endpoint",
    ["http://127.0.0.1:9?x=1", "http://127.0.0.1:9/?x=1", "http://127.0.0.1:9#part", "http://127.0.0.1:9/?"],
)
def test_an_endpoint_url_with_a_query_or_a_fragment_is_refused_when_the_store_is_made(endpoint: str) -> None:
    """docs/storage.md: a malformed endpoint fails when the store is made. One with a query or a fragment
    (which no S3 endpoint has: botocore puts the bucket and key after its path, the query of each request
    its own) was taken, and failed only at the first request, as a plain StorageError after its attempts."""
    from musicstore.errors import StorageError
    from musicstore.filestore import S3FileStore

    with pytest.raises(StorageError, match="cannot make an S3 client") as refused:
        S3FileStore("my-bucket", endpoint_url=endpoint, access_key_id="a", secret_access_key="s3cr3t-value")
    assert "query" in str(refused.value) and "s3cr3t-value" not in str(refused.value)
