"""An export's upload to an object store, and what the other sessions of the database wait for meanwhile.

``export_generation`` into an object store puts the file inside the transaction that completes the row. On
PostgreSQL that transaction completed the row first, then uploaded: the completing UPDATE's triggers had
already taken their rows' locks (its session's shard of ``generation_totals`` and of the model totals, chosen
by ``mod(pg_backend_pid(), 16)``; the owner key's ``owner_lanes`` row), held for the whole upload. Another
session's status change touching those rows (a claim, a completion, a create on that owner key) waited for
the upload, for seconds on a big file, or failed with DatabaseBusy. The row itself is now locked and its
claim checked first, the objects put, and only then the row completed: those rows are held for the few
milliseconds before the commit. Since df72ff3 the objects are put before that transaction: the generation's
own row is not locked through the upload either (``tests/test_upload_lock_s31.py``).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from musicstore import Cancelled, DatabaseBusy, LeaseLost, Status, Store
from musicstore.filestore import FileStore, ObjectInfo
from musicstore.recording import Recorded, export_generation
from tests.conftest import FakeClock
from tests.connecting import opened
from tests.test_record import claimed, music
from tests.wrapped_stores import Wrapped

SHARDS = 16
"""How many shards the totals are kept in (``mod(pg_backend_pid(), 16)``: migrations 0002, 0005, 0020)."""


class _HeldUpload(Wrapped):
    """A real object store whose first put waits until ``release`` is set, once it has said so
    (``uploading``): an upload in flight, as a big file's takes seconds. The rest is the store's own."""

    def __init__(self, inner: FileStore) -> None:
        super().__init__(inner)
        self.uploading, self.release = threading.Event(), threading.Event()

    def put(self, key: str, data: Any, **options: Any) -> ObjectInfo:
        if not self.uploading.is_set():
            self.uploading.set()
            assert self.release.wait(60), "the test never released the upload"
        return self.inner.put(key, data, **options)


def _backend_pid(store: Store) -> int:
    connector = store._connector
    conn = connector.acquire()
    try:
        return int(conn.info.backend_pid)
    finally:
        connector.release(conn)


def _store_on_shard(url: str, shard: int) -> Store:
    """A store of one connection (``pool_size=1``) whose backend falls on ``shard``, waiting at most 1 s for
    a lock: stores are opened (and the others closed) until one does, one in 16 on average."""
    for _ in range(40 * SHARDS):
        store = opened(lambda: Store(url, pool_size=1, busy_timeout=1))  # its connect not bound by 1 s
        if _backend_pid(store) % SHARDS == shard:
            return store
        store.close()
    pytest.fail(f"no connection of {40 * SHARDS} fell on shard {shard}")


def _exporting(store: Store, job: Any, files: _HeldUpload) -> tuple[threading.Thread, list[Any]]:
    """``export_generation`` of ``job`` into ``files``, on a thread, started and waited for until its upload
    is in flight; the list gets its outcome (a ``Recorded`` or the exception)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(export_generation(store, job, music(), root=files))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    if not files.uploading.wait(60):
        files.release.set()
        thread.join(60)
        pytest.fail(f"the export never started its upload: {outcome}")
    return thread, outcome


def _without_waiting(what: str, change: Any) -> Any:
    """``change()``, run by a store whose lock timeout (1 s) is shorter than the held upload (until the test
    releases it): a change that waits for the upload's locks raises DatabaseBusy."""
    try:
        return change()
    except DatabaseBusy as exc:
        pytest.fail(f"{what} waited for the other session's upload: {exc}")


