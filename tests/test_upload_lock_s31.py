"""docs/recording.md: an export to an object store puts its objects before the transaction that records them
(``recording.uploads``), so no row lock (on SQLite, no database write lock) is held through an upload. Before,
the put (up to 4 attempts, each waiting ``s3.READ_TIMEOUT_SECONDS``, 60 s) ran inside the transaction that
had locked the row (``lock_for_completion``: ``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on
SQLite): a silent bucket kept every other session from that row (a cancel, a heartbeat), on SQLite from the
whole database, for minutes."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from musicstore import Store, recording
from musicstore.errors import InvalidTransition, LeaseLost, StorageError
from musicstore.filestore import s3
from musicstore.recording.uploads import Uploads
from musicstore.storage_names import GENERATION_FIELD
from tests.silent_s3 import silent_endpoint

DEADLINE = 60.0  # generous: the stalled put below waits far longer (READ_TIMEOUT_SECONDS made 600)


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"waited {DEADLINE} s for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_stalled_upload_holds_no_lock_another_session_cancels_meanwhile(
    backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While an export's put waits on a bucket that never answers, another session heartbeats and cancels
    that generation; before, both waited behind the put's row lock (the database's write lock on SQLite)
    and ended in DatabaseBusy."""
    url = request.getfixturevalue(
        "musicstore_sqlite_url" if backend == "sqlite" else "musicstore_postgres_url"
    )
    monkeypatch.setattr(s3, "READ_TIMEOUT_SECONDS", 600)  # the put stalls until the endpoint goes away
    listener, accepted = silent_endpoint()
    files = s3.S3FileStore(
        "bucket",
        endpoint_url=f"http://127.0.0.1:{listener.getsockname()[1]}",
        access_key_id="id",
        secret_access_key="not-a-real-secret",
    )
    outcome: list[BaseException | None] = []
    other_done: list[str] = []
    with Store(url) as store, Store(url, busy_timeout=120) as other:
        store.create_generation("stalled upload", model_name="m", duration_seconds=1.0, sample_rate=16_000)
        job = store.claim_next("gpu-0")
        assert job is not None
        audio = np.zeros((job.channels, 16_000), dtype=np.float32)

        def export() -> None:
            try:
                recording.export_generation(store, job, audio, root=files, peaks=False)
            except BaseException as exc:
                outcome.append(exc)
            else:
                outcome.append(None)

        def elsewhere() -> None:  # another session, the put stalled meanwhile
            other.heartbeat(job.id, "gpu-0")
            other.cancel(job.id, "the user pressed stop")
            other_done.append("cancelled")

        exporter = threading.Thread(target=export, daemon=True)
        canceller = threading.Thread(target=elsewhere, daemon=True)
        try:
            exporter.start()
            _wait_for(lambda: bool(accepted), "the put to reach the silent endpoint")
            canceller.start()
            _wait_for(lambda: bool(other_done) or not canceller.is_alive(), "the other session")
            assert other_done == ["cancelled"]
            assert exporter.is_alive() and not outcome  # finished before the stalled put did
        finally:
            listener.shutdown(socket.SHUT_RDWR)  # no more connections taken: the put's attempts now fail
            listener.close()
            for connection in list(accepted):
                connection.close()
            exporter.join(DEADLINE)
            canceller.join(DEADLINE)
            files.close()
        assert not exporter.is_alive()
        (raised,) = outcome
        assert isinstance(raised, StorageError), raised
        row = store.get_generation(job.id)
        assert row is not None and row.status.value == "cancelled"


@pytest.mark.parametrize("same_bytes", [True, False], ids=["same-bytes", "other-bytes"])
def test_a_stale_attempts_object_is_left_to_the_attempt_that_took_over(
    musicstore_sqlite_url: str,
    musicstore_clock: Any,
    musicstore_s3_files: Any,
    monkeypatch: pytest.MonkeyPatch,
    same_bytes: bool,
) -> None:
    """A worker whose lease ran out while it uploaded (its object at the key, no lock held) and the worker
    that took over: the latter removes the stale object (the row locked, its claim valid), puts its own and
    records it; the stale attempt then finds its claim lost and removes only an object bearing its own
    token, so the recorded object stays (no row names a missing object). With the same bytes (a WAV encode is
    deterministic), the S3 put takes the stale object for its own lost reply's: it is not recorded as the
    attempt's own (the stale attempt would remove it), but removed and put anew."""
    files = musicstore_s3_files
    with Store(musicstore_sqlite_url, clock=musicstore_clock) as store:
        store.create_generation("taken over", model_name="m", duration_seconds=1.0, sample_rate=16_000)
        stale = store.claim_next("gpu-a", lease_seconds=10)
        assert stale is not None
        audio = np.zeros((stale.channels, 16_000), dtype=np.float32)
        theirs_audio = audio if same_bytes else audio + np.float32(0.25)
        real = Uploads.put
        taken_over: list[Any] = []
        hooked: list[str] = []  # the stale attempt's first put only (gpu-b's export runs inside it)

        def put_then_taken_over(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
            info = real(self, key, *args, **kwargs)
            if not hooked:  # the stale attempt's object is at the key: its lease runs out, gpu-b takes over
                hooked.append(key)
                musicstore_clock.advance(11)
                with Store(musicstore_sqlite_url, clock=musicstore_clock) as other:
                    assert other.requeue_expired().requeued == [stale.id]
                    theirs = other.claim_next("gpu-b", lease_seconds=10)
                    assert theirs is not None and theirs.id == stale.id
                    taken_over.append(recording.export_generation(other, theirs, theirs_audio, root=files))
            return info

        monkeypatch.setattr(Uploads, "put", put_then_taken_over)
        with pytest.raises((LeaseLost, InvalidTransition)) as raised:
            recording.export_generation(store, stale, audio, root=files)
        monkeypatch.undo()
        (recorded,) = taken_over
        assert recorded.generation.worker_id == "gpu-b"
        row = store.get_generation(stale.id)
        assert row is not None and row.status.value == "completed" and row.worker_id == "gpu-b", raised.value
        stored = files.head(recorded.key)
        assert stored.checksum == recorded.checksum
        assert stored.metadata[GENERATION_FIELD] == stale.id
        assert recorded.peaks is not None
        assert files.head(recorded.peaks.key).checksum == recorded.peaks.sha256
