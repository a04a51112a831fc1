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
import importlib
import io
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from musicstore import validate
from musicstore.audio.arrays import as_audio, check_finite_frames, check_sample_rate
from musicstore.audio.codecs import (
    EXTENSIONS,
    FORMATS,
    LOSSLESS_SUBTYPES,
    Codec,
    RenditionSpec,
    check_size,
    check_target,
    check_whole,
    decode,
    encode,
    resample,
)
from musicstore.audio.file_checks import check_not_truncated, short_read
from musicstore.audio.files import as_path, callback_errors, write_bytes_atomic
from musicstore.audio.levels import target_reached
from musicstore.audio.limiter import LimiterSettings, level
from musicstore.audio.loudness import ABSOLUTE_GATE_LUFS, BlockPower, integrated_loudness
from musicstore.audio.profiles import LoudnessProfile, get_profile
from musicstore.audio.tags import INSTALL_HINT, LoudnessTags, Provenance, embed
from musicstore.audio.truepeak import from_db, largest_sample, range_exponent, scaled_down, to_db, true_peak
from musicstore.errors import InvalidAudio, InvalidInput, RenditionFailed, shown
from musicstore.storage_names import check_checksum

__all__ = [
    "EXTENSIONS",
    "FORMATS",
    "RenditionAttempt",
    "RenditionOptions",
    "RenditionResult",
    "RenditionSpec",
    "RenditionStatus",
    "check_target",
    "decode",
    "read_master",
    "render_audio",
    "render_bytes",
    "render_file",
]
"""The codecs' names (``musicstore.audio.codecs``) are here too: a rendition is asked for with them."""

log = logging.getLogger("musicstore.audio")

RenditionStatus = Literal["normalized", "limited", "target_missed", "silent", "too_quiet"]

DEFAULT_HEADROOM_DB = {"mp3": 1.25, "opus": 1.0, "vorbis": 1.0, "flac": 0.0, "wav": 0.0}  # docs/renditions.md
MAX_HEADROOM_DB = 6.0
MAX_CORRECTION_DB = 3.0
DECODED_SILENCE = 2.0**-48
"""A decoded true peak under this (−289 dBTP) is silence's: 0 (−inf dBTP, stored NULL), as the zeros other
codecs decode digital silence to (Opus leaves ~1e-34 of rounding, −673 dB: recorded before)."""


@dataclass(frozen=True)
class RenditionOptions:
    """How hard to try: encodes at most ``max_attempts``; the first with ``headroom_db`` under the ceiling
    (default per format: ``DEFAULT_HEADROOM_DB``), then more by the measured excess plus ``margin_db``
    (from the encoder input's own true peak where that lay further under the ceiling)."""

    max_attempts: int = 4
    headroom_db: float | None = None
    margin_db: float = 0.2
    max_limiting_db: float = 6.0
    max_gain_db: float = 30.0
    dither_seed: int | None = None

    def __post_init__(self) -> None:
        attempts = check_whole(self.max_attempts, "max_attempts")
        if not 1 <= attempts <= 10:
            raise InvalidInput("max_attempts must be 1–10")
        if type(self.max_attempts) is not int:  # np.int64: a plain int, as the other settings
            object.__setattr__(self, "max_attempts", attempts)
        checks = (
            ("headroom_db", self.headroom_db, 0.0, MAX_HEADROOM_DB),
            ("margin_db", self.margin_db, 0.0, 2.0),
            ("max_limiting_db", self.max_limiting_db, 0.1, 24.0),
            ("max_gain_db", self.max_gain_db, 0.0, 60.0),
        )
        for name, value, low, high in checks:
            if value is None and name == "headroom_db":  # None: the format's default; the others have none
                continue
            number = validate.real_number(value, fractions=True)
            if number is None or not low <= number <= high:
                raise InvalidInput(f"{name} must be a number in [{low:g}, {high:g}], got {shown(value)}")
            if type(value) is not int and type(value) is not float:  # numpy's (np.float64 too): plain floats
                object.__setattr__(self, name, number)
        if self.dither_seed is not None:
            seed = check_whole(self.dither_seed, "dither_seed")
            if seed < 0:
                raise InvalidInput(f"dither_seed must be a non-negative integer, got {self.dither_seed}")
            if type(self.dither_seed) is not int:  # np.int64: a plain int, as the other settings
                object.__setattr__(self, "dither_seed", seed)


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