@pytest.mark.postgres
def test_a_status_change_on_the_exporters_totals_shard_does_not_wait_for_its_upload(
    postgres_url: str, objects: FileStore
) -> None:
    """Another session whose backend falls on the exporting session's shard claims, completes and fails jobs
    (of another owner key and the same model) while the export's upload is held: each is done at once.
    Before, the first of them waited for the upload (DatabaseBusy after its 1 s lock timeout): the export had
    completed its row, its triggers holding that shard's ``processing`` and ``completed`` totals, before the
    put. The generation's own row is not locked through the upload either (df72ff3): its worker's heartbeat
    from another session is done at once."""
    files = _HeldUpload(objects)
    with Store(postgres_url, pool_size=1) as exporter:
        job = claimed(exporter, owner_key="uploader")
        other = _store_on_shard(postgres_url, _backend_pid(exporter) % SHARDS)
        try:
            for n in range(2):
                other.create_generation(
                    f"take {n}", model_name="musicgen-small", duration_seconds=1, owner_key="b"
                )
            thread, outcome = _exporting(exporter, job, files)
            try:
                first = _without_waiting("a claim", lambda: other.claim_next("gpu-b"))
                assert first is not None
                _without_waiting(
                    "a completion",
                    lambda: other.complete_generation(
                        first.id, file_path=f"{first.id}.wav", file_size_bytes=10, worker_id="gpu-b"
                    ),
                )
                second = _without_waiting("a claim", lambda: other.claim_next("gpu-b"))
                assert second is not None
                status = _without_waiting(
                    "a failure",
                    lambda: other.fail(second.id, "out of memory", retry=False, worker_id="gpu-b"),
                )
                assert status is Status.FAILED
                # the exported row is not locked while its upload runs (since df72ff3: put, then recorded;
                # before, this heartbeat, as a cancel, raised DatabaseBusy after the 1 s lock timeout)
                _without_waiting("a heartbeat of the exported row", lambda: other.heartbeat(job.id, "gpu-0"))
            finally:
                files.release.set()
                thread.join(60)
        finally:
            other.close()
        assert len(outcome) == 1 and isinstance(outcome[0], Recorded), outcome
        done = outcome[0]
        assert done.generation.is_completed
        row = exporter.get_generation(job.id)
        assert row is not None and row.status is Status.COMPLETED and row.file_path == done.key
        assert objects.head(str(done.key)).checksum == done.checksum
        stats = exporter.get_database_stats()
        assert (stats.by_status[Status.COMPLETED], stats.by_status[Status.FAILED]) == (2, 1)


@pytest.mark.postgres
def test_a_create_and_claim_on_the_exporting_jobs_owner_key_do_not_wait_for_its_upload(
    postgres_url: str, objects: FileStore
) -> None:
    """Whatever the shards: a job of the owner key whose job is being exported is created and claimed at once
    by another session while that export's upload is held. Before, the export had completed its row before
    the put, its trigger holding the key's ``owner_lanes`` row (one fewer running) through the upload: every
    create and claim of that key's jobs, on any host, waited for it."""
    files = _HeldUpload(objects)
    with Store(postgres_url) as exporter, opened(lambda: Store(postgres_url, busy_timeout=1)) as other:
        job = claimed(exporter, owner_key="tenant-a")
        thread, outcome = _exporting(exporter, job, files)
        try:
            made = _without_waiting(
                "a create",
                lambda: other.create_generation(
                    "the next take", model_name="other-model", duration_seconds=1, owner_key="tenant-a"
                ),
            )
            taken = _without_waiting("a claim", lambda: other.claim_next("gpu-b"))
            assert taken is not None and taken.id == made.id
        finally:
            files.release.set()
            thread.join(60)
        assert len(outcome) == 1 and isinstance(outcome[0], Recorded), outcome
        assert exporter.get_generation(job.id).status is Status.COMPLETED  # type: ignore[union-attr]


@pytest.mark.parametrize("how", ["cancelled", "requeued-and-claimed", "claimed-again-by-its-name"])
def test_a_claim_lost_before_the_export_is_refused_before_anything_is_put(
    db_url: str, where: FileStore, how: str
) -> None:
    """The claim is checked, the row locked, before the upload: a job cancelled, or taken back and claimed by
    another worker, or claimed again under the same worker id, raises what it raised before (Cancelled,
    LeaseLost), puts nothing, and leaves the row as the other party made it."""
    clock = FakeClock()
    with Store(db_url, clock=clock) as store:
        job = claimed(store)
        expected: type[Exception] = LeaseLost
        if how == "cancelled":
            store.cancel(job.id, "the user pressed stop")
            expected, message = Cancelled, "was cancelled while worker 'gpu-0' ran it"
        else:
            clock.advance(61)
            assert store.requeue_expired().requeued == [job.id]
            worker = "gpu-1" if how == "requeued-and-claimed" else "gpu-0"
            again = store.claim_next(worker, lease_seconds=60)
            assert again is not None and again.id == job.id
            message = (
                "is processed by worker 'gpu-1': worker 'gpu-0' no longer owns it"
                if how == "requeued-and-claimed"
                else "was claimed again since this claim"
            )
        before = store.get_generation(job.id)
        with pytest.raises(expected, match=message):
            export_generation(store, job, music(), root=where)
        assert [o.key for o in where.list()] == []  # nothing was put
        assert store.get_generation(job.id) == before
