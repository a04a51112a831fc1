"""The normalised peaks a default export makes, and ``render_peaks`` after it (session 32): rendered again
at the export's resolution, the row keeps the normalised file's record (the same peaks, the same bytes); at
another resolution the record is of the new audiowaveform file alone, and reconcile finds nothing amiss
(the export's files stay, by name, as an earlier resolution's do)."""

from __future__ import annotations

from pathlib import Path

from musicstore import Store
from musicstore.filestore import FileStore
from musicstore.maintenance.reconcile import reconcile
from musicstore.recording import export_generation
from musicstore.rendering import render_peaks
from musicstore.storage_names import normalized_peaks_key
from tests.test_export_peaks import _keys, objects  # objects: the local folder and SeaweedFS (a fixture)
from tests.test_record import OPTIONS, claimed, music

__all__ = ["objects"]


def _root(files: FileStore, tmp_path: Path) -> str | Path:
    return tmp_path / "audio" if files.url.startswith("file:") else files.url


def test_a_default_export_records_its_normalised_peaks(store: Store, objects: FileStore) -> None:
    recorded = export_generation(store, claimed(store), music(), root=objects, options=OPTIONS)
    assert recorded.peaks is not None and recorded.peaks.normalized is not None
    record = recorded.generation.metadata["peaks"]
    assert record["normalized"]["key"] == normalized_peaks_key(recorded.peaks.key)
    assert record == recorded.peaks.as_metadata()
    assert record["normalized"]["key"] in _keys(objects)


def test_render_peaks_at_another_resolution_records_its_file_and_reconcile_finds_nothing_amiss(
    store: Store, objects: FileStore, tmp_path: Path
) -> None:
    recorded = export_generation(store, claimed(store), music(), root=objects, options=OPTIONS)
    assert recorded.peaks is not None
    other = render_peaks(store, recorded.generation.id, samples_per_pixel=512, files=[objects], root=objects)
    row = store.get_generation(recorded.generation.id)
    assert row is not None and row.metadata["peaks"] == other.as_metadata()
    assert "normalized" not in row.metadata["peaks"] and other.normalized is None
    assert {other.key, recorded.peaks.key, normalized_peaks_key(recorded.peaks.key)} <= _keys(objects)
    report = reconcile(store, _root(objects, tmp_path))
    assert report.consistent, report
    again = render_peaks(store, recorded.generation.id, files=[objects], root=objects)  # the export's again
    assert again.key == recorded.peaks.key and again.normalized is None  # its record went with the 512's
    assert reconcile(store, _root(objects, tmp_path)).consistent
