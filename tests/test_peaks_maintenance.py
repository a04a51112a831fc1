"""Waveform peaks files (``render_peaks``, recorded in no table) under maintenance, on a local root and in
a real SeaweedFS bucket, on both database backends: cleanup deletes those of the generations it deletes and
keeps the others; reconcile keeps a live one and reports (and repairs, as orphan audio) one whose generation
is gone; a ``.json`` of any other name is never touched."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from musicstore import Store
from musicstore.audio.peaks import MAX_SAMPLES_PER_PIXEL
from musicstore.filestore import FileStore
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.retention import cleanup
from musicstore.maintenance.scan import is_peaks_of, peaks_stem
from musicstore.rendering import peaks_name, render_peaks
from musicstore.storage_names import normalized_peaks_key
from tests.conftest import FakeClock

DAY = 86_400


@given(
    gid=st.uuids().map(str),
    spp=st.integers(1, MAX_SAMPLES_PER_PIXEL),  # render_peaks (and peaks_name) refuse more
    bits=st.sampled_from([8, 16]),
    split=st.booleans(),
    ext=st.sampled_from(["wav", "flac"]),
)
def test_every_name_render_peaks_writes_is_recognised(
    gid: str, spp: int, bits: int, split: bool, ext: str
) -> None:
    name = peaks_name(Path(f"2026/01/02/{gid}.{ext}"), spp, bits, split)
    assert peaks_stem(name) == gid and is_peaks_of(name, gid)
    assert not is_peaks_of(name, gid[:-1]) and peaks_stem(name + ".tmp") is None


@pytest.mark.parametrize(
    "name",
    [
        "{g}.peaks.json",
        "{g}.peaks.256.json",
        "{g}.peaks.256.12.json",
        "{g}.peaks.0256.8.json",
        "{g}.peaks.0.8.json",
        "{g}.peaks.256.8.stereo.json",
        "{g}.peaks.256.8.json.bak",
        "{g}.peaks.256.8.JSON",
        "{g}.meta.json",
        "x{g}.peaks.256.8.json",
        "{short}.peaks.256.8.json",
        "notes.json",
    ],
)
def test_other_json_names_are_not_peaks(name: str) -> None:
    gid = str(uuid.uuid4())
    assert peaks_stem(name.format(g=gid, short=gid[:-1])) is None


def keys(files: FileStore) -> set[str]:
    return {o.key for o in files.list()}


def _exported(store: Store, files: FileStore, **kwargs: Any) -> Any:
    from musicstore.recording import export_generation
    from tests.test_record import OPTIONS, claimed, music

    return export_generation(store, claimed(store), music(), root=files, options=OPTIONS, **kwargs)


def _root(files: FileStore, tmp_path: Path) -> str | Path:
    """What an operator passes as the root: the folder, or the ``s3://`` URL."""
    return tmp_path / "audio" if files.url.startswith("file:") else files.url


def _beside(master: str, name: str) -> str:
    return f"{master.rpartition('/')[0]}/{name}"


def test_cleanup_deletes_the_peaks_of_the_generations_it_deletes(
    store: Store, clock: FakeClock, where: FileStore, tmp_path: Path
) -> None:
    old = _exported(store, where, peaks=True)  # the export puts <id>.peaks.256.8.json itself
    assert old.peaks is not None
    old_peaks = {
        old.peaks.key,
        normalized_peaks_key(old.peaks.key),  # the export's normalised peaks, by default
        render_peaks(store, old.generation.id, samples_per_pixel=256).key,  # finds the export's: a retry
        render_peaks(store, old.generation.id, samples_per_pixel=64, bits=16, split_channels=True).key,
    }
    clock.advance(10 * DAY)
    young = _exported(store, where)
    young_peaks = render_peaks(store, young.generation.id, samples_per_pixel=256).key
    young_normalized = normalized_peaks_key(young_peaks)  # the export's, beside it
    decoys = {  # beside the old master, named like peaks but not peaks: never touched
        _beside(old.key, f"{old.generation.id}.peaks.256.12.json"),
        _beside(old.key, f"{old.generation.id}.peaks.json"),
        _beside(old.key, f"{old.generation.id}.meta.json"),
        _beside(old.key, "notes.json"),
    }
    for key in decoys:
        where.put(key, b"{}")
    before = keys(where)
    assert old_peaks | {young_peaks, young_normalized} | decoys | {old.key, young.key} == before
    root = _root(where, tmp_path)

    dry = cleanup(store, root, older_than=timedelta(days=7))
    assert (dry.rows_deleted, dry.files_deleted, dry.peaks_files_deleted) == (1, 4, 3)
    assert [(d.id, d.file_action, d.peaks_deleted) for d in dry.deleted] == [
        (old.generation.id, "would_delete", 3)
    ]
    peak_bytes = sum(o.size for o in where.list() if o.key in old_peaks)
    assert dry.bytes_freed == old.generation.file_size_bytes + peak_bytes
    assert keys(where) == before

    real = cleanup(store, root, older_than=timedelta(days=7), dry_run=False)
    assert (real.rows_deleted, real.files_deleted, real.peaks_files_deleted) == (1, 4, 3), asdict(real)
    assert real.deleted[0].peaks_deleted == 3 and not real.errors
    assert keys(where) == {young.key, young_peaks, young_normalized} | decoys  # the kept one's peaks stay
    assert store.get_generation(young.generation.id) is not None
    report = reconcile(store, root)
    assert report.orphan_count == 0 and report.peaks_files == 2 and report.referenced_files == 3


