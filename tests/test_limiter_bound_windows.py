"""The block bound's distant clusters summed by their windows' distance: directly at the windows asked for
where few windows hold mass (a typical clip's), by a convolution over all windows where many do; both
give the convolution's sums."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from musicstore.audio.limited_far import _windowed_sum


def _convolved(
    masses: NDArray[np.float64], reach: NDArray[np.float64], at: NDArray[np.int64], after: bool
) -> NDArray[np.float64]:
    """The sums by the definition, a window at a time."""
    out = np.zeros(at.shape[0])
    for i, window in enumerate(at.tolist()):
        for w in range(masses.shape[0]):
            lag = w - window if after else window - w
            if lag >= 0:
                out[i] += masses[w] * reach[lag]
    return out


@settings(max_examples=150, deadline=None)
@given(
    windows=st.integers(2, 160),
    held=st.floats(0.0, 1.0),
    asked=st.integers(1, 200),
    after=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_windowed_sum_is_the_convolution(
    windows: int, held: float, asked: int, after: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    masses = np.where(rng.random(windows) < held, rng.random(windows) * 10.0, 0.0)
    reach = 1.0 / np.arange(1.0, windows + 1.0) ** rng.uniform(0.5, 3.0)
    reach[:2] = 0.0
    at = np.sort(rng.integers(0, windows, asked)).astype(np.int64)
    got = _windowed_sum(masses, reach, at, after=after)
    expected = _convolved(masses, reach, at, after)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0.0)


def test_few_held_windows_are_summed_without_a_convolution(monkeypatch: pytest.MonkeyPatch) -> None:
    """13 windows of 3700 holding mass (the benchmark clip's bound): no convolution over all windows."""
    calls: list[int] = []
    convolve: Callable[..., Any] = np.convolve

    def counting(a: NDArray[np.float64], v: NDArray[np.float64], mode: str = "full") -> Any:
        calls.append(a.shape[0])
        return convolve(a, v, mode)

    monkeypatch.setattr(np, "convolve", counting)  # farfield calls np.convolve
    windows = 3700
    masses = np.zeros(windows)
    masses[np.linspace(10, windows - 10, 13).astype(np.int64)] = 1.0
    reach = 1.0 / np.arange(1.0, windows + 1.0)
    reach[:2] = 0.0
    at = np.arange(0, windows, 1).astype(np.int64)
    for after in (False, True):
        got = _windowed_sum(masses, reach, at, after=after)
        full = (
            np.convolve(masses[::-1], reach)[:windows][::-1]
            if after
            else np.convolve(masses, reach)[:windows]
        )
        np.testing.assert_allclose(got, full[at], rtol=1e-12, atol=0.0)
    assert calls == [windows, windows]  # the two reference convolutions above only
