"""The store's layer, session 31: a COMMIT whose answer was lost, a batch's rows put back after an ordinary
error before its items start, NaN kept out of the float columns, and the dashboard's model filter indexed."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from musicstore import (
    AsyncStore,
    CommitUnknown,
    DatabaseError,
    Generation,
    InvalidInput,
    Status,
    Store,
    migrate,
    ops,
)
from musicstore.errors import StorageError
from musicstore.ops.renditions import Rendition
from musicstore.ops.transfer import import_renditions
from musicstore.recording import export_batch_generations
from tests.conftest import until
from tests.test_schema import _from, _rollback

_HOLD = 3131  # the advisory lock the deferred trigger waits for, at COMMIT


def _hold_commits(url: str) -> psycopg.Connection[Any]:
    """A deferred trigger on ``generations`` that waits, at COMMIT, for an advisory lock the returned
    connection holds: a transaction that inserted a generation stays in its COMMIT until it is let go."""
    conn = psycopg.connect(url, autocommit=True)
    conn.execute(
        "CREATE FUNCTION s31_hold() RETURNS trigger LANGUAGE plpgsql AS"
        f" $$ BEGIN PERFORM pg_advisory_xact_lock({_HOLD}); RETURN NULL; END $$"
    )
    conn.execute(
        "CREATE CONSTRAINT TRIGGER s31_hold AFTER INSERT ON generations DEFERRABLE INITIALLY DEFERRED"
        " FOR EACH ROW EXECUTE FUNCTION s31_hold()"
    )
    conn.execute(f"SELECT pg_advisory_lock({_HOLD})")
    return conn


def waiting_for_a_lock(conn: psycopg.Connection[Any], query: str) -> int | None:
    """The backend of this database (another than ``conn``'s) waiting for a lock in a statement that
    matches ``query`` (``ILIKE``), if one is."""
    row = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND wait_event_type = 'Lock' AND query ILIKE %s",
        (query,),
    ).fetchone()
    return None if row is None else int(row[0])


def lost_mid_write(
    watcher: psycopg.Connection[Any], query: str, write: Callable[[], object]
) -> list[BaseException]:
    """Runs ``write`` in a thread until its backend waits for a lock in a statement matching ``query``, ends
    that backend (``pg_terminate_backend``, as a restart or a failover would) and returns what ``write``
    raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            write()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    until(lambda: waiting_for_a_lock(watcher, query) is not None or not thread.is_alive())
    pid = waiting_for_a_lock(watcher, query)
    assert pid is not None, raised  # the write waits for the lock
    watcher.execute("SELECT pg_terminate_backend(%s, 60000)", (pid,))
    thread.join(60)
    assert not thread.is_alive()
    return raised


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("way", ["operation", "block"])
def test_a_connection_lost_during_commit_says_the_outcome_is_unknown(
    postgres_url: str, kind: str, way: str
) -> None:
    """The server ended the connection while a write's COMMIT was in flight (a restart, a failover,
    ``pg_terminate_backend``): the store raised a plain DatabaseError ('terminating connection due to
    administrator command'), as for any failed statement, which a caller reads as 'nothing happened'. The
    server may have committed before the answer was lost: it is ``CommitUnknown`` now (a DatabaseError),
    saying the transaction may or may not have been committed; a write, or a ``transaction()`` block, on
    ``Store`` and ``AsyncStore``. The COMMIT is held by a deferred trigger until the server ends it."""
    holder = _hold_commits(postgres_url)

    def write() -> None:
        if kind == "sync":
            with Store(postgres_url) as store:
                if way == "operation":
                    store.create_generation("lost commit", model_name="m", duration_seconds=1)
                else:
                    with store.transaction() as tx:
                        tx.create_generation("lost commit", model_name="m", duration_seconds=1)
        else:

            async def main() -> None:
                async with AsyncStore(postgres_url) as store:
                    if way == "operation":
                        await store.create_generation("lost commit", model_name="m", duration_seconds=1)
                    else:
                        async with store.transaction() as tx:
                            await tx.create_generation("lost commit", model_name="m", duration_seconds=1)

            asyncio.run(main())

    try:
        raised = lost_mid_write(holder, "COMMIT", write)  # the write waits in its COMMIT
    finally:
        holder.execute(f"SELECT pg_advisory_unlock({_HOLD})")
        holder.close()
    assert len(raised) == 1, raised
    error = raised[0]
    assert isinstance(error, CommitUnknown) and isinstance(error, DatabaseError), repr(error)
    assert "may or may not have been committed" in str(error)


def _row(store: Store, generation_id: str) -> Generation:
    row = store.get_generation(generation_id)
    assert row is not None
    return row


def test_a_batch_whose_root_cannot_be_opened_puts_its_rows_back(store: Store, tmp_path: Path) -> None:
    """``export_batch_generations`` with a root that cannot be opened (an output folder under a regular
    file: ``StorageError``, raised before any item started): its claimed rows stayed processing until their
    lease expired, where a Ctrl-C there put them back. Any error before the items start puts them back now
    (pending at once, the error named, the attempt counted); a caller's mistake (``InvalidInput``) still
    leaves them claimed, to call again."""
    for n in range(2):
        store.create_generation(f"batch {n}", model_name="m", duration_seconds=1, sample_rate=8000)
    batch = store.claim_batch("gpu-0", 2)
    assert len(batch) == 2
    audio = np.zeros((2, 1, 8000), dtype=np.float32)
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    with pytest.raises(InvalidInput):  # a caller's mistake: the rows stay claimed
        export_batch_generations(store, batch, audio, root=tmp_path, ext="not-a-format")
    assert {_row(store, g.id).status for g in batch} == {Status.PROCESSING}
    with pytest.raises(StorageError):
        export_batch_generations(store, batch, audio, root=f"file://{blocker}/out")
    for generation in batch:
        row = _row(store, generation.id)
        assert row.status is Status.PENDING and row.worker_id is None
        assert row.error_message is not None and "StorageError" in row.error_message
    again = store.claim_batch("gpu-1", 2)  # claimable at once, by any worker
    assert {g.id for g in again} == {g.id for g in batch}


def _rendition(generation_id: str, **changes: Any) -> Rendition:
    """A rendition row as another store would hand it to ``import_renditions``."""
    row = Rendition(
        id=str(uuid.uuid4()),
        generation_id=generation_id,
        format="mp3",
        codec="libmp3lame",
        bitrate_mode="variable",
        bitrate_kbps=None,
        quality=2.0,
        sample_rate=44100,
        channels=2,
        settings={"quality": 2.0},
        profile="streaming",
        target_lufs=-14.0,
        ceiling_dbtp=-1.0,
        storage_key=f"renditions/{uuid.uuid4()}.mp3",
        file_size_bytes=1000,
        duration_seconds=1.0,
        loudness_lufs=-14.2,
        true_peak_dbtp=-1.5,
        loudness_status="normalized",
        checksum="0" * 64,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return dataclasses.replace(row, **changes)


@pytest.mark.parametrize("field", ["generation_time_seconds", "duration_seconds", "progress"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_an_imported_generation_with_a_nan_is_refused(store: Store, field: str, value: float) -> None:
    """``import_rows`` (``copy_store``'s writes) checked the text fields of the rows it imports, not their
    floats: a NaN ``generation_time_seconds`` was stored as NULL on SQLite without a word, refused on
    PostgreSQL as 'bigint out of range' (the totals' trigger), a NaN ``duration_seconds`` refused as a NOT
    NULL constraint on SQLite, naming no NaN. Now InvalidInput names the row and the field, before anything
    is written."""
    job = store.create_generation("imported", model_name="m", duration_seconds=1)
    changes: dict[str, Any] = {"id": str(uuid.uuid4()), field: value}
    imported = dataclasses.replace(job, **changes)
    with pytest.raises(InvalidInput, match=f"generation '{imported.id}': {field} must be a finite number"):
        store.run(ops.import_rows, [], [imported])
    assert store.get_generation(imported.id) is None


@pytest.mark.parametrize("field", ["quality", "loudness_lufs", "true_peak_dbtp", "duration_seconds"])
def test_an_imported_rendition_with_a_nan_is_refused(store: Store, field: str) -> None:
    """The same for ``import_renditions``: a NaN ``quality`` was stored as NULL on SQLite and as NaN on
    PostgreSQL (its CHECK ``quality >= 0`` holds for NaN, which PostgreSQL orders above every number)."""
    job = store.create_generation("rendered", model_name="m", duration_seconds=1)
    rendition = _rendition(job.id, **{field: math.nan})
    with pytest.raises(InvalidInput, match=f"rendition '{rendition.id}': {field} must be a finite number"):
        store.run(import_renditions, [rendition])
    assert store.list_renditions(job.id) == []


@pytest.mark.parametrize(
    "table,column", [("renditions", "quality"), ("generations", "generation_time_seconds")]
)
@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_postgres_refuses_a_nan_written_by_sql(
    postgres_url: str, table: str, column: str, value: str
) -> None:
    """PostgreSQL orders 'NaN' above every number, so ``CHECK (quality >= 0)`` held for a NaN (and for
    infinity): an UPDATE by hand stored one in ``renditions.quality``; ``generation_time_seconds`` was
    refused only by the totals trigger, as 'bigint out of range'. Migration 0027's CHECKs refuse both (a
    CheckViolation naming the constraint)."""
    with Store(postgres_url) as store:
        job = store.create_generation("rendered", model_name="m", duration_seconds=1)
        store.run(import_renditions, [_rendition(job.id)])
    row_id = job.id if table == "generations" else store_rendition_id(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.CheckViolation, match="_finite"):
            conn.execute(f"UPDATE {table} SET {column} = %s::float8 WHERE id = %s", (value, row_id))
        conn.execute(f"UPDATE {table} SET {column} = 2.5 WHERE id = %s", (row_id,))  # a number passes


def store_rendition_id(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT id FROM renditions").fetchone()
    assert row is not None
    return str(row[0])


def test_0027_rolls_back_and_applies_again(db_url: str) -> None:
    """Both backends: 0027 rolls back (the index by model dropped; on PostgreSQL the CHECKs too) and applies
    again; a page of one model reads as before."""
    _rollback(db_url, "0027")
    assert migrate(db_url) == _from("0027")
    with Store(db_url) as store:
        job = store.create_generation("after 0027", model_name="rare", duration_seconds=1)
        assert [g.id for g in store.list_generations(model_name="rare").items] == [job.id]
