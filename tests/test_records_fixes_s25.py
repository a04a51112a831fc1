"""Fixes of session 25 in records and maintenance (copy_files, copy_store, cleanup, reconcile, backup): each
test failed before its fix, on both database backends (and on a folder and a bucket where files are involved).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from musicstore import Generation, Store
from musicstore.filestore import FileStore, open_filestore
from musicstore.maintenance.relocate import copy_files
from musicstore.ops.storage import get_storage, record_storage
from tests.conftest import FakeClock, new_job


def completed_at(store: Store, files: FileStore, clock: FakeClock, key: str, data: bytes) -> Generation:
    """A completed generation whose master is ``data`` at ``key`` in ``files``, recorded there."""
    clock.advance(1)
    job = new_job(store)
    claimed = store.claim_next("gpu-0")
    assert claimed is not None and claimed.id == job.id
    files.put(key, data)
    done: Generation = store.complete_generation(job.id, file_path=key, file_size_bytes=len(data))
    checksum = hashlib.sha256(data).hexdigest()
    store.run(record_storage, job.id, storage_url=files.url, key=key, checksum=checksum)
    return done


def _copied(report: Any) -> Any:
    return (
        report.rows_updated,
        report.objects_copied,
        report.objects_present,
        report.bytes_copied,
        report.peaks_copied,
        report.skipped_count,
        [(s.id, s.reason) for s in report.skipped],
    )


def test_a_dry_copy_refuses_a_source_of_the_right_size_and_other_bytes_as_the_run_does(
    store: Store, where: FileStore, clock: FakeClock, tmp_path: Path
) -> None:
    """A master replaced by other bytes of the same size: the run streams it against the row's SHA-256 and
    skips the row (nothing written); the dry run read no byte and said it would copy it (1 row, 1 object).
    The dry run now reads the source as the run does."""
    good = completed_at(store, where, clock, "2026/01/01/good.wav", b"RIFF" + b"\1" * 40)
    bad = completed_at(store, where, clock, "2026/01/01/bad.wav", b"RIFF" + b"\2" * 40)
    where.delete("2026/01/01/bad.wav")
    where.put("2026/01/01/bad.wav", b"RIFF" + b"\3" * 40)  # same size, other bytes
    target = open_filestore((tmp_path / "moved").as_uri())
    dry = copy_files(store, target, dry_run=True)
    real = copy_files(store, target)
    assert _copied(real)[:6] == (1, 1, 0, 44, 0, 1)
    assert real.skipped[0].id == bad.id and "ChecksumMismatch" in real.skipped[0].reason
    assert _copied(dry) == _copied(real)  # it said (2, 2, 0, 88, 0, 0, [])
    assert sorted(o.key for o in target.list()) == ["2026/01/01/good.wav"]
    assert store.run(get_storage, good.id).storage_url == target.url
    assert store.run(get_storage, bad.id).storage_url == where.url
