"""Regressions of the s23 fixes to the file stores (a folder and S3 on a real SeaweedFS server)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest

from musicstore.filestore import FileStore, KeyConflict, ObjectExists, open_filestore
from musicstore.filestore.s3 import MIN_PART, S3FileStore

# --- a key that is the folder of others, or below another ----------------------------------------------


@pytest.mark.parametrize("overwrite", [False, True], ids=["create", "overwrite"])
def test_a_put_at_the_folder_of_objects_is_a_key_conflict_on_both_backends(
    where: FileStore, overwrite: bool
) -> None:
    """With ``p/q.wav`` stored, a put at ``p`` on a folder store is ``KeyConflict`` (an ``ObjectExists``),
    where it failed with a bare StorageError (EISDIR); nothing changes. A bucket has no folders: it stores
    both (docs/storage.md: checking would cost requests on every put)."""
    where.put("p/q.wav", b"below")
    if isinstance(where, S3FileStore):  # SeaweedFS refuses a conditional create there (ObjectExists)
        with contextlib.suppress(ObjectExists) if not overwrite else contextlib.nullcontext():
            where.put("p", b"at the folder", overwrite=overwrite)
        assert "p/q.wav" in [info.key for info in where.list()]
        if overwrite:
            assert sorted(info.key for info in where.list()) == ["p", "p/q.wav"]
        return
    with pytest.raises(KeyConflict, match="is a folder") as caught:
        where.put("p", b"at the folder", overwrite=overwrite)
    assert isinstance(caught.value, ObjectExists)
    assert [(info.key, info.size) for info in where.list()] == [("p/q.wav", 5)]


@pytest.mark.parametrize("overwrite", [False, True], ids=["create", "overwrite"])
def test_a_put_below_an_object_is_a_key_conflict_on_both_backends(where: FileStore, overwrite: bool) -> None:
    """With ``r`` stored, a put at ``r/s.wav`` (or deeper) is ``KeyConflict`` on a folder store; a bucket
    stores them."""
    where.put("d/r", b"object")
    if isinstance(where, S3FileStore):
        where.put("d/r/s.wav", b"below it", overwrite=overwrite)
        assert sorted(info.key for info in where.list()) == ["d/r", "d/r/s.wav"]
        return
    for key in ("d/r/s.wav", "d/r/t/u.wav"):
        with pytest.raises(KeyConflict, match="a symlink or a file") as caught:
            where.put(key, b"below it", overwrite=overwrite)
        assert "'d/r'" in str(caught.value)
    assert [(info.key, info.size) for info in where.list()] == [("d/r", 6)]
    assert (
        where.put("d/rs/s.wav", b"beside").size == 6
    )  # a sibling whose name begins alike is no folder of it


def test_a_marked_put_at_the_folder_of_objects_is_a_key_conflict(tmp_path: Path) -> None:
    """Recording's put (``put_marked``) on a folder store raises the conflict; it raised ``ObjectNotFound``
    (no object at the key to read its mark from), as if the put had looked for one."""
    from musicstore.rendering import put_marked

    where = open_filestore(tmp_path / "audio")
    where.put("2026/01/31/abc.wav/peaks.json", b"{}")
    with pytest.raises(KeyConflict):
        put_marked(where, "2026/01/31/abc.wav", b"RIFF", "abc")
    where.put("2026/01/31/def.wav", b"RIFF")
    with pytest.raises(KeyConflict):
        put_marked(where, "2026/01/31/def.wav/peaks.json", b"{}", "def")


# --- uploads() of a put killed midway, for long names --------------------------------------------------

_STALLED_PUT = """
import sys, time
from musicstore.filestore import open_filestore

def stalling():
    yield b"first bytes"
    time.sleep(600)  # killed here

