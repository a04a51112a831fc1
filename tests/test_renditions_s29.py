"""Session 29's hunt of renditions and delivery: what a render puts beside its master, and how maintenance
judges it, on a folder and in a bucket, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from musicstore import Store
from musicstore.audio import synthesize_music
from musicstore.filestore import FileStore
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.retention import cleanup
from musicstore.models import Generation
from musicstore.ops.storage import record_storage
from musicstore.rendering import render_generation, render_peaks


def _master_at(store: Store, where: FileStore, path: str, seed: int, model: str = "m") -> Generation:
    """A completed generation whose master, named by hand, is at ``path`` in ``where``."""
    store.create_generation(f"take {seed}", model_name=model, duration_seconds=1)
    job = store.claim_next("w")
    assert job is not None
    buffer = io.BytesIO()
    fmt = path.rpartition(".")[2].upper()
    sf.write(buffer, np.asarray(synthesize_music(1.0, 32_000, seed=seed)).T, 32_000, format=fmt)
    saved = where.put(path, buffer.getvalue())
    done = store.complete_generation(job.id, file_path=path, file_size_bytes=saved.size)
    assert saved.checksum is not None
    store.run(record_storage, job.id, storage_url=where.url, key=saved.key, checksum=saved.checksum)
    return done


@pytest.mark.parametrize("name", ["album/Take 1.WAV", "album/Take 2.Flac", "album/Take 3.wav"])
def test_the_recorded_peaks_of_a_master_whose_extension_is_not_lower_case_are_kept(
    store: Store, where: Any, name: str
) -> None:
    """A master named by hand ``Take 1.WAV`` (audio to every maintenance check: the suffix is read in any
    case) has its peaks at ``Take 1.peaks.256.8.json``, recorded in its row. Reconcile looked for the master
    of such a file at ``Take 1.wav`` and ``Take 1.flac`` only, called the recorded file an orphan, and its
    repair deleted it (then reported the row's peaks dangling) on a folder; in a bucket, the peaks of
    another resolution beside it (recorded nowhere, found by name as its master's) were deleted so. Now as
    for ``Take 3.wav``."""
    done = _master_at(store, where, name, 1)
    earlier = render_peaks(store, done.id, samples_per_pixel=512)  # found by name once another is recorded
    stored = render_peaks(store, done.id)
    assert stored.key == name.rpartition(".")[0] + ".peaks.256.8.json"
    report = reconcile(store, where)
    assert report.consistent and report.orphan_count == 0, report
    repaired = reconcile(store, where, repair=True, delete_orphans=True)
    assert repaired.orphans == [] and where.head(stored.key).size == stored.bytes
    assert where.head(earlier.key).size == earlier.bytes
    assert reconcile(store, where).consistent
    store.delete_generation(done.id)  # its master and peaks are now orphans, as with a lower-case name
    gone = reconcile(store, where)
    assert {o.path for o in gone.orphans} == {name, stored.key, earlier.key}, gone
    assert gone.orphan_peaks_count == 2, gone


@pytest.mark.parametrize(
    "names", [("t.wav", "t.FLAC"), ("t.WAV", "t.flac"), ("t.wav", "t.WAV"), ("t.wav", "t.flac")]
)
def test_cleanup_keeps_the_peaks_a_kept_master_of_the_same_stem_records_whatever_its_suffixs_case(
    store: Store, where: Any, tmp_path: Any, clock: Any, names: tuple[str, str]
) -> None:
    """Masters named by hand ``album/t.wav`` (deleted by retention) and ``album/t.FLAC`` (kept), whose peaks
    the kept one made first: at the plain ``album/t.peaks.256.8.json``, the deleted one's at the name with
    its id's 8 hex. Cleanup keeps the peaks beside a deleted master when a master of the same stem and
    another type stays recorded, but looked for it at ``t.flac`` (or ``t.wav``) only: the kept row's
    recorded peaks were deleted with the other master (reconcile then reported them dangling). Now as for
    ``t.wav`` and ``t.flac``: both kept, the deleted one's left for reconcile."""
    gone, kept = (
        _master_at(store, where, f"album/{names[0]}", 1, "old"),
        _master_at(store, where, f"album/{names[1]}", 2),
    )
    theirs = render_peaks(store, kept.id)
    own = render_peaks(store, gone.id)
    assert theirs.key == "album/t.peaks.256.8.json" and own.key != theirs.key
    clock.advance(86_400)
    root: Any = where if where.url.startswith("s3:") else tmp_path / "audio"
    for dry_run in (True, False):
        report = cleanup(store, root, older_than=timedelta(hours=1), model_name="old", dry_run=dry_run)
        assert [(i.id, i.peaks_deleted) for i in report.deleted] == [(gone.id, 0)], report
    assert where.head(theirs.key).size == theirs.bytes
    left = reconcile(store, where)  # the deleted one's own peaks, kept with the plain name's: an orphan
    assert left.dangling_peaks == [] and [o.path for o in left.orphans] == [own.key], left


@pytest.mark.parametrize(
    "name", ["album/Take 1.wav", "album/take.final.flac", "album/ünï.wav", "album/t.wav"]
)
def test_a_rendition_of_a_deleted_generation_whose_master_was_named_by_hand_is_an_orphan(
    store: Store, where: Any, name: str
) -> None:
    """``delete_generation`` leaves its renditions' files to reconcile, which takes a rendition file no row
    records for an orphan (docs/renditions.md) by its name, ``<stem>.<profile>.<8 hex>.<ext>``: with the
    stem of a master named by hand other than letters, digits, ``-`` and ``_`` (``Take 1``, ``take.final``,
    ``ünï``) it was a file of another type, kept for good; its master was an orphan, removed."""
    done = _master_at(store, where, name, 1)
    (made,) = render_generation(store, done.id, formats=["mp3"])
    assert reconcile(store, where).consistent
    store.delete_generation(done.id)
    report = reconcile(store, where)
    assert {o.path for o in report.orphans} == {name, made.storage_key} and report.unknown_files == 0, report
    reconcile(store, where, repair=True, delete_orphans=True)
    assert [o.key for o in where.list()] == [] and reconcile(store, where).consistent
