"""Session 31: the dashboard's audio (``/audio/{id}``) checked against its row before it is served, over a
live uvicorn server: a local master truncated or replaced, a master gone from its bucket or changed there."""

from __future__ import annotations

import http.client
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

import numpy as np
import soundfile as sf

from musicstore import Store
from musicstore.filestore import FileStore, LocalFileStore, open_filestore
from musicstore.ops.storage import record_storage
from musicstore.testing._browser import LiveServer
from musicstore.web import create_app

MISMATCH = "no audio: its file does not match its record"


def _wav(level: float) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.full((8_000, 1), level, dtype=np.float32), 8_000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _masters(store: Store, files: FileStore, count: int) -> list[str]:
    """``count`` completed generations, each with a master put in ``files`` and recorded (size, SHA-256)."""
    made = []
    for _ in range(count):
        store.create_generation("a drone", model_name="m", duration_seconds=1, sample_rate=8_000, channels=1)
        claimed = store.claim_next("gpu-0")
        assert claimed is not None
        info = files.put(f"{claimed.id}.wav", _wav(0.25))
        assert info.checksum is not None
        store.complete_generation(claimed.id, file_path=info.key, file_size_bytes=info.size)
        store.run(record_storage, claimed.id, storage_url=files.url, key=info.key, checksum=info.checksum)
        made.append(claimed.id)
    return made


@pytest.fixture
def serve() -> Iterator[Any]:
    """Serve an app with uvicorn on 127.0.0.1 (a generous start-up deadline: CI is loaded)."""
    started: list[LiveServer] = []

    def start(app: Any) -> LiveServer:
        started.append(LiveServer(app, timeout=60))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def _ask(
    server: LiveServer, path: str, method: str = "GET", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """One request, redirects not followed: the status, headers (lower-case names) and body."""
    where = urlsplit(server.url)
    assert where.hostname is not None and where.port is not None
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        connection.close()


def test_a_local_master_cut_short_or_replaced_is_refused_and_a_whole_one_still_served_in_ranges(
    sqlite_url: str, tmp_path: Path, serve: Any
) -> None:
    """A master in a folder whose size is no longer the one its row records (truncated by a full disk or a
    copy cut off) was streamed as the master, 200, its damaged bytes to the listener; one replaced by a put
    of other bytes of the same size too. Both are 500 "does not match its record" (no path in it), the page
    says so instead of a player; the intact master beside them is still served whole and in ranges."""
    root = tmp_path / "audio"
    files = LocalFileStore(root)
    with Store(sqlite_url) as store:
        whole, cut, replaced = _masters(store, files, 3)
        (root / f"{cut}.wav").write_bytes(_wav(0.25)[:-100])
        files.put(f"{replaced}.wav", _wav(0.5), overwrite=True)  # other bytes, the same size
        keeps_checksums = files.head(f"{replaced}.wav").checksum is not None  # user xattrs here
        server = serve(create_app(store, root=root))
        for method in ("GET", "HEAD"):
            status, _, body = _ask(server, f"/audio/{cut}", method)
            assert status == 500, (method, status)
            if method == "GET":
                assert MISMATCH in body.decode() and str(root) not in body.decode()
        if keeps_checksums:
            status, _, body = _ask(server, f"/audio/{replaced}")
            assert (status, MISMATCH in body.decode()) == (500, True)
        page = _ask(server, f"/generations/{cut}")[2].decode()
        assert "<audio" not in page and "does not match its record" in page
        status, headers, body = _ask(server, f"/audio/{whole}")
        assert (status, body) == (200, _wav(0.25))
        status, headers, body = _ask(server, f"/audio/{whole}", Range="bytes=10-19")
        assert (status, body) == (206, _wav(0.25)[10:20])
        assert headers["content-range"] == f"bytes 10-19/{len(_wav(0.25))}"
    files.close()


def test_a_master_gone_from_its_bucket_is_404_from_the_dashboard_and_a_changed_one_refused(
    sqlite_url: str, musicstore_s3_url: str, serve: Any
) -> None:
    """A master missing from its bucket was redirected (307) to a presigned URL, and the listener got S3's
    404 (an XML error) from the bucket; one cut short or replaced there was redirected to its damaged bytes.
    The dashboard asks the bucket (one HEAD) first: 404 "its file is missing" itself, 500 "does not match
    its record" for a size (or a SHA-256 kept beside the object) other than its row's; an intact master is
    still a 307 whose URL serves it, ranges included."""
    bucket = open_filestore(musicstore_s3_url)
    with Store(sqlite_url) as store:
        whole, gone, cut, replaced = _masters(store, bucket, 4)
        bucket.delete(f"{gone}.wav")
        bucket.put(f"{cut}.wav", _wav(0.25)[:-100], overwrite=True)
        bucket.put(f"{replaced}.wav", _wav(0.5), overwrite=True)  # the same size, another SHA-256
        server = serve(create_app(store))
        for method in ("GET", "HEAD"):
            status, headers, body = _ask(server, f"/audio/{gone}", method)
            assert (status, "location" in headers) == (404, False), method
            if method == "GET":
                assert "its file is missing" in body.decode()
        for damaged in (cut, replaced):
            status, headers, body = _ask(server, f"/audio/{damaged}")
            assert (status, "location" in headers, MISMATCH in body.decode()) == (500, False, True)
        page = _ask(server, f"/generations/{gone}")[2].decode()
        assert "<audio" not in page and "its file is missing" in page
        status, headers, _ = _ask(server, f"/audio/{whole}")
        assert status == 307
        signed = urlsplit(headers["location"])
        assert signed.hostname is not None and signed.port is not None
        s3 = http.client.HTTPConnection(signed.hostname, signed.port, timeout=60)
        try:
            s3.request("GET", f"{signed.path}?{signed.query}", headers={"Range": "bytes=10-19"})
            answer = s3.getresponse()
            assert (answer.status, answer.read()) == (206, _wav(0.25)[10:20])
        finally:
            s3.close()
    bucket.close()


def test_a_bucket_that_cannot_be_reached_is_502_not_a_redirect(
    sqlite_url: str, musicstore_s3_url: str, serve: Any
) -> None:
    """With the bucket's endpoint down, the dashboard redirected listeners to a URL that could not answer;
    its check of the master (a HEAD) fails typed (StoreUnavailable): 502 "could not be read from its
    storage", as any read of a storage that cannot be read, and the page says so instead of a player."""
    import socket

    bucket = open_filestore(musicstore_s3_url)
    with Store(sqlite_url) as store:
        (master,) = _masters(store, bucket, 1)
        with socket.socket() as closed:  # a port that nothing listens on once it is closed
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        options = {"endpoint_url": f"http://127.0.0.1:{port}"}
        server = serve(create_app(store, options=options))
        status, headers, body = _ask(server, f"/audio/{master}")
        assert (status, "location" in headers) == (502, False)
        assert "could not be read from its storage" in body.decode()
        page = _ask(server, f"/generations/{master}")[2].decode()
        assert "<audio" not in page and "its storage cannot be read" in page
    bucket.close()
