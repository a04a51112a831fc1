"""Renditions and exports as an acceptance review found them (session 31).

- A custom ``LoudnessProfile`` with a named profile's numbers (target, ceiling, tolerance) made a second
  rendition beside the named one's: the profile's name was part of the request's key. The same numbers make
  the same audio: one rendition, recorded under the named profile's name; a row recorded under another name
  with the same numbers (before this, or by ``create_rendition``) is found and refused as that request.
- A PCM_16 export's ``true_peak_after`` was measured before dither and rounding: a one-frame clip at about
  −58 dBTP read up to 0.33 dB off the file's true peak. A clip quiet enough for quantizing to move its true
  peak by more than 1/250 of it (0.035 dB) is now measured as written, when no longer than 2**22 samples a
  channel (memory: its values made in place, a chunk at a time); a louder one is within that of it.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore import InvalidInput, Store
from musicstore.audio import ExportOptions, LoudnessProfile, export_audio, export_batch
from musicstore.audio.quantize import WRITTEN_PEAK_SHARE
from musicstore.audio.renditions import RenditionSpec, render_audio
from musicstore.audio.truepeak import to_db, true_peak
from musicstore.rendering import render_generation
from tests.test_rendition_store import exported, files
from tests.test_renditions_regressions import _completed

# --- one rendition for one set of numbers, whatever the profile's name ----------------------------------


@pytest.mark.parametrize("custom_first", [False, True])
def test_a_custom_profile_with_a_named_ones_numbers_is_that_rendition(
    store: Store, tmp_path: Path, custom_first: bool
) -> None:
    """``LoudnessProfile(-14, -1)`` (named "custom") is ``streaming``'s numbers: it made a second FLAC
    beside the streaming one. Either order: one row, one file, recorded as ``streaming``."""
    done = exported(store, tmp_path)
    master = files(tmp_path)
    custom = LoudnessProfile(-14.0, -1.0)
    order: list[str | LoudnessProfile] = [custom, "streaming"] if custom_first else ["streaming", custom]
    (first,) = render_generation(store, done.id, root=tmp_path, formats=["flac"], profile=order[0])
    (second,) = render_generation(store, done.id, root=tmp_path, formats=["flac"], profile=order[1])
    assert second == first
    assert first.profile == "streaming"
    assert store.list_renditions(done.id) == [first]
    assert files(tmp_path) == master | {first.storage_key}


def test_custom_profiles_with_equal_numbers_and_other_names_are_one_rendition(
    store: Store, tmp_path: Path
) -> None:
    """Two custom profiles, ``quiet`` and ``custom``, of the same numbers: the second finds the first's row
    (its name is the one recorded); other numbers (the tolerance) are another rendition."""
    done = exported(store, tmp_path)
    (quiet,) = render_generation(
        store, done.id, root=tmp_path, formats=["flac"], profile=LoudnessProfile(-20.0, -2.0, name="quiet")
    )
    (same,) = render_generation(
        store, done.id, root=tmp_path, formats=["flac"], profile=LoudnessProfile(-20, -2)
    )
    assert same == quiet and quiet.profile == "quiet"
    (other,) = render_generation(
        store, done.id, root=tmp_path, formats=["flac"], profile=LoudnessProfile(-20.0, -2.0, 0.3)
    )
    assert other.id != quiet.id
    assert len(store.list_renditions(done.id)) == 2


_MP3: dict[str, Any] = {"format": "mp3", "sample_rate": 32_000, "channels": 2, "bitrate_mode": "constant",
                        "bitrate_kbps": 192}  # fmt: skip


def _figures(key: str, profile: str, target: float = -14.0) -> dict[str, Any]:
    return {
        "storage_key": key, "settings": _MP3, "profile": profile, "target_lufs": target, "ceiling_dbtp": -1.0,
        "file_size_bytes": 1234, "duration_seconds": 2.0, "loudness_lufs": -14.2, "true_peak_dbtp": -1.5,
        "loudness_status": "normalized", "checksum": hashlib.sha256(key.encode()).hexdigest(),
    }  # fmt: skip


def test_a_row_recorded_under_another_name_is_found_by_its_numbers(store: Store) -> None:
    """A row recorded as ``custom`` with streaming's numbers (as the defect recorded them, its key holding
    the name) answers a request for ``streaming``, and a second row for it is refused; others do not."""
    gid = _completed(store)
    made = store.create_rendition(gid, **_figures(f"{gid}.custom.mp3", "custom"))
    streaming: dict[str, Any] = {"profile": "streaming", "target_lufs": -14.0, "ceiling_dbtp": -1.0}
    assert store.get_rendition_by_settings(gid, _MP3, **streaming) == made
    with pytest.raises(InvalidInput, match="already has this mp3 rendition"):
        store.create_rendition(gid, **_figures(f"{gid}.streaming.mp3", "streaming"))
    assert store.get_rendition_by_settings(
        gid, _MP3, profile="custom", target_lufs=-16.0, ceiling_dbtp=-1.0
    ) is None  # fmt: skip
    podcast = store.create_rendition(gid, **_figures(f"{gid}.podcast.mp3", "podcast", -16.0))
    assert store.list_renditions(gid) == sorted([made, podcast], key=lambda r: r.settings["profile"])


# --- the true peak reported is the file's ------------------------------------------------------------------

_TOLERANCE_DB = -20 * math.log10(1 - WRITTEN_PEAK_SHARE) + 0.005
"""How far a reported true peak may be from the file's: quantizing moves it by at most 1/250 of it where it is
not measured as written (0.035 dB), and the meter's reading between its 64 positions per sample is within
(π/128)²/2 of the highest point (0.003 dB) on each reading."""


def _file_peak_db(path: Path) -> float:
    back, _ = sf.read(path, dtype="float32", always_2d=True)
    return to_db(true_peak(back.T))


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_a_quiet_one_frame_pcm16_export_reports_the_true_peak_written(tmp_path: Path, fmt: str) -> None:
    """One frame at about −58 dBTP: the dither moves it by a large share of a 16-bit step (it read up to
    0.33 dB off the file's; now the file's, exactly)."""
    for seed in range(40):
        rng = np.random.default_rng(seed)
        level = rng.choice([-1.0, 1.0]) * rng.uniform(0.7, 1.3) * 10 ** (-58 / 20)
        path = tmp_path / f"one.{fmt}"
        options = ExportOptions(subtype="PCM_16", dither_seed=seed)
        result = export_audio(np.array([[level]], dtype=np.float32), 48_000, path, options)
        assert result.true_peak_after == _file_peak_db(path), seed


def test_a_batch_of_quiet_clips_reports_each_files_true_peak(tmp_path: Path) -> None:
    """A batch's items are written through their temps (the fused, block-wise write): the same figures."""
    rng = np.random.default_rng(5)
    batch = (rng.standard_normal((3, 2, 700)) * 10 ** (-60 / 20)).astype(np.float32)
    paths = [tmp_path / f"{i}.wav" for i in range(3)]
    results = export_batch(batch, 16_000, paths, ExportOptions(dither_seed=1))
    for result, path in zip(results, paths, strict=True):
        assert result.true_peak_after == _file_peak_db(path)


