"""Rendition formats and their codec settings: what may be asked for (``RenditionSpec``, checked when made),
what soundfile is given (``Codec``), and encoding and decoding in memory."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from musicstore import validate
from musicstore.audio.arrays import MAX_CHANNELS, check_flac_rate, check_sample_rate
from musicstore.audio.files import as_path, callback_errors
from musicstore.audio.quantize import check_wav_size, dithers, to_frames
from musicstore.audio.tags import INSTALL_HINT
from musicstore.errors import InvalidInput, shown

Format = Literal["mp3", "opus", "vorbis", "flac", "wav"]
BitrateMode = Literal["constant", "variable", "average"]

FORMATS: tuple[str, ...] = ("mp3", "opus", "vorbis", "flac", "wav")
EXTENSIONS = {"mp3": (".mp3",), "opus": (".opus", ".ogg"), "vorbis": (".ogg", ".oga"), "flac": (".flac",),
              "wav": (".wav",)}  # fmt: skip
_SOUNDFILE = {
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "opus": ("OGG", "OPUS"),
    "vorbis": ("OGG", "VORBIS"),
    "flac": ("FLAC", None),
    "wav": ("WAV", None),
}
MP3_RATES = (8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000)
OPUS_RATES = (8_000, 12_000, 16_000, 24_000, 48_000)
VORBIS_RATES = (8_000, 192_000)  # a range; libvorbis crashes above it
# CBR bitrates (kbps) by MPEG version: MPEG-1 (32–48 kHz), MPEG-2 (16–24 kHz), MPEG-2.5 (8–12 kHz)
MP3_BITRATES = {
    32_000: (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    16_000: (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    8_000: (8, 16, 24, 32, 40, 48, 56, 64),
}
OPUS_KBPS_PER_CHANNEL = (6, 256)
LOSSLESS_SUBTYPES = {"flac": ("PCM_16", "PCM_24"), "wav": ("PCM_16", "PCM_24", "FLOAT")}


def _mp3_version_floor(rate: int) -> int:
    return 32_000 if rate >= 32_000 else 16_000 if rate >= 16_000 else 8_000


def format_name(value: object) -> str:
    """A rendition format's canonical name: one of ``FORMATS`` in any case (``"MP3"`` is ``"mp3"``), as
    every path a format is given by takes it (``RenditionSpec``, ``render_generation``, the CLI's
    ``render --format`` and ``demo --renditions``); else ``InvalidInput`` naming the formats."""
    if isinstance(value, str) and value.lower() in FORMATS:
        return value.lower()
    named = repr(value) if isinstance(value, str) and len(value) <= 20 else type(value).__name__
    raise InvalidInput(f"unknown rendition format {named}; use one of {list(FORMATS)}")


@dataclass(frozen=True)
class RenditionSpec:
    """A format and its codec settings; checked when made (``InvalidInput``).

    - ``mp3``: ``bitrate_mode`` ``constant`` (``bitrate_kbps`` one of the MPEG version's rates, default 192
      or the version's highest under it), ``average`` (``bitrate_kbps`` 8–320) or ``variable``
      (``quality`` 0 best – 9, LAME's V0–V9, default 2); 1–2 channels; the sample rates of MP3.
    - ``opus``: ``bitrate_kbps`` 6–256 per channel (default 64 per channel); 48 kHz unless ``sample_rate``
      names another Opus rate (8, 12, 16, 24 kHz).
    - ``vorbis``: ``quality`` 0–10 (oggenc's scale, default 6); 8–192 kHz.
    - ``flac``: ``subtype`` PCM_16 (TPDF dither) or PCM_24, ``compression_level`` 0–8 (default 5).
    - ``wav``: ``subtype`` PCM_16, PCM_24 or FLOAT.

    ``sample_rate``: the rendition's rate (resampled with soxr: "HQ" for lossy
    codecs, "VHQ" for lossless), default the master's (Opus: 48 kHz).
    """

    format: str
    bitrate_kbps: int | None = None
    bitrate_mode: str = "constant"
    quality: float | None = None
    subtype: str = "PCM_16"
    compression_level: int | None = None
    sample_rate: int | None = None

    def __post_init__(self) -> None:
        fmt = format_name(self.format)
        object.__setattr__(self, "format", fmt)  # "MP3" as "mp3": the name its files and rows are keyed by
        if self.sample_rate is not None:
            check_sample_rate(self.sample_rate)
        if self.bitrate_mode not in ("constant", "variable", "average"):
            raise InvalidInput("bitrate_mode must be 'constant', 'variable' or 'average'")
        if fmt != "mp3" and self.bitrate_mode != "constant":
            raise InvalidInput(f"bitrate_mode applies to mp3 only, not {fmt}")
        if self.bitrate_kbps is not None:
            check_whole(self.bitrate_kbps, "bitrate_kbps")
            if not 1 <= self.bitrate_kbps <= 10_000:  # 0 would read as "not given" below: the default bitrate
                raise InvalidInput(f"bitrate_kbps must be 1 to 10,000 kbps, got {shown(self.bitrate_kbps)}")
            if fmt not in ("mp3", "opus") or (fmt == "mp3" and self.bitrate_mode == "variable"):
                raise InvalidInput(
                    f"bitrate_kbps applies to mp3 (constant, average) and opus, not this {fmt}"
                )
        if self.quality is not None:
            limit = {"mp3": 9.0, "vorbis": 10.0}.get(fmt)
            if limit is None or (fmt == "mp3" and self.bitrate_mode != "variable"):
                raise InvalidInput("quality applies to variable-bitrate mp3 (0–9) and vorbis (0–10) only")
            q = validate.real_number(self.quality, fractions=True)
            if q is None or not 0.0 <= q <= limit:
                given = shown(self.quality)
                raise InvalidInput(f"{fmt} quality must be a number in 0–{limit:g}, got {given}")
        if fmt in LOSSLESS_SUBTYPES:
            if self.subtype not in LOSSLESS_SUBTYPES[fmt]:
                raise InvalidInput(
                    f"{fmt} subtype must be one of {LOSSLESS_SUBTYPES[fmt]}, got {shown(self.subtype)}"
                )
        elif self.subtype != "PCM_16":
            raise InvalidInput(f"subtype applies to flac and wav only, not {fmt}")
        if self.compression_level is not None:
            check_whole(self.compression_level, "compression_level")
            if fmt != "flac" or not 0 <= self.compression_level <= 8:
                raise InvalidInput("compression_level applies to flac only, as an integer 0–8")
        average = fmt == "mp3" and self.bitrate_mode == "average"
        if average and self.bitrate_kbps is not None and not 8 <= self.bitrate_kbps <= 320:
            raise InvalidInput(f"an average mp3 bitrate must be 8–320 kbps, got {self.bitrate_kbps}")
        for name in ("bitrate_kbps", "compression_level", "sample_rate"):  # numpy numbers as int, float:
            value = getattr(self, name)  # the rendition's as_metadata and request key JSON-ready
            if value is not None and type(value) is not int:
                object.__setattr__(self, name, int(value))
        quality = self.quality
        if quality is not None and type(quality) is not int and type(quality) is not float:  # np.float64 too
            object.__setattr__(self, "quality", validate.real_number(quality, fractions=True))

    def settings(self, master_rate: int, channels: int) -> Codec:
        """The encoder settings for a master of this rate and channel count (``InvalidInput`` when the
        combination is not possible)."""
        master_rate, channels = check_sample_rate(master_rate), validate.channels(channels)
        fmt = self.format
        rate = self.sample_rate or (48_000 if fmt == "opus" else master_rate)
        if fmt == "mp3":
            if rate not in MP3_RATES:
                raise InvalidInput(f"mp3 takes sample rates {MP3_RATES}, not {rate} Hz; pass sample_rate=...")
            if channels > 2:
                raise InvalidInput(f"mp3 holds 1 or 2 channels, not {channels}; mix the master down first")
        if fmt == "opus" and rate not in OPUS_RATES:
            raise InvalidInput(f"opus takes sample rates {OPUS_RATES}, not {rate} Hz")
        if fmt == "vorbis" and not VORBIS_RATES[0] <= rate <= VORBIS_RATES[1]:
            raise InvalidInput(f"vorbis takes sample rates of 8–192 kHz, not {rate} Hz; pass sample_rate=...")
        if fmt == "flac":
            check_flac_rate(rate)
        if channels > MAX_CHANNELS:
            raise InvalidInput(f"{channels} channels: at most {MAX_CHANNELS}")
        return _codec(self, rate, channels)


def rendition_specs(
    formats: Sequence[str | RenditionSpec] | str, bitrate_kbps: int | None
) -> list[RenditionSpec]:
    """The specs ``render_generation`` is asked for: format names (``bitrate_kbps`` for mp3 and opus) or
    ``RenditionSpec``s (which carry their own bitrate: ``bitrate_kbps`` beside one is refused)."""
    if isinstance(formats, str | RenditionSpec):
        formats = [formats]
    if not isinstance(formats, Sequence) or not formats:
        raise InvalidInput("formats must name at least one format (mp3, opus, vorbis, flac, wav) or spec")
    specs = []
    for item in formats:
        if isinstance(item, RenditionSpec):
            if bitrate_kbps is not None and item.format in ("mp3", "opus"):  # it would be ignored silently
                raise InvalidInput(
                    f"bitrate_kbps applies to format names, not to this {item.format} RenditionSpec: set "
                    "bitrate_kbps in the spec"
                )
            specs.append(item)
        else:
            name = format_name(item)  # InvalidInput for an unknown format
            specs.append(RenditionSpec(name, bitrate_kbps=bitrate_kbps if name in ("mp3", "opus") else None))
    if bitrate_kbps is not None and not any(s.format in ("mp3", "opus") for s in specs):
        raise InvalidInput("a bitrate applies to mp3 and opus renditions only")
    return specs


def check_whole(value: object, what: str) -> int:
    """``value`` as a plain int (``validate.whole_number``: numpy's integers too, not a bool), else
    ``InvalidInput``."""
    whole = validate.whole_number(value)
    if whole is None:
        raise InvalidInput(f"{what} must be an integer, got {shown(value)}")
    return whole


@dataclass(frozen=True)
class Codec:
    """Resolved encoder settings: what soundfile is given, and what they mean (``description``)."""

    format: str
    sample_rate: int
    channels: int
    sf_format: str
    sf_subtype: str
    compression_level: float | None
    bitrate_mode: str | None
    description: dict[str, Any]


def _codec(spec: RenditionSpec, rate: int, channels: int) -> Codec:
    fmt = spec.format
    sf_format, subtype = _SOUNDFILE[fmt]
    info: dict[str, Any] = {"format": fmt, "sample_rate": rate, "channels": channels}
    level: float | None = None
    mode: str | None = None
    if fmt == "mp3":
        top = 320 if rate >= 32_000 else 160 if rate >= 16_000 else 64
        low = 32 if rate >= 32_000 else 8
        if spec.bitrate_mode == "variable":
            quality = 2.0 if spec.quality is None else float(spec.quality)
            level, mode = quality / 10.0, "VARIABLE"
            info |= {"bitrate_mode": "variable", "quality": quality}
        else:
            allowed = MP3_BITRATES[_mp3_version_floor(rate)]
            kbps = spec.bitrate_kbps or max(b for b in allowed if b <= 192)
            if spec.bitrate_mode == "constant" and kbps not in allowed:
                raise InvalidInput(
                    f"a constant mp3 bitrate at {rate} Hz is one of {allowed} kbps, not {kbps}"
                )
            if spec.bitrate_mode == "average" and not low <= kbps <= top:
                raise InvalidInput(f"an average mp3 bitrate at {rate} Hz is {low}–{top} kbps, not {kbps}")
            # libsndfile: bitrate = (int)(top − level · (top − low)); half a kbps above survives rounding
            level = min(1.0, max(0.0, (top - kbps - 0.5) / (top - low)))
            mode = "CONSTANT" if spec.bitrate_mode == "constant" else "AVERAGE"
            info |= {"bitrate_mode": spec.bitrate_mode, "bitrate_kbps": kbps}
        subtype_name = subtype or ""
    elif fmt == "opus":
        kbps = spec.bitrate_kbps or 64 * channels
        low, high = (k * channels for k in OPUS_KBPS_PER_CHANNEL)
        if not low <= kbps <= high:
            raise InvalidInput(f"opus at {channels} channel(s) takes {low}–{high} kbps, not {kbps}")
        per_channel = kbps * 1000 // channels
        # libsndfile: bitrate = (int)((1 − level) · 250000 + 6000) · channels
        level = min(1.0, max(0.0, 1.0 - (per_channel - 6000 + 0.5) / 250_000))
        info |= {"bitrate_kbps": kbps}
        subtype_name = subtype or ""
    elif fmt == "vorbis":
        quality = 6.0 if spec.quality is None else float(spec.quality)
        level = 1.0 - quality / 10.0
        info |= {"quality": quality}
        subtype_name = subtype or ""
    else:
        subtype_name = spec.subtype
        info |= {"subtype": spec.subtype}
        if fmt == "flac":
            compression = 5 if spec.compression_level is None else int(spec.compression_level)
            level = compression / 8.0
            info |= {"compression_level": compression}
    return Codec(fmt, rate, channels, sf_format, subtype_name, level, mode, info)


def check_size(codec: Codec, rate: int, samples: int) -> None:
    """``InvalidInput`` when a WAV rendition of ``samples`` frames at ``rate`` Hz holds more than a WAV file
    (``quantize.check_wav_size``, as an export's), counted at the rendition's rate: soxr makes
    ``round(samples · to / rate)`` frames, bounded here from above."""
    if codec.format == "wav":
        frames = -(-samples * codec.sample_rate // rate)
        check_wav_size("WAV", codec.sf_subtype, (codec.channels, frames))


def check_target(path: str | Path, spec: RenditionSpec) -> Path:
    """The target path, after checking that its extension fits the format."""
    target = as_path(path)
    if target.suffix.lower() not in EXTENSIONS[spec.format]:
        raise InvalidInput(
            f"{target.name}: a {spec.format} rendition's name ends in {EXTENSIONS[spec.format]}"
        )
    return target


def resample(x: NDArray[np.float32], rate: int, to: int, *, lossy: bool = False) -> NDArray[np.float32]:
    """``x`` at ``to`` Hz with soxr: "VHQ" (28-bit) for a lossless target, "HQ" (20-bit, five times faster:
    docs/renditions.md) for a lossy codec, whose own noise is far above; ``x`` itself when the rates
    match."""
    if rate == to:
        return x
    try:
        import soxr  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ImportError(f"resampling needs soxr: {INSTALL_HINT}") from exc

    out = soxr.resample(np.ascontiguousarray(x.T), rate, to, quality="HQ" if lossy else "VHQ")
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32).T)


def encode(x: NDArray[np.float32], codec: Codec, rng: np.random.Generator) -> bytes:
    """``x`` (float32 ``(C, S)``) encoded in memory with ``codec`` (lossless formats: quantized, dithered
    unless ``x`` is digital silence, which is written as zeros as an export writes it)."""
    buffer = io.BytesIO()
    if codec.format in LOSSLESS_SUBTYPES:
        peak = max(float(x.max()), -float(x.min()))
        frames = to_frames(x, codec.sf_subtype, rng, dither=dithers(peak))
    else:
        frames = np.ascontiguousarray(x.T)
    with callback_errors():
        sf.write(
            buffer,
            frames,
            codec.sample_rate,
            format=codec.sf_format,
            subtype=codec.sf_subtype,
            compression_level=codec.compression_level,
            bitrate_mode=codec.bitrate_mode,
        )
    return buffer.getvalue()


def decode(data: bytes) -> tuple[NDArray[np.float32], int]:
    """An encoded file's samples as float32 ``(C, S)`` and its sample rate."""
    with callback_errors():
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return np.ascontiguousarray(samples.T), int(rate)