def check_installed() -> None:
    """``ImportError`` with the install hint unless what renditions need beyond the core is installed (the
    ``renditions`` extra: soxr resamples, mutagen tags): for a caller that would rather refuse a request up
    front than find it missing at its first rendition, after other work."""
    for module in ("soxr", "mutagen"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(f"renditions need {module}: {INSTALL_HINT}") from exc


def check_options(options: RenditionOptions | None) -> RenditionOptions:
    """``options``, or the defaults for None; ``InvalidInput`` for anything else."""
    if options is None:
        return RenditionOptions()
    if not isinstance(options, RenditionOptions):
        raise InvalidInput(f"options must be a RenditionOptions, got {type(options).__name__}")
    return options


def _measure(data: bytes) -> tuple[float, float, int]:
    audio, rate = decode(data)
    peak = true_peak(audio)
    return integrated_loudness(audio, rate).lufs, 0.0 if peak < DECODED_SILENCE else peak, audio.shape[1]


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
    data, result = render_bytes(
        audio, sample_rate, path, spec, profile, provenance=provenance, options=options, scale=scale
    )
    write_bytes_atomic(result.path, data)
    return replace(result, elapsed=time.perf_counter() - started)


def render_bytes(
    audio: Any,
    sample_rate: int,
    name: str | Path,
    spec: RenditionSpec,
    profile: str | LoudnessProfile = "streaming",
    *,
    provenance: Provenance | None = None,
    options: RenditionOptions | None = None,
    scale: float | None = None,
) -> tuple[bytes, RenditionResult]:
    """``render_audio`` without the write: the tagged file's bytes and its result (``result.path`` is
    ``name``, whose extension must fit the format), for a caller that stores them elsewhere (an object store:
    ``musicstore.rendering``). Raises as ``render_audio`` does, ``StorageError`` aside."""
    started = time.perf_counter()
    if not isinstance(spec, RenditionSpec):
        raise InvalidInput(f"spec must be a RenditionSpec, got {type(spec).__name__}")
    chosen = get_profile(profile)
    opts = check_options(options)
    if provenance is not None and not isinstance(provenance, Provenance):
        raise InvalidInput(f"provenance must be a Provenance, got {type(provenance).__name__}")
    rate = check_sample_rate(sample_rate)
    target = check_target(name, spec)
    x = as_audio(audio, scale=scale)
    codec = spec.settings(rate, x.shape[0])
    check_size(codec, rate, x.shape[1])  # a WAV over its RIFF header's 32-bit count, before resampling
    given, x = x.shape[1], resample(x, rate, codec.sample_rate, lossy=codec.format not in LOSSLESS_SUBTYPES)
    if x.shape[1] == 0:  # not "audio is empty" from the meter, after a RuntimeWarning
        raise InvalidAudio(
            f"{given} samples at {rate} Hz make no sample at {codec.sample_rate} Hz: too short"
        )
    encoded, status, attempts, before = _attempts(x, codec, chosen, opts)
    data, loudness, peak, frames = encoded.data, encoded.loudness, encoded.peak, encoded.frames
    reached = target_reached(status, loudness, chosen.target_lufs, chosen.tolerance_lu)
    loudness_tags = LoudnessTags(loudness, peak)
    tagged = embed(data, spec.format, provenance, loudness_tags)
    written = (provenance.fields() if provenance is not None else {}) | (
        loudness_tags.r128() if spec.format == "opus" else loudness_tags.replaygain()
    )
    if status == "target_missed":
        log.warning(
            "%s: loudness %.2f LUFS misses the %s target %.1f LUFS (ceiling %.1f dBTP kept)",
            target, loudness, chosen.name, chosen.target_lufs, chosen.ceiling_dbtp,
        )  # fmt: skip
    result = RenditionResult(
        path=target,
        codec=codec.description,
        profile=chosen,
        sample_rate=codec.sample_rate,
        channels=codec.channels,
        frames=frames,
        duration=frames / codec.sample_rate,
        bytes=len(tagged),
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
    return tagged, result


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
    # a clip far out of audio's range (see range_exponent) is measured and leveled as 2**-exponent times
    # itself, exactly, its block powers scaled back before the gates: leveled to a target, the output is the
    # same (float32 would overflow or lose bits); a clip under 2**-48 is silent and written as given
    exponent = range_exponent(largest_sample(x))
    measured = scaled_down(x, exponent)
    blocks = BlockPower.measure(measured, codec.sample_rate)
    before = blocks.loudness(exponent)
    rng = np.random.default_rng(opts.dither_seed)
    ceiling, goal = profile.ceiling_dbtp, profile.target_lufs
    unchanged: RenditionStatus | None = None
    if not before > ABSOLUTE_GATE_LUFS:
        unchanged = "silent"
    elif goal - before > opts.max_gain_db:
        unchanged = "too_quiet"
    if unchanged is not None:
        goal = before  # written at its own level; the ceiling still holds (limited if need be)
    given = true_peak(x) if unchanged == "silent" else 0.0  # a silent clip's peak: DC, infrasound can be loud
    headroom = DEFAULT_HEADROOM_DB[codec.format] if opts.headroom_db is None else float(opts.headroom_db)
    settings = LimiterSettings(max_depth_db=opts.max_limiting_db)
    # a lossy encode is decoded and measured below, so the limiter's own check of its output (and its exact
    # loudness) would be measured twice; a lossless one keeps it, so that it holds at the first encode
    verify = codec.format in LOSSLESS_SUBTYPES
    offset = 0.0
    attempts: list[RenditionAttempt] = []
    best: tuple[float, _Encoded, bool] | None = None  # (|miss|, the encode, limited)
    for _ in range(opts.max_attempts):
        aim = goal + offset
        # the headroom the encoder's input had: more than asked when its true peak stayed under the limiter's
        # ceiling (plain gain, whose peak is exact), where the codec's overshoot is measured from that peak
        below = headroom
        if unchanged == "silent":  # as given, or by a plain gain under the ceiling less the headroom: silent
            turn = min(1.0, from_db(ceiling - headroom) / given) if given > 0.0 else 1.0
            audio, limited, levelled = (x if turn == 1.0 else x * np.float32(turn)), False, before
            below = max(headroom, ceiling - to_db(given * turn)) if given > 0.0 else headroom
        else:
            leveled = level(
                measured, blocks, target_lufs=aim, ceiling_dbtp=ceiling - headroom, limiter=True,
                settings=settings, verify=verify, tolerance_lu=profile.tolerance_lu,
            )  # fmt: skip
            audio, limited, levelled = leveled.audio, leveled.limited, leveled.loudness
            if not limited and leveled.true_peak > 0.0:
                below = max(headroom, ceiling - to_db(leveled.true_peak))
        try:
            data = encode(audio, codec, rng)
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
        if over > 0.0:  # the limiter's ceiling under the input's peak by the overshoot and the margin
            headroom = min(MAX_HEADROOM_DB, below + over + opts.margin_db)
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


def read_master(raw: bytes, name: str, *, sha256: str | None = None) -> tuple[NDArray[np.float32], int]:
    """A master file's samples ``(C, S)`` float32 and its rate, from its bytes: ``sha256`` checked first
    (``InvalidInput`` if it is no SHA-256 in hex), ``InvalidAudio`` if it differs, not audio or truncated."""
    given = sha256.lower() if isinstance(sha256, str) else sha256  # a .digest(): InvalidInput, not "damaged"
    if given is not None and hashlib.sha256(raw).hexdigest() != check_checksum(given):
        raise InvalidAudio(f"master {name} does not match its recorded sha256: it changed or is damaged")
    check_not_truncated(io.BytesIO(raw), len(raw), f"master {name}")
    try:
        with callback_errors(), sf.SoundFile(io.BytesIO(raw)) as f:
            samples = f.read(dtype="float32", always_2d=True)
            rate, declared = f.samplerate, f.frames
    except sf.LibsndfileError as exc:
        raise InvalidAudio(f"master {name}: cannot read it as audio ({exc})") from exc
    if 0 < samples.shape[0] < declared:
        raise short_read(f"master {name}", samples.shape[0], declared)
    check_finite_frames(samples, f"master {name}")  # a FLOAT master: named, not as model output
    return samples.T, int(rate)


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
    source = as_path(master, "master")
    if not source.is_file():
        raise InvalidInput(f"master {source} does not exist or is not a file")
    if not isinstance(spec, RenditionSpec):
        raise InvalidInput(f"spec must be a RenditionSpec, got {type(spec).__name__}")
    check_target(path, spec)
    get_profile(profile)
    check_options(options)
    samples, rate = read_master(source.read_bytes(), source.name, sha256=sha256)
    return render_audio(samples, rate, path, spec, profile, provenance=provenance, options=options)
