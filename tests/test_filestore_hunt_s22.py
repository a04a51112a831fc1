"""Regressions found by the s22 hunt over the file stores (a folder and S3 on a real SeaweedFS server)."""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore.errors import InvalidInput, StorageError
from musicstore.filestore import (
    ChecksumMismatch,
    FileStore,
    LocalFileStore,
    ObjectNotFound,
    S3FileStore,
    StoreUnavailable,
    check_filestore,
    open_filestore,
)
from musicstore.filestore.s3 import MIN_PART

_names = itertools.count()


@given(
    stem=st.text(st.characters(codec="utf-8", categories=["L", "N"]), min_size=1, max_size=60),
    fill=st.sampled_from(["b", "\u00e9", "\u97f3", "\U0001d11e"]),
    ext_bytes=st.integers(1, 254),
)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_a_local_put_takes_any_name_that_fits_name_max_whatever_its_extension(
    tmp_path: Path, stem: str, fill: str, ext_bytes: int
) -> None:
    """A name of at most 255 bytes is put whole, its temp file's name shortened to fit too: one with a long
    extension (``take.<240 bytes>``) made a temp name over 255 bytes and the put failed with a StorageError
    (ENAMETOOLONG) where a bucket takes the key."""
    name = f"{stem}.{fill * (ext_bytes // len(fill.encode()) or 1)}"
    while len(name.encode()) > 255:
        name = name[:-1]
    key = f"k{next(_names)}/{name}"
    store = LocalFileStore(tmp_path / "audio")
    assert store.put(key, b"bytes").size == 5
    assert b"".join(store.get(key)) == b"bytes"
    assert [info.key for info in store.list(key.partition("/")[0] + "/")] == [key]
    assert list(store.uploads()) == []


def test_a_name_with_a_long_extension_is_put_alike_on_both_backends(where: FileStore) -> None:
    key = "2026/01/31/take." + "b" * 250
    assert where.put(key, b"RIFF").size == 4
    assert where.head(key).size == 4 and [info.key for info in where.list()] == [key]


# --- the same calls on a folder and on a bucket ----------------------------------------------------------

PARITY_KEYS = [
    "a.wav",
    "b.flac",
    "d/a.wav",
    "d/b.wav",
    "d/e/f.json",
    "caf\u00e9.wav",
    "cafe\u0301.wav",
    "sp ace+plus%20#?~.wav",
    "",
    "/abs.wav",
    "../up.wav",
    "d/",
    "d//a.wav",
    "d\\a.wav",
    "n\x00ul.wav",
    "x" * 1025,
    "d/.a.wav.0a1b2c3d.tmp",
]
"""Keys of both backends (none the folder of another: a file cannot be one locally) and keys both refuse."""


class SourceFailed(OSError):
    """What a put's source raises midway."""


