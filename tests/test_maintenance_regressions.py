"""Regressions in maintenance other than backup: cleanup (retention), copy_files (relocate), copy_store
(transfer), usage statistics and the prompts' running totals, on both database backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from musicstore import Generation, Store
from musicstore.filestore import FileStore
from musicstore.maintenance.retention import cleanup
from tests.conftest import FakeClock, new_job
from tests.test_maintenance_s3 import DATA, in_bucket, keys


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
