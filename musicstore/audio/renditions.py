"""Renditions of a master for listeners: MP3 (CBR, VBR, ABR), Ogg Opus, Ogg Vorbis, FLAC or WAV, levelled to a
loudness profile, encoded with soundfile (libsndfile, LAME, libopus, libvorbis), decoded back and measured.

Each attempt levels the (resampled) master to the profile's target under its ceiling less a headroom, encodes
it in memory, decodes it and measures the integrated loudness and the true peak with the library's meters. If
the decoded true peak is over the ceiling, the headroom grows by the excess plus a margin; if the loudness
is off by more than the tolerance (a codec's low-pass removes bright content, and so loudness), the aim moves
by the miss (at most ``MAX_CORRECTION_DB``). At most ``max_attempts`` encodes. The ceiling is never given up:
when no attempt holds it, ``RenditionFailed`` is raised and nothing is written. A loudness that cannot be
reached under the ceiling is reported (``status="target_missed"``, ``target_reached=False``, a warning on
``musicstore.audio``), as the master's export does. The chosen encode gets its tags and is written atomically
(temp file beside the target, fsync, rename: ``files.write_bytes_atomic``).
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import numbers
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from musicstore.audio.arrays import MAX_CHANNELS, as_audio, check_sample_rate
from musicstore.audio.files import write_bytes_atomic
from musicstore.audio.limiter import LimiterSettings, level
from musicstore.audio.loudness import ABSOLUTE_GATE_LUFS, BlockPower, gated_loudness, integrated_loudness
from musicstore.audio.profiles import LoudnessProfile, get_profile
from musicstore.audio.quantize import to_frames
from musicstore.audio.tags import INSTALL_HINT, LoudnessTags, Provenance, embed
from musicstore.audio.truepeak import to_db, true_peak
from musicstore.errors import InvalidAudio, InvalidInput, RenditionFailed

log = logging.getLogger("musicstore.audio")

Format = Literal["mp3", "opus", "vorbis", "flac", "wav"]
BitrateMode = Literal["constant", "variable", "average"]
RenditionStatus = Literal["normalized", "limited", "target_missed", "silent", "too_quiet"]

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
DEFAULT_HEADROOM_DB = {
    "mp3": 0.5,
    "opus": 1.0,
    "vorbis": 0.75,
    "flac": 0.0,
    "wav": 0.0,
}  # measured: docs/renditions.md
MAX_HEADROOM_DB = 6.0
MAX_CORRECTION_DB = 3.0


def _mp3_version_floor(rate: int) -> int:
    return 32_000 if rate >= 32_000 else 16_000 if rate >= 16_000 else 8_000


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

    ``sample_rate``: the rendition's rate (resampled with soxr, "VHQ"), default the master's (Opus: 48 kHz).
    """

    format: str
    bitrate_kbps: int | None = None
    bitrate_mode: str = "constant"
    quality: float | None = None
    subtype: str = "PCM_16"
    compression_level: int | None = None
    sample_rate: int | None = None

    def __post_init__(self) -> None:
        fmt = self.format
        if fmt not in FORMATS:
            shown = repr(fmt) if isinstance(fmt, str) and len(fmt) <= 20 else type(fmt).__name__
            raise InvalidInput(f"unknown rendition format {shown}; use one of {list(FORMATS)}")
        if self.sample_rate is not None:
            check_sample_rate(self.sample_rate)
        if self.bitrate_mode not in ("constant", "variable", "average"):
            raise InvalidInput("bitrate_mode must be 'constant', 'variable' or 'average'")
        if fmt != "mp3" and self.bitrate_mode != "constant":
            raise InvalidInput(f"bitrate_mode applies to mp3 only, not {fmt}")
        if self.bitrate_kbps is not None:
            _whole(self.bitrate_kbps, "bitrate_kbps")
            if fmt not in ("mp3", "opus") or (fmt == "mp3" and self.bitrate_mode == "variable"):
                raise InvalidInput(
                    f"bitrate_kbps applies to mp3 (constant, average) and opus, not this {fmt}"
                )
        if self.quality is not None:
            limit = {"mp3": 9.0, "vorbis": 10.0}.get(fmt)
            if limit is None or (fmt == "mp3" and self.bitrate_mode != "variable"):
                raise InvalidInput("quality applies to variable-bitrate mp3 (0–9) and vorbis (0–10) only")
            q = self.quality
            if isinstance(q, bool) or not isinstance(q, int | float) or not 0.0 <= q <= limit:
                raise InvalidInput(f"{fmt} quality must be a number in 0–{limit:g}, got {q!r}")
        if fmt in LOSSLESS_SUBTYPES:
            if self.subtype not in LOSSLESS_SUBTYPES[fmt]:
                raise InvalidInput(
                    f"{fmt} subtype must be one of {LOSSLESS_SUBTYPES[fmt]}, got {self.subtype!r}"
                )
        elif self.subtype != "PCM_16":
            raise InvalidInput(f"subtype applies to flac and wav only, not {fmt}")
        if self.compression_level is not None:
            _whole(self.compression_level, "compression_level")
            if fmt != "flac" or not 0 <= self.compression_level <= 8:
                raise InvalidInput("compression_level applies to flac only, as an integer 0–8")
        average = fmt == "mp3" and self.bitrate_mode == "average"
        if average and self.bitrate_kbps is not None and not 8 <= self.bitrate_kbps <= 320:
            raise InvalidInput(f"an average mp3 bitrate must be 8–320 kbps, got {self.bitrate_kbps}")

    def settings(self, master_rate: int, channels: int) -> Codec:
        """The encoder settings for a master of this rate and channel count (``InvalidInput`` when the
        combination is not possible)."""
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
        if channels > MAX_CHANNELS:
            raise InvalidInput(f"{channels} channels: at most {MAX_CHANNELS}")
        return _codec(self, rate, channels)