def _failing(data: bytes) -> Iterator[bytes]:
    yield data[: len(data) // 2]
    raise SourceFailed(5, "the source failed midway")


operations = st.one_of(
    st.tuples(
        st.just("put"),
        st.sampled_from(PARITY_KEYS),
        st.binary(max_size=64),
        st.booleans(),
        st.sampled_from(["bytes", "chunks", "failing"]),
        st.sampled_from([None, {"lufs": "-16.0"}]),
    ),
    st.tuples(st.sampled_from(["get", "head", "delete"]), st.sampled_from(PARITY_KEYS)),
    st.tuples(st.just("list"), st.sampled_from(["", "d", "d/", "d/e/", "a", "caf", "zz/", "../"])),
    st.tuples(st.just("url"), st.sampled_from(PARITY_KEYS), st.sampled_from([-1, 0, 1, 3600, 8 * 24 * 3600])),
)


def _apply(store: FileStore, operation: tuple[Any, ...]) -> object:
    """What the call returned (in a form both backends share), or its error's type."""
    name, key = operation[0], operation[1]
    try:
        if name == "put":
            _, _, data, overwrite, source, metadata = operation
            sources = {"bytes": data, "chunks": iter([data[:3], data[3:]]), "failing": _failing(data)}
            info = store.put(key, sources[source], overwrite=overwrite, metadata=metadata)
            return ("put", info.size, info.checksum, dict(info.metadata))
        if name == "get":
            return ("get", b"".join(store.get(key)))
        if name == "head":
            info = store.head(key)
            return ("head", info.size, info.checksum, info.content_type, dict(info.metadata))
        if name == "delete":
            return ("delete", store.delete(key))
        if name == "list":
            return ("list", sorted((info.key, info.size) for info in store.list(key, page_size=2)))
        store.presigned_url(key, expires=operation[2])
        return ("url",)
    except Exception as exc:  # the type is what must agree; messages name each store's URL
        return ("error", type(exc).__name__)


_examples = itertools.count()


@given(steps=st.lists(operations, max_size=12))
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_a_folder_and_a_bucket_answer_the_same_calls_alike(
    musicstore_s3_url: str, tmp_path: Path, steps: list[tuple[Any, ...]]
) -> None:
    """Any sequence of puts (create, overwrite, a source failing midway), gets, heads, deletes, listings and
    URLs gives the same results and the same error types on a folder and on a SeaweedFS bucket, and leaves
    the same objects and no unfinished upload on either."""
    n = next(_examples)
    folder = open_filestore(tmp_path / f"parity-{n}")
    bucket = open_filestore(f"{musicstore_s3_url}parity-{n}/")
    try:
        for step in steps:
            assert _apply(folder, step) == _apply(bucket, step), step
        assert _apply(folder, ("list", "")) == _apply(bucket, ("list", ""))
        assert list(folder.uploads()) == [] and list(bucket.uploads()) == []
    finally:
        folder.close()
        bucket.close()


def test_a_source_failing_midway_raises_its_own_error_on_both_backends(where: FileStore) -> None:
    """The source's OSError is raised as it is (a folder raised it as a StorageError "writing ... failed", as
    if the store had failed; a bucket raised it as is); nothing is at the key, no upload is left."""
    where.put("kept.wav", b"old")
    for key, overwrite in (("2026/01/31/new.wav", False), ("kept.wav", True)):
        with pytest.raises(SourceFailed, match="the source failed midway") as caught:
            where.put(key, _failing(b"x" * 100_000), overwrite=overwrite)
        assert not isinstance(caught.value, StorageError)
    assert [(info.key, info.size) for info in where.list()] == [("kept.wav", 3)]
    assert list(where.uploads()) == []


def test_a_key_too_long_under_the_bucket_prefix_is_refused_before_any_request(musicstore_s3_url: str) -> None:
    """S3 holds 1,024 bytes of key in all, the store's prefix included: a key that passes the store's own
    check (at most 1,024 bytes) but not with the prefix before it is InvalidInput before any request, naming
    the room the prefix leaves; it was sent and refused by the server (StorageError "KeyTooLongError"). No
    object can be at such a key: head and get find none, delete removes none."""
    bucket = open_filestore(musicstore_s3_url)
    assert isinstance(bucket, S3FileStore) and bucket.prefix
    room = 1024 - len(bucket.prefix.encode())
    fits = "/".join(["f" * 200] * 4) + "/" + "f" * (room - 804)  # names within SeaweedFS's 255 bytes
    assert bucket.put(fits, b"RIFF").size == 4  # exactly S3's 1,024 bytes with the prefix
    long = fits + "l"
    requests: list[str] = []
    bucket._client.meta.events.register("before-send", lambda request, **_: requests.append(request.method))
    with pytest.raises(InvalidInput, match=f"at most {room:,}"):
        bucket.put(long, b"RIFF")
    assert requests == []
    with pytest.raises(ObjectNotFound):
        bucket.head(long)
    with pytest.raises(ObjectNotFound):
        bucket.get(long)
    assert bucket.delete(long) is False
    assert [info.key for info in bucket.list()] == [fits]
    bucket.close()


def test_a_strided_memoryview_is_put_as_its_bytes_on_both_backends(where: FileStore) -> None:
    """``memoryview(data)[::2]`` (a strided view, as a NumPy slice gives) is bytes like any other view: a
    folder (and a bucket, given it among chunks) raised TypeError "casts are restricted to C-contiguous
    views" where a bucket stored it given alone."""
    strided = memoryview(b"abcdefgh")[::2]
    assert where.put("2026/01/31/alone.bin", strided).size == 4
    pieces: Any = [b"xy", strided]  # chunks may be any bytes-like view
    assert where.put("2026/01/31/chunks.bin", pieces).size == 6
    assert b"".join(where.get("2026/01/31/alone.bin")) == b"aceg"
    assert b"".join(where.get("2026/01/31/chunks.bin")) == b"xyaceg"


@pytest.mark.parametrize("create", [True, False])
def test_a_folder_path_with_a_nul_is_invalid_input_where_the_store_is_made(
    tmp_path: Path, create: bool
) -> None:
    """open_filestore, LocalFileStore and check_filestore (which raises what open_filestore would) refuse a
    path holding a NUL with InvalidInput: open_filestore raised the OS's bare ValueError ('embedded null
    byte') while check_filestore passed it."""
    path = f"{tmp_path}/audio\x00evil"
    for make in (
        lambda: open_filestore(path, create=create),
        lambda: LocalFileStore(path, create=create),
        lambda: check_filestore(path),
    ):
        with pytest.raises(InvalidInput, match="NUL"):
            make()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url", [b"s3://AKIAEXAMPLE:s3cr3t-Example-Key@bucket/x", bytearray(b"/srv/s3cr3t-folder")]
)
def test_a_storage_url_that_is_no_str_is_refused_without_being_echoed(url: object) -> None:
    """A URL given as bytes may hold credentials (s3://KEY:SECRET@...): InvalidInput names its type; it was
    echoed whole (its repr), secret and all, where a str URL with credentials is never shown."""
    for make in (open_filestore, check_filestore):
        with pytest.raises(InvalidInput, match=r"not (bytes|bytearray)") as caught:
            make(url)  # type: ignore[arg-type]
        assert "s3cr3t" not in str(caught.value) and "AKIA" not in str(caught.value)