def test_cleanup_reports_no_peaks_where_there_are_none(
    store: Store, where: FileStore, tmp_path: Path
) -> None:
    done = _exported(store, where)
    for key in keys(where) - {done.key}:  # peaks an export may have put itself: gone before the cleanup
        where.delete(key)
    report = cleanup(store, _root(where, tmp_path), statuses=["completed"], dry_run=False)
    assert (report.rows_deleted, report.files_deleted, report.peaks_files_deleted) == (1, 1, 0)
    assert report.deleted[0].peaks_deleted == 0 and keys(where) == set()


def test_reconcile_reports_orphan_peaks_keeps_live_ones_and_other_json(
    store: Store, where: FileStore, tmp_path: Path
) -> None:
    live = _exported(store, where)
    live_peaks = render_peaks(store, live.generation.id).key
    live_normalized = normalized_peaks_key(live_peaks)  # the export's normalised peaks, beside them
    gone = str(uuid.uuid4())  # a generation deleted (before cleanup knew peaks), its peaks left behind
    orphans = {_beside(live.key, f"{gone}.peaks.256.8.json"), f"elsewhere/{gone}.peaks.32.16.split.json"}
    others = {_beside(live.key, f"{gone}.peaks.256.8.jsonx"), _beside(live.key, f"{gone}.waveform.json")}
    for key in orphans | others:
        where.put(key, b'{"version": 2}')
    root = _root(where, tmp_path)
    local = where.url.startswith("file:")

    report = reconcile(store, root)
    assert not report.consistent
    assert {o.path for o in report.orphans} == orphans and report.orphan_count == 2
    assert (report.orphan_peaks_count, report.peaks_files) == (2, 4)
    assert report.referenced_files == 3 and report.unknown_files == 2  # the master and the live peaks (2)
    assert report.orphan_bytes == 2 * len(b'{"version": 2}')
    assert {o.action for o in report.orphans} == {"reported"}
    assert keys(where) == {live.key, live_peaks, live_normalized} | orphans | others

    repaired = reconcile(store, root, repair=True, delete_orphans=not local)
    assert {o.action for o in repaired.orphans} == {"quarantined" if local else "deleted"}
    assert keys(where) == {live.key, live_peaks, live_normalized} | others  # live peaks, other .json: kept
    if local:
        quarantine = Path(str(repaired.quarantine))
        assert {p.relative_to(quarantine).as_posix() for p in quarantine.rglob("*.json")} == orphans
    again = reconcile(store, root)
    assert again.consistent, asdict(again)
    assert again.peaks_files == 2 and again.orphan_peaks_count == 0


def test_a_stale_temp_file_of_a_peaks_put_is_removed_by_a_local_repair(store: Store, tmp_path: Path) -> None:
    from tests.test_reconcile import OLD, put

    root = tmp_path / "audio"
    gid = str(uuid.uuid4())
    stale = put(root, f"2026/01/02/.{gid}.peaks.256.8.json.k2j4_9az.tmp", mtime=OLD)  # a put killed
    fresh = put(root, f"2026/01/02/.{gid}.peaks.64.16.split.json.abcdefgh.tmp")
    other = put(root, "2026/01/02/.notes.json.abcdefgh.tmp", mtime=OLD)  # not a peaks file's: kept
    report = reconcile(store, root)
    assert [t.path for t in report.stale_temp_files] == [stale.relative_to(root).as_posix()]
    assert (report.fresh_temp_files, report.unknown_files) == (1, 1)
    repaired = reconcile(store, root, repair=True)
    assert [t.action for t in repaired.stale_temp_files] == ["removed"]
    assert not stale.exists() and fresh.exists() and other.exists()
