"""Export and renditions: rare failures a broad random search found in their promises (each test failed
before its fix). The searches themselves (thousands of random clips) are not part of the suite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore.audio import ExportOptions, export_audio, integrated_loudness, synthesize_music
from musicstore.audio.renditions import RenditionSpec, render_audio
from musicstore.audio.truepeak import to_db, true_peak


def nyquist(samples: int, channels: int = 2) -> np.ndarray:
    """A +-1 alternating clip: a Nyquist tone with hard edges (its ideal reconstruction rings at the ends)."""
    return np.tile((-1.0) ** np.arange(samples), (channels, 1)).astype(np.float32)


def written(path: Path) -> np.ndarray:
    data, _ = sf.read(path, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T)


@pytest.mark.parametrize(
    ("samples", "rate", "target"),
    [(4_001, 8_000, -15.0), (14_371, 32_000, -15.35), (14_371, 32_000, -16.0)],
)
def test_a_trimmed_output_louder_than_the_target_is_turned_down(
    samples: int, rate: int, target: float, tmp_path: Path
) -> None:
    """The limiter's deepening could not hold the ceiling, so each attempt's output was trimmed as a whole,
    and its loudness stopped following the aim: the last of three attempts was kept, 0.19-0.32 LU louder
    than the target, reported ``target_missed``, though turning it down reaches the target and lowers every
    peak."""
    options = ExportOptions(target_lufs=target, ceiling_dbtp=-12.0, max_limiting_db=24.0, subtype="PCM_24")
    result = export_audio(nyquist(samples), rate, tmp_path / "x.wav", options)
    audio = written(result.path)
    assert result.status in ("normalized", "limited"), result
    assert abs(integrated_loudness(audio, rate).lufs - target) <= options.tolerance_lu
    assert to_db(true_peak(audio)) <= options.ceiling_dbtp + 0.01
    assert result.true_peak_after <= options.ceiling_dbtp


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    samples=st.integers(1_000, 20_000),
    rate=st.sampled_from([8_000, 16_000, 32_000, 48_000]),
    target=st.floats(-30.0, -6.0),
    ceiling=st.floats(-20.0, -1.0),
)
def test_an_export_never_misses_by_being_too_loud(
    tmp_path: Path, samples: int, rate: int, target: float, ceiling: float
) -> None:
    """Property: a limited export lands within the tolerance of the target or under it, never over it
    (a louder output can always be turned down, which only lowers its peaks)."""
    options = ExportOptions(target_lufs=target, ceiling_dbtp=ceiling, max_limiting_db=24.0, subtype="FLOAT")
    result = export_audio(nyquist(samples), rate, tmp_path / "x.wav", options)
    loudness = integrated_loudness(written(result.path), rate).lufs
    assert loudness <= target + options.tolerance_lu, result
    assert result.target_reached == (abs(loudness - target) <= options.tolerance_lu)


@pytest.mark.parametrize(
    ("fmt", "ext"), [("mp3", "mp3"), ("vorbis", "ogg"), ("flac", "flac"), ("wav", "wav")]
)
def test_a_silent_clip_over_the_ceiling_is_rendered_under_it(fmt: str, ext: str, tmp_path: Path) -> None:
    """A DC offset faded in (or any infrasonic content) measures silent, below -70 LUFS, at 0.9 of full scale:
    its rendition passed the samples as given to every encode, so no headroom changed anything and four
    identical encodes over the ceiling ended in RenditionFailed; the docs promise silence written as silence,
    under the ceiling. Turned down by a plain gain, it stays silent."""
    rate = 16_000
    t = np.arange(rate) / rate
    dc = (0.9 * np.sin(np.pi / 2 * np.minimum(t / 0.5, 1.0)) ** 2).astype(np.float32)
    assert integrated_loudness(dc, rate).lufs == float("-inf")
    result = render_audio(dc, rate, tmp_path / f"r.{ext}", RenditionSpec(fmt), "podcast")
    audio = written(result.path)
    assert result.status == "silent" and not result.target_reached
    assert to_db(true_peak(audio)) <= result.profile.ceiling_dbtp
    assert result.true_peak <= result.profile.ceiling_dbtp


@pytest.mark.parametrize("tolerance", [0.01, 0.003, 0.001])
def test_a_tight_tolerance_is_reached_by_the_limiter(tolerance: float, tmp_path: Path) -> None:
    """``tolerance_lu`` may be anything in (0, 1] LU, but the limiter stopped once its exact measurement was
    within its own 0.02 LU: limited music landed 0.008-0.011 LU under the target and was reported
    ``target_missed`` (with a warning) for a tolerance of 0.01 LU or less, where more gain reaches it."""
    options = ExportOptions(target_lufs=-14.0, tolerance_lu=tolerance, subtype="FLOAT")
    for seed in (0, 8):  # seed 8 landed 0.0108 LU under: missed at 0.01 LU
        audio = synthesize_music(3.0, 32_000, seed=seed, drums=1.5)
        result = export_audio(audio, 32_000, tmp_path / f"{seed}.wav", options)
        assert result.status == "limited", result
        assert abs(integrated_loudness(written(result.path), 32_000).lufs + 14.0) <= tolerance