def _whole(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInput(f"{what} must be an integer, got {value!r}")


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


@dataclass(frozen=True)
class RenditionOptions:
    """How hard to try: encodes at most ``max_attempts``; the first with ``headroom_db`` under the ceiling
    (default per format: ``DEFAULT_HEADROOM_DB``), then more by the measured excess plus ``margin_db``."""

    max_attempts: int = 4
    headroom_db: float | None = None
    margin_db: float = 0.2
    max_limiting_db: float = 6.0
    max_gain_db: float = 30.0
    dither_seed: int | None = None

    def __post_init__(self) -> None:
        _whole(self.max_attempts, "max_attempts")
        if not 1 <= self.max_attempts <= 10:
            raise InvalidInput("max_attempts must be 1–10")
        checks = (
            ("headroom_db", self.headroom_db, 0.0, MAX_HEADROOM_DB),
            ("margin_db", self.margin_db, 0.0, 2.0),
            ("max_limiting_db", self.max_limiting_db, 0.1, 24.0),
            ("max_gain_db", self.max_gain_db, 0.0, 60.0),
        )
        for name, value, low, high in checks:
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise InvalidInput(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")


@dataclass(frozen=True)
class RenditionAttempt:
    """One encode: the headroom and aim it was levelled with, and what its decoded audio measured."""

    headroom_db: float
    aim_lufs: float
    loudness: float
    true_peak: float  # dBTP
    bytes: int


@dataclass(frozen=True)
class RenditionResult:
    """What was written and what its decoded audio measured (LUFS, dBTP)."""

    path: Path
    codec: dict[str, Any]
    profile: LoudnessProfile
    sample_rate: int
    channels: int
    frames: int
    duration: float
    bytes: int
    sha256: str
    loudness_master: float
    loudness: float
    true_peak: float
    status: RenditionStatus
    target_reached: bool
    attempts: tuple[RenditionAttempt, ...]
    elapsed: float
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def first_overshoot_db(self) -> float:
        """How far the first encode's true peak went over its levelled ceiling (ceiling − headroom)."""
        first = self.attempts[0]
        return first.true_peak - (self.profile.ceiling_dbtp - first.headroom_db)

    def as_metadata(self) -> dict[str, Any]:
        """JSON-ready figures (non-finite levels become None)."""

        def num(value: float) -> float | None:
            return round(value, 3) if math.isfinite(value) else None

        return {
            **self.codec,
            **self.profile.as_metadata(),
            "frames": self.frames,
            "duration_seconds": round(self.duration, 6),
            "bytes": self.bytes,
            "sha256": self.sha256,
            "loudness_lufs": num(self.loudness),
            "true_peak_dbtp": num(self.true_peak),
            "loudness_status": self.status,
            "target_reached": self.target_reached,
            "attempts": len(self.attempts),
            "headroom_db": round(self.attempts[-1].headroom_db, 3),
        }


def check_target(path: str | Path, spec: RenditionSpec) -> Path:
    """The target path, after checking that its extension fits the format."""
    target = Path(path)
    if target.suffix.lower() not in EXTENSIONS[spec.format]:
        raise InvalidInput(
            f"{target.name}: a {spec.format} rendition's name ends in {EXTENSIONS[spec.format]}"
        )
    return target


def _resample(x: NDArray[np.float32], rate: int, to: int) -> NDArray[np.float32]:
    if rate == to:
        return x
    try:
        import soxr  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ImportError(f"resampling needs soxr: {INSTALL_HINT}") from exc

    out = soxr.resample(np.ascontiguousarray(x.T), rate, to, quality="VHQ")
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32).T)