_KILLED_PUT = """
import io, sys, time
from musicstore.filestore import open_filestore
from musicstore.filestore.s3 import MIN_PART

class Stalling(io.RawIOBase):
    '''A seekable file of 2 parts and more that stalls, on its last read pass, after its first part.'''
    def __init__(self, size, passes):
        self.size, self.at, self.passes = size, 0, passes
    def readable(self): return True
    def seekable(self): return True
    def tell(self): return self.at
    def seek(self, offset, whence=0):
        self.passes -= 1
        self.at = offset
        return offset
    def readinto(self, buffer):
        if self.passes <= 1 and self.at >= MIN_PART:
            time.sleep(600)  # killed here
        n = min(len(buffer), self.size - self.at)
        buffer[:n] = b"x" * n
        self.at += n
        return n

url, key = sys.argv[1], sys.argv[2]
if url.startswith("s3://"):  # an overwrite above the threshold goes in parts: hashed (pass 1), then sent
    store = open_filestore(url, multipart_threshold=MIN_PART, part_size=MIN_PART)
    store.put(key, Stalling(2 * MIN_PART + 10, 2), overwrite=True)
else:
    open_filestore(url).put(key, Stalling(2 * MIN_PART + 10, 1))
"""


def test_a_put_killed_midway_leaves_nothing_at_the_key_and_an_upload_to_abort(where: FileStore) -> None:
    """SIGKILL while a put's bytes go out (no ``finally`` runs): no object at the key, and what the put left
    (a folder's temp file, a bucket's multipart upload with a part in) is listed by ``uploads()`` under the
    key, where maintenance finds it, and ``abort`` removes it."""
    key = "2026/01/31/killed.wav"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_PUT, where.url, key])
    try:
        deadline = time.monotonic() + 60
        while not (found := list(where.uploads())) and time.monotonic() < deadline:
            assert child.poll() is None, "the put ended before it was killed"
            time.sleep(0.2)
        time.sleep(1.0)  # well into the stall: the first part (or MIN_PART bytes of the temp file) is in
    finally:
        child.kill()
        child.wait()
    with pytest.raises(ObjectNotFound):
        where.head(key)
    (upload,) = where.uploads()
    # the same upload as first seen (a folder's ``initiated`` is its temp file's last write, which moved on
    # while the first part went out, so only key and id are compared)
    assert upload.key == key and [(u.key, u.upload_id) for u in found] == [(upload.key, upload.upload_id)]
    assert [info.key for info in where.list()] == []
    where.abort(upload)
    assert list(where.uploads()) == [] and list(where.list()) == []


