"""Small fixes from earlier hunts (session 23): typed, truthful errors for a folder or a missing file given
to the audio readers, a truncated W64 file refused, the dashboard's model filter for a name with a newline.
Each test failed before its fix."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore import InvalidAudio, InvalidInput, StorageError
from musicstore.audio import file_peaks
from musicstore.audio.analysis import analyze_file
from musicstore.audio.renditions import read_master


def test_analyze_file_and_file_peaks_name_a_folder_and_agree_on_a_missing_file(tmp_path: Path) -> None:
    """``analyze_file`` of a folder said "no such file", and ``file_peaks`` of a missing file raised
    ``InvalidInput`` where ``analyze_file`` (and the docs) say ``StorageError``: both now raise
    ``StorageError`` naming a folder as a folder (``file_peaks``' error stays an ``InvalidInput`` too)."""
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    missing = tmp_path / "missing.wav"
    with pytest.raises(StorageError, match=r"folder\.wav: is a folder, not a file"):
        analyze_file(folder)
    with pytest.raises(StorageError, match=r"folder\.wav: is a folder, not a file"):
        file_peaks(folder)
    with pytest.raises(StorageError, match=r"missing\.wav: no such file"):
        analyze_file(missing)
    with pytest.raises(StorageError, match=r"missing\.wav: no such file") as raised:
        file_peaks(missing)
    assert isinstance(raised.value, InvalidInput)  # what it raised until then: callers catching it still do
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.wav"]


@pytest.mark.parametrize("cut", [1, 1_000, 3_999])
def test_a_truncated_w64_file_is_refused_as_a_truncated_wav_is(tmp_path: Path, cut: int) -> None:
    """A Sony Wave64 file (W64, which libsndfile reads and writes) cut short was read as a shorter clip
    without a word, where a WAV (RIFF, RIFX, RF64) cut short is ``InvalidAudio``: its data chunk's size is
    now checked too. The whole file still reads."""
    whole = tmp_path / "whole.w64"
    frames = np.full((1_000, 2), 0.25, dtype=np.float32)
    sf.write(whole, frames, 16_000, format="W64", subtype="PCM_16")
    data = whole.read_bytes()
    assert analyze_file(whole).frames == 1_000
    assert file_peaks(whole).frames == 1_000
    assert read_master(data, "whole.w64")[0].shape == (2, 1_000)
    cut_file = tmp_path / "cut.w64"
    cut_file.write_bytes(data[: len(data) - cut])
    with pytest.raises(InvalidAudio, match="truncated"):
        analyze_file(cut_file)
    with pytest.raises(InvalidAudio, match="truncated"):
        file_peaks(cut_file)
    with pytest.raises(InvalidAudio, match="truncated"):
        read_master(cut_file.read_bytes(), "cut.w64")


@settings(max_examples=100, deadline=None)
@given(fmt=st.sampled_from(["W64", "WAV"]), kept=st.integers(min_value=0, max_value=10**6))
def test_a_w64_or_wav_master_cut_anywhere_is_invalid_audio(fmt: str, kept: int) -> None:
    """Property: a W64 (or WAV) master cut at any byte is ``InvalidAudio`` (truncated, or no audio file at
    all), never read as a shorter clip; a cut inside the data chunk's header was read as no frames."""
    buffer = io.BytesIO()
    sf.write(buffer, np.full((1_000, 2), 0.25, dtype=np.float32), 16_000, format=fmt, subtype="PCM_16")
    data = buffer.getvalue()
    with pytest.raises(InvalidAudio):
        read_master(data[: kept % len(data)], f"cut.{fmt.lower()}")