open_filestore(sys.argv[1]).put(sys.argv[2], stalling())
"""


@pytest.mark.parametrize(
    "name",
    ["a" * 201 + ".wav", "\u00e9" * 118 + ".flac", "b" * 245 + ".wav", "take." + "c" * 250],
    ids=["stem of 201 bytes", "236 bytes of accents", "249 bytes", "a long extension"],
)
def test_uploads_name_the_key_of_a_killed_put_whatever_its_length(tmp_path: Path, name: str) -> None:
    """A local put killed midway is listed by ``uploads()`` under its own key: a file name of more than 200
    bytes was listed under its temp file's shortened one (``2026/<200 a>.wav``), another key."""
    import subprocess
    import sys
    import time

    store = open_filestore(tmp_path / "audio")
    key = f"2026/{name}"
    child = subprocess.Popen([sys.executable, "-c", _STALLED_PUT, store.url, key])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until its first bytes are in (the name is kept before them)
            assert child.poll() is None, "the put ended before it was killed"
            found = list(store.uploads())
            if found and (tmp_path / "audio" / found[0].upload_id).stat().st_size:
                break
            time.sleep(0.1)
    finally:
        child.kill()
        child.wait()
    assert [upload.key for upload in found] == [key]
    store.abort(found[0])
    assert list(store.uploads()) == [] and list(store.list()) == []


# --- Unicode normalization ----------------------------------------------------------------------------


def test_nfc_and_nfd_spellings_of_a_key_are_two_keys_on_both_backends(where: FileStore) -> None:
    """Keys are compared as code points, never normalized: ``café`` in NFC and in NFD name two objects on a
    folder (Linux file names are bytes) and on a bucket alike (docs/storage.md)."""
    import unicodedata

    nfc, nfd = "2026/caf\u00e9.wav", "2026/cafe\u0301.wav"
    assert unicodedata.normalize("NFC", nfd) == nfc
    where.put(nfc, b"composed")
    where.put(nfd, b"decomposed!")  # no ObjectExists: another key
    assert (where.head(nfc).size, where.head(nfd).size) == (8, 11)
    assert sorted(info.key for info in where.list("2026/caf")) == sorted([nfc, nfd])
    assert where.delete(nfd) and [info.key for info in where.list()] == [nfc]


# --- no instance metadata request where credentials are given ----------------------------------------------

_MAKE_STORE = """
import sys, time
started = time.monotonic()
if sys.argv[1] == "bare":  # boto3's own client, as the store makes it: the chain walked once
    import boto3
    boto3.client("s3", endpoint_url="http://127.0.0.1:9", region_name="us-east-1")
    print("-", f"{time.monotonic() - started:.2f}")
    sys.exit()
from musicstore.filestore import open_filestore
from musicstore.errors import StorageError
given = {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "example-secret"}
keys = given if sys.argv[1] == "given" else {}
store = open_filestore("s3://bucket/music/", endpoint_url="http://127.0.0.1:9", **keys)
made = time.monotonic() - started
try:
    store.head("a.wav")
except StorageError as exc:
    print(type(exc).__name__, f"{made:.2f}")
"""


