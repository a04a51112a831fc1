"""The limiter's memory through its output's check: the region held in 12 bytes a sample (an int32 index,
float32 power), the region's scaled samples made again for each check, no earlier check's map and no
earlier attempt's output alive during the next; the same numbers each way."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore.audio import limiter, synthesize_music, truepeak
from musicstore.audio.export import ExportOptions, export_audio
from musicstore.audio.loudness import BlockPower


def _old_region(
    need: np.ndarray, power: np.ndarray, gain: float, ceiling: float, reach: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The region as it was built before (int64 index, float64 power): the reference."""
    samples = need.shape[0]
    hot = np.flatnonzero(need * gain > ceiling)
    if hot.size == 0:
        return hot, need[hot], power[hot].astype(np.float64)
    breaks = np.flatnonzero(np.diff(hot) > 2 * reach)
    first = np.clip(np.concatenate([hot[:1], hot[breaks + 1]]) - reach, 0, samples)
    last = np.clip(np.concatenate([hot[breaks], hot[-1:]]) + reach + 1, 0, samples)
    lengths = last - first
    offsets = np.cumsum(lengths) - lengths
    index = np.arange(int(lengths.sum())) + np.repeat(first - offsets, lengths)
    return index, need[index], power[index].astype(np.float64)


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(1, 20_000),
    hot=st.lists(st.integers(0, 20_000), max_size=30),
    reach=st.integers(0, 3_000),
    seed=st.integers(0, 2**16),
)
def test_the_region_holds_the_same_samples_in_fewer_bytes(
    length: int, hot: list[int], reach: int, seed: int
) -> None:
    """Property: the region's index (int32), need and power (float32) hold the values the int64/float64
    region held, wherever the hot samples and their reach fall (ends and merged neighbourhoods too)."""
    rng = np.random.default_rng(seed)
    need = (rng.random(length) * 0.5).astype(np.float32)
    need[[i for i in hot if i < length]] = np.float32(0.9)
    x = need[None, :]
    blocks = BlockPower.measure(x, 32_000)
    assert blocks.power is not None
    empty = np.zeros(0, dtype=np.float32)
    unmapped = limiter._Need(x, empty.astype(np.int32), empty, 0.9)  # the need: its envelope
    region = limiter._region(unmapped, blocks, 2.0, 1.0, reach)
    index, kept_need, kept_power = _old_region(need, blocks.power, 2.0, 1.0, reach)
    assert region.power is not None
    assert region.index.dtype == np.int32 and region.power.dtype == np.float32
    assert np.array_equal(region.index, index)
    assert np.array_equal(region.need, kept_need)
    assert np.array_equal(region.power.astype(np.float64), kept_power)


@settings(max_examples=40, deadline=None)
@given(
    seconds=st.floats(1.0, 4.0),
    seed=st.integers(0, 1000),
    gain=st.floats(0.5, 3.0),
    depth=st.floats(0.0, 0.9),
)
def test_the_predicted_loudness_reads_the_float32_power_as_the_float64_power(
    seconds: float, seed: int, gain: float, depth: float
) -> None:
    """Property: the loudness predicted from the region's float32 power is the one predicted from the same
    power in float64, bit for bit (each value converts exactly; the products are float64 either way)."""
    rate = 16_000
    x = synthesize_music(seconds, rate, seed=seed)
    blocks = BlockPower.measure(x, rate)
    rng = np.random.default_rng(seed)
    need = np.abs(x).max(axis=0)
    empty = np.zeros(0, dtype=np.float32)
    level = float(np.quantile(need, 0.9))
    unmapped = limiter._Need(x, empty.astype(np.int32), empty, 1.0)  # the need: its envelope
    region = limiter._region(unmapped, blocks, 1.0, level, 40)
    g = np.ones(region.index.shape[0], dtype=np.float32)
    g -= np.float32(depth) * rng.random(region.index.shape[0], dtype=np.float32)
    base = blocks.block_means()
    assert region.power is not None
    as_float64 = limiter._Region(region.index.astype(np.int64), region.need, region.power.astype(np.float64))
    assert limiter._predict(blocks, base, region, gain, g) == limiter._predict(
        blocks, base, as_float64, gain, g
    )


