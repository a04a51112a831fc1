"""The check of a batch's values before any file is written: a float32 sum decides, values are read one by
one only where that sum overflows on finite values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from musicstore.audio import as_audio_batch, export_batch
from musicstore.audio.arrays import _all_finite
from musicstore.errors import InvalidAudio

_VALUES = st.one_of(
    st.floats(width=32, allow_nan=True, allow_infinity=True),
    st.sampled_from([3.0e38, -3.0e38, np.finfo(np.float32).max, 0.0]),  # sums that overflow float32
)


@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=40), elements=_VALUES))
def test_all_finite_is_every_value_finite(values: np.ndarray) -> None:
    with np.errstate(all="raise"):  # the check itself must not warn, whatever the values
        assert _all_finite(values) == bool(np.isfinite(values).all())


def test_huge_finite_batch_passes_and_one_nan_is_named() -> None:
    batch = np.full((3, 2, 1000), 3.0e38, dtype=np.float32)  # finite, but its float32 sum overflows
    assert as_audio_batch(batch) is not None
    batch[2, 1, 7] = np.nan
    with pytest.raises(InvalidAudio, match=r"1 non-finite values \(1 NaN, 0 Inf\); the first is at item 2, "):
        as_audio_batch(batch)


def test_a_bad_item_writes_no_file(tmp_path: Path) -> None:
    batch = np.random.default_rng(3).normal(0, 0.1, (4, 2, 8000)).astype(np.float32)
    batch[3, 0, 100] = np.inf
    paths = [tmp_path / f"{i}.wav" for i in range(4)]
    with pytest.raises(InvalidAudio, match="item 3, channel 0, sample 100"):
        export_batch(batch, 8000, paths)
    assert list(tmp_path.iterdir()) == []
