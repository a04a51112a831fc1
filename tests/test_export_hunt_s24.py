"""Export path: what the s24 hunt found (each test failed before its fix)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicstore import InvalidInput
from musicstore.audio import ExportOptions, RenditionSpec, export_audio, export_batch, render_audio


def noise(channels: int, samples: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((channels, samples)) * 0.1).astype(np.float32)


@pytest.mark.parametrize("rate", [65_537, 96_001, 383_999])
@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24"])
def test_a_flac_export_at_a_rate_flac_cannot_name_is_refused_before_anything(
    tmp_path: Path, rate: int, subtype: str
) -> None:
    """FLAC names a rate above 65,535 Hz in tens of Hz: libsndfile refused 96,001 Hz only at the write, after
    the whole export's work, as a StorageError about "the flac decoder". Now InvalidInput up front, and
    nothing is made (not even the date folders)."""
    clip = noise(2, 4_000)
    path = tmp_path / "2026" / "a.flac"
    with pytest.raises(InvalidInput, match=rf"FLAC.*{rate:,}"):
        export_audio(clip, rate, path, ExportOptions(subtype=subtype))
    with pytest.raises(InvalidInput, match=rf"FLAC.*{rate:,}"):
        export_batch(clip[np.newaxis], rate, [path], ExportOptions(subtype=subtype))
    assert list(tmp_path.iterdir()) == []
    # WAV holds any rate in range
    assert export_audio(clip, rate, tmp_path / "a.wav", ExportOptions(subtype=subtype)).sample_rate == rate


@pytest.mark.parametrize("rate", [8_001, 65_535, 96_000, 176_400, 383_990, 384_000])
def test_flac_takes_any_rate_to_65535_hz_and_tens_of_hz_beyond(tmp_path: Path, rate: int) -> None:
    path = tmp_path / "a.flac"
    result = export_audio(noise(1, 3_000), rate, path)
    assert result.sample_rate == rate and sf.info(str(path)).samplerate == rate


@pytest.mark.parametrize(("master_rate", "spec_rate"), [(96_001, None), (48_000, 96_001)])
def test_a_flac_rendition_at_a_rate_flac_cannot_name_is_refused_before_encoding(
    tmp_path: Path, master_rate: int, spec_rate: int | None
) -> None:
    """The rendition's settings refused an MP3/Opus/Vorbis rate up front, but a FLAC one only failed in the
    encoder (RenditionFailed after the levelling's work)."""
    spec = RenditionSpec("flac", sample_rate=spec_rate)
    with pytest.raises(InvalidInput, match=r"FLAC.*96,001"):
        spec.settings(master_rate, 2)
    with pytest.raises(InvalidInput, match=r"FLAC.*96,001"):
        render_audio(noise(2, 4_000), master_rate, tmp_path / "a.flac", spec)
    assert list(tmp_path.iterdir()) == []
