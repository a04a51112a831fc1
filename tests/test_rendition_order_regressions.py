"""A rendition's upload to an object store, and what the other sessions of the database wait for meanwhile.

``render_generation`` puts each rendition inside the transaction that records its row. On PostgreSQL that
transaction inserted the row first, then uploaded: the insert's trigger had already taken its session's
shard of ``rendition_totals`` (``mod(pg_backend_pid(), 16)``, migration 0011), held for the whole upload, so
another session's rendition insert or delete on that shard (a render of any other generation, a cascading
delete of a generation with renditions) waited for it, or failed with DatabaseBusy. The generation's row is
now locked and the request checked first (no row for these settings, none at this key: what the unique keys
would refuse), the object put, and only then the row inserted: the shard is held for the moments before the
commit. Two renders of one request still end with one row and one intact object (the second waits for the
generation's row, then returns the first one's row), and a generation deleted meanwhile still refuses the
render before anything is put.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from musicstore import DatabaseBusy, NotFound, Store
from musicstore.filestore import FileStore, ObjectInfo
from musicstore.maintenance.usage import storage_stats
from musicstore.ops import Rendition
from musicstore.rendering import render_generation
from musicstore.storage_names import GENERATION_FIELD
from tests.test_rendition_store import completed, figures
from tests.test_renditions_s3 import exported, keys
from tests.test_upload_order_regressions import SHARDS, _backend_pid, _store_on_shard, _without_waiting
from tests.wrapped_stores import Wrapped


class _HeldRendition(Wrapped):
    """A real object store whose first put of a rendition (a key with ``.streaming.``) waits until
    ``release`` is set, once it has said so (``uploading``): an upload in flight. The rest is the store's."""

    def __init__(self, inner: FileStore) -> None:
        super().__init__(inner)
        self.uploading, self.release = threading.Event(), threading.Event()

    def put(self, key: str, data: Any, **options: Any) -> ObjectInfo:
        if ".streaming." in key and not self.uploading.is_set():
            self.uploading.set()
            assert self.release.wait(60), "the test never released the upload"
        return self.inner.put(key, data, **options)


def _rendering(
    store: Store, generation_id: str, files: Any, **kwargs: Any
) -> tuple[threading.Thread, list[Any]]:
    """``render_generation`` of one FLAC rendition on a thread, started; the list gets its outcome (the rows
    or the exception)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(render_generation(store, generation_id, root=files, formats=["flac"], **kwargs))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _upload_in_flight(files: _HeldRendition, thread: threading.Thread, outcome: list[Any]) -> None:
    if not files.uploading.wait(60):
        files.release.set()
        thread.join(60)
        pytest.fail(f"the render never started its upload: {outcome}")


def _waits_for_a_lock(url: str, pid: int, thread: threading.Thread) -> None:
    """Until the backend ``pid`` waits for a lock another transaction holds (pg_locks: not granted)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(600):
            row = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted", [pid]
            ).fetchone()
            if row is not None and row[0]:
                return
            if not thread.is_alive():
                pytest.fail("the second render ended without waiting for the first one's lock")
            time.sleep(0.1)
    pytest.fail(f"backend {pid} never waited for a lock")


