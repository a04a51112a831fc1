"""Export memory: what is alive when the far part is measured, what the limiter makes of a far part handed
to it, and pocketfft's cached plan of a long clip's transform."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore.audio import export_audio, farfield, synthesize_music
from musicstore.audio.export import ExportOptions
from musicstore.audio.farfield import FarField
from musicstore.audio.limited_far import LimitedFarField
from musicstore.audio.limiter import LimiterSettings, level
from musicstore.audio.loudness import BlockPower
from tests.test_truepeak_ideal import corpus


def test_the_far_part_is_measured_beside_the_clip_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An export measures its clip's far part (whose transforms are its largest buffers) before the
    per-sample loudness power (half a stereo clip) exists: numpy holds next to nothing else then (it held
    the power before, 0.5x the clip), and the limiter measures no far part of its own."""
    clip = synthesize_music(20.0, 48_000, seed=4)
    held: list[int] = []
    measure = FarField.measure.__func__  # type: ignore[attr-defined]

    def traced_measure(cls: type[FarField], /, audio: Any, **kwargs: Any) -> FarField:
        held.append(tracemalloc.get_traced_memory()[0] - since)
        far: FarField = measure(cls, audio, **kwargs)
        return far

    monkeypatch.setattr(FarField, "measure", classmethod(traced_measure))
    tracemalloc.start()
    try:
        since = tracemalloc.get_traced_memory()[0]
        result = export_audio(clip, 48_000, tmp_path / "x.wav", ExportOptions(dither_seed=1))
    finally:
        tracemalloc.stop()
    assert result.status == "limited"
    assert len(held) == 1  # the export's own, handed to the limiter
    assert held[0] < clip.nbytes // 16


@settings(max_examples=20, deadline=None)
@given(
    kind=st.sampled_from(["music", "bursts", "bed", "chirp", "square", "clipped", "nyquist_sine"]),
    rate=st.sampled_from([16_000, 32_000, 44_100, 48_000]),
    seconds=st.floats(0.2, 2.0),
    target=st.floats(-20.0, -8.0),
    limiter=st.booleans(),
    verify=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_a_far_part_handed_to_the_limiter_changes_nothing(  # noqa: PLR0917 (hypothesis)
    kind: str, rate: int, seconds: float, target: float, limiter: bool, verify: bool, seed: int
) -> None:
    """``level(..., far=FarField.measure(x))`` gives what ``level`` measuring the far part itself gives:
    the same samples, figures and true peak."""
    if kind == "music":
        x = synthesize_music(seconds, rate, seed=seed, drums=2.0)
    else:
        x = corpus(kind, rate, seconds, seed=seed)
    options: dict[str, Any] = {
        "target_lufs": target,
        "ceiling_dbtp": -1.0,
        "limiter": limiter,
        "settings": LimiterSettings(max_depth_db=9.0),
        "verify": verify,
    }
    farfield._KERNELS.clear()  # the handed far part must make the kernel itself where the check needs it
    given_far = level(x, BlockPower.measure(x, rate), far=FarField.measure(x), **options)
    farfield._KERNELS.clear()
    own = level(x, BlockPower.measure(x, rate), **options)
    np.testing.assert_array_equal(given_far.audio, own.audio)
    figures = ("gain_db", "loudness", "max_reduction_db", "reduced_fraction", "limited")
    assert [getattr(given_far, name) for name in figures] == [getattr(own, name) for name in figures]
    assert given_far.true_peak == own.true_peak or (np.isnan(given_far.true_peak) and np.isnan(own.true_peak))


@pytest.mark.parametrize("spans", [40, 4_000])
def test_the_limited_far_parts_sums_gather_a_few_megabytes(spans: int) -> None:
    """The difference's share of a limiter's output's far part (read at every row of the output's check)
    is summed a bounded chunk of kernel values at a time: numpy's traced peak stays within 6 MB of the
    answer's size (a chunk took about 24 MB, twice a 30-second stereo 48 kHz clip)."""
    samples = 48_000 * 10
    rng = np.random.default_rng(spans)
    audio = (rng.standard_normal((2, samples)) * 0.1).astype(np.float32)
    starts = np.sort(rng.choice(samples - 400, spans, replace=False))
    runs = np.stack([starts, starts + 300], axis=1).astype(np.int64)
    runs[1:, 0] = np.maximum(runs[1:, 0], runs[:-1, 1])
    runs = runs[runs[:, 1] > runs[:, 0]]
    width = int((runs[:, 1] - runs[:, 0]).sum())
    difference = (rng.standard_normal((2, width)) * 0.05).astype(np.float32)
    derived = LimitedFarField.of(FarField.measure(audio), 1.0, difference, runs, samples)
    points = np.arange(derived.grid.shape[1] - 4, dtype=np.int64)  # every grid point: every chunk full
    tracemalloc.start()
    try:
        since = tracemalloc.get_traced_memory()[0]
        shares = derived._difference_at(points)
        peak = tracemalloc.get_traced_memory()[1] - since
    finally:
        tracemalloc.stop()
    answer = points.shape[0] * 2 * (8 + 4)  # its float64 sums and the float32 copy returned
    assert peak - answer < 6 << 20, peak
    assert shares.shape == (2, points.shape[0])
    assert np.abs(shares).max() > 0.0


_PLAN_PROBE = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    from scipy import fft
    from musicstore.audio import farfield

    def resident():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    samples = int(sys.argv[1])
    audio = (np.random.default_rng(0).standard_normal((1, samples)) * 0.1).astype(np.float32)
    far = farfield.FarField.measure(audio)
    count = -(-samples // far.step)
    size = farfield._transform_size(far.grid.shape[1] + count - 1)  # as measure sizes it
    def freed():
        before = resident()
        for length in range(1, 17):  # pushes every cached plan of these transforms out
            fft.rfft(np.zeros(length, dtype=np.float32))
        return before - resident()

    left = freed()
    fft.rfft(np.zeros(size, dtype=np.float32))  # scipy's own transform of that size, for comparison
    print(json.dumps({"freed": left, "bare": freed(), "plan": 4 * size, "limit": farfield.CACHE_BYTES}))
    """
)


def _plan_freed(samples: int) -> dict[str, int]:
    """In a fresh process whose allocator maps every buffer over 64 KiB on its own (so that a freed plan
    leaves the resident memory): measure a mono clip's far part, then push pocketfft's plans out."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    run = subprocess.run(
        [sys.executable, "-c", _PLAN_PROBE, str(samples)], capture_output=True, text=True, check=True, env=env
    )
    measured: dict[str, int] = json.loads(run.stdout)
    return measured


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_a_long_clips_transform_plan_is_not_kept() -> None:
    """pocketfft caches the plan of every transform length it runs, a float per point: a long clip's far
    part leaves it out of the cache (it stayed resident for the rest of the export and after it: 0.27x a
    10-minute stereo clip), a short clip's stays there for the next clip of its length."""
    long = _plan_freed(4_500_000)
    assert long["plan"] > long["limit"]
    assert long["freed"] < long["plan"] // 8, long  # nothing of the plan was left to push out
    short = _plan_freed(1_500_000)
    assert short["plan"] <= short["limit"]
    if short["bare"] > short["plan"] // 2:  # this scipy caches a plan of that size (1.17 does, 1.18 not)
        assert short["freed"] > short["plan"] // 2, short  # the probe sees the short clip's plan kept
