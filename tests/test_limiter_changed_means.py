"""A limiter's output's block means re-measured around many changed spans (several batches of the
filtering, blocks that two spans reach) equal measuring the output whole."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore.audio.loudness import BlockPower, changed_block_means


@settings(max_examples=25, deadline=None)
@given(
    rate=st.sampled_from([32_000, 44_100, 48_000]),
    channels=st.integers(1, 3),
    count=st.integers(2, 40),
    width=st.integers(1, 2_000),
    seed=st.integers(0, 2**32 - 1),
)
def test_many_spans_equal_a_full_measurement(
    rate: int, channels: int, count: int, width: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    samples = 40 * rate
    x = (rng.standard_normal((channels, samples)) * 0.2).astype(np.float32)
    gain = float(rng.uniform(0.5, 2.0))
    out = x * np.float32(gain)
    # spans 0.2-2 s apart: some filtered together (merged), most apart but inside one 0.4 s block's reach
    gaps = rng.integers(rate // 5, 2 * rate, count)
    starts = np.cumsum(gaps)
    starts = starts[starts + width < samples]
    spans = np.stack([starts, starts + width], axis=1).astype(np.int64)
    for start, stop in spans.tolist():
        out[:, start:stop] *= rng.uniform(0.2, 1.0, (channels, stop - start)).astype(np.float32)
    means = changed_block_means(BlockPower.measure(x, rate), gain, x, out, spans)
    whole = BlockPower.measure(out, rate).block_means()
    assert means is not None
    np.testing.assert_allclose(means, whole, rtol=1e-6, atol=1e-12)