def _clip(kind: str, channels: int, frames: int, level_db: float, seed: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        x = rng.standard_normal((channels, frames))
    elif kind == "sine":
        t = np.arange(frames) / 48_000
        x = np.sin(2 * np.pi * rng.uniform(50, 23_000) * t + rng.uniform(0, 6.3))[None].repeat(channels, 0)
    else:  # clicks: a few lone samples in silence
        x = np.zeros((channels, frames))
        x[:, rng.integers(0, frames, size=3)] = rng.choice([-1.0, 1.0], size=(channels, 3))
    peak = float(np.abs(x).max()) or 1.0
    return (x / peak * 10 ** (level_db / 20)).astype(np.float32)


_EXPORTS = st.fixed_dictionaries({
    "kind": st.sampled_from(["noise", "sine", "clicks"]), "channels": st.integers(1, 2),
    "frames": st.integers(1, 3_000), "level_db": st.floats(-95.0, -0.5), "normalize": st.booleans(),
    "target": st.floats(-40.0, -10.0), "subtype": st.sampled_from(["PCM_16", "PCM_24"]),
    "fmt": st.sampled_from(["wav", "flac"]), "seed": st.integers(0, 2**32 - 1),
})  # fmt: skip


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=_EXPORTS)
def test_an_exports_true_peak_is_the_files(tmp_path: Path, case: dict[str, Any]) -> None:
    """The reported true peak against the library's meter on the file read back with soundfile: within
    ``_TOLERANCE_DB``, both silent (−inf) or neither."""
    path = tmp_path / f"x.{case['fmt']}"
    options = ExportOptions(
        subtype=case["subtype"], normalize=case["normalize"], target_lufs=case["target"],
        dither_seed=case["seed"],
    )  # fmt: skip
    clip = _clip(case["kind"], case["channels"], case["frames"], case["level_db"], case["seed"])
    result = export_audio(clip, 48_000, path, options)
    written = _file_peak_db(path)
    if math.isinf(written) or math.isinf(result.true_peak_after):
        assert written == result.true_peak_after
    else:
        assert abs(result.true_peak_after - written) <= _TOLERANCE_DB, (result.true_peak_after, written)


