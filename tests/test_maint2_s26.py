"""Session 26 maintenance hunt (maint2): files and rows stay consistent through retention when renditions and
peaks files are shared between rows (a key two rows record, a rendition at a master's key), in a folder and a
bucket, on SQLite and PostgreSQL; a dry run says what its run does."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from musicstore import Generation, Store
from musicstore.filestore import FileStore, LocalFileStore
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.relocate import copy_files
from musicstore.maintenance.retention import cleanup
from musicstore.ops.renditions import merge_metadata
from musicstore.ops.storage import record_storage
from tests.conftest import new_job

ARCHIVE: dict[str, Any] = {
    "settings": {"format": "flac", "sample_rate": 32_000, "channels": 2, "bit_depth": 16},
    "profile": "archive", "target_lufs": -14.0, "ceiling_dbtp": -1.0, "duration_seconds": 1.0,
    "loudness_lufs": -14.0, "true_peak_dbtp": -1.5, "loudness_status": "normalized",
}  # fmt: skip


def _done(store: Store, where: FileStore, key: str, model: str = "musicgen-small") -> Generation:
    """A completed generation of ``model`` whose master ``key`` is put in ``where`` and recorded there."""
    job = new_job(store, model_name=model)
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


def _peaks_beside(store: Store, where: FileStore, owner: Generation) -> str:
    """Put peaks beside ``owner``'s master, named after its stem, and record them in its row."""
    folder, _, name = (owner.file_path or "").rpartition("/")
    key = f"{folder}/{name.rpartition('.')[0]}.peaks.256.8.json"
    saved = where.put(key, b'{"data": []}')
    record = {"key": key, "bytes": saved.size, "sha256": saved.checksum}
    store.run(merge_metadata, owner.id, {"peaks": record})
    return key


@pytest.mark.parametrize("batch", [1, 10])
@pytest.mark.parametrize("rendition_first", [True, False])
def test_cleanup_takes_the_peaks_beside_a_master_whose_kin_key_holds_only_a_rendition(
    store: Store, where: FileStore, batch: int, rendition_first: bool
) -> None:
    """A master ``a/x.wav`` with its peaks ``a/x.peaks.256.8.json``, and another generation's rendition at
    ``a/x.flac`` (no master there: a rendition has no peaks). Cleanup kept the peaks of a master of the same
    stem and the other type that stays recorded, and counted a rendition as such a master: the peaks were
    kept (no one's, then) while the rendition stayed, and a dry run over a page each kept them too when its
    run, which had deleted the rendition's row on the page before, removed them."""
    if rendition_first:
        other = _done(store, where, "b/other.flac")
        wav = _done(store, where, "a/x.wav", "wav-model")
    else:
        wav = _done(store, where, "a/x.wav", "wav-model")
        other = _done(store, where, "b/other.flac")
    where.put("a/x.flac", b"fLaCa/x.flac")
    _rendition_at(store, other, "a/x.flac")
    peaks = _peaks_beside(store, where, wav)
    assert reconcile(store, where).consistent

    only = cleanup(store, where, model_name="wav-model", batch=batch)  # the wav alone: a dry run
    assert [(d.id, d.peaks_deleted) for d in only.deleted] == [(wav.id, 1)]

    plan = cleanup(store, where, statuses=["completed"], batch=batch)
    run = cleanup(store, where, statuses=["completed"], batch=batch, dry_run=False)
    assert [(d.id, d.peaks_deleted) for d in run.deleted if d.id == wav.id] == [(wav.id, 1)]
    assert _summary(plan) == _summary(run) and plan.peaks_files_deleted == run.peaks_files_deleted == 1
    assert (plan.files_deleted, plan.bytes_freed) == (run.files_deleted, run.bytes_freed)
    assert not any(key == peaks for key in (o.key for o in where.list("")))
    assert list(where.list("")) == [] and reconcile(store, where).consistent


@pytest.mark.parametrize("batch", [1, 10])
def test_copy_files_dry_run_finds_a_rendition_at_an_earlier_rows_master_present_as_its_run_does(
    store: Store, where: FileStore, tmp_path: Path, batch: int
) -> None:
    """X's master at its layout name ``a/<X id>.flac`` is also the key of a rendition of Y (copied after X,
    id order). The run finds Y's rendition there, X's copy (present); the dry run held only the objects it
    would copy whose name is not their own generation's, so it counted that object copied twice."""
    source = LocalFileStore(tmp_path / "src")
    first = new_job(store)
    assert store.claim_next("w") is not None
    second = _done(store, source, "b/y.flac")
    key = f"a/{first.id}.flac"
    saved = source.put(key, b"fLaC" + key.encode())
    store.complete_generation(first.id, file_path=key, file_size_bytes=saved.size)
    assert saved.checksum is not None
    store.run(record_storage, first.id, storage_url=source.url, key=key, checksum=saved.checksum)
    _rendition_at(store, second, key)
    assert first.id < second.id  # copied first

    plan = copy_files(store, where, dry_run=True, batch=batch)
    run = copy_files(store, where, batch=batch)
    counts = [(r.rows_updated, r.objects_copied, r.objects_present, r.bytes_copied) for r in (plan, run)]
    assert counts[0] == counts[1] == (2, 2, 1, saved.size + len(b"fLaCb/y.flac"))
    assert reconcile(store, where).consistent


def test_reconcile_keeps_the_peaks_at_a_deleted_generations_name_that_a_kept_row_records(
    store: Store, where: FileStore
) -> None:
    """A master at A's layout name ``a/<A id>.flac`` that B records too (a shared custom path): peaks of the
    same master are the same bytes, so B's ``render_peaks`` finds A's ``a/<A id>.peaks.256.8.json`` and
    records it. Once A is deleted (cleanup keeps the master and the peaks: B records them), a folder's
    reconcile took the peaks for A's, an orphan, by their name alone: its repair removed B's recorded peaks
    (a bucket's merge met B's record at that key and kept them)."""
    first = new_job(store)
    assert store.claim_next("w") is not None
    key = f"a/{first.id}.flac"
    saved = where.put(key, b"fLaC" + key.encode())
    assert saved.checksum is not None
    done = store.complete_generation(first.id, file_path=key, file_size_bytes=saved.size)
    store.run(record_storage, first.id, storage_url=where.url, key=key, checksum=saved.checksum)
    second = new_job(store, model_name="kept")
    assert store.claim_next("w") is not None
    store.complete_generation(second.id, file_path=key, file_size_bytes=saved.size)
    store.run(record_storage, second.id, storage_url=where.url, key=key, checksum=saved.checksum)
    peaks = _peaks_beside(store, where, done)
    recorded = store.get_generation(first.id)
    assert recorded is not None
    store.run(merge_metadata, second.id, {"peaks": recorded.metadata["peaks"]})
    assert peaks == f"a/{first.id}.peaks.256.8.json" and reconcile(store, where).consistent

    gone = cleanup(store, where, model_name="musicgen-small", dry_run=False)
    assert [(d.id, d.file_action, d.peaks_deleted) for d in gone.deleted] == [(first.id, "kept_shared", 0)]
    found = reconcile(store, where)
    assert found.consistent, found
    reconcile(store, where, repair=True, delete_orphans=True)
    assert b"".join(where.get(peaks)) == b'{"data": []}'
    assert reconcile(store, where).consistent
