"""Waveform peaks (musicstore.audio.peaks): the audiowaveform JSON matches a direct numpy computation, a file
is read in bounded memory, bad input is refused before anything is written."""

from __future__ import annotations

import json
import math
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore.audio import synthesize_music
from musicstore.audio.peaks import compute_peaks, file_peaks, frames_peaks
from musicstore.errors import InvalidAudio, InvalidInput


def brute_force(x: np.ndarray, spp: int, bits: int, split: bool) -> list[int]:
    """Bucket by bucket, channel by channel, min then max, quantized as documented."""
    signal = x if split else x.mean(axis=0, keepdims=True, dtype=np.float32)
    scale = 2 ** (bits - 1)
    out: list[int] = []
    for start in range(0, signal.shape[1], spp):
        for channel in signal:
            bucket = channel[start : start + spp].astype(np.float64)
            for value in (bucket.min(), bucket.max()):
                out.append(int(min(max(round(value * scale), -scale), scale - 1)))
    return out


@settings(max_examples=60, deadline=None)
@given(
    frames=st.integers(1, 3000),
    channels=st.integers(1, 3),
    spp=st.integers(1, 700),
    bits=st.sampled_from([8, 16]),
    split=st.booleans(),
    block=st.integers(1, 2000),
    seed=st.integers(0, 2**32 - 1),
)
def test_peaks_match_a_direct_numpy_computation(
    *, frames: int, channels: int, spp: int, bits: int, split: bool, block: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.uniform(-1.0, 1.0, (channels, frames)) * rng.uniform(0.01, 1.0)).astype(np.float32)
    peaks = compute_peaks(x, 16_000, spp, bits=bits, split_channels=split, block_frames=block)
    doc = json.loads(peaks.to_json())
    assert doc["version"] == 2 and doc["bits"] == bits and doc["sample_rate"] == 16_000
    assert doc["samples_per_pixel"] == spp and doc["length"] == math.ceil(frames / spp)
    assert doc["channels"] == (channels if split else 1)
    assert doc["data"] == brute_force(x, spp, bits, split)
    normalized = peaks.normalized()
    assert len(normalized) == doc["channels"] and all(len(c) == 2 * doc["length"] for c in normalized)
    assert all(-1.0 <= v <= 1.0 for c in normalized for v in c)


def test_a_file_gives_the_same_peaks_as_its_samples(tmp_path: Path) -> None:
    audio = synthesize_music(2.0, 22_050, seed=4)
    path = tmp_path / "clip.wav"
    sf.write(path, audio.T, 22_050, subtype="FLOAT")
    from_file = file_peaks(path, 300, bits=16, split_channels=True, block_frames=1000)
    direct = compute_peaks(audio, 22_050, 300, bits=16, split_channels=True)
    assert from_file.frames == audio.shape[1] and from_file.as_json_dict() == direct.as_json_dict()
    out = tmp_path / "peaks" / "clip.json"
    assert from_file.write(out) == out.stat().st_size
    assert json.loads(out.read_text()) == direct.as_json_dict()


