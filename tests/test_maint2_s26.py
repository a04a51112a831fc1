"""Session 26 maintenance hunt (maint2): files and rows stay consistent through retention when renditions and
peaks files are shared between rows (a key two rows record, a rendition at a master's key), in a folder and a
bucket, on SQLite and PostgreSQL; a dry run says what its run does."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from musicstore import Generation, Store
from musicstore.filestore import FileStore
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.retention import cleanup
from musicstore.ops.storage import record_storage
from tests.conftest import new_job

ARCHIVE: dict[str, Any] = {
    "settings": {"format": "flac", "sample_rate": 32_000, "channels": 2, "bit_depth": 16},
    "profile": "archive", "target_lufs": -14.0, "ceiling_dbtp": -1.0, "duration_seconds": 1.0,
    "loudness_lufs": -14.0, "true_peak_dbtp": -1.5, "loudness_status": "normalized",
}  # fmt: skip


def _done(store: Store, where: FileStore, key: str) -> Generation:
    """A completed generation whose master ``key`` is put in ``where`` and recorded there."""
    job = new_job(store)
    assert store.claim_next("w") is not None
    saved = where.put(key, b"fLaC" + key.encode())
    done = store.complete_generation(job.id, file_path=key, file_size_bytes=saved.size)
    assert saved.checksum is not None
    store.run(record_storage, job.id, storage_url=where.url, key=key, checksum=saved.checksum)
    return done


def _rendition_at(store: Store, owner: Generation, key: str) -> None:
    """Record a rendition of ``owner`` at ``key`` (a file that is there: another generation's master)."""
    body = b"fLaC" + key.encode()
    store.create_rendition(
        owner.id, storage_key=key, file_size_bytes=len(body), checksum=hashlib.sha256(body).hexdigest(),
        **ARCHIVE,
    )  # fmt: skip


def _summary(report: Any) -> list[tuple[str, str, int]]:
    return [
        (d.id, d.file_action.replace("would_delete", "deleted"), d.renditions_deleted) for d in report.deleted
    ]


def test_cleanup_keeps_a_master_that_a_kept_generation_records_as_a_rendition(
    store: Store, where: FileStore
) -> None:
    """A's master is also B's rendition (B kept): deleting A keeps the file; the dry run says so too."""
    first = _done(store, where, "album/first.flac")
    second = _done(store, where, "album/second.flac")
    _rendition_at(store, second, first.file_path or "")
    assert reconcile(store, where).consistent
    budget = len(b"fLaCalbum/second.flac") + len(b"fLaCalbum/first.flac")  # B and its rendition stay

    plan = cleanup(store, where, statuses=["completed"], max_total_bytes=budget)
    run = cleanup(store, where, statuses=["completed"], max_total_bytes=budget, dry_run=False)
    assert _summary(plan) == _summary(run) == [(first.id, "kept_shared", 0)]
    assert (plan.files_deleted, run.files_deleted) == (0, 0)
    assert b"".join(where.get("album/first.flac")) == b"fLaCalbum/first.flac"
    assert reconcile(store, where).consistent


@pytest.mark.parametrize("batch", [1, 10])
@pytest.mark.parametrize("rendition_first", [True, False])
def test_cleanup_dry_run_counts_a_rendition_at_a_master_once_as_its_run_does(
    store: Store, where: FileStore, batch: int, rendition_first: bool
) -> None:
    """B has its rendition at A's master; both go, in one page or one per page, either first. The run removes
    the file once (kept while the other row records it, or found gone); the dry run said "would delete" for
    it twice in one page (3 files for 2), and with a page each kept it as shared with B's row, which its
    run had deleted on the page before (1 file for 2)."""
    if rendition_first:
        second = _done(store, where, "album/second.flac")
        first = _done(store, where, "album/first.flac")
    else:
        first = _done(store, where, "album/first.flac")
        second = _done(store, where, "album/second.flac")
    _rendition_at(store, second, first.file_path or "")
    assert reconcile(store, where).consistent

    plan = cleanup(store, where, statuses=["completed"], batch=batch)
    run = cleanup(store, where, statuses=["completed"], batch=batch, dry_run=False)
    assert sorted(d.id for d in run.deleted) == sorted([first.id, second.id])
    assert _summary(plan) == _summary(run)
    assert (plan.files_deleted, plan.bytes_freed) == (run.files_deleted, run.bytes_freed) == (2, 41)
    assert list(where.list("")) == [] and reconcile(store, where).consistent
