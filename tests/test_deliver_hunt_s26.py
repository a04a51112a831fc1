"""Regressions found by a hunt over delivery and object storage (session 26): real SeaweedFS, no mocks."""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from musicstore import InvalidInput
from musicstore.filestore import (
    FileStore,
    LocalFileStore,
    ObjectNotFound,
    StoreUnavailable,
    open_filestore,
    s3,
)
from musicstore.filestore.base import MAX_METADATA_BYTES, MAX_METADATA_NAMES

SECRET = "Sw0rdfish-proxy-pass"


def test_a_presigned_url_carries_no_credentials_of_the_endpoint_url_and_fetches_the_file(
    musicstore_s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``AWS_ENDPOINT_URL=http://user:SECRET@host`` (credentials of a proxy in front of the store): botocore
    copied the userinfo into every presigned URL, the URL listeners are handed and the dashboard's 307
    sends, password and all (urllib could not even fetch it: it took ``user:SECRET@host`` for a host)."""
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint.replace("://", f"://user:{SECRET}@", 1))
    files = open_filestore(musicstore_s3_url)
    try:
        files.put("2026/01/31/a b.wav", b"RIFF listen")
        url = files.presigned_url("2026/01/31/a b.wav", expires=60)
    finally:
        files.close()
    assert SECRET not in url and "user" not in url.partition("?")[0]
    assert url.startswith(endpoint + "/")
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.read() == b"RIFF listen"


@pytest.fixture
def stalled() -> Iterator[str]:
    """A TCP server that takes every connection and never answers (an S3 server hung, a stuck proxy)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    for conn in held:
        conn.close()


def test_an_endpoint_that_never_answers_is_store_unavailable_after_its_attempts(
    stalled: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endpoint that takes connections and stops answering: each call waited the read timeout (60 s, not
    documented) on each of its 4 attempts, 4 minutes, then raised a plain StorageError quoting botocore's
    ReadTimeoutError, so cleanup and copy_files went on row by row (4 minutes each) where an endpoint that
    refuses or hangs up stops them at once (StoreUnavailable). Now StoreUnavailable saying it did not
    answer, after the attempts, without the secret (the timeout shortened here to keep the test short)."""
    monkeypatch.setattr(s3, "READ_TIMEOUT_SECONDS", 0.3)
    bucket = s3.S3FileStore(
        "bucket",
        "music/",
        endpoint_url=stalled,
        access_key_id="AKIAEXAMPLE",
        secret_access_key="example-secret-key",
        max_attempts=2,
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
        with pytest.raises(StoreUnavailable, match=f"the S3 endpoint {stalled} did not answer") as caught:
            call()
        assert time.monotonic() - started < 15 and "example-secret-key" not in str(caught.value)
        assert "(each attempt waited 0.3 s)" in str(caught.value)
    bucket.close()


def _names(count: int) -> dict[str, str]:
    return {f"n{i:02d}": "v" for i in range(count)}


def test_more_metadata_names_than_an_answer_can_carry_are_refused_on_both_backends(where: FileStore) -> None:
    """Each user metadata name is a header of every answer about the object: a bucket took a put with 88
    names (2 KiB in all, as documented), and then its HEAD and GET failed for good, 'cannot reach the S3
    endpoint' (Python's HTTP client refuses an answer of more than 100 headers): an object no one could
    read. Now more than MAX_METADATA_NAMES (64) is InvalidInput before anything is written, on both
    backends alike; 64 round-trip."""
    with pytest.raises(InvalidInput, match="metadata has 88 names; at most 64"):
        where.put("2026/01/31/many.wav", b"RIFF", metadata=_names(88))
    with pytest.raises(ObjectNotFound):
        where.head("2026/01/31/many.wav")
    assert MAX_METADATA_NAMES == 64
    where.put("2026/01/31/most.wav", b"RIFF", metadata=_names(64))
    assert where.head("2026/01/31/most.wav").metadata == _names(64)
    assert b"".join(where.get("2026/01/31/most.wav")) == b"RIFF"


def test_metadata_of_quotes_and_backslashes_is_kept_on_both_backends(where: FileStore) -> None:
    """2 KiB of metadata (the documented limit) whose values hold backslashes or quotes (a Windows path, a
    quoted title): a folder kept it as JSON in an extended attribute, which doubled each of them, past the
    4 KiB ext4 keeps in a file's attributes: the put failed 'No space left on device (ENOSPC)' on a disk
    with room, where a bucket kept it. Now kept as name=value lines, about its own size."""
    meta = {"path": "C:\\" + "\\" * 1920, "title": '"' + "x" * 40 + '"'}
    assert sum(len(name) + len(value) for name, value in meta.items()) <= MAX_METADATA_BYTES
    where.put("2026/01/31/a.wav", b"RIFF", metadata=meta)
    assert where.head("2026/01/31/a.wav").metadata == meta
    equals = {"eq": "a=b=c", "n0": "{not json}"}  # a value with '=' or braces reads back as it was
    where.put("2026/01/31/b.wav", b"RIFF", metadata=equals)
    assert where.head("2026/01/31/b.wav").metadata == equals


def test_a_folder_reads_the_metadata_files_put_before_kept_as_json(tmp_path: Path) -> None:
    files = LocalFileStore(tmp_path)
    files.put("2026/01/31/old.wav", b"RIFF")
    os.setxattr(tmp_path / "2026/01/31/old.wav", "user.musicstore.metadata", b'{"lufs":"-16.0","q":"a\\"b"}')
    assert files.head("2026/01/31/old.wav").metadata == {"lufs": "-16.0", "q": 'a"b'}
