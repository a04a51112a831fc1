"""A mono clip's export memory: a peak map's row temporaries dropped before its fine reading, the inner rows
of a sorted set read in place, the far kernel's taps transformed in a buffer of the transform's size; the
same values each way. The first export of a 30 s and of a 1-minute 48 kHz mono clip (limited) traced under
3.4x the clip (3.82x and 3.62x before)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import fft as sp_fft

from musicstore.audio import farfield
from musicstore.audio.farfield import FarField
from musicstore.audio.interpolation import near_sinc
from musicstore.audio.truepeak import _screen
from tests.test_export_spectrum_kept import first_export_peak


@pytest.fixture(autouse=True)
def _empty_caches() -> Iterator[None]:
    """No spectrum or kernel kept from one test to the next."""
    farfield._SPECTRA.clear()
    farfield._KERNELS.clear()
    yield
    farfield._SPECTRA.clear()
    farfield._KERNELS.clear()


def _clip(channels: int, samples: int, seed: int, sparse: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    audio = (rng.standard_normal((channels, samples)) * 0.3).astype(np.float32)
    if sparse:
        audio *= rng.random(samples) < 0.02
    return audio


@settings(max_examples=30, deadline=None)
@given(
    samples=st.integers(60, 4_000),
    channels=st.integers(1, 2),
    seed=st.integers(0, 2**32 - 1),
    wanted=st.floats(0.05, 1.0),
    fine=st.booleans(),
)
def test_sorted_rows_with_edges_read_as_inner_and_edge_rows_apart(
    samples: int, channels: int, seed: int, wanted: float, fine: bool
) -> None:
    """Sorted rows that reach both ends (the inner ones read in place, in the output's run): each row reads
    what it reads among the inner rows alone and among the edge rows alone, bit for bit."""
    audio = _clip(channels, samples, seed, sparse=False)
    far = FarField.measure(audio)
    interpolator = near_sinc() if fine else _screen()
    chosen = np.random.default_rng(seed + 1).random(samples + 1) < wanted
    chosen[[0, 1, samples - 1, samples]] = True  # rows at both ends: windows past the clip's edges
    rows = np.flatnonzero(chosen).astype(np.int32)
    left = 1 - interpolator.first_offset
    inner = (rows >= left) & (rows - left + interpolator.matrix.shape[0] <= samples)
    helper = far if fine else None
    together = interpolator.peaks(audio, rows, helper)
    assert np.array_equal(together[inner], interpolator.peaks(audio, rows[inner], helper))
    assert np.array_equal(together[~inner], interpolator.peaks(audio, rows[~inner], helper))


@settings(max_examples=25, deadline=None)
@given(samples=st.integers(64, 200_000))
def test_the_far_spectrum_is_the_padded_taps_transform(samples: int) -> None:
    """The kernel's spectrum (its taps laid in a buffer of the transform's size and transformed in place) is
    ``rfft(taps, size)`` over the anti-alias response, bit for bit."""
    key = farfield._transform_key(samples)
    first, last, step, size = key
    expected = sp_fft.rfft(farfield._far_taps(first, last, step), size)
    expected /= farfield._lowpass_response(step, size)
    assert np.array_equal(farfield._far_spectrum(*key, keep=False), expected)


@pytest.mark.parametrize("minutes", [0.5, 1.0])
def test_a_mono_clips_first_export_stays_under_its_bound(minutes: float) -> None:
    """The first export of a 30 s and of a 1-minute 48 kHz mono clip (limited), in a fresh process: numpy's
    allocations peak under 3.4x the clip (3.82x and 3.62x with a map's row temporaries alive through its fine
    reading and its inner rows gathered apart). Not the issue's 2x: what holds the rest, docs/export.md
    (Memory)."""
    probe = first_export_peak(minutes, channels=1)
    assert probe["status"] == "limited"
    assert probe["peak"] < 3.4, probe
