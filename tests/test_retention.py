"""Retention cleanup: dry run vs real, criteria, budget, safety, and a cleanup killed midway."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from musicstore import InvalidInput, Status, Store
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.retention import cleanup
from tests.conftest import FakeClock, new_job
from tests.test_reconcile import completed, put

DAY = 86_400


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "audio"
    path.mkdir()
    return path


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def ids(store: Any) -> set[str]:
    return {g.id for g in store.list_generations(limit=500).items}


def test_dry_run_reports_and_changes_nothing_then_real_run_deletes(
    store: Any, root: Path, clock: FakeClock
) -> None:
    old = [completed(store, root, size=100) for _ in range(3)]
    old_failed = new_job(store)
    store.claim_next("w")
    store.fail(old_failed.id, "boom", retry=False)
    clock.advance(10 * DAY)
    young = completed(store, root, size=100)
    before_files, before_ids = files(root), ids(store)

    dry = cleanup(store, root, older_than=timedelta(days=7))
    assert dry.dry_run and dry.rows_deleted == 4 and dry.files_deleted == 3 and dry.bytes_freed == 300
    assert {d.id for d in dry.deleted} == {g.id for g in old} | {old_failed.id}
    assert {d.file_action for d in dry.deleted} == {"would_delete", "none"}
    assert dry.total_bytes_before == 400 and dry.total_bytes_after == 100
    assert files(root) == before_files and ids(store) == before_ids
    json.dumps(asdict(dry))

    real = cleanup(store, root, older_than=timedelta(days=7), dry_run=False)
    assert not real.dry_run and (real.rows_deleted, real.files_deleted, real.bytes_freed) == (4, 3, 300)
    assert {d.file_action for d in real.deleted} == {"deleted", "none"}
    assert ids(store) == {young.id} and files(root) == {young.file_path}
    assert real.total_bytes_after == 100 == store.get_database_stats().total_file_bytes
    assert reconcile(store, root).consistent


def test_statuses_and_model_select(store: Any, root: Path) -> None:
    small = completed(store, root, model_name="small")
    large = completed(store, root, model_name="large")
    queued = {new_job(store, model_name="small").id for _ in range(2)}
    processing = store.claim_next("w")
    (pending_id,) = queued - {processing.id}
    pending = store.get_generation(pending_id)
    report = cleanup(store, root, model_name="small", dry_run=False)
    assert {d.id for d in report.deleted} == {small.id}  # pending only when named, processing never
    assert ids(store) == {large.id, pending.id, processing.id}
    everything = cleanup(store, root, statuses=["pending", "completed", "failed", "cancelled"], dry_run=False)
    assert {d.id for d in everything.deleted} == {large.id, pending.id}
    assert ids(store) == {processing.id}
    assert store.get_generation(processing.id).status is Status.PROCESSING
    with pytest.raises(InvalidInput, match="processing"):
        cleanup(store, root, statuses=["processing"])


def test_needs_a_criterion(store: Any, root: Path) -> None:
    with pytest.raises(InvalidInput, match="criterion"):
        cleanup(store, root)
    with pytest.raises(InvalidInput, match="older_than"):
        cleanup(store, root, older_than=timedelta(days=-1))
    with pytest.raises(InvalidInput, match="does not exist"):
        cleanup(store, root / "missing", older_than=timedelta(0))


def test_budget_deletes_oldest_first_until_under(store: Any, root: Path, clock: FakeClock) -> None:
    rows = []
    for _ in range(5):
        rows.append(completed(store, root, size=1000))
        clock.advance(60)
    dry = cleanup(store, root, max_total_bytes=2500)
    assert [d.id for d in dry.deleted] == [g.id for g in rows[:3]]
    assert dry.budget_met and dry.total_bytes_after == 2000
    real = cleanup(store, root, max_total_bytes=2500, dry_run=False, batch=2)
    assert [d.id for d in real.deleted] == [g.id for g in rows[:3]]
    assert ids(store) == {g.id for g in rows[3:]} and real.budget_met
    assert cleanup(store, root, max_total_bytes=2500, dry_run=False).rows_deleted == 0
    # a budget no allowed deletion can meet: reported, not met
    short = cleanup(store, root, max_total_bytes=0, statuses=["failed"])
    assert short.rows_deleted == 0 and short.budget_met is False


def test_budget_counts_the_renditions_bytes_the_store_records(
    store: Any, root: Path, clock: FakeClock
) -> None:
    from tests.test_maintenance_s3 import RENDITION

    rows = []
    for _ in range(3):
        g = completed(store, root, size=1000)
        folder = str(g.file_path).rpartition("/")[0]
        key = f"{folder}/{g.id}.streaming.0123abcd.mp3"
        (root / key).write_bytes(b"\1" * 500)
        store.create_rendition(g.id, storage_key=key, file_size_bytes=500, checksum="0" * 64, **RENDITION)
        peaks = root / f"{folder}/{g.id}.peaks.256.8.json"
        peaks.write_bytes(b"{}" * 50)  # a peaks file: recorded in no table, so not in the budget
        rows.append(g)
        clock.advance(60)
    dry = cleanup(store, root, max_total_bytes=3000)  # masters 3,000 + renditions 1,500 recorded
    assert (dry.total_bytes_before, dry.total_bytes_after) == (4500, 3000)
    assert [d.id for d in dry.deleted] == [rows[0].id] and dry.budget_met
    real = cleanup(store, root, max_total_bytes=3000, dry_run=False)
    assert [d.id for d in real.deleted] == [rows[0].id] and real.budget_met
    assert real.total_bytes_after == 3000 and real.bytes_freed == 1000 + 500 + 100
    assert ids(store) == {g.id for g in rows[1:]}
    assert cleanup(store, root, max_total_bytes=3000, dry_run=False).rows_deleted == 0


def test_never_deletes_a_file_a_kept_row_records(store: Any, root: Path) -> None:
    shared = "shared/loop.wav"
    gone = completed(store, root, size=10, file_path=shared, model_name="old-model")
    kept = completed(store, root, size=10, file_path=shared, model_name="new-model")
    dry = cleanup(store, root, model_name="old-model")
    assert [d.file_action for d in dry.deleted] == ["kept_shared"]
    report = cleanup(store, root, model_name="old-model", dry_run=False)
    assert [(d.id, d.file_action) for d in report.deleted] == [(gone.id, "kept_shared")]
    assert (root / shared).exists() and store.get_generation(kept.id).is_completed
    assert reconcile(store, root).consistent


def test_never_touches_files_outside_the_root_or_of_other_types(
    store: Any, root: Path, tmp_path: Path
) -> None:
    text = completed(store, root, file_path="notes/readme.txt")
    outside = put(tmp_path / "elsewhere", "victim.wav", 10)
    (root / "link").mkdir()
    (root / "link" / "escape.wav").symlink_to(outside)
    escaping = new_job(store)
    store.claim_next("w")
    store.complete_generation(escaping.id, file_path="link/escape.wav", file_size_bytes=10)
    (root / "dirlink").symlink_to(outside.parent, target_is_directory=True)
    via_dir = new_job(store)
    store.claim_next("w")
    store.complete_generation(via_dir.id, file_path="dirlink/victim.wav", file_size_bytes=10)
    report = cleanup(store, root, statuses=["completed"], dry_run=False)
    assert report.rows_deleted == 0 and report.skipped_count == 3
    reasons = {s.id: s.reason for s in report.skipped}
    assert "not a .flac/.wav file" in reasons[text.id]
    assert "symlink" in reasons[escaping.id] and "outside the output root" in reasons[via_dir.id]
    assert outside.exists() and (root / "notes/readme.txt").exists()
    assert (root / "link" / "escape.wav").is_symlink()
    assert ids(store) == {text.id, escaping.id, via_dir.id}


def test_a_row_whose_file_is_already_gone_is_deleted(store: Any, root: Path) -> None:
    job = completed(store, root)
    (root / str(job.file_path)).unlink()
    report = cleanup(store, root, statuses=["completed"], dry_run=False)
    assert [d.file_action for d in report.deleted] == ["missing"]
    assert ids(store) == set()


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from musicstore import Store
    from musicstore.maintenance.retention import cleanup

    url, root, after = sys.argv[1], sys.argv[2], int(sys.argv[3])

    def progress(done):
        if done >= after:
            os.kill(os.getpid(), signal.SIGKILL)

    with Store(url) as store:
        cleanup(store, root, statuses=["completed"], dry_run=False, batch=20, progress=progress)
    """
)