_REPLACER = """
import sys
from musicstore.filestore import open_filestore
store, key = open_filestore(sys.argv[1]), sys.argv[2]
for n in range(int(sys.argv[3])):
    store.put(key, bytes([n % 256]) * (300_000 + n), overwrite=True)
"""


def test_a_read_while_another_process_replaces_the_object_gets_one_whole_version(where: FileStore) -> None:
    """Reads racing a process that replaces the object (``overwrite=True``) each get one whole version, the
    one the checksum they verify against was stored with: never a mix, never a ChecksumMismatch."""
    key = "2026/01/31/replaced.wav"
    where.put(key, b"\xff" * 300_000)
    child = subprocess.Popen([sys.executable, "-c", _REPLACER, where.url, key, "60"])
    reads = 0
    try:
        while child.poll() is None or reads < 20:
            data = b"".join(where.get(key, chunk_size=65_536))  # verified against its stored SHA-256
            assert data == data[:1] * len(data) and len(data) in (300_000, 300_000 + data[0])
            reads += 1
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0 and where.head(key).size == 300_059


class Changing(io.RawIOBase):
    """A seekable file whose bytes change each time it is read from the start (a file being rewritten)."""

    def __init__(self, size: int) -> None:
        self.size, self.at, self.passes = size, 0, 1

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.at

    def seek(self, offset: int, whence: int = 0) -> int:
        self.passes += 1
        self.at = offset
        return offset

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.size - self.at)
        buffer[:n] = bytes([self.passes % 256]) * n
        self.at += n
        return n


@pytest.mark.parametrize("overwrite", [False, True], ids=["one PUT", "parts"])
def test_a_source_changing_between_hash_and_upload_is_a_checksum_mismatch_either_way(
    musicstore_s3_url: str, overwrite: bool
) -> None:
    """Above the threshold a bucket's put hashes its source, then sends it: a file changed in between is
    refused with ChecksumMismatch ('the source changed while it was read') whether it went in one PUT (a
    conditional create) or in parts (an overwrite). The one PUT, which the server refused (BadDigest), was a
    plain StorageError quoting the server's 'The Content-Md5 you specified did not match'."""
    bucket = open_filestore(musicstore_s3_url, multipart_threshold=MIN_PART, part_size=MIN_PART)
    with pytest.raises(ChecksumMismatch, match="the source changed while it was read"):
        bucket.put("2026/01/31/changing.wav", Changing(MIN_PART + 100), overwrite=overwrite)
    with pytest.raises(ObjectNotFound):
        bucket.head("2026/01/31/changing.wav")
    assert list(bucket.uploads()) == []
    bucket.close()