@pytest.fixture
def metadata_endpoint() -> Any:
    """A stand-in instance metadata endpoint on 127.0.0.1 that takes connections and never answers; with
    the connections it took."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    taken: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                taken.append(listener.accept()[0])

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/", taken
    listener.close()
    for connection in taken:
        connection.close()


def _made(how: str, home: Path, metadata_url: str) -> tuple[str, float]:
    import os
    import subprocess
    import sys

    environ = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    environ |= {"HOME": str(home), "AWS_EC2_METADATA_SERVICE_ENDPOINT": metadata_url}
    done = subprocess.run(
        [sys.executable, "-c", _MAKE_STORE, how],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    error, seconds = done.stdout.split()
    return error, float(seconds)


def test_making_an_s3_store_asks_no_metadata_endpoint_when_credentials_are_given(
    tmp_path: Path, metadata_endpoint: Any
) -> None:
    """Given an access key and a secret, making an S3 store (and the secret masking after it,
    ``mask_found``) asks nothing of the instance metadata endpoint (169.254.169.254 on a cloud host)."""
    url, taken = metadata_endpoint
    assert _made("given", tmp_path, url)[0] == "StoreUnavailable"  # port 9 refuses: unreachable
    assert taken == []


def test_making_an_s3_store_without_credentials_walks_boto3s_chain_once(
    tmp_path: Path, metadata_endpoint: Any
) -> None:
    """With no credentials anywhere, making an S3 store asks the metadata endpoint as often as making
    boto3's client does (which gives up within its timeouts, 1 s a request: no hang), and the first request
    is ``StoreUnavailable`` (no credentials). ``mask_found`` walked the chain a second time (None is not
    cached), which asked the endpoint again: twice the wait (4.5 s here, where a metadata endpoint does not
    answer)."""
    url, taken = metadata_endpoint
    _made("bare", tmp_path, url)
    bare = len(taken)
    error, seconds = _made("none", tmp_path, url)
    assert bare > 0 and len(taken) - bare == bare
    assert error == "StoreUnavailable" and seconds < 10


# --- multipart boundaries ---------------------------------------------------------------------------------


class _ShortReads(io.RawIOBase):
    """A seekable file of ``size`` bytes whose reads return at most 1 MiB (as a raw stream, a pipe-backed or
    network file may): ``read(n)`` gives fewer bytes than asked, and not at the end."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data, self.at = data, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.at

    def seek(self, offset: int, whence: int = 0) -> int:
        self.at = {0: 0, 1: self.at, 2: len(self.data)}[whence] + offset
        return self.at

    def readinto(self, buffer: Any) -> int:
        piece = self.data[self.at : self.at + min(len(buffer), 1 << 20)]
        memoryview(buffer)[: len(piece)] = piece
        self.at += len(piece)
        return len(piece)


def _parts(bucket: S3FileStore, key: str) -> int:
    """How many parts the object at ``key`` was completed from (1: one PUT), by its ETag (``<md5>-<n>``)."""
    etag = bucket._client.head_object(Bucket=bucket.bucket, Key=bucket.prefix + key)["ETag"].strip('"')
    return int(etag.partition("-")[2] or 1)