@pytest.mark.slow
def test_cleanup_killed_midway_leaves_what_reconcile_repairs(sqlite_url: str, root: Path) -> None:
    with Store(sqlite_url) as store:
        for _ in range(50):
            completed(store, root, size=64)
    run = subprocess.run(
        [sys.executable, "-c", KILLER, sqlite_url, str(root), "7"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    with Store(sqlite_url) as store:
        left = ids(store)
        assert len(left) == 30  # the first batch of 20 rows was deleted, then 7 of their files
        on_disk = files(root)
        assert len(on_disk) == 50 - 7
        report = reconcile(store, root)
        assert report.dangling_count == 0  # never a row pointing at nothing
        assert report.orphan_count == 13 and report.referenced_files == 30
        repaired = reconcile(store, root, repair=True, delete_orphans=True)
        assert {o.action for o in repaired.orphans} == {"deleted"}
        assert reconcile(store, root).consistent
        assert files(root) == {g.file_path for g in map(store.get_generation, left) if g is not None}
        assert all(store.get_generation(gid) is not None for gid in left)
        # and cleanup picks up where it stopped
        finished = cleanup(store, root, statuses=["completed"], dry_run=False)
        assert finished.rows_deleted == 30 and files(root) == set() and ids(store) == set()


def test_cleanup_with_failing_file_removal_is_repaired_by_reconcile(
    store: Any, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(6):
        completed(store, root)
    real_unlink = os.unlink
    calls = {"n": 0}

    def flaky(path: str, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] > 2:
            raise PermissionError(13, "denied", path)
        real_unlink(path, **kwargs)

    monkeypatch.setattr(os, "unlink", flaky)
    report = cleanup(store, root, statuses=["completed"], dry_run=False)
    monkeypatch.setattr(os, "unlink", real_unlink)
    assert report.rows_deleted == 6 and report.files_deleted == 2 and len(report.errors) == 4
    assert ids(store) == set() and len(files(root)) == 4
    found = reconcile(store, root, repair=True, delete_orphans=True)
    assert found.orphan_count == 4 and found.dangling_count == 0
    assert files(root) == set() and reconcile(store, root).consistent
    assert os.listdir(root)  # the date folders stay; only files are removed


def test_a_row_naming_a_path_outside_the_root_is_skipped_not_followed(sqlite_url: str, root: Path) -> None:
    """A row edited by hand to an absolute path: cleanup must not delete that file (nor its twin in root)."""
    victim = put(root.parent / "elsewhere", "victim.wav", 8)
    twin = put(Path(str(root) + str(victim)).parent, "victim.wav", 8)  # root/<absolute path>, same size
    with Store(sqlite_url) as store:
        job = completed(store, root, size=8)
        with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
            conn.execute("UPDATE generations SET file_path = ? WHERE id = ?", (str(victim), job.id))
        report = cleanup(store, root, statuses=["completed"], dry_run=False)
        assert victim.exists() and twin.exists()
        assert report.skipped_count == 1 and report.rows_deleted == 0
        assert store.get_generation(job.id) is not None


def test_an_age_beyond_the_calendar_is_invalid_input(store: Any, root: Path) -> None:
    with pytest.raises(InvalidInput, match="older_than"):
        cleanup(store, root, older_than=timedelta(days=10**6))