def _encode(x: NDArray[np.float32], codec: Codec, rng: np.random.Generator) -> bytes:
    buffer = io.BytesIO()
    if codec.format in LOSSLESS_SUBTYPES:
        frames = to_frames(x, codec.sf_subtype, rng)
    else:
        frames = np.ascontiguousarray(x.T)
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
    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return np.ascontiguousarray(samples.T), int(rate)


def _measure(data: bytes) -> tuple[float, float, int]:
    audio, rate = decode(data)
    return integrated_loudness(audio, rate).lufs, true_peak(audio), audio.shape[1]


def render_audio(
    audio: Any,
    sample_rate: int,
    path: str | Path,
    spec: RenditionSpec,
    profile: str | LoudnessProfile = "streaming",
    *,
    provenance: Provenance | None = None,
    options: RenditionOptions | None = None,
    scale: float | None = None,
) -> RenditionResult:
    """Make a rendition of a clip (tensor or array, ``(S,)`` or ``(C, S)``) at ``path``.

    Raises ``InvalidInput``/``InvalidAudio`` before anything is encoded, ``RenditionFailed`` when no encode
    holds the ceiling, ``StorageError`` when the write fails; in each case nothing is left at ``path``.
    """
    started = time.perf_counter()
    if not isinstance(spec, RenditionSpec):
        raise InvalidInput(f"spec must be a RenditionSpec, got {type(spec).__name__}")
    chosen = get_profile(profile)
    opts = options or RenditionOptions()
    if provenance is not None and not isinstance(provenance, Provenance):
        raise InvalidInput(f"provenance must be a Provenance, got {type(provenance).__name__}")
    rate = check_sample_rate(sample_rate)
    target = check_target(path, spec)
    x = as_audio(audio, scale=scale)
    codec = spec.settings(rate, x.shape[0])
    x = _resample(x, rate, codec.sample_rate)
    encoded, status, attempts, before = _attempts(x, codec, chosen, opts)
    data, loudness, peak, frames = encoded.data, encoded.loudness, encoded.peak, encoded.frames
    reached = status in ("normalized", "limited")
    loudness_tags = LoudnessTags(loudness, peak)
    tagged = embed(data, spec.format, provenance, loudness_tags)
    size = write_bytes_atomic(target, tagged)
    written = (provenance.fields() if provenance is not None else {}) | (
        loudness_tags.r128() if spec.format == "opus" else loudness_tags.replaygain()
    )
    if status == "target_missed":
        log.warning(
            "%s: loudness %.2f LUFS misses the %s target %.1f LUFS (ceiling %.1f dBTP kept)",
            target, loudness, chosen.name, chosen.target_lufs, chosen.ceiling_dbtp,
        )  # fmt: skip
    return RenditionResult(
        path=target,
        codec=codec.description,
        profile=chosen,
        sample_rate=codec.sample_rate,
        channels=codec.channels,
        frames=frames,
        duration=frames / codec.sample_rate,
        bytes=size,
        sha256=hashlib.sha256(tagged).hexdigest(),
        loudness_master=before,
        loudness=loudness,
        true_peak=to_db(peak),
        status=status,
        target_reached=reached,
        attempts=attempts,
        elapsed=time.perf_counter() - started,
        tags=written,
    )


@dataclass(frozen=True)
class _Encoded:
    """An encoded file and what its decoded audio measured (loudness LUFS, true peak linear, frames)."""

    data: bytes
    loudness: float
    peak: float
    frames: int


