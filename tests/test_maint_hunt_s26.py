"""Session 26 maintenance hunt: reconcile, retention, backup and copies over years of drift (folder and
bucket, SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from musicstore import Store
from musicstore.filestore import LocalFileStore
from musicstore.maintenance.reconcile import reconcile
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
