"""Session 26 maintenance hunt: reconcile, retention, backup and copies over years of drift (folder and
bucket, SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from musicstore import Store
from musicstore.filestore import FileStore, LocalFileStore
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.retention import cleanup
from musicstore.maintenance.usage import disk_usage
from musicstore.ops.storage import record_storage
from tests.conftest import new_job

KILLED_PUT = textwrap.dedent(
    """
    import os, signal, sys
    from musicstore.filestore import LocalFileStore

    def body():
        yield b"{" * 1000
        os.kill(os.getpid(), signal.SIGKILL)  # killed in the middle of the put, as a power cut would
        yield b"}"

    LocalFileStore(sys.argv[1]).put(sys.argv[2], body(), content_type="application/json")
    """
)


def test_a_peaks_put_killed_beside_a_master_at_a_custom_path_leaves_a_temp_reconcile_removes(
    sqlite_url: str, tmp_path: Path
) -> None:
    """``render_peaks`` (and ``copy_files`` into a folder) puts a custom-path master's peaks file at
    ``album/track 01.peaks.256.8.json`` through the folder store, which writes ``.<name>.<8 hex>.tmp`` first;
    killed midway, that temp was a file of another type for reconcile and ``disk_usage`` (never removed,
    while the store's own ``uploads()`` listed it as an upload in flight). A layout master's peaks temp was
    removed as stale: both are now."""
    files = LocalFileStore(tmp_path / "audio")
    with Store(sqlite_url) as store:
        job = new_job(store)
        claimed = store.claim_next("w")
        assert claimed is not None and claimed.id == job.id
        key = "album/track 01.wav"
        saved = files.put(key, b"RIFF" + b"\0" * 60)
        store.complete_generation(job.id, file_path=key, file_size_bytes=saved.size)
        assert saved.checksum is not None
        store.run(record_storage, job.id, storage_url=files.url, key=key, checksum=saved.checksum)
        digest = job.id.replace("-", "")[-8:]
        for peaks in ("album/track 01.peaks.256.8.json", f"album/track 01.peaks.{digest}.256.16.split.json"):
            killed = subprocess.run(
                [sys.executable, "-c", KILLED_PUT, str(files.root), peaks], capture_output=True, check=False
            )
            assert killed.returncode == -9, killed.stderr
        temps = sorted(p.name for p in (files.root / "album").iterdir() if p.name.endswith(".tmp"))
        assert len(temps) == 2 and len(list(files.uploads())) == 2
        hour_ago = time.time() - 7200
        for name in temps:
            os.utime(files.root / "album" / name, (hour_ago, hour_ago))

        usage = disk_usage(store, files)
        assert (usage.temp.files, usage.other.files) == (2, 0)
        found = reconcile(store, files)
        assert sorted(t.path for t in found.stale_temp_files) == [f"album/{name}" for name in temps]
        assert found.unknown_files == 0 and not found.consistent
        repaired = reconcile(store, files, repair=True)
        assert {t.action for t in repaired.stale_temp_files} == {"removed"}
        assert list(files.uploads()) == [] and reconcile(store, files).consistent


ARCHIVE: dict[str, Any] = {
    "settings": {"format": "flac", "sample_rate": 32_000, "channels": 2, "bit_depth": 16},
    "profile": "archive", "target_lufs": -14.0, "ceiling_dbtp": -1.0, "duration_seconds": 1.0,
    "loudness_lufs": -14.0, "true_peak_dbtp": -1.5, "loudness_status": "normalized",
}  # fmt: skip


def test_cleanup_keeps_a_rendition_file_that_a_kept_generation_records_as_its_master(
    store: Store, where: FileStore
) -> None:
    """A rendition's ``storage_key`` is any relative path, another generation's master's among them.
    Cleanup asked whether a kept row recorded each master it deleted, never each rendition file: deleting the
    generation that owned the rendition removed the master of one it kept (dangling, "missing"), in a folder
    and in a bucket, the dry run saying "would delete"."""
    done = []
    for key in ("album/first.flac", "album/second.flac"):
        job = new_job(store)
        assert store.claim_next("w") is not None
        saved = where.put(key, b"fLaC" + key.encode())
        done.append(store.complete_generation(job.id, file_path=key, file_size_bytes=saved.size))
        assert saved.checksum is not None
        store.run(record_storage, job.id, storage_url=where.url, key=key, checksum=saved.checksum)
    second = (b"fLaC" + b"album/second.flac", "album/second.flac")
    store.create_rendition(
        done[0].id, storage_key=second[1], file_size_bytes=len(second[0]),
        checksum=hashlib.sha256(second[0]).hexdigest(), **ARCHIVE,
    )  # fmt: skip
    assert reconcile(store, where).consistent
    budget = len(second[0])  # the second stays: only the first (its master and rendition) go

    plan = cleanup(store, where, statuses=["completed"], max_total_bytes=budget)
    done_ = cleanup(store, where, statuses=["completed"], max_total_bytes=budget, dry_run=False)
    for report in (plan, done_):
        assert [(d.id, d.renditions_deleted) for d in report.deleted] == [(done[0].id, 0)]
        assert report.files_deleted == 1 and report.bytes_freed == len(b"fLaCalbum/first.flac")
    assert b"".join(where.get(second[1])) == second[0]
    assert reconcile(store, where).consistent