def _attempts(
    x: NDArray[np.float32], codec: Codec, profile: LoudnessProfile, opts: RenditionOptions
) -> tuple[_Encoded, RenditionStatus, tuple[RenditionAttempt, ...], float]:
    """Encode until the ceiling holds and the loudness is within tolerance, or the attempts run out."""
    blocks = BlockPower.measure(x, codec.sample_rate)
    before = gated_loudness(blocks.block_means())
    rng = np.random.default_rng(opts.dither_seed)
    ceiling, goal = profile.ceiling_dbtp, profile.target_lufs
    unchanged: RenditionStatus | None = None
    if not before > ABSOLUTE_GATE_LUFS:
        unchanged = "silent"
    elif goal - before > opts.max_gain_db:
        unchanged = "too_quiet"
    if unchanged is not None:
        goal = before  # written at its own level; the ceiling still holds (limited if need be)
    headroom = DEFAULT_HEADROOM_DB[codec.format] if opts.headroom_db is None else float(opts.headroom_db)
    settings = LimiterSettings(max_depth_db=opts.max_limiting_db)
    offset = 0.0
    attempts: list[RenditionAttempt] = []
    best: tuple[float, _Encoded, bool] | None = None  # (|miss|, the encode, limited)
    for _ in range(opts.max_attempts):
        aim = goal + offset
        if unchanged == "silent":
            audio, limited, levelled = x, False, before
        else:
            leveled = level(
                x, blocks, target_lufs=aim, ceiling_dbtp=ceiling - headroom, limiter=True, settings=settings
            )
            audio, limited, levelled = leveled.audio, leveled.limited, leveled.loudness
        try:
            data = _encode(audio, codec, rng)
            loudness, peak, frames = _measure(data)
        except sf.LibsndfileError as exc:
            raise RenditionFailed(
                f"the {codec.format} encoder failed ({codec.sample_rate} Hz, {codec.channels} channels): "
                f"{exc}; nothing was written"
            ) from exc
        attempts.append(RenditionAttempt(headroom, aim, loudness, to_db(peak), len(data)))
        over = to_db(peak) - ceiling
        miss = goal - loudness if math.isfinite(loudness) else math.inf  # the codec removed it all
        if over <= 0.0 and (best is None or abs(miss) < best[0]):
            best = (abs(miss), _Encoded(data, loudness, peak, frames), limited)
        done = abs(miss) <= profile.tolerance_lu or unchanged is not None or not math.isfinite(miss)
        if over <= 0.0 and done:
            break
        stuck = levelled < aim - profile.tolerance_lu / 2  # the limiter's depth cap: more gain cannot help
        previous = (headroom, offset)
        if over > 0.0:
            headroom = min(MAX_HEADROOM_DB, headroom + over + opts.margin_db)
        elif stuck:  # too quiet under a ceiling it keeps: give back the headroom it did not need, if that
            regain = min(-over - opts.margin_db, headroom)  # can bring it within the tolerance
            if miss <= 0.0 or regain <= 0.0 or miss - regain > profile.tolerance_lu:
                break
            headroom -= regain
        if not stuck and math.isfinite(miss) and abs(miss) > profile.tolerance_lu and unchanged is None:
            offset = min(MAX_CORRECTION_DB, max(-MAX_CORRECTION_DB, offset + miss))
        if (headroom, offset) == previous:
            break  # nothing left to change (the correction is at its bound)
    if best is None:
        last = attempts[-1]
        raise RenditionFailed(
            f"no {codec.format} encode of {len(attempts)} kept the {ceiling:.1f} dBTP ceiling of the "
            f"{profile.name} profile: the last read {last.true_peak:.2f} dBTP with {last.headroom_db:.2f} dB "
            "of headroom; nothing was written. Raise max_attempts, headroom_db or the bitrate"
        )
    miss_abs, encoded, limited = best
    status: RenditionStatus
    if unchanged is not None:
        status = unchanged
    elif miss_abs <= profile.tolerance_lu:
        status = "limited" if limited else "normalized"
    else:
        status = "target_missed"
    return encoded, status, tuple(attempts), before


def render_file(
    master: str | Path,
    path: str | Path,
    spec: RenditionSpec,
    profile: str | LoudnessProfile = "streaming",
    *,
    provenance: Provenance | None = None,
    options: RenditionOptions | None = None,
    sha256: str | None = None,
) -> RenditionResult:
    """Make a rendition of the master file at ``master`` (WAV, FLAC...): ``render_audio`` on its samples.

    ``sha256``: the master's recorded checksum; a file that does not match raises ``InvalidAudio`` before
    anything is encoded. A missing master raises ``InvalidInput``.
    """
    source = Path(master)
    if not source.is_file():
        raise InvalidInput(f"master {source} does not exist or is not a file")
    if not isinstance(spec, RenditionSpec):
        raise InvalidInput(f"spec must be a RenditionSpec, got {type(spec).__name__}")
    check_target(path, spec)
    get_profile(profile)
    raw = source.read_bytes()
    if sha256 is not None and hashlib.sha256(raw).hexdigest() != str(sha256).lower():
        raise InvalidAudio(
            f"master {source.name} does not match its recorded sha256: it changed or is damaged"
        )
    try:
        samples, rate = sf.read(io.BytesIO(raw), dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        raise InvalidAudio(f"master {source.name}: cannot read it as audio ({exc})") from exc
    del raw
    return render_audio(samples.T, int(rate), path, spec, profile, provenance=provenance, options=options)
