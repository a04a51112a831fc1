"""Quantizing and writing frames a block at a time: the same frames and the same files as all at once."""

from __future__ import annotations

import itertools
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from musicstore.audio.files import write_atomic, write_blocks_atomic
from musicstore.audio.quantize import _CHUNK, _PCM, _uint32_draws, frame_blocks, to_frames, tpdf_dither

SUBTYPES = ["PCM_16", "PCM_24", "PCM_32", "FLOAT"]


def reference_frames(audio: NDArray[np.float32], subtype: str, seed: int) -> NDArray[np.generic]:
    """The documented quantizing, written plainly: per chunk of 65,536 samples, TPDF dither for PCM_16
    (``tpdf_dither`` of the chunk), rounded, clipped to full scale, in libsndfile's top bits."""
    if subtype == "FLOAT":
        return np.ascontiguousarray(audio.T)
    scale, dtype, top, shift = _PCM[subtype]
    rng = np.random.default_rng(seed)
    parts = []
    for start in range(0, audio.shape[1], _CHUNK):
        part = audio[:, start : start + _CHUNK] * np.float32(scale)
        if subtype == "PCM_16":
            part += tpdf_dither(part.shape, rng)
        parts.append(np.clip(np.rint(part), -scale, top).astype(dtype).T << shift)
    return np.ascontiguousarray(np.concatenate(parts))


def clips() -> st.SearchStrategy[NDArray[np.float32]]:
    lengths = st.one_of(
        st.integers(1, 3 * _CHUNK + 7), st.sampled_from([_CHUNK - 1, _CHUNK, _CHUNK + 1, 2 * _CHUNK])
    )

    def make(channels: int, samples: int, seed: int, level: float) -> NDArray[np.float32]:
        rng = np.random.default_rng(seed)
        return (rng.standard_normal((channels, samples)) * level).astype(np.float32)

    return st.builds(
        make, st.integers(1, 3), lengths, st.integers(0, 2**16), st.sampled_from([1e-4, 0.3, 2.0])
    )


@settings(max_examples=40, deadline=None)
@given(audio=clips(), subtype=st.sampled_from(SUBTYPES), seed=st.integers(0, 2**32))
def test_blocks_are_the_frames(audio: NDArray[np.float32], subtype: str, seed: int) -> None:
    """``frame_blocks`` joined (each block copied before the next, as the writer uses them) is
    ``to_frames``, and both are the documented quantizing."""
    blocks = [block.copy() for block in frame_blocks(audio, subtype, np.random.default_rng(seed))]
    assert all(block.shape[0] <= _CHUNK for block in blocks)
    joined = np.concatenate(blocks)
    whole = to_frames(audio, subtype, np.random.default_rng(seed))
    expected = reference_frames(audio, subtype, seed)
    assert joined.dtype == whole.dtype == expected.dtype
    assert np.array_equal(joined, whole)
    assert np.array_equal(whole, expected)


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    at = data.find(b"PEAK")  # FLOAT WAV: libsndfile stamps its PEAK chunk with the time (seconds)
    return data if at < 0 else data[: at + 12] + data[at + 16 :]


@settings(max_examples=25, deadline=None)
@given(
    audio=clips(),
    kind=st.sampled_from([("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "FLOAT"), ("FLAC", "PCM_16")]),
    cuts=st.lists(st.integers(1, 3 * _CHUNK), max_size=4),
)
def test_written_in_any_blocks_the_file_is_the_same(
    audio: NDArray[np.float32], kind: tuple[str, str], cuts: list[int]
) -> None:
    fmt, subtype = kind
    frames = to_frames(np.clip(audio, -1, 1), subtype, np.random.default_rng(0))
    edges = sorted({0, frames.shape[0], *(c for c in cuts if c < frames.shape[0])})
    with tempfile.TemporaryDirectory() as tmp:
        whole, blocked = Path(tmp) / f"whole.{fmt.lower()}", Path(tmp) / f"blocked.{fmt.lower()}"
        size = write_atomic(whole, frames, 16_000, fmt, subtype)
        blocks = (frames[a:b] for a, b in itertools.pairwise(edges))
        channels = frames.shape[1]
        assert (
            write_blocks_atomic(
                blocked, blocks, channels=channels, sample_rate=16_000, fmt=fmt, subtype=subtype
            )
            == size
        )
        assert _read(blocked) == _read(whole)


def test_the_write_copies_a_block_not_the_frames(tmp_path: Path) -> None:
    """libsndfile's write callback copies the bytes it is handed at once: the frames go a block at a time,
    so the write allocates about a block, not the frames' size again."""
    frames = np.zeros((1_000_000, 2), dtype=np.int16)  # 4 MB
    tracemalloc.start()
    try:
        write_atomic(tmp_path / "a.wav", frames, 16_000, "WAV", "PCM_16")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < frames.nbytes / 4


def test_blocks_reuse_one_buffer() -> None:
    """What makes the memory one block: each block is the same buffer, refilled."""
    audio = np.zeros((2, 3 * _CHUNK), dtype=np.float32)
    seen: list[Any] = [
        block.__array_interface__["data"][0]
        for block in frame_blocks(audio, "PCM_16", np.random.default_rng(0))
    ]
    assert len(seen) == 3 and len(set(seen)) == 1


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 9), min_size=1, max_size=8),
    seed=st.integers(0, 2**32),
    generator=st.sampled_from([np.random.PCG64, np.random.MT19937, np.random.Philox]),
)
def test_dither_draws_are_the_generators_bytes(counts: list[int], seed: int, generator: Any) -> None:
    """The quantizer's uint32 draws are ``rng.bytes`` read as little-endian uint32, call after call, odd
    counts (a buffered half) and other bit generators included, and leave the generator where
    ``rng.bytes`` would."""
    ours, theirs = np.random.Generator(generator(seed)), np.random.Generator(generator(seed))
    for count in counts:
        drawn = _uint32_draws(ours, count)
        assert drawn.dtype == np.uint32
        assert np.array_equal(drawn, np.frombuffer(theirs.bytes(4 * count), dtype="<u4"))
    assert (
        ours.integers(0, 2**32, 3, dtype=np.uint32).tolist()
        == theirs.integers(0, 2**32, 3, dtype=np.uint32).tolist()
    )