@pytest.mark.postgres
def test_a_rendition_write_on_the_renderers_totals_shard_does_not_wait_for_its_upload(
    postgres_url: str, objects: FileStore
) -> None:
    """Another session whose backend falls on the rendering session's shard records a rendition of another
    generation and deletes a generation with a rendition (its cascade deletes that row) while the render's
    upload is held: each is done at once. Before, both waited for the upload (DatabaseBusy after the 1 s lock
    timeout): the render had inserted its row, its trigger holding that shard of ``rendition_totals``, before
    the put. The rendered generation's own row is locked through the upload all the same: a rendition of it
    recorded by another session waits, as before."""
    files = _HeldRendition(objects)
    with Store(postgres_url, pool_size=1) as renderer:
        done = exported(renderer, objects)
        other = _store_on_shard(postgres_url, _backend_pid(renderer) % SHARDS)
        try:
            recorded, doomed = completed(other, 2)
            gone = other.create_rendition(doomed, **figures(f"2026/{doomed}.streaming.a.mp3"))
            thread, outcome = _rendering(renderer, done.id, files)
            try:
                _upload_in_flight(files, thread, outcome)
                made = _without_waiting(
                    "a rendition's insert",
                    lambda: other.create_rendition(recorded, **figures(f"2026/{recorded}.streaming.a.mp3")),
                )
                _without_waiting("a generation's delete", lambda: other.delete_generation(doomed))
                with pytest.raises(DatabaseBusy):  # the rendered generation's row is locked while it uploads
                    other.create_rendition(done.id, **figures(f"2026/{done.id}.streaming.b.mp3"))
            finally:
                files.release.set()
                thread.join(60)
        finally:
            other.close()
        assert len(outcome) == 1 and isinstance(outcome[0], list), outcome
        (rendition,) = outcome[0]
        assert renderer.list_renditions(done.id) == [rendition]
        assert renderer.list_renditions(recorded) == [made]
        assert renderer.get_rendition(gone.id) is None
        head = objects.head(rendition.storage_key)
        assert head.checksum == rendition.checksum and head.size == rendition.file_size_bytes
        stats = storage_stats(renderer)
        assert stats.renditions == 2
        assert stats.rendition_bytes == rendition.file_size_bytes + made.file_size_bytes


@pytest.mark.postgres
def test_two_renders_of_one_request_at_once_end_with_one_row_and_its_object(
    postgres_url: str, objects: FileStore
) -> None:
    """Two sessions (two stores, as two hosts) render the same request of one generation at once: the second
    starts while the first's upload is in flight (no row committed: it encodes too), waits for the
    generation's row, then finds the first one's row and returns it, having put nothing. One row, one object:
    the first's bytes, marked with the generation."""
    files = _HeldRendition(objects)
    with Store(postgres_url) as first, Store(postgres_url, pool_size=1, busy_timeout=60) as second:
        done = exported(first, objects)
        before, pid = keys(objects), _backend_pid(second)  # its one connection, before it is in use
        thread, outcome = _rendering(first, done.id, files)
        try:
            _upload_in_flight(files, thread, outcome)
            late, late_outcome = _rendering(second, done.id, objects)
            try:
                _waits_for_a_lock(postgres_url, pid, late)
            finally:
                files.release.set()
                thread.join(60)
                late.join(60)
        finally:
            files.release.set()
        assert len(outcome) == 1 and isinstance(outcome[0], list), outcome
        assert len(late_outcome) == 1 and isinstance(late_outcome[0], list), late_outcome
        (rendition,) = outcome[0]
        assert late_outcome[0] == [rendition]
        assert first.list_renditions(done.id) == [rendition]
        assert keys(objects) == before | {rendition.storage_key}
        head = objects.head(rendition.storage_key)
        assert head.checksum == rendition.checksum and head.metadata[GENERATION_FIELD] == done.id
        assert isinstance(rendition, Rendition)


@pytest.mark.postgres
def test_a_generation_deleted_while_its_render_waits_refuses_it_before_anything_is_put(
    postgres_url: str, objects: FileStore
) -> None:
    """Another session deletes the generation in a transaction that is still open when the render comes to
    record its rendition: the render waits for the row, then raises NotFound, and puts nothing."""
    with Store(postgres_url) as owner, Store(postgres_url, pool_size=1, busy_timeout=60) as renderer:
        done = exported(owner, objects)
        before, pid = keys(objects), _backend_pid(renderer)  # its one connection, before it is in use
        deleting, commit = threading.Event(), threading.Event()
        errors: list[BaseException] = []

        def delete() -> None:
            try:
                with owner.transaction() as tx:
                    tx.delete_generation(done.id)
                    deleting.set()
                    assert commit.wait(60)
            except BaseException as exc:
                errors.append(exc)
                deleting.set()

        deleter = threading.Thread(target=delete)
        deleter.start()
        try:
            assert deleting.wait(60) and not errors, errors
            thread, outcome = _rendering(renderer, done.id, objects)
            try:
                _waits_for_a_lock(postgres_url, pid, thread)
            finally:
                commit.set()
                deleter.join(60)
                thread.join(60)
        finally:
            commit.set()
        assert not errors, errors
        assert len(outcome) == 1 and isinstance(outcome[0], NotFound), outcome
        assert keys(objects) == before  # nothing put
