"""Regressions in maintenance other than backup: cleanup (retention), copy_files (relocate), copy_store
(transfer), usage statistics and the prompts' running totals, on both database backends."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from musicstore import Generation, InvalidInput, Store
from musicstore.filestore import FileStore
from musicstore.maintenance.retention import cleanup
from musicstore.maintenance.transfer import copy_store
from musicstore.ops.storage import record_storage
from tests.conftest import FakeClock, new_job
from tests.test_maintenance_s3 import DATA, RENDITION, in_bucket, keys


def done(store: Any, root: Path, path: str, size: int = 10, **kwargs: Any) -> Generation:
    """A completed generation recording ``path`` (a file of ``size`` bytes under ``root``)."""
    job = new_job(store, **kwargs)
    claimed = store.claim_next("w")
    assert claimed is not None and claimed.id == job.id
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(b"\0" * size)
    result: Generation = store.complete_generation(job.id, file_path=path, file_size_bytes=size)
    return result


def test_the_cutoff_is_exclusive_to_the_microsecond(db_url: str, tmp_path: Path) -> None:
    """ "created before now - older_than": a row created exactly at the cutoff stays, one a microsecond
    earlier goes, on both backends."""
    clock = FakeClock(datetime(2026, 3, 29, 0, 59, 59, 999_999, tzinfo=UTC))
    with Store(db_url, clock=clock) as store:
        early = done(store, tmp_path, "a.wav")
        clock.advance(1e-6)
        edge = done(store, tmp_path, "b.wav")
        clock.advance(timedelta(days=30).total_seconds())
        plan = cleanup(store, tmp_path, older_than=timedelta(days=30))
        assert [d.id for d in plan.deleted] == [early.id]
        applied = cleanup(store, tmp_path, older_than=timedelta(days=30), dry_run=False)
        assert [d.id for d in applied.deleted] == [early.id]
        kept = store.get_generation(edge.id)
        assert kept is not None and kept.is_completed


def test_a_dry_run_says_what_the_run_deletes_when_rows_sharing_a_file_span_pages(
    store: Store, tmp_path: Path
) -> None:
    """Two rows recording one file, on two pages: the run deletes both rows and then the file; its dry run
    must say so (it said kept_shared twice: each page saw the other page's row as staying)."""
    first = done(store, tmp_path, "shared.wav")
    second = done(store, tmp_path, "shared.wav")
    plan = cleanup(store, tmp_path, statuses=["completed"], batch=1)
    applied = cleanup(store, tmp_path, statuses=["completed"], batch=1, dry_run=False)
    assert [d.id for d in applied.deleted] == [first.id, second.id]
    assert [d.file_action for d in applied.deleted] == ["kept_shared", "deleted"]
    assert not (tmp_path / "shared.wav").exists()
    assert [d.file_action for d in plan.deleted] == ["kept_shared", "would_delete"]
    assert (plan.files_deleted, plan.bytes_freed) == (applied.files_deleted, applied.bytes_freed) == (1, 10)


def test_a_dry_run_in_a_bucket_says_what_the_run_deletes_when_rows_sharing_an_object_span_pages(
    store: Store, objects: FileStore
) -> None:
    first = in_bucket(store, objects, key="shared.wav")
    second = in_bucket(store, objects, key="shared.wav")
    plan = cleanup(store, objects, statuses=["completed"], batch=1)
    assert [d.file_action for d in plan.deleted] == ["kept_shared", "would_delete"]
    applied = cleanup(store, objects, statuses=["completed"], batch=1, dry_run=False)
    assert [(d.id, d.file_action) for d in applied.deleted] == [
        (first.id, "kept_shared"),
        (second.id, "deleted"),
    ]
    assert (
        (plan.files_deleted, plan.bytes_freed)
        == (applied.files_deleted, applied.bytes_freed)
        == (1, len(DATA))
    )
    assert "shared.wav" not in keys(objects)


OTHER_TEXT = [
    ("generations", "stage", "decoding\x00"),
    ("generations", "owner_key", "user\x00"),
    ("generations", "idempotency_key", "click\x00"),
    ("generations", "storage_url", "s3://bucket/mu\x00sic"),
    ("renditions", "storage_key", "2026/01/01/x\x00.mp3"),
    ("renditions", "profile", "stream\x00ing"),
]


@pytest.fixture(params=["sqlite", "postgres"])
def target_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """An empty migrated store on each backend, beside the SQLite source."""
    if request.param == "sqlite":
        url = sqlite_url.replace(".db", "-target.db")
        Store(url, migrate=True).close()
        return url
    return str(request.getfixturevalue("postgres_url"))


@pytest.mark.parametrize("case", OTHER_TEXT, ids=[f"{t}.{c}" for t, c, _ in OTHER_TEXT])
def test_copy_store_checks_every_column_before_it_copies(
    sqlite_url: str, target_url: str, clock: FakeClock, case: tuple[str, str, str]
) -> None:
    """copy_store promises to check every row first and copy nothing when one cannot be stored: a NUL in
    a generation's stage, owner or idempotency key, storage URL or checksum, or in a rendition's text, got
    past the check, so the copy into PostgreSQL failed with a DatabaseError after earlier pages were in."""
    table, column, value = case
    with Store(sqlite_url, clock=clock) as source:
        for i in range(5):
            new_job(source, f"prompt {i}", owner_key="user", idempotency_key=f"click-{i}")
        job = source.claim_next("w")
        assert job is not None
        source.report_progress(job.id, "w", 0.5, stage="decoding")
        made = source.complete_generation(job.id, file_path="a/b.wav", file_size_bytes=8)
        source.run(record_storage, job.id, storage_url="s3://bucket/music", key="a/b.wav", checksum="ab" * 32)
        source.create_rendition(
            made.id,
            storage_key="a/b.streaming.0123abcd.mp3",
            file_size_bytes=4,
            checksum="cd" * 32,
            **RENDITION,
        )
        row_id = job.id if table == "generations" else source.list_renditions(job.id)[0].id
        with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
            conn.execute(f"UPDATE {table} SET {column} = ? WHERE id = ?", (value, row_id))
        with Store(target_url) as target:
            with pytest.raises(InvalidInput, match=rf"{table[:-1]} '?{row_id}'?: .*{column}"):
                copy_store(source, target, batch=2)
            assert target.count_generations() == 0 and target.get_most_used_prompts(10) == []
