"""The normalised waveform peaks file the export puts beside the audio (issue 14), by default
(``PeaksSpec(normalized=False)`` leaves it out): ``<id>.peaks.<spp>.<bits>[.split].normalized.json``
(version 1, per channel ``[min, max, ...]`` in [−1, 1]), written through the file store (a folder, a
SeaweedFS bucket) beside the audiowaveform file and recorded in ``metadata["peaks"]["normalized"]``
(``key``, ``bytes``, ``sha256``); reconcile finds it missing or damaged and repairs, cleanup deletes it
with its generation, disk_usage counts it, copy_files carries it; a row without it
(``normalized=False``, rows recorded before) keeps working."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from musicstore import Store
from musicstore.audio.peaks import PeaksSpec
from musicstore.errors import InvalidInput
from musicstore.filestore import FileStore, open_filestore
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.relocate import copy_files
from musicstore.maintenance.retention import cleanup
from musicstore.maintenance.usage import disk_usage
from musicstore.recording import export_generation
from tests.test_record import OPTIONS, claimed, music


def _exported(store: Store, files: FileStore, peaks: Any = None) -> Any:
    return export_generation(
        store,
        claimed(store),
        music(),
        root=files,
        options=OPTIONS,
        peaks=PeaksSpec(normalized=True) if peaks is None else peaks,
    )


def _root(files: FileStore, tmp_path: Path) -> str | Path:
    return tmp_path / "audio" if files.url.startswith("file:") else files.url


def _local(files: FileStore) -> bool:
    return files.url.startswith("file:")


def _record(store: Store, gid: str) -> dict[str, Any]:
    row = store.get_generation(gid)
    assert row is not None
    peaks: dict[str, Any] = row.metadata["peaks"]
    return peaks


def _brute_force(x: np.ndarray, spp: int, split: bool) -> list[list[float]]:
    """Per channel, bucket by bucket, min then max of the samples in [−1, 1] (mixed: their mean)."""
    signal = x.astype(np.float64) if split else x.astype(np.float64).mean(axis=0, keepdims=True)
    out: list[list[float]] = []
    for channel in signal:
        values: list[float] = []
        for start in range(0, channel.shape[0], spp):
            bucket = channel[start : start + spp]
            values += [max(-1.0, float(bucket.min())), min(1.0, float(bucket.max()))]
        out.append(values)
    return out


@pytest.mark.parametrize(
    "spec",
    [
        PeaksSpec(normalized=True),
        PeaksSpec(samples_per_pixel=100, bits=16, split_channels=True, normalized=True),
    ],
    ids=["mixed", "split"],
)
def test_the_export_stores_the_normalized_peaks_beside_the_audio_and_records_them(
    store: Store, where: FileStore, spec: PeaksSpec
) -> None:
    done = _exported(store, where, peaks=spec)
    record = _record(store, done.generation.id)
    normalized = record["normalized"]
    assert normalized["key"] == record["key"].removesuffix(".json") + ".normalized.json"
    body = b"".join(where.get(normalized["key"]))
    assert (len(body), hashlib.sha256(body).hexdigest()) == (normalized["bytes"], normalized["sha256"])
    document = json.loads(body)
    channels = done.generation.channels if spec.split_channels else 1
    assert {k: v for k, v in document.items() if k != "data"} == {
        "version": 1,
        "channels": channels,
        "sample_rate": done.generation.sample_rate,
        "samples_per_pixel": spec.samples_per_pixel,
        "length": record["length"],
    }
    assert document["data"] == done.peaks.peaks.normalized()  # the export's peaks, as the API gives them
    # the audiowaveform file beside it holds the same buckets, quantized to its bits
    peaks = json.loads(b"".join(where.get(record["key"])))
    scale = float(1 << (spec.bits - 1))
    quantized = np.asarray(peaks["data"], dtype=np.float64).reshape(peaks["length"], channels, 2) / scale
    data = np.asarray(document["data"], dtype=np.float64)
    assert data.shape == (channels, 2 * record["length"])
    assert np.abs(data.min()) <= 1.0 and np.abs(data.max()) <= 1.0
    ours = data.reshape(channels, record["length"], 2).transpose(1, 0, 2)
    assert np.allclose(ours, quantized, atol=1.0 / scale + 1e-4)
    # and the samples of the file written, bucket by bucket (a brute-force reference)
    master = b"".join(where.get(str(done.key)))
    samples = sf.read(io.BytesIO(master), dtype="float32", always_2d=True)[0].T
    reference = _brute_force(samples, spec.samples_per_pixel, spec.split_channels)
    assert np.allclose(data, np.asarray(reference), atol=1e-4)


def test_reconcile_finds_a_missing_normalized_file_and_repairs(
    store: Store, where: FileStore, tmp_path: Path
) -> None:
    done = _exported(store, where)
    assert reconcile(store, _root(where, tmp_path)).consistent
    key = _record(store, done.generation.id)["normalized"]["key"]
    assert where.delete(key)
    report = reconcile(store, _root(where, tmp_path))
    assert not report.consistent and report.dangling_peaks_count == 1
    [found] = report.dangling_peaks
    assert (found.id, found.key, found.problem, found.actual_bytes) == (
        done.generation.id,
        key,
        "missing",
        None,
    )
    repaired = reconcile(store, _root(where, tmp_path), repair=True, delete_orphans=not _local(where))
    assert [p.action for p in repaired.dangling_peaks] == ["record_dropped"]
    row = store.get_generation(done.generation.id)
    assert row is not None and "peaks" not in row.metadata and row.is_completed
    assert reconcile(store, _root(where, tmp_path)).consistent


def test_cleanup_deletes_the_normalized_file_with_its_generation(
    store: Store, where: FileStore, tmp_path: Path
) -> None:
    done = _exported(store, where)
    keys = {o.key for o in where.list()}
    record = _record(store, done.generation.id)
    assert keys == {str(done.key), record["key"], record["normalized"]["key"]}
    usage = disk_usage(store, _root(where, tmp_path))
    assert (usage.files, usage.recorded.files, usage.orphans.files) == (3, 3, 0), asdict(usage)
    report = cleanup(store, _root(where, tmp_path), statuses=["completed"], dry_run=False)
    assert report.rows_deleted == 1 and report.peaks_files_deleted == 2, asdict(report)
    assert {o.key for o in where.list()} == set()


def test_cleanup_deletes_a_recorded_normalized_file_away_from_its_master(
    store: Store, where: FileStore, tmp_path: Path
) -> None:
    done = _exported(store, where)
    record = _record(store, done.generation.id)
    normalized = record["normalized"]
    moved = f"elsewhere/{normalized['key'].rpartition('/')[2]}"
    where.put(moved, b"".join(where.get(normalized["key"])))
    where.delete(normalized["key"])
    store.merge_metadata(
        done.generation.id, {"peaks": {**record, "normalized": {**normalized, "key": moved}}}
    )
    assert reconcile(store, _root(where, tmp_path)).consistent
    report = cleanup(store, _root(where, tmp_path), statuses=["completed"], dry_run=False)
    assert report.peaks_files_deleted == 2, asdict(report)
    assert {o.key for o in where.list()} == set()


def test_a_row_without_a_normalized_record_keeps_working(
    store: Store, where: FileStore, tmp_path: Path
) -> None:
    """``PeaksSpec(normalized=False)``, as rows recorded before: one peaks file, no ``normalized``."""
    done = _exported(store, where, peaks=PeaksSpec(normalized=False))
    record = _record(store, done.generation.id)
    assert "normalized" not in record and {o.key for o in where.list()} == {str(done.key), record["key"]}
    report = reconcile(store, _root(where, tmp_path))
    assert report.consistent and report.peaks_checked == 1 and report.peaks_files == 1, asdict(report)
    assert (
        cleanup(store, _root(where, tmp_path), statuses=["completed"], dry_run=False).peaks_files_deleted == 1
    )
    assert {o.key for o in where.list()} == set()


@pytest.mark.parametrize("peaks", ["omitted", True, PeaksSpec()], ids=["omitted", "true", "default-spec"])
def test_the_default_export_stores_and_records_both_peaks_files(
    store: Store, where: FileStore, peaks: Any
) -> None:
    """Issue 14: by default, the audiowaveform peaks and the normalised array, both stored and recorded."""
    chosen = {} if peaks == "omitted" else {"peaks": peaks}
    done = export_generation(store, claimed(store), music(), root=where, options=OPTIONS, **chosen)
    record = _record(store, done.generation.id)
    normalized = record["normalized"]
    assert normalized["key"] == record["key"].removesuffix(".json") + ".normalized.json"
    assert {o.key for o in where.list()} == {str(done.key), record["key"], normalized["key"]}
    body = b"".join(where.get(normalized["key"]))
    assert (len(body), hashlib.sha256(body).hexdigest()) == (normalized["bytes"], normalized["sha256"])


def test_normalized_must_be_a_bool() -> None:
    with pytest.raises(InvalidInput, match="normalized must be True or False"):
        PeaksSpec(normalized="yes")  # type: ignore[arg-type]


def test_copy_files_carries_the_normalized_file(store: Store, tmp_path: Path, musicstore_s3_url: str) -> None:
    local = open_filestore((tmp_path / "audio").as_uri())
    target = open_filestore(musicstore_s3_url)
    try:
        done = _exported(store, local)
        record = _record(store, done.generation.id)
        report = copy_files(store, target)
        assert report.rows_updated == 1 and report.peaks_copied == 2, asdict(report)
        assert b"".join(target.get(record["normalized"]["key"])) == b"".join(
            local.get(record["normalized"]["key"])
        )
        assert reconcile(store, musicstore_s3_url, verify_checksums=True).consistent
        # a damaged recorded normalized file stops the copy of its row (as the peaks file's does)
        again = _exported(store, local)
        key = _record(store, again.generation.id)["normalized"]["key"]
        local.delete(key)
        skipped = copy_files(store, target)
        assert skipped.rows_updated == 0 and key in json.dumps(asdict(skipped)), asdict(skipped)
    finally:
        local.close()
        target.close()


def test_the_dashboard_draws_the_stored_normalized_peaks_and_says_when_they_are_gone(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.testclient import TestClient

    from musicstore.web import create_app

    root = tmp_path / "audio"
    files = open_filestore(root.as_uri())
    try:
        done = _exported(store, files)
        record = _record(store, done.generation.id)
        document = json.loads(b"".join(files.get(record["normalized"]["key"])))
        app = create_app(store, root=root)
        monkeypatch.setattr(app.dashboard, "computed_peaks", None)  # never decoded from the master
        with TestClient(app) as client:
            found = client.get(f"/api/generations/{done.generation.id}/peaks").json()
        assert (found["samples_per_pixel"], found["length"]) == (256, record["length"])
        assert found["peaks"] == document["data"][0]  # its floats, not the 8-bit file's values
        files.delete(record["normalized"]["key"])
        with TestClient(create_app(store, root=root), raise_server_exceptions=False) as client:
            gone = client.get(f"/api/generations/{done.generation.id}/peaks")
        assert gone.status_code == 500 and record["normalized"]["key"] in gone.json()["error"]
    finally:
        files.close()