def test_a_multipart_put_from_a_file_giving_short_reads_sends_whole_parts(musicstore_s3_url: str) -> None:
    """Each part but the last is ``part_size`` bytes even when the source's reads return fewer: a file
    giving 1 MiB a read was sent as 1 MiB parts (S3 refuses parts under 5 MiB but the last:
    EntityTooSmall; SeaweedFS took them)."""
    bucket = open_filestore(musicstore_s3_url, multipart_threshold=MIN_PART, part_size=MIN_PART)
    assert isinstance(bucket, S3FileStore)
    data = bytes(range(256)) * ((2 * MIN_PART + 10) // 256 + 1)
    info = bucket.put("2026/big.wav", _ShortReads(data), overwrite=True)
    assert info.size == len(data) and b"".join(bucket.get("2026/big.wav")) == data
    assert _parts(bucket, "2026/big.wav") == 3
    bucket.close()


_OVERWRITER = """
import sys
from musicstore.filestore import open_filestore
from musicstore.filestore.s3 import MIN_PART
url, key, writer = sys.argv[1], sys.argv[2], int(sys.argv[3])
options = {"multipart_threshold": MIN_PART, "part_size": MIN_PART} if url.startswith("s3://") else {}
store = open_filestore(url, **options)
for n in range(4):
    store.put(key, bytes([writer * 16 + n]) * (2 * MIN_PART + 1 + writer), overwrite=True)
"""


def test_two_processes_overwriting_one_key_in_parts_leave_one_whole_version(where: FileStore) -> None:
    """Two processes replacing one key at once (in parts on S3): every read while they run, and the object
    they leave, is one writer's whole version, its recorded checksum its own (``get`` verifies it)."""
    import subprocess
    import sys

    key = "2026/01/31/raced.wav"
    where.put(key, b"\x00" * 10)
    writers = [subprocess.Popen([sys.executable, "-c", _OVERWRITER, where.url, key, str(n)]) for n in (1, 2)]
    seen = set()
    try:
        while any(writer.poll() is None for writer in writers):
            data = b"".join(where.get(key))
            assert data == data[:1] * len(data)
            seen.add(data[0])
    finally:
        for writer in writers:
            writer.wait(120)
    assert [writer.returncode for writer in writers] == [0, 0]
    data = b"".join(where.get(key))
    assert data[0] in (16 + 3, 32 + 3) and data == data[:1] * (2 * MIN_PART + 1 + data[0] // 16)
    assert where.head(key).size == len(data) and list(where.uploads()) == []


@pytest.mark.parametrize("size", [MIN_PART, MIN_PART + 1, 2 * MIN_PART, 2 * MIN_PART + 1])
@pytest.mark.parametrize("overwrite", [False, True], ids=["create", "overwrite"])
def test_puts_at_the_threshold_and_part_boundaries_round_trip_in_as_many_parts_as_due(
    musicstore_s3_url: str, size: int, overwrite: bool
) -> None:
    """At and one byte past the threshold and a part's end: the bytes come back whole, verified; an
    overwrite over the threshold goes in ceil(size / part_size) parts, a conditional create in one PUT."""
    bucket = open_filestore(musicstore_s3_url, multipart_threshold=MIN_PART, part_size=MIN_PART)
    assert isinstance(bucket, S3FileStore)
    data = bytes(range(251)) * (size // 251 + 1)
    data = data[:size]
    for key, source in (("b.wav", data), ("f.wav", io.BytesIO(data)), ("i.wav", iter([data[:7], data[7:]]))):
        assert bucket.put(key, source, overwrite=overwrite).size == size
        assert b"".join(bucket.get(key)) == data
        assert _parts(bucket, key) == (-(-size // MIN_PART) if overwrite and size > MIN_PART else 1)
    assert list(bucket.uploads()) == []
    bucket.close()


GLOB_KEYS = ["g[1]/a.wav", "g*/b.wav", "g?/c.wav", "g.+/d.wav", "g^$/e.wav", "g(x)|/f.wav", "g{a,b}/h.wav"]


@pytest.mark.parametrize(
    "prefix", ["g[", "g[1]", "g[1]/", "g*", "g?", "g.", "g.+", "g^$", "g(", "g{", "g", "g%"]
)
def test_a_prefix_with_glob_or_regex_characters_is_taken_literally_on_both_backends(
    where: FileStore, prefix: str
) -> None:
    for key in GLOB_KEYS:
        where.put(key, b"x")
    assert [info.key for info in where.list(prefix)] == sorted(k for k in GLOB_KEYS if k.startswith(prefix))


def test_deleting_a_missing_key_is_false_and_changes_nothing_on_both_backends(where: FileStore) -> None:
    where.put("2026/a.wav", b"x")
    for key in ("2026/b.wav", "2026", "2026/a.wav/x", "other/a.wav", "2026/a.wa"):
        assert where.delete(key) is False
    assert [info.key for info in where.list()] == ["2026/a.wav"]
    assert where.delete("2026/a.wav") is True and where.delete("2026/a.wav") is False


@pytest.mark.parametrize("chunk_size", [1 << 40, 1 << 62])
def test_a_read_in_huge_chunks_gives_the_bytes_on_both_backends(where: FileStore, chunk_size: int) -> None:
    """A chunk size far above the object's size reads it (in one chunk): a folder asked the OS for a buffer
    of that size and raised MemoryError for a 3-byte file, where a bucket read it."""
    where.put("a.wav", b"abc")
    assert b"".join(where.get("a.wav", chunk_size=chunk_size)) == b"abc"


def test_a_file_name_over_255_bytes_is_invalid_input_on_a_folder_and_on_seaweedfs(where: FileStore) -> None:
    """A file name over 255 bytes: a folder refuses it before anything is made, SeaweedFS answers
    KeyTooLongError; both are ``InvalidInput`` (the bucket's was a ``StorageError`` quoting the server, as if
    the store had failed: a retry cannot help). Nothing is stored. (A folder name over 255 bytes SeaweedFS
    takes, as AWS takes both: docs/storage.md.)"""
    from musicstore.errors import InvalidInput

    for key in ("q/" + "x" * 256, "\u00e9" * 128):
        with pytest.raises(InvalidInput, match="255 bytes"):
            where.put(key, b"1", overwrite=True)
    assert list(where.list()) == [] and list(where.uploads()) == []


def test_copy_files_onto_a_file_at_a_files_folder_skips_the_row_naming_the_conflict(
    store: Any, tmp_path: Path
) -> None:
    """A row whose key's folder is a file in the target folder (``2026/01/31`` stored, the file
    ``2026/01/31/<id>.wav``) is skipped with the conflict as its reason: it said the key "exists with other
    bytes", where nothing is at the key."""
    from musicstore.filestore import LocalFileStore
    from musicstore.maintenance.relocate import copy_files
    from tests.test_copy_files import on_disk

    folder = LocalFileStore(tmp_path / "audio")
    (made,) = on_disk(store, folder, 1)
    target = LocalFileStore(tmp_path / "target")
    target.put(f"{made.created_at:%Y/%m/%d}", b"a file where a folder goes")
    report = copy_files(store, target)
    assert report.rows_updated == 0 and [s.id for s in report.skipped] == [made.id]
    assert "KeyConflict" in report.skipped[0].reason and "other bytes" not in report.skipped[0].reason


@pytest.fixture
def write_only(tmp_path: Path) -> Any:
    """A SeaweedFS of the test's own whose second identity may only write (no Read, no List: a writer's
    policy without s3:GetObject nor s3:ListBucket); the URL, and its credentials."""
    import json
    import secrets
    import time

    from musicstore.testing import _seaweed as seaweed

    weed = seaweed.find_weed()
    if weed is None:
        pytest.skip("no SeaweedFS binary")
    base = tmp_path / "weed"
    (base / "data").mkdir(parents=True)
    full, writer = (
        (f"ms{secrets.token_hex(8)}", secrets.token_urlsafe(24)),
        (f"wo{secrets.token_hex(8)}", "w" * 24),
    )
    identities = [
        {"name": "all", "credentials": [{"accessKey": full[0], "secretKey": full[1]}], "actions": ["Admin"]},
        {
            "name": "writer",
            "credentials": [{"accessKey": writer[0], "secretKey": writer[1]}],
            "actions": ["Write"],
        },
    ]
    (base / "s3.json").write_text(json.dumps({"identities": identities}))
    ports = dict(zip(seaweed._PORTS, seaweed._free_ports(len(seaweed._PORTS)), strict=True))
    process = seaweed._launch(seaweed._command(weed, base, ports), base)
    server = seaweed.Server(base, process, f"http://127.0.0.1:{ports['s3.port']}", *full)
    try:
        seaweed._wait(server, time.monotonic() + seaweed.START_TIMEOUT)
        yield f"s3://{server.bucket}/music/", server.endpoint_url, writer
    finally:
        process.kill()
        process.wait()


def test_a_writer_that_may_not_read_nor_list_still_puts(write_only: Any) -> None:
    """Credentials allowed only to write (a HEAD or a listing is denied): a put is stored (it sends no HEAD
    nor listing first), its modified time not known (a PUT's answer has none)."""
    url, endpoint, (key_id, secret) = write_only
    bucket = open_filestore(url, endpoint_url=endpoint, access_key_id=key_id, secret_access_key=secret)
    info = bucket.put("2026/01/31/a.wav", b"RIFF", overwrite=True)
    assert info.size == 4 and info.modified is None
    bucket.close()