@pytest.fixture
def checks() -> Iterator[list[dict[str, Any]]]:
    """In order: each region the limiter makes (a deeper map's is larger), each output check (its
    ``peak_map``, given the clip's screen to reuse: numpy's traced bytes at its start) and each attempt
    (``_apply_checked``: whether it trimmed the whole output)."""
    seen: list[dict[str, Any]] = []
    original_map, original_apply = truepeak.peak_map, limiter._Limiter._apply_checked
    original_region = limiter._region

    def region(*args: Any, **kwargs: Any) -> Any:
        made = original_region(*args, **kwargs)
        seen.append({"region": made.index.shape[0]})
        return made

    def peak_map(audio: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        if "reuse" in kwargs:
            seen.append(
                {"held": tracemalloc.get_traced_memory()[0], "output": id(audio), "bytes": audio.nbytes}
            )
        return original_map(audio, *args, **kwargs)

    def apply_checked(self: Any, gain: float, region: Any) -> Any:
        made = original_apply(self, gain, region)
        seen.append({"attempt": True, "trimmed": self.trimmed})
        return made

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(limiter, "peak_map", peak_map)
        patch.setattr(limiter._Limiter, "_apply_checked", apply_checked)
        patch.setattr(limiter, "_region", region)
        tracemalloc.start()
        try:
            yield seen
        finally:
            tracemalloc.stop()


@pytest.mark.parametrize(("seconds", "channels"), [(2.0, 1), (2.0, 2), (10.0, 1)])
def test_no_check_holds_an_earlier_checks_map_or_an_earlier_attempts_output(
    checks: list[dict[str, Any]], tmp_path: Any, seconds: float, channels: int
) -> None:
    """A loud master (deep limiting) whose output is checked several times and whose gain is searched
    again: every check of a region starts with what the region's first check held (within 2 % of the
    clip), where an earlier check's map (its far part and span bounds: 0.23x a mono clip) or an earlier
    attempt's output (1x; a capped first limiting's too, through the deeper map's) was alive before."""
    clip = synthesize_music(seconds, 48_000, channels=channels, seed=3)
    options = ExportOptions(target_lufs=-9.0, max_limiting_db=12.0, dither_seed=1)
    result = export_audio(clip, 48_000, tmp_path / "deep.wav", options)
    assert result.status in ("limited", "target_missed")
    attempts = [c for c in checks if "attempt" in c]
    assert len([c for c in checks if "held" in c]) >= 3 and len(attempts) >= 2, checks
    assert not any(a["trimmed"] for a in attempts)
    grown: list[float] = []  # over the first check of the same region
    first = 0
    for c in checks:
        if "region" in c:
            first = 0
        elif "held" in c:
            first = first or c["held"]
            grown.append((c["held"] - first) / clip.nbytes)
    assert max(grown) < 0.02, grown


@settings(max_examples=15, deadline=None)
@given(
    seconds=st.floats(0.5, 3.0),
    seed=st.integers(0, 1000),
    target=st.floats(-12.0, -8.0),
    channels=st.integers(1, 2),
)
def test_the_checked_output_is_the_scaled_clip_under_the_curve(
    seconds: float, seed: int, target: float, channels: int
) -> None:
    """Property: the limited output is ``float32(gain) * x`` outside the region and that times the curve
    inside, bit for bit (the region's scaled samples are made again for each check, not kept)."""
    rate = 32_000
    x = synthesize_music(seconds, rate, channels=channels, seed=seed, drums=2.0)
    blocks = BlockPower.measure(x, rate)
    kept: dict[str, Any] = {}
    original, original_curve = limiter._Limiter._apply_checked, limiter._Shape.curve

    def curve(self: Any, *args: Any) -> Any:
        kept["curve"] = original_curve(self, *args)
        return kept["curve"]

    def apply_checked(self: Any, gain: float, region: Any) -> Any:
        made = original(self, gain, region)
        g = kept["curve"]  # the last made: the one applied to the output returned
        kept.update(gain=gain, index=region.index.copy(), out=made[0], g=g, trimmed=self.trimmed)
        return made

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(limiter._Limiter, "_apply_checked", apply_checked)
        patch.setattr(limiter._Shape, "curve", curve)
        leveled = limiter.level(
            x, blocks, target_lufs=target, ceiling_dbtp=-1.0, limiter=True, settings=limiter.LimiterSettings()
        )
    if not leveled.limited or kept["trimmed"]:
        return
    expected = x * np.float32(kept["gain"])
    expected[:, kept["index"]] *= kept["g"]
    assert np.array_equal(kept["out"], expected)
    assert leveled.audio is kept["out"]
