"""``audio.arrays.mapped_empty`` / ``mapped_zeros``: numpy's arrays, large ones in mappings of their own."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
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


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.integers(1, 300), min_size=1, max_size=2),
    st.floats(-4.0, 4.0, allow_nan=False),
    st.integers(0, 2**32 - 1),
)
def test_scaled_is_numpys_float32_product(dims: list[int], gain: float, seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal(tuple(dims)).astype(np.float32)
    out = arrays.scaled(x, gain)
    assert out.dtype == np.float32 and not np.may_share_memory(out, x)
    assert np.array_equal(out, x * np.float32(gain))


_HEAP_LEFT = """
import json, resource, numpy as np
from musicstore.audio import arrays

def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()

# a 28 MB array freed raises glibc's mmap threshold to its size: the 4 MB arrays made next are in the heap,
# each pinned by a 200 KB array made after it: freed, they stay apart and the heap's top in use (not trimmed)
big = np.ones(7_000_000, np.float32)
del big
blocks, pins = [], []
for _ in range(16):
    blocks.append(np.ones(1_000_000, np.float32))
    pins.append(np.ones(50_000, np.float32))
del blocks  # 64 MB freed in the heap, resident still
x = np.ones(4_000_000, np.float32)
before = resident()
out = arrays.scaled(x, 0.5)
print(json.dumps({"grown": resident() - before, "out": out.nbytes}))
"""


def test_scaled_gives_the_heaps_freed_memory_back_before_its_output() -> None:
    """The output of an export is made once the freed heap memory is given back (glibc): the resident memory
    grows by less than the output's size when 64 MB freed in the heap were resident before it."""
    if arrays._TRIM is None:
        pytest.skip("malloc_trim is glibc's: nothing is given back elsewhere")
    run = subprocess.run([sys.executable, "-c", _HEAP_LEFT], capture_output=True, text=True, check=True)
    seen = json.loads(run.stdout)
    assert seen["grown"] < seen["out"] - 32_000_000, seen