@settings(max_examples=30, deadline=None)
@given(
    frames=st.integers(1, 2500),
    channels=st.integers(1, 3),
    spp=st.integers(1, 600),
    bits=st.sampled_from([8, 16]),
    split=st.booleans(),
    subtype=st.sampled_from(["PCM_16", "PCM_24", "PCM_32", "FLOAT"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_frames_being_written_give_the_peaks_of_the_file(
    tmp_path_factory: pytest.TempPathFactory,
    *,
    frames: int,
    channels: int,
    spp: int,
    bits: int,
    split: bool,
    subtype: str,
    seed: int,
) -> None:
    """What export hands to ``frames_peaks`` (int16, int32 as libsndfile takes 24 and 32 bits, float32)
    gives the same document as reading the written file back, in one pass over memory."""
    rng = np.random.default_rng(seed)
    if subtype == "FLOAT":
        data: np.ndarray = rng.uniform(-1.0, 1.0, (frames, channels)).astype(np.float32)
    elif subtype == "PCM_16":
        data = rng.integers(-(2**15), 2**15, (frames, channels), dtype=np.int16)
    else:
        data = rng.integers(-(2**31), 2**31, (frames, channels), dtype=np.int64).astype(np.int32)
        if subtype == "PCM_24":
            data = (data >> 8) << 8  # libsndfile keeps the top 24 bits
    path = tmp_path_factory.mktemp("frames") / "x.wav"
    sf.write(path, data, 8_000, subtype=subtype)
    got = frames_peaks(data, 8_000, spp, bits=bits, split_channels=split, block_frames=997)
    assert got.to_json() == file_peaks(path, spp, bits=bits, split_channels=split).to_json()
    samples, _ = sf.read(path, dtype="float32", always_2d=True)
    assert got.as_json_dict()["data"] == brute_force(samples.T, spp, bits, split)


@settings(max_examples=80, deadline=None)
@given(
    frames=st.integers(1, 3000),
    channels=st.integers(1, 6),
    spp=st.integers(1, 700),
    split=st.booleans(),
    block=st.integers(1, 4000),
    edges=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_int16_frames_found_on_the_integers_equal_the_float_reading(
    *, frames: int, channels: int, spp: int, split: bool, block: int, edges: bool, seed: int
) -> None:
    """The int16 path (min/max on the integers, scaled and divided last) equals the float32 reading."""
    rng = np.random.default_rng(seed)
    if edges:
        values = np.array([-(2**15), 2**15 - 1, -1, 0, 1, 12345, -12345], dtype=np.int16)
        data = rng.choice(values, (frames, channels))
    else:
        data = rng.integers(-(2**15), 2**15, (frames, channels), dtype=np.int16)
    got = frames_peaks(data, 8_000, spp, split_channels=split, block_frames=block)
    read = (data.T.astype(np.float32) * np.float32(2.0**-15)).astype(np.float32)
    assert np.array_equal(got.extremes, compute_peaks(read, 8_000, spp, split_channels=split).extremes)


def test_frames_of_another_type_are_refused() -> None:
    with pytest.raises(InvalidInput):
        frames_peaks(np.zeros((4, 2), dtype=np.float64), 8_000)
    with pytest.raises(InvalidInput):
        frames_peaks(np.zeros(4, dtype=np.int16), 8_000)


def test_a_file_is_read_in_memory_bounded_by_the_block(tmp_path: Path) -> None:
    """A 40 s clip (7.7 MB as float32) in blocks of 16,384 frames: the traced peak stays far under it."""
    rate, seconds = 48_000, 40
    path = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", rate, 1, subtype="FLOAT") as f:
        for _ in range(seconds):
            f.write(rng.uniform(-0.5, 0.5, rate).astype(np.float32))
    tracemalloc.start()
    try:
        peaks = file_peaks(path, 512, block_frames=16_384)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    clip_bytes = rate * seconds * 4
    assert peaks.length == math.ceil(rate * seconds / 512)
    assert peak < 1_000_000 < clip_bytes / 7, peak


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"samples_per_pixel": 0}, InvalidInput),
        ({"samples_per_pixel": 2.5}, InvalidInput),
        ({"samples_per_pixel": True}, InvalidInput),
        ({"bits": 12}, InvalidInput),
        ({"bits": True}, InvalidInput),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        compute_peaks(np.zeros(100, dtype=np.float32), 16_000, **kwargs)  # type: ignore[arg-type]


def test_bad_audio_and_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidAudio):
        compute_peaks(np.array([0.0, np.nan], dtype=np.float32), 16_000)
    with pytest.raises(InvalidInput):
        file_peaks(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(InvalidAudio):
        file_peaks(tmp_path / "junk.wav")
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.0, np.nan, 0.1], dtype=np.float32), 16_000, subtype="FLOAT")
    with pytest.raises(InvalidAudio):
        file_peaks(nan)
    peaks = compute_peaks(np.zeros(10, dtype=np.float32), 16_000)
    with pytest.raises(InvalidInput):
        peaks.write(tmp_path / "peaks.txt")
    assert not (tmp_path / "peaks.txt").exists()


# --- a generation's peaks through the file-storage layer (musicstore.rendering.render_peaks) -------------


def _exported(store: Any, root: Any) -> Any:
    from musicstore.recording import export_generation
    from tests.test_record import OPTIONS, claimed, music

    job = claimed(store)
    return export_generation(store, job, music(), root=root, options=OPTIONS, peaks=False)  # render_peaks's


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_generations_peaks_are_put_beside_its_master(
    store: Any, tmp_path: Path, where: str, request: pytest.FixtureRequest
) -> None:
    from musicstore.filestore import ObjectExists, open_filestore
    from musicstore.rendering import render_peaks

    url = request.getfixturevalue("musicstore_s3_url") if where == "s3" else (tmp_path / "audio").as_uri()
    objects = open_filestore(url)
    try:
        recorded = _exported(store, objects)
        master = str(recorded.key)
        with pytest.raises(InvalidInput):
            render_peaks(store, recorded.generation.id, samples_per_pixel=0)
        assert [o.key for o in objects.list()] == [master]  # refused before anything
        stored = render_peaks(store, recorded.generation.id, samples_per_pixel=128, bits=16)
        assert stored.key == master.rpartition("/")[0] + f"/{recorded.generation.id}.peaks.128.16.json"
        assert stored.storage_url == objects.url and {o.key for o in objects.list()} == {master, stored.key}
        row = store.get_generation(recorded.generation.id)  # recorded in the row, as the export does
        assert row.metadata["peaks"] == {
            "key": stored.key, "samples_per_pixel": 128, "bits": 16, "channels": 1,
            "length": stored.peaks.length, "bytes": stored.bytes, "sha256": stored.sha256,
        }  # fmt: skip
        assert row.metadata["loudness_lufs"] == recorded.generation.metadata["loudness_lufs"]  # the rest kept
        data = b"".join(objects.get(stored.key, checksum=stored.sha256))
        head = objects.head(stored.key)
        assert head.content_type == "application/json" and head.size == stored.bytes == len(data)
        copy = tmp_path / "master.wav"
        copy.write_bytes(b"".join(objects.get(master)))
        assert json.loads(data) == file_peaks(copy, 128, bits=16).as_json_dict()  # the master's own peaks
        again = render_peaks(store, recorded.generation.id, samples_per_pixel=128, bits=16)
        assert (again.key, again.sha256) == (stored.key, stored.sha256)  # the same bytes: a retry
        objects.put(stored.key, b"{}", overwrite=True)  # something else at the key: refused, left alone
        with pytest.raises(ObjectExists):
            render_peaks(store, recorded.generation.id, samples_per_pixel=128, bits=16)
        assert b"".join(objects.get(stored.key)) == b"{}"
        assert store.get_generation(recorded.generation.id).metadata["peaks"]["sha256"] == stored.sha256
    finally:
        objects.close()
