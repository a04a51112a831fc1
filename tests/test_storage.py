"""Storage statistics from the database (both backends) and the disk usage walk."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from musicstore.maintenance.usage import Bucket, FileBucket, disk_usage, storage_stats
from tests.conftest import FakeClock, new_job
from tests.test_reconcile import OLD, completed, put


def test_empty_store(store: Any) -> None:
    stats = storage_stats(store)
    assert stats.generations == 0 and stats.file_bytes == 0
    assert stats.oldest_created_at is None and stats.newest_created_at is None
    assert stats.by_model == {} and stats.by_day == {}
    assert set(stats.by_status) == {"pending", "processing", "completed", "failed", "cancelled"}


def test_by_status_model_and_utc_day(store: Any, tmp_path: Path, clock: FakeClock) -> None:
    root = tmp_path / "audio"
    clock.now = clock.now.replace(hour=23, minute=59, second=59, microsecond=999_999)  # 2026-01-01
    first = completed(store, root, size=100, model_name="small")
    clock.advance(0.000001)  # 2026-01-02 00:00:00 UTC
    completed(store, root, size=250, model_name="large")
    new_job(store, model_name="small")
    clock.advance(86_400 * 3)
    cancelled = new_job(store, model_name="small")
    store.cancel(cancelled.id)
    last = new_job(store, model_name="large")
    stats = storage_stats(store)
    assert stats.generations == 5 and stats.file_bytes == 350
    assert stats.by_status["completed"] == Bucket(2, 350)
    assert stats.by_status["pending"] == Bucket(2, 0)
    assert stats.by_status["cancelled"] == Bucket(1, 0)
    assert stats.by_status["failed"] == Bucket(0, 0)
    assert stats.by_model == {"large": Bucket(2, 250), "small": Bucket(3, 100)}
    assert stats.by_day == {
        "2026-01-01": Bucket(1, 100),
        "2026-01-02": Bucket(2, 250),
        "2026-01-05": Bucket(2, 0),
    }
    assert stats.oldest_created_at == first.created_at.isoformat() == "2026-01-01T23:59:59.999999+00:00"
    assert stats.newest_created_at == last.created_at.isoformat()
    assert stats.file_bytes == store.get_database_stats().total_file_bytes
    assert json.loads(json.dumps(asdict(stats)))["by_day"]["2026-01-01"] == {
        "generations": 1,
        "file_bytes": 100,
    }


def test_disk_usage_sorts_files_by_what_the_database_knows(store: Any, tmp_path: Path) -> None:
    root = tmp_path / "audio"
    completed(store, root, size=100)
    completed(store, root, size=200)
    job = new_job(store)
    store.claim_next("w")
    put(root, f"2026/01/01/{job.id}.wav", 30)  # in progress
    put(root, f"2026/01/01/{uuid.uuid4()}.flac", 40)  # orphan
    put(root, f"2026/01/01/.{uuid.uuid4()}.wav.abcd1234.tmp", 5, mtime=OLD)
    put(root, "readme.md", 7)
    (root / "link.wav").symlink_to(root / "readme.md")
    seen: list[int] = []
    usage = disk_usage(store, root, batch=2, progress=seen.append)
    assert usage.recorded == FileBucket(2, 300)
    assert usage.in_progress == FileBucket(1, 30)
    assert usage.orphans == FileBucket(1, 40)
    assert usage.temp == FileBucket(1, 5)
    assert usage.other == FileBucket(1, 7)
    assert usage.symlinks == 1 and usage.files == 6 and usage.bytes == 382
    assert usage.database_file_bytes == 300
    assert seen[-1] == 7 and seen == sorted(seen)
    json.dumps(asdict(usage))
