"""Export path: what the s24 hunt found (each test failed before its fix)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicstore import InvalidAudio, InvalidInput
from musicstore.audio import (
    ExportOptions,
    RenditionSpec,
    analyze_audio,
    export_audio,
    export_batch,
    quantize,
    render_audio,
)


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


def test_the_wav_limit_is_what_a_riff_header_can_declare() -> None:
    """A WAV header counts bytes in 32 bits: libsndfile wrote a larger data chunk with the size 0xFFFFFFFF,
    which it (and analyze_file, renditions) then read as its first 4 GiB alone (2**30 frames of PCM_16
    stereo read back as 2**30 - 1; an 8-channel FLOAT clip at 384 kHz passes 4 GiB at 5.8 minutes), and a
    recording's tagging failed on it. Refused up front now, with room kept for headers and tags."""
    limit = quantize.WAV_MAX_AUDIO_BYTES
    assert 0xFFFF_FFFF - (1 << 21) < limit < 0xFFFF_FFFF - 100_000  # tags hold a 20,000-character prompt
    quantize.check_wav_size("WAV", "PCM_16", (2, limit // 4))
    with pytest.raises(InvalidInput, match=r"more than a WAV file holds.*FLAC"):
        quantize.check_wav_size("WAV", "PCM_16", (2, 1 << 30))
    with pytest.raises(InvalidInput, match="WAV"):
        quantize.check_wav_size("WAV", "FLOAT", (8, 384_000 * 350))
    quantize.check_wav_size("FLAC", "PCM_24", (8, 384_000 * 350))  # FLAC counts frames in 36 bits


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT"])
def test_a_wav_export_over_the_wav_limit_is_refused_before_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, subtype: str
) -> None:
    width = {"PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4}[subtype]
    monkeypatch.setattr(quantize, "WAV_MAX_AUDIO_BYTES", 2 * 4_000 * width)
    options = ExportOptions(subtype=subtype)
    fits, over = noise(2, 4_000), noise(2, 4_001)
    path = tmp_path / "d" / "a.wav"
    with pytest.raises(InvalidInput, match="more than a WAV file holds"):
        export_audio(over, 16_000, path, options)
    with pytest.raises(InvalidInput, match="more than a WAV file holds"):
        export_batch(np.stack([over, over]), 16_000, [path, tmp_path / "b.wav"], options)
    assert list(tmp_path.iterdir()) == []
    assert export_audio(fits, 16_000, path, options).frames == 4_000
    if subtype in ("PCM_16", "PCM_24"):
        assert export_audio(over, 16_000, tmp_path / "a.flac", options).frames == 4_001


def test_any_torch_tensor_is_audio_and_other_torch_objects_are_invalid_audio(tmp_path: Path) -> None:
    """A tensor was told apart by its type's module name: a torch.Tensor subclass made outside torch (a
    library's own tensor type) was refused as "not a torch tensor", and a torch object that is no tensor
    (``x.shape``, a storage, a dtype) raised a bare AttributeError ('torch.Size' object has no attribute
    'ndim')."""
    torch = pytest.importorskip("torch")

    audio_tensor = type("AudioTensor", (torch.Tensor,), {})  # a library's own tensor type
    clip = torch.from_numpy(noise(2, 8_000))
    sub = clip.as_subclass(audio_tensor)
    assert export_audio(sub, 16_000, tmp_path / "a.wav").channels == 2
    assert export_batch(sub[None], 16_000, [tmp_path / "b.wav"])[0].channels == 2
    assert analyze_audio(sub, 16_000).channels == 2
    for wrong in (clip.shape, clip.untyped_storage(), clip.dtype, clip.device, torch.max(clip, dim=0)):
        with pytest.raises(InvalidAudio, match="audio must be a torch tensor or a numpy array"):
            export_audio(wrong, 16_000, tmp_path / "c.wav")
        with pytest.raises(InvalidAudio, match="audio must be a torch tensor or a numpy array"):
            export_batch(wrong, 16_000, [tmp_path / "c.wav"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "b.wav"]


@pytest.mark.parametrize("status", ["as_is", "too_quiet"])
@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_16_bit_audio_written_unchanged_as_pcm_16_is_the_samples_given(
    tmp_path: Path, status: str, fmt: str
) -> None:
    """normalize=False "writes the samples as given", yet int16 audio exported as_is to PCM_16 came back with
    a quarter of its samples 1 LSB off: TPDF dither added to samples that need no rounding. A clip written
    unchanged whose samples lie on the 16-bit grid is now written exactly; one off it is dithered as
    before, and so is every clip the export changes."""
    rng = np.random.default_rng(4)
    level = 20_000 if status == "as_is" else 30  # too_quiet: about -70 dBFS, more than 30 dB to the target
    given = (rng.standard_normal((2, 16_000)) * level).clip(-32_768, 32_767).astype(np.int16)
    if status == "as_is":  # full scale both ways
        given[:, :3] = [[-32_768, 32_767, 0]] * 2
    options = ExportOptions(normalize=status != "as_is", dither_seed=5)
    for audio, scale in ((given, 32_768), (given.astype(np.float32) / 32_768, None)):
        result = export_audio(audio, 16_000, tmp_path / f"a.{fmt}", options, scale=scale)
        assert result.status == status
        written, _ = sf.read(result.path, dtype="int16", always_2d=True)
        np.testing.assert_array_equal(written.T, given)
    if status == "as_is":  # 8-bit audio lies on the 16-bit grid too
        u8 = (given // 256 + 128).astype(np.uint8)
        export_audio(u8, 16_000, tmp_path / f"u.{fmt}", options, scale=128)
        written, _ = sf.read(tmp_path / f"u.{fmt}", dtype="int16", always_2d=True)
        np.testing.assert_array_equal(written.T, (u8.astype(np.int16) - 128) * 256)
    off_grid = given.astype(np.float32) / 32_768 + np.float32(0.3 / 32_768)
    export_audio(off_grid, 16_000, tmp_path / f"b.{fmt}", options)
    written, _ = sf.read(tmp_path / f"b.{fmt}", dtype="int16", always_2d=True)
    differs = np.count_nonzero(given != written.T)
    assert 0 < differs < written.size  # dithered: not every sample rounds to the grid point below
