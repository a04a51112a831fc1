"""Input validation: every bad input raises a typed error and nothing is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore.audio import ExportOptions, as_audio, as_audio_batch, export_audio, export_batch
from musicstore.errors import InvalidAudio, InvalidInput, MusicstoreError

RATE = 32_000


def clip(channels: int = 2, seconds: float = 1.0) -> np.ndarray[Any, np.dtype[np.float32]]:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((channels, round(seconds * RATE))) * 0.1).astype(np.float32)


def with_nan() -> np.ndarray[Any, Any]:
    audio = clip()
    audio[1, 123] = np.nan
    audio[0, 500] = np.inf
    return audio


BAD_AUDIO = {
    "nan/inf": with_nan(),
    "empty samples": np.zeros((2, 0), dtype=np.float32),
    "empty channels": np.zeros((0, 100), dtype=np.float32),
    "rank 0": np.float32(0.5),
    "rank 4": np.zeros((1, 1, 2, 100), dtype=np.float32),
    "nine channels": np.zeros((9, 1000), dtype=np.float32),
    "(S, C) layout": np.zeros((32_000, 2), dtype=np.float32),
    "int16 without scale": np.zeros((2, 1000), dtype=np.int16),
    "bool": np.zeros((2, 1000), dtype=bool),
    "complex": np.zeros((2, 1000), dtype=np.complex64),
    "a list": [[0.0, 0.1, 0.2]],
    "a batch given to export_audio": np.zeros((2, 2, 1000), dtype=np.float32),
}


@pytest.mark.parametrize("name", sorted(BAD_AUDIO))
def test_bad_audio_raises_and_writes_nothing(name: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidAudio):
        export_audio(BAD_AUDIO[name], RATE, tmp_path / "out" / "x.wav")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("rate", "path", "options"),
    [
        (7_999, "x.wav", None),
        (384_001, "x.wav", None),
        (44_100.0, "x.wav", None),
        (True, "x.wav", None),
        (RATE, "x.mp3", None),
        (RATE, "x.flac", "PCM_32"),
        (RATE, "x.flac", "FLOAT"),
    ],
)
def test_bad_arguments_raise_and_write_nothing(
    rate: Any, path: str, options: str | None, tmp_path: Path
) -> None:
    opts = ExportOptions(subtype=options) if options else None
    with pytest.raises(InvalidInput):
        export_audio(clip(), rate, tmp_path / "out" / path, opts)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target_lufs": 3.0},
        {"ceiling_dbtp": 1.0},
        {"max_limiting_db": 0.0},
        {"max_gain_db": -1.0},
        {"subtype": "PCM_8"},
        {"dither_seed": -1},  # numpy's ValueError, after the checks, before this was checked here
        {"dither_seed": 1.5},
    ],
)
def test_bad_options_raise(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        ExportOptions(**kwargs)


def test_nan_message_says_how_many_and_where() -> None:
    with pytest.raises(
        InvalidAudio, match=r"2 non-finite values \(1 NaN, 1 Inf\); the first is at channel 0, sample 500"
    ):
        as_audio(with_nan())


def test_batch_errors_name_the_item_and_write_nothing(tmp_path: Path) -> None:
    batch = np.stack([clip(), with_nan()])
    with pytest.raises(InvalidAudio, match="item 1"):
        export_batch(batch, RATE, [tmp_path / "a.wav", tmp_path / "b.wav"])
    with pytest.raises(InvalidInput):
        export_batch(np.stack([clip(), clip()]), RATE, [tmp_path / "a.wav"])
    with pytest.raises(InvalidInput):
        export_batch(np.stack([clip(), clip()]), RATE, [tmp_path / "a.wav", tmp_path / "a.wav"])
    assert list(tmp_path.iterdir()) == []


def test_errors_are_musicstore_errors() -> None:
    with pytest.raises(MusicstoreError):
        as_audio(np.zeros((2, 0), dtype=np.float32))


def test_layouts_and_dtypes() -> None:
    mono = as_audio(np.zeros(100, dtype=np.float64))
    assert mono.shape == (1, 100) and mono.dtype == np.float32
    assert as_audio(np.zeros((3, 100), dtype=np.float16)).shape == (3, 100)
    ints = as_audio(np.full((1, 4), -16384, dtype=np.int16), scale=32768)
    np.testing.assert_array_equal(ints, np.full((1, 4), -0.5, dtype=np.float32))
    with pytest.raises(InvalidInput):
        as_audio(np.zeros((1, 4), dtype=np.float32), scale=2.0)
    assert as_audio_batch(np.zeros((4, 2, 10), dtype=np.float32)).shape == (4, 2, 10)
    with pytest.raises(InvalidAudio):
        as_audio_batch(np.zeros((2, 10), dtype=np.float32))


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([(np.int8, np.uint8), (np.int16, np.uint16)]),
    st.lists(st.integers(-(2**15), 2**15 - 1), min_size=1, max_size=64),
    st.booleans(),
)
def test_unsigned_audio_is_offset_binary(kinds: tuple[Any, Any], values: list[int], as_tensor: bool) -> None:
    """Unsigned integer audio (8-bit WAV's convention) has its silence at its midpoint: a signed clip and the
    same clip as offset binary read as the same samples, as numpy arrays and as torch tensors."""
    signed, unsigned = kinds
    bits = 8 * np.dtype(signed).itemsize
    full = 2 ** (bits - 1)
    clip = np.array([v % (2 * full) - full for v in values], dtype=signed)[np.newaxis, :]
    offset = (clip.astype(np.int64) + full).astype(unsigned)
    expected = as_audio(clip, scale=full)
    assert float(np.abs(expected).max()) <= 1.0
    if as_tensor:
        torch = pytest.importorskip("torch")
        got = as_audio(torch.from_numpy(offset.copy()), scale=full)
        np.testing.assert_array_equal(got, as_audio(torch.from_numpy(clip.copy()), scale=full))
    else:
        got = as_audio(offset, scale=full)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(as_audio_batch(offset[np.newaxis], scale=full)[0], expected)


def test_silent_unsigned_audio_exports_as_silence(tmp_path: Path) -> None:
    """uint8 silence (all 128) is silence, not a full-scale DC offset."""
    result = export_audio(np.full((1, RATE), 128, dtype=np.uint8), RATE, tmp_path / "u8.wav", scale=128)
    assert result.status == "silent"


def test_numpy_input_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from musicstore.audio import as_audio; "
        "as_audio(np.zeros((2, 10), dtype=np.float32)); assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