def test_a_quiet_pcm16_flac_renditions_true_peak_is_the_files(tmp_path: Path) -> None:
    """A rendition is measured on its decoded file: a quiet PCM_16 FLAC's figure is the file's too."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 4_000)) * 10 ** (-75 / 20)).astype(np.float32)
    result = render_audio(x, 48_000, tmp_path / "q.flac", RenditionSpec("flac", subtype="PCM_16"))
    assert result.status == "too_quiet"
    assert result.true_peak == _file_peak_db(result.path)


_QUIET_PEAK_PROBE = """
import json, resource, sys, tempfile
from pathlib import Path
from musicstore.audio import ExportOptions, export_audio, synthesize_music

def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()

def high_water():
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) * 1024

options = ExportOptions(target_lufs=-45.0, dither_seed=1)  # its true peak near -28 dBTP: quiet in PCM_16
out = Path(tempfile.mkdtemp())
export_audio(synthesize_music(2.0, 48_000, seed=1), 48_000, out / "warm.wav", options=options)
clip = synthesize_music(float(sys.argv[1]), 48_000, seed=3)
with open("/proc/self/clear_refs", "w") as clear_refs:
    clear_refs.write("5")  # the high-water mark from here
before = resident()
result = export_audio(clip, 48_000, out / "clip.wav", options=options)
print(json.dumps({"peak": (high_water() - before) / clip.nbytes, "true_peak": result.true_peak_after}))
"""


@pytest.mark.parametrize("seconds", [80.0, 90.0])
def test_a_quiet_clips_export_stays_under_twice_the_clip(seconds: float) -> None:
    """A quiet export measured as written (80 s: its frames' values made in place, a chunk at a time) and one
    too long to be (90 s, over ``MEASURED_WRITTEN_SAMPLES``) peak under 2x their 48 kHz stereo clip in
    resident memory: measuring the whole quantized frames beside the output took 90 s to 3.99x (1.50x
    before that measurement, and now), and with the far part's transforms a 10-minute clip to 2.13x."""
    import json
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", _QUIET_PEAK_PROBE, str(seconds)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    probe = json.loads(run.stdout)
    assert probe["true_peak"] < -20.0, probe  # quiet enough to be measured as written, were it short enough
    assert probe["peak"] < 2.0, probe


@settings(max_examples=60, deadline=None)
@given(
    samples=st.integers(1, 140_000),
    channels=st.integers(1, 3),
    level=st.floats(1e-6, 1.2),
    subtype=st.sampled_from(["PCM_16", "PCM_24"]),
    dither=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_values_put_on_the_grid_in_place_are_the_frames_as_read(  # noqa: PLR0917 (hypothesis)
    samples: int, channels: int, level: float, subtype: str, dither: bool, seed: int
) -> None:
    """``quantize_in_place`` leaves the values a reader gets back from ``to_frames`` (the same dither draws,
    across chunk edges), and quantized again without dither they are those frames exactly."""
    from musicstore.audio.quantize import as_read, quantize_in_place, to_frames

    audio = (np.random.default_rng(seed).standard_normal((channels, samples)) * level).astype(np.float32)
    frames = to_frames(audio, subtype, np.random.default_rng(seed + 1), dither=dither)
    quantize_in_place(audio, subtype, np.random.default_rng(seed + 1), dither=dither)
    assert np.array_equal(audio, as_read(frames, subtype))
    assert np.array_equal(to_frames(audio, subtype, np.random.default_rng(0), dither=False), frames)
