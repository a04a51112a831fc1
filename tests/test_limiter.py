"""The limiter (musicstore.audio.limiter): what its unverified path (``level(..., verify=False)``, used by
lossy renditions, which are decoded and measured after encoding) gives up, and what it keeps."""

from __future__ import annotations

import math
import tracemalloc
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore.audio import limiter, renditions, synthesize_music
from musicstore.audio.limiter import LimiterSettings, level
from musicstore.audio.loudness import BlockPower, integrated_loudness
from musicstore.audio.renditions import RenditionSpec, render_bytes
from musicstore.audio.truepeak import to_db
from tests.reference_meter import reference_true_peak
from tests.test_truepeak_ideal import corpus


def _clip(kind: str, rate: int, seconds: float, seed: int) -> np.ndarray:
    if kind == "music":
        return synthesize_music(seconds, rate, seed=seed, drums=2.0)
    return corpus(kind, rate, seconds, seed=seed)


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(["music", "bursts", "bed", "chirp", "square", "clipped", "nyquist_sine"]),
    rate=st.sampled_from([16_000, 32_000, 44_100, 48_000]),
    seconds=st.floats(0.5, 2.0),
    target=st.floats(-20.0, -9.0),
    ceiling=st.floats(-4.0, -0.5),
    seed=st.integers(0, 1000),
)
def test_the_unverified_path_keeps_its_ceiling_and_predicts_its_loudness(  # noqa: PLR0917 (hypothesis)
    kind: str, rate: int, seconds: float, target: float, ceiling: float, seed: int
) -> None:
    """Property: unverified, the limited output is ``gain · x`` times a curve no deeper than the verified
    path's first, its ideal (16x FFT) true peak at most 0.05 dB over the ceiling (the check, when verified,
    found at most 0.011 dB), its exact loudness within 0.1 LU of the predicted one it reports; plain gain is
    the same as verified."""
    x = _clip(kind, rate, seconds, seed)
    blocks = BlockPower.measure(x, rate)
    if not math.isfinite(integrated_loudness(x, rate).lufs):
        return
    args: dict[str, Any] = {
        "target_lufs": target, "ceiling_dbtp": ceiling, "limiter": True, "settings": LimiterSettings()
    }  # fmt: skip
    fast = level(x, blocks, verify=False, **args)
    if not fast.limited:
        checked = level(x, blocks, **args)
        assert not checked.limited
        np.testing.assert_array_equal(fast.audio, checked.audio)
        assert fast.true_peak == checked.true_peak and fast.loudness == checked.loudness
        return
    assert math.isnan(fast.true_peak)
    gain = np.float32(10 ** (fast.gain_db / 20))
    scaled = x * gain
    touched = fast.audio != scaled
    assert (np.abs(fast.audio) <= np.abs(scaled)).all()  # the curve only turns down
    assert touched.any() or fast.max_reduction_db < 0.02
    peak = max(reference_true_peak(fast.audio), reference_true_peak(fast.audio, periodic=True))
    assert to_db(peak) <= ceiling + 0.05
    assert abs(integrated_loudness(fast.audio, rate).lufs - fast.loudness) <= 0.1


@pytest.mark.parametrize(
    ("spec", "name", "verified"),
    [
        (RenditionSpec("mp3", 128), "r.mp3", False),
        (RenditionSpec("opus", 64), "r.opus", False),
        (RenditionSpec("vorbis", quality=3), "r.ogg", False),
        (RenditionSpec("flac"), "r.flac", True),
        (RenditionSpec("wav", subtype="PCM_24"), "r.wav", True),
    ],
)
def test_lossy_renditions_skip_the_limiters_own_check(
    spec: RenditionSpec, name: str, verified: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lossy rendition is decoded and measured after encoding: the limiter does not check its output
    first; a lossless one keeps the check (it holds the ceiling at the first encode)."""
    seen: list[bool] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("verify", True))
        return level(*args, **kwargs)

    monkeypatch.setattr(renditions, "level", spy)
    render_bytes(synthesize_music(1.5, 48_000, seed=5, drums=1.5), 48_000, name, spec, "streaming")
    assert seen and all(v == verified for v in seen)


@settings(max_examples=30, deadline=None)
@given(
    length=st.integers(0, 3 * limiter._HOT_CHUNK + 7),
    hot=st.lists(st.integers(0, 3 * limiter._HOT_CHUNK + 6), max_size=20),
    gain=st.floats(0.5, 4.0),
    reach=st.integers(0, 5000),
)
def test_the_regions_chunked_test_finds_the_same_samples(
    length: int, hot: list[int], gain: float, reach: int
) -> None:
    rng = np.random.default_rng(length)
    need = (rng.random(length) * 0.5).astype(np.float32)
    chosen = [i for i in hot if i < length]
    need[chosen] = np.float32(0.9)
    empty = np.zeros(0, dtype=np.float32)
    unmapped = limiter._Need(need[None, :], empty.astype(np.int32), empty, 0.9)  # the need: its envelope
    assert np.array_equal(unmapped.hot(gain, 1.0), np.flatnonzero(need * gain > 1.0))


def test_the_regions_test_makes_no_full_length_temporary() -> None:
    """The region of a long clip with a few hot samples: numpy's traced peak stays far under the need's
    size (the whole ``need * gain`` was a float32 temporary the size of the need, half a stereo clip; the
    need and the power are read a chunk at a time)."""
    need = np.full(1 << 22, 0.1, dtype=np.float32)
    need[[5, 1_000_000, 4_000_000]] = 2.0
    x = need[None, :]
    blocks = BlockPower.measure(x, 48_000, keep_power=False)
    empty = np.zeros(0, dtype=np.float32)
    tracemalloc.start()
    try:
        region = limiter._region(limiter._Need(x, empty.astype(np.int32), empty, 2.0), blocks, 1.0, 1.0, 100)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < need.nbytes // 8
    assert region.index.shape[0] == 106 + 201 + 201
