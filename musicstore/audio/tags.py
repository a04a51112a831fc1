"""Provenance and loudness tags embedded in an encoded file (in memory, before it is written), with mutagen.

- Vorbis comments (Ogg Vorbis, Ogg Opus, FLAC): ``TITLE`` and ``COMMENT`` (the prompt), ``MODEL``,
  ``MODEL_VERSION``, ``SEED``, ``GENERATION_ID``, ``CREATION_TIME`` (ISO 8601, UTC), ``DATE``; loudness:
  ``REPLAYGAIN_TRACK_GAIN``/``REPLAYGAIN_TRACK_PEAK``, or for Opus ``R128_TRACK_GAIN`` only.
- ID3v2.4 (MP3, and WAV's ``id3 `` chunk): ``TIT2`` and ``COMM`` (the prompt), ``TDRC``, and ``TXXX`` frames
  with the names above (loudness: ``REPLAYGAIN_TRACK_GAIN``/``_PEAK``).
- WAV ``LIST/INFO`` (besides the ``id3 `` chunk): ``INAM`` and ``ICMT`` (the prompt), ``ISFT``, ``ICRD``.

ReplayGain 2.0: the track gain is −18 LUFS minus the measured loudness ("-4.02 dB"), the peak the linear
true peak ("0.891251"). Opus (RFC 7845 §5.2.1): ``R128_TRACK_GAIN`` is the gain to −23 LUFS in Q7.8 (an
integer, 1/256 dB), and ReplayGain tags are left out. Every text is stored exactly (quotes, newlines, any
script, 20,000 characters); INFO strings are UTF-8.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from musicstore import validate
from musicstore.audio.files import as_path, write_bytes_atomic
from musicstore.errors import InvalidInput, StorageError
from musicstore.models import Generation

REPLAYGAIN_REFERENCE_LUFS = -18.0
R128_REFERENCE_LUFS = -23.0
SEED_RANGE = (-(1 << 63), (1 << 64) - 1)
INSTALL_HINT = "install musicstore's renditions extra: pip install 'musicstore[renditions]'"
_FIELDS = (("MODEL", "model_name"), ("MODEL_VERSION", "model_version"), ("GENERATION_ID", "generation_id"))


def _mutagen(module: str) -> Any:
    """A mutagen module (an optional dependency, untyped: used through ``Any``)."""
    try:
        return importlib.import_module(f"mutagen.{module}")
    except ImportError as exc:
        raise ImportError(f"tags need mutagen: {INSTALL_HINT}") from exc


@dataclass(frozen=True)
class Provenance:
    """Where a clip came from; checked when made (``InvalidInput``)."""

    prompt: str
    model_name: str | None = None
    model_version: str | None = None
    seed: int | None = None
    generation_id: str | None = None
    created_at: datetime | None = None  # timezone-aware; stored in UTC

    def __post_init__(self) -> None:
        validate.prompt(self.prompt)
        validate.name(self.model_name, "model_name", optional=True)
        validate.name(self.model_version, "model_version", optional=True)
        validate.name(self.generation_id, "generation_id", optional=True)
        if self.seed is not None:
            object.__setattr__(self, "seed", validate.integer(self.seed, "seed", *SEED_RANGE))  # a plain int
        if self.created_at is not None:  # a tzinfo whose offset is None is naive too: refused
            object.__setattr__(self, "created_at", validate.moment(self.created_at, "created_at"))

    def fields(self) -> dict[str, str]:
        """The custom text fields, by their tag names (absent values left out)."""
        out = {key: getattr(self, attr) for key, attr in _FIELDS if getattr(self, attr) is not None}
        if self.seed is not None:
            out["SEED"] = str(self.seed)
        if self.created_at is not None:
            out["CREATION_TIME"] = self.created_at.isoformat()
        return out


def _in_range(seed: int) -> bool:
    return SEED_RANGE[0] <= seed <= SEED_RANGE[1]


def provenance_of(generation: Generation, metadata: Mapping[str, Any] | None = None) -> Provenance:
    """A generation's provenance: its prompt, model, version, id and creation time, and the ``seed`` of its
    metadata (``metadata``'s, which wins, as at export) when that is a whole number in ``SEED_RANGE``
    (int64 and uint64 seeds alike: negative ones too)."""
    seed = {**generation.metadata, **(metadata or {})}.get("seed")
    return Provenance(
        generation.prompt,
        model_name=generation.model_name,
        model_version=generation.model_version,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) and _in_range(seed) else None,
        generation_id=generation.id,
        created_at=generation.created_at,
    )


@dataclass(frozen=True)
class LoudnessTags:
    """Measured loudness (LUFS) and true peak (linear) of the file as decoded."""

    loudness_lufs: float
    true_peak: float

    def replaygain(self) -> dict[str, str]:
        if not math.isfinite(self.loudness_lufs):
            return {}
        return {
            "REPLAYGAIN_TRACK_GAIN": f"{REPLAYGAIN_REFERENCE_LUFS - self.loudness_lufs:.2f} dB",
            "REPLAYGAIN_TRACK_PEAK": f"{self.true_peak:.6f}",
        }

    def r128(self) -> dict[str, str]:
        if not math.isfinite(self.loudness_lufs):
            return {}
        q78 = round(256.0 * (R128_REFERENCE_LUFS - self.loudness_lufs))
        return {"R128_TRACK_GAIN": str(max(-32768, min(32767, q78)))}


def vorbis_comments(
    provenance: Provenance | None, loudness: LoudnessTags | None, *, opus: bool
) -> dict[str, str]:
    """The Vorbis comments written for Ogg Vorbis, FLAC (``opus=False``) or Ogg Opus."""
    out: dict[str, str] = {}
    if provenance is not None:
        out |= {"TITLE": provenance.prompt, "COMMENT": provenance.prompt, **provenance.fields()}
        if provenance.created_at is not None:
            out["DATE"] = provenance.created_at.date().isoformat()
    if loudness is not None:
        out |= loudness.r128() if opus else loudness.replaygain()
    return out


def _id3(provenance: Provenance | None, loudness: LoudnessTags | None) -> Any:
    m = _mutagen("id3")
    tags = m.ID3()
    if provenance is not None:
        tags.add(m.TIT2(encoding=3, text=[provenance.prompt]))
        tags.add(m.COMM(encoding=3, lang="eng", desc="", text=[provenance.prompt]))
        if provenance.created_at is not None:
            stamp = provenance.created_at.strftime("%Y-%m-%dT%H:%M:%S")
            tags.add(m.TDRC(encoding=3, text=[m.ID3TimeStamp(stamp)]))
    fields = provenance.fields() if provenance is not None else {}
    for key, value in (fields | (loudness.replaygain() if loudness is not None else {})).items():
        tags.add(m.TXXX(encoding=3, desc=key, text=[value]))
    return tags


def _info_chunk(provenance: Provenance) -> bytes:
    """A RIFF ``LIST`` chunk of type ``INFO``: NUL-terminated UTF-8 strings, each padded to an even size."""
    entries = [(b"INAM", provenance.prompt), (b"ICMT", provenance.prompt), (b"ISFT", "musicstore")]
    if provenance.created_at is not None:
        entries.append((b"ICRD", provenance.created_at.date().isoformat()))
    body = b"INFO"
    for key, value in entries:
        data = value.encode() + b"\x00"
        body += key + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")
    return b"LIST" + struct.pack("<I", len(body)) + body


def _replace_info(wav: bytes, chunk: bytes | None) -> bytes:
    """``wav`` without its ``LIST/INFO`` chunks (a tagging before, another writer's), ``chunk`` added."""
    if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise InvalidInput("not a RIFF/WAVE file: cannot add an INFO chunk")
    end = min(len(wav), 8 + struct.unpack("<I", wav[4:8])[0])
    out, position = bytearray(wav[:12]), 12
    while position + 8 <= end:
        size = struct.unpack("<I", wav[position + 4 : position + 8])[0]
        piece = wav[position : position + 8 + size + size % 2]
        if not (piece[:4] == b"LIST" and piece[8:12] == b"INFO"):
            out += piece + (b"\x00" if len(piece) % 2 else b"")  # a cut last chunk, padded
        position += 8 + size + size % 2
    out += wav[position:end] + (chunk or b"")
    return bytes(out[:4] + struct.pack("<I", len(out) - 8) + out[8:])


_TEXT_KEYS = (
    *(key for key, _ in _FIELDS),
    "SEED",
    "CREATION_TIME",
    "REPLAYGAIN_TRACK_GAIN",
    "REPLAYGAIN_TRACK_PEAK",
)
_VORBIS_KEYS = ("TITLE", "COMMENT", "DATE", "R128_TRACK_GAIN", *_TEXT_KEYS)
"""Every Vorbis comment ``embed`` writes: each is replaced (removed where it has no value now)."""
_ID3_FRAMES = ("TIT2", "COMM", "TDRC", *(f"TXXX:{key}" for key in _TEXT_KEYS))
"""Every ID3 frame ``embed`` writes, by its hash key."""


def embed(data: bytes, fmt: str, provenance: Provenance | None, loudness: LoudnessTags | None) -> bytes:
    """``data`` (an encoded ``mp3``, ``opus``, ``vorbis``, ``flac`` or ``wav`` file) with the tags added.

    Tags it wrote before are replaced, a key with no value now removed (a WAV keeps one ``LIST/INFO``
    chunk, its own); ``InvalidInput`` when ``data`` is not a file of that format."""
    if fmt not in ("opus", "vorbis", "flac", "mp3", "wav"):
        raise InvalidInput(f"cannot tag format {fmt!r}")
    _mutagen("id3")  # installed, else the ImportError that says how to install it
    mutagen_error = importlib.import_module("mutagen").MutagenError  # the base of every format's error
    try:
        return _embed(data, fmt, provenance, loudness)
    except mutagen_error as exc:
        raise InvalidInput(f"cannot tag this {fmt} file: it is not a valid one ({exc})") from exc


def _embed(data: bytes, fmt: str, provenance: Provenance | None, loudness: LoudnessTags | None) -> bytes:
    buffer = io.BytesIO(data)
    if fmt in ("opus", "vorbis", "flac"):
        module, name = {
            "opus": ("oggopus", "OggOpus"),
            "vorbis": ("oggvorbis", "OggVorbis"),
            "flac": ("flac", "FLAC"),
        }[fmt]
        handler = getattr(_mutagen(module), name)(buffer)
        if handler.tags is None:
            handler.add_tags()
        for key in _VORBIS_KEYS:
            if key in handler.tags:
                del handler.tags[key]
        for key, value in vorbis_comments(provenance, loudness, opus=fmt == "opus").items():
            handler.tags[key] = [value]
        buffer.seek(0)
        handler.save(buffer)
        return buffer.getvalue()
    if fmt == "mp3":
        _id3(provenance, loudness).save(buffer, v2_version=4, v1=0)
        return buffer.getvalue()
    buffer = io.BytesIO(_replace_info(data, None if provenance is None else _info_chunk(provenance)))
    wave = _mutagen("wave").WAVE(buffer)
    if wave.tags is None:
        wave.add_tags()
    for key in _ID3_FRAMES:
        wave.tags.delall(key)
    for frame in _id3(provenance, loudness).values():
        wave.tags.add(frame)
    buffer.seek(0)
    wave.save(buffer, v2_version=4)
    return buffer.getvalue()


MASTER_FORMATS = {".wav": "wav", ".flac": "flac"}


def tags_available() -> bool:
    """Whether mutagen (the ``renditions`` extra) is installed: tagging needs it."""
    return importlib.util.find_spec("mutagen") is not None


def want_tags(tags: object) -> bool:
    """Whether to tag a master: ``tags`` True (mutagen required: ``InvalidInput`` without it), False, or
    None for "when mutagen is installed"."""
    if tags is None:
        return tags_available()
    if not isinstance(tags, bool):
        raise InvalidInput(f"tags must be True, False or None, got {type(tags).__name__}")
    if tags and not tags_available():
        raise InvalidInput(f"tags=True needs mutagen: {INSTALL_HINT}")
    return tags


def tag_master(path: str | Path, provenance: Provenance, loudness_lufs: float, true_peak_dbtp: float) -> int:
    """Embed the provenance and ReplayGain tags (the measured loudness, LUFS, and true peak, dBTP) in the
    master file at ``path`` (WAV: ``LIST/INFO`` and an ``id3 `` chunk; FLAC: Vorbis comments), rewritten
    atomically (temp file, fsync, rename); returns its new size in bytes. Tag it before it is published:
    it is replaced whole. ``StorageError`` where it cannot be read or written."""
    target = as_path(path)
    fmt = MASTER_FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise InvalidInput(f"{target.name}: a master to tag is a .wav or .flac file")
    peak = 10.0 ** (true_peak_dbtp / 20.0) if math.isfinite(true_peak_dbtp) else 0.0
    try:
        tagged = embed(_read(target), fmt, provenance, LoudnessTags(loudness_lufs, peak))
    except InvalidInput as exc:
        raise InvalidInput(f"{target.name}: {exc}") from exc
    return write_bytes_atomic(target, tagged)


def _read(path: Path) -> bytes:
    """The bytes of the file at ``path``; ``StorageError`` naming it where it cannot be read (missing, a
    folder, not readable)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StorageError(f"reading {path} failed: {exc.strerror or exc}") from exc


def read_wav_info(path: str | Path) -> dict[str, str]:
    """The ``LIST/INFO`` strings of a WAV file, by their four-letter ids: UTF-8 (as musicstore writes them),
    or Latin-1 where a string's bytes are not UTF-8 (older writers use their system's code page). A file that
    is not a WAV file (no ``RIFF``/``WAVE`` header) is ``InvalidInput``; one that cannot be read
    ``StorageError``."""
    data = _read(as_path(path))
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InvalidInput(f"{path} is not a WAV file (no RIFF/WAVE header)")
    out: dict[str, str] = {}
    position = 12
    while position + 8 <= len(data):
        key, size = data[position : position + 4], struct.unpack("<I", data[position + 4 : position + 8])[0]
        body = data[position + 8 : position + 8 + size]
        if key == b"LIST" and body[:4] == b"INFO":
            inner = 4
            while inner + 8 <= len(body):
                sub, length = body[inner : inner + 4], struct.unpack("<I", body[inner + 4 : inner + 8])[0]
                out[sub.decode("latin-1")] = _info_text(body[inner + 8 : inner + 8 + length].rstrip(b"\x00"))
                inner += 8 + length + length % 2
        position += 8 + size + size % 2
    return out


def _info_text(raw: bytes) -> str:
    """An INFO string's text: UTF-8, else Latin-1 (every byte is a Latin-1 character)."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw.decode("latin-1")
