"""Review of session 29's library changes: each bug found, pinned by a test that failed before its fix."""

from __future__ import annotations

import socket
import threading
import time

import pytest


def _silent_endpoint() -> tuple[socket.socket, list[socket.socket]]:
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


def test_copy_files_heads_its_copies_under_the_row_lock_one_short_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/storage.md: copy_files HEADs each copy of a row once its UPDATE holds the row's lock ("SQLite's
    writer lock is held for a few requests at most"). The HEAD (``dry_target.copies_there``) went through
    the target's own client: 4 attempts, each waiting READ_TIMEOUT_SECONDS (60 s) on an endpoint that takes
    connections and never answers, about 4 minutes with the row locked (on SQLite the database's write
    lock: every worker's claim and completion waiting past its busy_timeout), the lock 702b34f keeps short
    for an export's cleanup (``base.briefly``). Now one attempt with the short timeouts."""
    from musicstore.errors import StorageError
    from musicstore.filestore import s3
    from musicstore.maintenance import dry_target

    listener, accepted = _silent_endpoint()
    monkeypatch.setattr(s3, "READ_TIMEOUT_SECONDS", 3)  # a shorter wait per attempt, the same attempts
    files = s3.S3FileStore(
        "bucket",
        endpoint_url=f"http://127.0.0.1:{listener.getsockname()[1]}",
        access_key_id="id",
        secret_access_key="not-a-real-secret",
    )
    started = time.monotonic()
    try:
        with pytest.raises(StorageError):
            dry_target.copies_there(files, {"g": ["a/g.wav"]}, "g")
    finally:
        elapsed = time.monotonic() - started
        files.close()
        listener.close()
        for connection in accepted:
            connection.close()
    assert len(accepted) == 1, accepted  # one HEAD attempt, not 4
    assert elapsed < 15, elapsed  # one 3 s wait (the 4 took 12 s and more, with their backoff)
