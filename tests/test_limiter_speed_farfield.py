"""A limiter's output's far part and its bound stay linear in the clip's length under heavy limiting.

The difference's far sums (every piece's moments at every point read) and the block bound's distant
clusters (all lumped at the distance of the nearest) grew with the number of limited spans: deep
limiting cost about the square of the clip's length (10 s 1.6 s, 31 s 13.7 s, 96 s 132-180 s).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from musicstore.audio import limited_far, local_expansion, synthesize_music
from musicstore.audio.export import ExportOptions, export_audio
from musicstore.audio.farfield import BLOCK, FarField
from musicstore.audio.limited_far import LimitedFarField


def _limited(
    samples: int, spans: int, seed: int, width: int = 300, channels: int = 2
) -> tuple[NDArray[np.float32], LimitedFarField]:
    """A clip and its limited output's derived far part: ``spans`` runs of ``width`` samples spread evenly
    (jittered), each scaled by a random curve."""
    rng = np.random.default_rng(seed)
    audio = (rng.standard_normal((channels, samples)) * 0.1).astype(np.float32)
    audio += np.float32(0.3) * np.cos(np.pi * 0.98 * np.arange(samples)).astype(np.float32)
    spacing = samples // (spans + 1)
    width = min(width, spacing // 2)  # runs apart
    starts = np.arange(1, spans + 1) * spacing + rng.integers(0, max(1, spacing - width), spans) // 2
    runs = np.stack([starts, np.minimum(starts + width, samples)], axis=1).astype(np.int64)
    index = np.concatenate([np.arange(a, b) for a, b in runs])
    out = audio.copy()
    scaled = out[:, index]
    out[:, index] = scaled * np.asarray(0.2 + 0.8 * rng.random(index.shape[0]), dtype=np.float32)
    derived = LimitedFarField.of(FarField.measure(audio), 1.0, scaled - out[:, index], runs, samples)
    return out, derived


@pytest.fixture
def moment_terms(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The moment terms the far sums evaluate directly (the ``(points, pieces x moments)`` products)."""
    counted: list[int] = []
    einsum: Callable[..., Any] = np.einsum

    def counting(subscripts: str, *operands: Any, **kwargs: Any) -> Any:
        if subscripts == "pk,ck->pc":
            counted.append(int(operands[0].size))
        return einsum(subscripts, *operands, **kwargs)

    monkeypatch.setattr(np, "einsum", counting)  # farfield calls np.einsum
    yield counted


def test_direct_moment_terms_per_point_do_not_grow_with_the_pieces(moment_terms: list[int]) -> None:
    """Four times the clip and its limited spans: the moment terms summed directly per point read stay
    the same (the distant windows' pieces act through one local expansion per window); they grew with
    the number of pieces (every piece at every point)."""
    per_point = []
    for scale in (1, 4):
        _, derived = _limited(240_000 * scale, 200 * scale, seed=scale)
        assert derived.firsts.shape[0] > limited_far._FEW_PIECES  # enough pieces for the expansions
        points = np.arange(0, derived.grid.shape[1] - 4, 7, dtype=np.int64)
        moment_terms.clear()
        derived._difference_at(points)
        per_point.append(sum(moment_terms) / points.shape[0])
    assert per_point[0] > 0
    assert per_point[1] <= 1.25 * per_point[0], per_point


def test_block_bound_of_distant_clusters_does_not_grow_with_their_number() -> None:
    """The difference's share of the block bound, typical block: about the same for four times the clip
    and its clusters (distant clusters by their windows' distance); it grew as their number (all of them
    lumped at the distance of the nearest few)."""
    shares = []
    for scale in (1, 4):
        out, derived = _limited(240_000 * scale, 200 * scale, seed=scale)
        blocks = -(-(out.shape[1] + 1) // BLOCK)
        share = derived.block_bound(blocks) - np.float32(derived.gain) * derived.base.block_bound(blocks)
        shares.append(float(np.median(share)))
    assert shares[1] <= 1.5 * shares[0], shares


@settings(max_examples=12, deadline=None)
@given(
    samples=st.integers(250_000, 700_000),
    channels=st.integers(1, 2),
    spans=st.integers(20, 300),
    width=st.integers(20, 800),
    seed=st.integers(0, 2**16),
)
def test_many_spans_far_part_is_the_outputs(
    samples: int, channels: int, spans: int, width: int, seed: int
) -> None:
    """With many limited spans (the local expansions and the windowed bound at work) the derived far part
    reads what measuring the output reads, and the block bound holds every row's values."""
    out, derived = _limited(samples, spans, seed, width=width, channels=channels)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(limited_far, "_FEW_PIECES", 0)  # the expansions at work, however many pieces
        assert derived._local_expansion() is not None
    measured = FarField.measure(out)
    rows = np.arange(samples + 1)
    rng = np.random.default_rng(seed)
    read = np.unique(rng.integers(0, samples + 1, 4_000))
    fractions = np.arange(1, 8) / 8
    bound = derived.block_bound(-(-(samples + 1) // BLOCK))
    scale = float(np.abs(measured.grid).max()) + 1e-3
    for c in range(channels):
        exact = measured.at(c, rows - 1, fractions)
        np.testing.assert_allclose(derived.at(c, read - 1, fractions), exact[read], atol=2e-6 * scale, rtol=0)
        inner = rows[(rows >= 24) & (rows <= samples - 24)]  # the ends' looped readings: test_audio_truepeak
        assert (np.abs(exact[inner]).max(axis=1) <= bound[inner // BLOCK] * (1 + 1e-5) + 1e-7).all()


def test_expansion_leaves_a_deep_export_unchanged(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A deeply limited export (-9 LUFS, 12 dB of limiting allowed) writes the same samples and figures
    with the distant pieces summed one by one (every piece at every point) as through the expansions."""
    music = synthesize_music(12.0, 48_000, seed=5)
    options = ExportOptions(target_lufs=-9.0, max_limiting_db=12.0, subtype="FLOAT")
    made: list[int] = []
    add_to = local_expansion._LocalExpansion.add_to

    def counted(
        self: local_expansion._LocalExpansion, out: NDArray[np.float64], times: NDArray[np.int64]
    ) -> None:
        made.append(times.shape[0])
        add_to(self, out, times)

    monkeypatch.setattr(local_expansion._LocalExpansion, "add_to", counted)
    samples, figures = [], []
    for name, few in (("expanded", limited_far._FEW_PIECES), ("direct", 1 << 62)):
        monkeypatch.setattr(limited_far, "_FEW_PIECES", few)
        path = tmp_path / f"{name}.wav"
        result = export_audio(music, 48_000, path, options)
        samples.append(soundfile.read(path, dtype="float32", always_2d=True)[0])
        figures.append((result.as_metadata(), result.loudness_after, result.true_peak_after))
    assert figures[0][0]["limiter_max_reduction_db"] > 6.0  # deep limiting, many spans
    assert made  # the expanded export read the expansions
    np.testing.assert_array_equal(samples[0], samples[1])
    assert figures[0] == figures[1]
