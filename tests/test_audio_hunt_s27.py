"""Session 27's hunt over the export path: what it found, as tests that failed before the fixes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from musicstore.audio import RenditionSpec, codecs, quantize, render_audio, renditions, synthesize_music
from musicstore.errors import InvalidInput


@pytest.mark.parametrize(
    ("spec", "rate", "frames"),
    [
        (RenditionSpec("wav"), 16_000, 4_001),  # 4,001 stereo PCM_16 frames: 16,004 bytes
        (RenditionSpec("wav", subtype="FLOAT"), 16_000, 2_001),  # 2,001 frames of 8 bytes
        (RenditionSpec("wav", sample_rate=32_000), 16_000, 2_001),  # resampled: 4,002 frames
    ],
)
def test_a_wav_rendition_over_the_wav_limit_is_refused_before_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: RenditionSpec, rate: int, frames: int
) -> None:
    """docs/renditions.md: a WAV rendition holds at most ``quantize.WAV_MAX_AUDIO_BYTES`` of samples, as an
    exported WAV does (docs/export.md; a RIFF header counts bytes in 32 bits): more is ``InvalidInput``
    before anything is encoded, counted at the rendition's rate. The export refused it; a rendition was
    encoded (libsndfile writes such a data chunk with the size 0xFFFFFFFF, then reads its first 4 GiB
    alone) and written. The limit is lowered here (16,000 bytes) so as not to encode 4 GiB."""
    monkeypatch.setattr(quantize, "WAV_MAX_AUDIO_BYTES", 16_000)
    encoded: list[object] = []

    def encode(*args: Any) -> bytes:
        encoded.append(args)
        return codecs.encode(*args)

    monkeypatch.setattr(renditions, "encode", encode)
    clip = synthesize_music(1.0, rate, seed=1)[:, :frames]
    with pytest.raises(InvalidInput, match="more than a WAV file holds"):
        render_audio(clip, rate, tmp_path / "r.wav", spec)
    assert not encoded and not list(tmp_path.iterdir())


def test_a_wav_rendition_within_the_wav_limit_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound is the limit itself: 4,000 stereo PCM_16 frames are 16,000 bytes, and fit."""
    monkeypatch.setattr(quantize, "WAV_MAX_AUDIO_BYTES", 16_000)
    clip = np.asarray(synthesize_music(1.0, 16_000, seed=1))[:, :4_000]
    result = render_audio(clip, 16_000, tmp_path / "r.wav", RenditionSpec("wav"))
    assert result.frames == 4_000 and result.path.is_file()
