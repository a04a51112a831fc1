"""``audio.arrays.mapped_empty`` / ``mapped_zeros``: numpy's arrays, large ones in mappings of their own."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore.audio import arrays
from musicstore.audio.arrays import MAPPED_FROM, mapped_empty, mapped_zeros


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(1, 1500), min_size=1, max_size=2),
    st.sampled_from([np.float32, np.float64, np.complex64, np.int32]),
)
def test_shape_dtype_and_zeros_as_numpy(dims: list[int], dtype: type[np.generic]) -> None:
    shape = tuple(dims)
    made = mapped_zeros(shape, dtype)
    assert made.shape == shape and made.dtype == np.dtype(dtype)
    assert made.flags.writeable and made.flags.c_contiguous
    assert not made.any()
    empty = mapped_empty(shape, dtype)
    empty[...] = 1
    assert empty.shape == shape and empty.dtype == np.dtype(dtype) and bool((empty == 1).all())


def test_large_arrays_have_a_mapping_small_ones_do_not() -> None:
    big = mapped_zeros(MAPPED_FROM // 4, np.float32)
    small = mapped_zeros(MAPPED_FROM // 4 - 1, np.float32)
    if arrays._MAP_FLAGS is not None:
        owner = big.base
        while isinstance(owner, np.ndarray):
            owner = owner.base
        assert isinstance(owner, memoryview)  # the mapping's buffer, not numpy's allocation
    assert small.base is None  # numpy's own allocation
    big[-1] = 3.0
    assert float(big.sum()) == 3.0
