"""reconcile: trees with every kind of inconsistency, on both backends, reported then repaired."""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from musicstore import Generation, InvalidInput, Status
from musicstore.audio import layout_path
from musicstore.maintenance.reconcile import default_quarantine, is_temp_name, reconcile
from tests.conftest import new_job

OLD = time.time() - 7200  # older than the default stale_after_seconds (3600)


def completed(
    store: Any, root: Path, *, size: int = 100, file_path: str | None = None, **fields: Any
) -> Generation:
    """A completed generation whose file exists with the recorded size (at its layout path by default)."""
    job = new_job(store, **fields)
    claimed = store.claim_next("worker-1")
    assert claimed is not None and claimed.id == job.id
    rel = file_path or layout_path(root, job.id, when=job.created_at).relative_to(root).as_posix()
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    done: Generation = store.complete_generation(job.id, file_path=rel, file_size_bytes=size)
    return done


def put(root: Path, rel: str, size: int = 10, mtime: float | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def tree_snapshot(base: Path) -> dict[str, int]:
    """Every entry under ``base`` (symlinks as -1), relative path → size."""
    found: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        for name in filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
            path = Path(dirpath) / name
            found[path.relative_to(base).as_posix()] = -1 if path.is_symlink() else path.stat().st_size
    return found


def test_name_patterns() -> None:
    gid = str(uuid.uuid4())
    assert is_temp_name(f".{gid}.wav.k2j4_9az.tmp")  # write_atomic
    assert is_temp_name(f".{gid}.0123456789ab.flac")  # record's staged file
    assert is_temp_name(f"..{gid}.0123456789ab.wav.abcdefgh.tmp")  # write_atomic of a staged file
    assert not is_temp_name(f"{gid}.wav")
    assert not is_temp_name(f".{gid}.wav")
    assert not is_temp_name("notes.tmp")


def test_a_consistent_store_is_clean(store: Any, tmp_path: Path) -> None:
    root = tmp_path / "audio"
    root.mkdir()
    for _ in range(3):
        completed(store, root)
    new_job(store)  # pending, no file
    report = reconcile(store, root)
    assert report.consistent
    assert (report.rows_checked, report.files_scanned, report.referenced_files) == (3, 3, 3)
    json.dumps(asdict(report))


@pytest.fixture
def messy(store: Any, tmp_path: Path) -> dict[str, Any]:
    """A tree with one of every inconsistency, and things reconcile must leave alone."""
    root = tmp_path / "audio"
    root.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    ok = completed(store, root)
    custom = completed(store, root, file_path="custom/kept by name.flac")  # not the <id>.<ext> layout
    missing = completed(store, root, size=50)
    (root / str(missing.file_path)).unlink()
    resized = completed(store, root, size=50)
    (root / str(resized.file_path)).write_bytes(b"\0" * 80)
    # a worker placed its file and has not committed yet: the row is processing and records no file
    job = new_job(store)
    assert store.claim_next("worker-2").id == job.id
    in_progress = layout_path(root, job.id, when=job.created_at)
    put(root, in_progress.relative_to(root).as_posix(), 30)
    orphan = f"2026/01/01/{uuid.uuid4()}.wav"
    put(root, orphan, 40)
    put(root, "2025/12/31/stray.FLAC", 60)  # another type case, no id in the name
    stale = f"2026/01/01/.{uuid.uuid4()}.wav.ab12cd34.tmp"
    put(root, stale, 11, mtime=OLD)
    staged = f"2026/01/01/.{uuid.uuid4()}.0123456789ab.wav"
    put(root, staged, 12, mtime=OLD)
    fresh = f"2026/01/01/.{uuid.uuid4()}.wav.zz99zz99.tmp"
    put(root, fresh, 13)
    put(root, "notes.txt", 5, mtime=OLD)
    put(root, "2026/01/01/cover.mp3", 6, mtime=OLD)
    put(root, "2026/01/01/old.tmp", 7, mtime=OLD)
    target = put(outside, "victim.wav", 99)
    (root / "2026" / "escape.wav").symlink_to(target)
    put(outside, "sub/inside-link.wav", 98)
    (root / "linked-dir").symlink_to(outside / "sub", target_is_directory=True)
    return {
        "root": root,
        "outside": outside,
        "ok": ok,
        "custom": custom,
        "missing": missing,
        "resized": resized,
        "in_progress": in_progress,
        "orphans": {orphan: 40, "2025/12/31/stray.FLAC": 60},
        "stale": {stale, staged},
        "fresh": fresh,
    }


def test_report_finds_every_kind_and_changes_nothing(store: Any, messy: dict[str, Any]) -> None:
    root: Path = messy["root"]
    before_disk = tree_snapshot(root.parent)
    before_rows = {g.id: g for g in store.list_generations(limit=100).items}
    report = reconcile(store, root)
    assert not report.consistent and not report.repair and report.quarantine is None
    assert report.rows_checked == 4
    assert {(d.id, d.problem, d.expected_bytes, d.actual_bytes, d.action) for d in report.dangling} == {
        (messy["missing"].id, "missing", 50, None, "reported"),
        (messy["resized"].id, "size_mismatch", 50, 80, "reported"),
    }
    assert {o.path: o.size_bytes for o in report.orphans} == messy["orphans"]
    assert report.orphan_count == 2 and report.orphan_bytes == 100
    assert {t.path for t in report.stale_temp_files} == messy["stale"]
    assert report.fresh_temp_files == 1
    assert report.in_progress_files == 1
    assert report.referenced_files == 3  # ok, custom, resized (its row still records it)
    assert report.unknown_files == 3 and report.symlinks == 2
    assert report.errors == []
    assert tree_snapshot(root.parent) == before_disk
    assert {g.id: g for g in store.list_generations(limit=100).items} == before_rows
    json.dumps(asdict(report))


def test_repair_quarantines_fails_and_removes_then_is_clean(
    store: Any, messy: dict[str, Any], tmp_path: Path
) -> None:
    root: Path = messy["root"]
    quarantine = tmp_path / "quarantine"
    outside_before = tree_snapshot(messy["outside"])
    report = reconcile(store, root, repair=True, quarantine=quarantine)
    assert report.quarantine == str(quarantine)
    assert {o.action for o in report.orphans} == {"quarantined"}
    for rel, size in messy["orphans"].items():
        assert not (root / rel).exists()
        assert (quarantine / rel).stat().st_size == size
    assert {d.action for d in report.dangling} == {"marked_failed"}
    missing = store.get_generation(messy["missing"].id)
    assert missing.status is Status.FAILED and missing.file_size_bytes is None
    assert "missing" in missing.error_message and missing.file_path == messy["missing"].file_path
    resized = store.get_generation(messy["resized"].id)
    assert resized.status is Status.FAILED and resized.file_size_bytes == 80
    assert "80 bytes" in resized.error_message
    assert {t.action for t in report.stale_temp_files} == {"removed"}
    assert not any((root / rel).exists() for rel in messy["stale"])
    # left alone: fresh temp, in-progress file, other types, symlinks and what they point at, good rows
    assert (root / messy["fresh"]).exists() and messy["in_progress"].exists()
    assert (root / "notes.txt").exists() and (root / "2026/01/01/cover.mp3").exists()
    assert (root / "2026/01/01/old.tmp").exists()
    assert (root / "2026/escape.wav").is_symlink() and (root / "linked-dir").is_symlink()
    assert tree_snapshot(messy["outside"]) == outside_before
    assert store.get_generation(messy["ok"].id).status is Status.COMPLETED
    assert store.get_generation(messy["custom"].id).status is Status.COMPLETED
    again = reconcile(store, root)
    assert again.consistent, again
    assert again.referenced_files == 3 and again.in_progress_files == 1 and again.fresh_temp_files == 1


def test_repair_can_delete_orphans(store: Any, messy: dict[str, Any]) -> None:
    root: Path = messy["root"]
    report = reconcile(store, root, repair=True, delete_orphans=True)
    assert report.quarantine is None
    assert {o.action for o in report.orphans} == {"deleted"}
    assert not any((root / rel).exists() for rel in messy["orphans"])
    assert not default_quarantine(root).exists()
    assert reconcile(store, root).consistent


def test_default_quarantine_is_beside_the_root(store: Any, messy: dict[str, Any]) -> None:
    root: Path = messy["root"]
    report = reconcile(store, root, repair=True)
    assert report.quarantine == str(root.resolve().parent / "audio.quarantine")
    for rel in messy["orphans"]:
        assert (root.parent / "audio.quarantine" / rel).exists()


def test_quarantine_name_clash_keeps_both(store: Any, tmp_path: Path) -> None:
    root = tmp_path / "audio"
    orphan = f"2026/01/01/{uuid.uuid4()}.wav"
    put(root, orphan, 5)
    quarantine = tmp_path / "q"
    put(quarantine, orphan, 7)
    report = reconcile(store, root, repair=True, quarantine=quarantine)
    assert report.orphans[0].moved_to == str(quarantine / f"{orphan}.1")
    assert (quarantine / orphan).stat().st_size == 7 and (quarantine / f"{orphan}.1").stat().st_size == 5


def test_stale_after_decides_which_temp_files_are_stale(store: Any, tmp_path: Path) -> None:
    root = tmp_path / "audio"
    put(root, f".{uuid.uuid4()}.wav.aaaa1111.tmp", 1, mtime=time.time() - 120)
    assert reconcile(store, root).fresh_temp_files == 1
    assert reconcile(store, root, stale_after_seconds=60).stale_temp_count == 1


def test_bad_arguments(store: Any, tmp_path: Path) -> None:
    root = tmp_path / "audio"
    root.mkdir()
    with pytest.raises(InvalidInput, match="inside the output root"):
        reconcile(store, root, repair=True, quarantine=root / "q")
    with pytest.raises(InvalidInput, match="does not exist"):
        reconcile(store, tmp_path / "nowhere")
    with pytest.raises(InvalidInput, match="stale_after_seconds"):
        reconcile(store, root, stale_after_seconds=-1)


def test_lists_are_capped_counts_are_not_and_progress_is_reported(store: Any, tmp_path: Path) -> None:
    root = tmp_path / "audio"
    for _ in range(5):
        put(root, f"2026/01/02/{uuid.uuid4()}.wav", 3)
    for _ in range(3):
        completed(store, root)
    seen: list[int] = []
    report = reconcile(store, root, max_items=2, batch=2, progress=seen.append)
    assert report.orphan_count == 5 and len(report.orphans) == 2 and report.truncated
    assert seen == sorted(seen) and seen[-1] == 3 + 8
    repaired = reconcile(store, root, repair=True, delete_orphans=True, max_items=2, batch=2)
    assert repaired.orphan_count == 5  # a repair acts on every item, listed or not
    assert reconcile(store, root).consistent


SPELLINGS = ["./{layout}", "./loose.wav", "mix/./take.wav", "mix//take2.wav", "beds/pad.wav/"]
"""Ways to write a file_path that name the same file as its canonical form (``.``/empty segments dropped)."""


def test_a_file_path_spelled_with_dot_or_empty_segments_names_its_file(store: Any, tmp_path: Path) -> None:
    """A row recording ``./x.wav`` (or ``a//b.wav``) owns ``x.wav``: it is neither orphan nor missing."""
    root = tmp_path / "audio"
    for spelling in SPELLINGS:
        job = new_job(store)
        assert store.claim_next("w") is not None
        layout = layout_path(root, job.id, when=job.created_at).relative_to(root).as_posix()
        rel = spelling.format(layout=layout)
        put(root, rel.rstrip("/"), 8)
        store.complete_generation(job.id, file_path=rel, file_size_bytes=8)
    report = reconcile(store, root)
    assert (report.orphan_count, report.dangling_count, report.referenced_files) == (0, 0, len(SPELLINGS))
    assert report.consistent
    repaired = reconcile(store, root, repair=True, delete_orphans=True)
    assert repaired.consistent and len(tree_snapshot(root)) == len(SPELLINGS)


def test_a_row_written_with_a_dot_segment_before_paths_were_canonical(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Rows stored as ``./<path>`` (complete_generation kept them so before): still recognised by id and by
    path, and cleanup keeps a file another row records in another spelling."""
    import sqlite3

    from musicstore import Store
    from musicstore.maintenance.retention import cleanup

    root = tmp_path / "audio"
    with Store(sqlite_url) as store:
        by_id = completed(store, root, size=8)
        by_path = completed(store, root, size=8, file_path="loose.wav", model_name="kept")
        twin = completed(store, root, size=8, file_path="loose.wav", model_name="dropped")
        with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
            for job in (by_id, by_path):
                conn.execute(
                    "UPDATE generations SET file_path = ? WHERE id = ?", (f"./{job.file_path}", job.id)
                )
        report = reconcile(store, root)
        assert (report.orphan_count, report.referenced_files, report.consistent) == (0, 2, True)
        cleaned = cleanup(store, root, model_name="dropped", dry_run=False)
        assert [(d.id, d.file_action) for d in cleaned.deleted] == [(twin.id, "kept_shared")]
        assert (root / "loose.wav").exists() and reconcile(store, root).consistent