@pytest.fixture
def web_page() -> Iterator[str]:
    """An HTTP server that answers every request 200 with an HTML page (a web server, a console, a proxy's
    default page: an endpoint URL pointing at the wrong port)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    page = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 13\r\n\r\n<html></html>"

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    while conn.recv(1 << 20):  # the request's headers and body, until the client waits
                        conn.settimeout(0.2)
                with contextlib.suppress(OSError):
                    conn.sendall(page)

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


@pytest.mark.parametrize("size", [10, MIN_PART + 1], ids=["one PUT", "parts"])
def test_a_put_to_an_endpoint_that_is_no_s3_server_is_not_reported_stored(web_page: str, size: int) -> None:
    """An endpoint URL naming a web server that answers 200 to anything: a put is StoreUnavailable naming
    the endpoint. The one PUT returned an ObjectInfo as if stored (nothing was), the multipart upload a
    bare KeyError ('UploadId')."""
    bucket = open_filestore(
        "s3://bucket/music/",
        endpoint_url=web_page,
        access_key_id="AKIAEXAMPLE",
        secret_access_key="example-secret-key",
        multipart_threshold=MIN_PART,
        part_size=MIN_PART,
    )
    with pytest.raises(StoreUnavailable, match=f"{web_page}.*no S3 endpoint") as caught:
        bucket.put("2026/01/31/lost.wav", b"x" * size, overwrite=True)
    assert "example-secret-key" not in str(caught.value)
    bucket.close()


@pytest.fixture
def hanging_up() -> Iterator[str]:
    """A TCP server that closes every connection at once (no S3 there: another service's port, a TLS port)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def test_an_endpoint_that_hangs_up_is_store_unavailable_quickly(hanging_up: str) -> None:
    """An endpoint that closes each connection before answering is one that cannot be reached: after the
    retries every call is StoreUnavailable 'cannot reach the S3 endpoint', as for a closed port, in
    seconds, without the secret (it was a plain StorageError quoting botocore's ConnectionClosedError, so
    copy_files and cleanup went on row by row instead of stopping)."""
    bucket = open_filestore(
        "s3://bucket/music/",
        endpoint_url=hanging_up,
        access_key_id="AKIAEXAMPLE",
        secret_access_key="example-secret-key",
    )
    calls: list[Callable[[], object]] = [
        lambda: bucket.put("2026/01/31/a.wav", b"RIFF"),
        lambda: bucket.head("2026/01/31/a.wav"),
        lambda: bucket.get("2026/01/31/a.wav"),
        lambda: bucket.delete("2026/01/31/a.wav"),
        lambda: list(bucket.list()),
        lambda: list(bucket.uploads()),
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=f"cannot reach the S3 endpoint {hanging_up}") as caught:
            call()
        assert time.monotonic() - started < 15 and "example-secret-key" not in str(caught.value)
    bucket.close()


def test_a_session_token_from_boto3s_chain_is_in_no_log_record(
    musicstore_s3_url: str, musicstore_s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys and a session token from ``~/.aws/credentials`` (boto3's chain; none given, none in the
    environment) are masked in the S3 client's DEBUG log records, as given ones are: botocore logged the
    token in each request's canonical request and headers."""
    import boto3

    token = "FQoGZXIvYXdzEXAMPLEtokenFromTheProfile"
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = {musicstore_s3_server.access_key_id}\n"
        f"aws_secret_access_key = {musicstore_s3_server.secret_access_key}\naws_session_token = {token}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # a session that reads this credentials file
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    root, keep = logging.getLogger(), Keep()
    level = root.level
    root.addHandler(keep)
    root.setLevel(logging.DEBUG)
    try:
        bucket = open_filestore(musicstore_s3_url)
        with contextlib.suppress(StorageError):  # SeaweedFS may refuse the token: the request was logged
            bucket.put("2026/01/31/a.wav", b"RIFF")
        bucket.close()
    finally:
        root.removeHandler(keep)
        root.setLevel(level)
    assert any("x-amz-security-token" in record.lower() for record in records)  # the header was logged
    assert not [record for record in records if token in record]


@pytest.mark.parametrize(
    "url",
    ["s3://AKIAKEYID:Very/Secret+Key@bucket/p", "s3://AKIAKEYID:VerySecretKey/p", "s3://AKIAKEYID:Very"],
)
def test_credentials_in_an_s3_url_are_never_echoed(url: str) -> None:
    """Credentials written into an s3:// URL, with or without the '@', are refused without being shown: the
    bucket-name error echoed 'AKIAKEYID:VerySecretKey' as the name it refused."""
    for make in (open_filestore, check_filestore):
        with pytest.raises(InvalidInput) as refused:
            make(url)
        assert "Secret" not in str(refused.value) and "Very" not in str(refused.value), refused.value
