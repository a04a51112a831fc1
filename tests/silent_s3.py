"""An S3 endpoint that takes connections and never answers, and a file store on it (tests/test_review_s29.py,
tests/test_crash_s29.py): how many requests a step sends it, and how long it waits."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from musicstore.filestore import s3


def silent_endpoint() -> tuple[socket.socket, list[socket.socket]]:
    """A listener that takes connections and never answers, and the connections it took."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])  # and never answer
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return listener, accepted


@contextmanager
def silent_s3_files(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[s3.S3FileStore, list[socket.socket]]]:
    """An ``S3FileStore`` on a ``silent_endpoint`` (``READ_TIMEOUT_SECONDS`` made 3: a shorter wait per
    attempt, the same attempts) and the connections it took; the store, the listener and the connections
    closed after the block."""
    listener, accepted = silent_endpoint()
    monkeypatch.setattr(s3, "READ_TIMEOUT_SECONDS", 3)
    files = s3.S3FileStore(
        "bucket",
        endpoint_url=f"http://127.0.0.1:{listener.getsockname()[1]}",
        access_key_id="id",
        secret_access_key="not-a-real-secret",
    )
    try:
        yield files, accepted
    finally:
        files.close()
        listener.close()
        for connection in accepted:
            connection.close()
