"""Waveform peaks made at export (``export_generation(..., peaks=...)``): the audiowaveform JSON of the frames
written goes beside the master (local folder or S3) before the row is completed and is recorded in
``metadata["peaks"]``; a failed peaks write fails the job and leaves nothing behind."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from musicstore import Status, StorageError, Store
from musicstore.audio import ExportOptions
from musicstore.audio.peaks import PeaksSpec, file_peaks
from musicstore.errors import InvalidInput
from musicstore.filestore import FileStore, ObjectExists, open_filestore
from musicstore.recording import export_batch_generations, export_generation
from musicstore.storage_names import normalized_peaks_key
from tests.conftest import new_job
from tests.test_peaks import brute_force
from tests.test_record import OPTIONS, RATE, claimed, files_under, music


@pytest.fixture(params=["local", "s3"])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    url = (
        request.getfixturevalue("musicstore_s3_url")
        if request.param == "s3"
        else (tmp_path / "audio").as_uri()
    )
    opened = open_filestore(url)
    try:
        yield opened
    finally:
        opened.close()


def _keys(objects: FileStore) -> set[str]:
    return {o.key for o in objects.list()}


def _peaks_key(master: str, generation_id: str, spec: PeaksSpec) -> str:
    split = ".split" if spec.split_channels else ""
    return (
        f"{master.rpartition('/')[0]}/{generation_id}.peaks.{spec.samples_per_pixel}.{spec.bits}{split}.json"
    )


@pytest.mark.parametrize(
    ("spec", "ext", "options"),
    [
        (PeaksSpec(), "wav", OPTIONS),
        (
            PeaksSpec(samples_per_pixel=100, bits=16, split_channels=True),
            "flac",
            ExportOptions(subtype="PCM_24"),
        ),
    ],
    ids=["default-wav16", "split-flac24"],
)
def test_export_puts_the_peaks_beside_the_master_and_records_them(
    store: Store, objects: FileStore, tmp_path: Path, *, spec: PeaksSpec, ext: str, options: ExportOptions
) -> None:
    job = claimed(store, metadata={"bpm": 96})
    recorded = export_generation(
        store,
        job,
        music(),
        root=objects,
        ext=ext,
        options=options,
        peaks=True if spec == PeaksSpec() else spec,
    )
    master = str(recorded.key)
    key = _peaks_key(master, job.id, spec)
    assert _keys(objects) == {master, key, normalized_peaks_key(key)}  # the normalised file by default
    data = b"".join(objects.get(key))
    normalized_data = b"".join(objects.get(normalized_peaks_key(key)))
    row = store.get_generation(job.id)
    assert row is not None and row.status is Status.COMPLETED and row.metadata["bpm"] == 96
    assert row.metadata["peaks"] == {
        "key": key,
        "samples_per_pixel": spec.samples_per_pixel,
        "bits": spec.bits,
        "channels": 2 if spec.split_channels else 1,
        "length": -(-RATE * 3 // 2 // spec.samples_per_pixel),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "normalized": {
            "key": normalized_peaks_key(key),
            "bytes": len(normalized_data),
            "sha256": hashlib.sha256(normalized_data).hexdigest(),
        },
    }
    assert (
        recorded.peaks is not None and recorded.peaks.key == key and recorded.peaks.storage_url == objects.url
    )
    assert recorded.peaks.sha256 == row.metadata["peaks"]["sha256"]
    assert objects.head(key).content_type in ("application/json", None)  # a folder keeps no type
    copy = tmp_path / f"master.{ext}"
    copy.write_bytes(b"".join(objects.get(master, checksum=recorded.checksum)))
    doc = json.loads(data)
    assert (
        doc
        == file_peaks(
            copy, spec.samples_per_pixel, bits=spec.bits, split_channels=spec.split_channels
        ).as_json_dict()
    )
    samples, _ = sf.read(copy, dtype="float32", always_2d=True)
    assert doc["data"] == brute_force(samples.T, spec.samples_per_pixel, spec.bits, spec.split_channels)
    normalized = recorded.peaks.peaks.normalized()  # for a browser player
    assert len(normalized) == doc["channels"] and len(normalized[0]) == 2 * doc["length"]
    assert all(-1.0 <= v <= 1.0 for v in normalized[0])


@pytest.mark.parametrize("peaks", [False, None])
def test_no_peaks_when_opted_out(store: Store, objects: FileStore, peaks: Any) -> None:
    job = claimed(store)
    recorded = export_generation(store, job, music(), root=objects, options=OPTIONS, peaks=peaks)
    assert _keys(objects) == {recorded.key} and recorded.peaks is None
    row = store.get_generation(job.id)
    assert row is not None and row.status is Status.COMPLETED and "peaks" not in row.metadata


def test_peaks_are_made_by_default(store: Store, objects: FileStore) -> None:
    job = claimed(store)
    recorded = export_generation(store, job, music(), root=objects, options=OPTIONS)
    key = _peaks_key(str(recorded.key), job.id, PeaksSpec())
    assert recorded.peaks is not None and recorded.peaks.key == key
    assert _keys(objects) == {recorded.key, key, normalized_peaks_key(key)}
    row = store.get_generation(job.id)
    assert row is not None and row.status is Status.COMPLETED
    assert row.metadata["peaks"]["key"] == key and row.metadata["peaks"]["samples_per_pixel"] == 256
    assert row.metadata["peaks"]["sha256"] == hashlib.sha256(b"".join(objects.get(key))).hexdigest()


@pytest.mark.parametrize("bad", ["yes", 256, PeaksSpec])
def test_a_bad_peaks_option_is_refused_before_anything(store: Store, objects: FileStore, bad: Any) -> None:
    job = claimed(store)
    with pytest.raises(InvalidInput):
        export_generation(store, job, music(), root=objects, options=OPTIONS, peaks=bad)
    with pytest.raises(InvalidInput):
        PeaksSpec(samples_per_pixel=0)
    assert _keys(objects) == set()
    row = store.get_generation(job.id)
    assert row is not None and row.status is Status.PROCESSING


def test_a_failed_peaks_write_to_a_folder_fails_the_job_and_leaves_no_file(
    store: Store, tmp_path: Path
) -> None:
    root = tmp_path / "audio"
    job = claimed(store)
    master = f"{job.created_at:%Y/%m/%d}/{job.id}.wav"
    blocker = root / _peaks_key(master, job.id, PeaksSpec())
    blocker.mkdir(parents=True)  # a folder where the peaks file must go: its rename fails
    with pytest.raises(StorageError) as caught:
        export_generation(store, job, music(), root=root, options=OPTIONS, peaks=True)
    assert any("failed" in note for note in caught.value.__notes__)
    assert files_under(root) == []  # no master, no peaks, no temp file
    assert blocker.is_dir()  # what was there is untouched
    row = store.get_generation(job.id)
    assert row is not None and row.status is Status.FAILED and row.file_path is None
    assert "peaks" not in row.metadata


def test_a_failed_peaks_put_fails_the_job_and_removes_the_master(
    store: Store, musicstore_s3_url: str
) -> None:
    objects = open_filestore(musicstore_s3_url)
    try:
        job = claimed(store)
        master = f"{job.created_at:%Y/%m/%d}/{job.id}.wav"
        key = _peaks_key(master, job.id, PeaksSpec())
        objects.put(key, b"{}")  # another object holds the peaks key
        with pytest.raises(ObjectExists):
            export_generation(
                store, job, music(), root=objects, options=OPTIONS, peaks=True, on_error="retry"
            )
        assert _keys(objects) == {key} and b"".join(objects.get(key)) == b"{}"  # the master removed
        row = store.get_generation(job.id)
        assert row is not None and row.status is Status.PENDING and row.file_path is None  # retried
    finally:
        objects.close()


def test_a_batch_makes_peaks_for_each_item(store: Store, objects: FileStore) -> None:
    for i in range(3):
        new_job(store, f"song {i}", duration_seconds=1.5, sample_rate=RATE)
    batch = store.claim_batch("gpu-0", 3, lease_seconds=60)
    audio = np.stack([music(seed=i) for i in range(3)])
    outcomes = export_batch_generations(
        store, batch, audio, root=objects, options=OPTIONS, peaks=PeaksSpec(512)
    )
    keys = set()
    for outcome in outcomes:
        assert not isinstance(outcome, Exception) and outcome.peaks is not None
        assert outcome.peaks.key == _peaks_key(str(outcome.key), outcome.generation.id, PeaksSpec(512))
        keys |= {str(outcome.key), outcome.peaks.key, normalized_peaks_key(outcome.peaks.key)}
        row = store.get_generation(outcome.generation.id)
        assert row is not None and row.metadata["peaks"]["sha256"] == outcome.peaks.sha256
    assert _keys(objects) == keys


def test_render_peaks_later_finds_the_export_peaks_the_same_bytes(store: Store, objects: FileStore) -> None:
    from musicstore.rendering import render_peaks

    job = claimed(store)
    recorded = export_generation(store, job, music(), root=objects, options=OPTIONS, peaks=True)
    assert recorded.peaks is not None
    again = render_peaks(store, job.id, files=[objects], root=objects)  # read back from the master: a retry
    assert (again.key, again.sha256, again.bytes) == (
        recorded.peaks.key,
        recorded.peaks.sha256,
        recorded.peaks.bytes,
    )
    assert _keys(objects) == {recorded.key, recorded.peaks.key, normalized_peaks_key(recorded.peaks.key)}
    row = store.get_generation(job.id)  # recorded again: the same figures as the export's
    assert row is not None and row.metadata["peaks"] == recorded.generation.metadata["peaks"]
    assert again.as_metadata() == recorded.generation.metadata["peaks"]
