"""Checks of an audio file before it is read: that it is a file, and that it is whole (not cut short by a
crash or a copy), which libsndfile does not say."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Literal

from musicstore.errors import InvalidAudio


def sndfile_name(path: Path) -> str | bytes:
    """``path`` as soundfile must be given it to open that file: its text, or the OS's bytes for a name
    ``os.fsdecode`` made of an undecodable byte (soundfile encodes a str as strict UTF-8 and raised a bare
    ``UnicodeEncodeError`` on such a name, which ``export_audio`` writes)."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text)
    return text


def not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file ("is a folder, not a file", "no such file"), after its name;
    None when it is one."""
    if path.is_file():
        return None
    return "is a folder, not a file" if path.is_dir() else "no such file"


_RIFF_ORDER: dict[bytes, Literal["little", "big"]] = {
    b"RIFF": "little",
    b"RIFX": "big",
    b"RF64": "little",
    b"BW64": "little",
}
_MAX_CHUNKS = 4_096
_UNKNOWN_SIZE = 0xFFFF_FFFF


def truncation(source: IO[bytes], size: int) -> str | None:
    """Why a WAV file is cut short (a crash or a copy mid-write): its data chunk declares more bytes than the
    file holds after the chunk's header, which libsndfile reads without a word (the frames present, as if
    they were all); None when it is whole or not a WAV. Reads the chunk headers only: a few small reads.

    A Sony Wave64 file (W64) is checked alike. RF64/BW64 take the data size from the ``ds64`` chunk; a RIFF
    data size of 0xFFFFFFFF (a stream's: "to the end") or 0 (a writer that never came back to it) declares
    nothing to compare.

    Also why a FLAC file cannot be read whole: its STREAMINFO does not say how many frames it holds (total
    samples 0, what an encoder writing to a pipe leaves), which libsndfile takes for 2**63 - 1 frames and
    fails at its end (a read of the whole file asked numpy for that many: ``ValueError``)."""
    source.seek(0)
    head = source.read(26)
    if head[:4] == b"fLaC" and len(head) == 26 and head[4] & 0x7F == 0:  # STREAMINFO: 36 bits of samples
        if int.from_bytes(head[18:26], "big") & ((1 << 36) - 1) == 0:
            return (
                "its FLAC header does not say how many frames it holds (written to a pipe?), which "
                "libsndfile cannot read to the end: encode it again to a file"
            )
        return None
    if head[:16] == _W64_RIFF:
        return _w64_truncation(source, size)
    head = head[:12]
    order = _RIFF_ORDER.get(head[:4])
    if len(head) < 12 or head[8:12] != b"WAVE" or order is None:
        return None
    long_size: int | None = None
    position = 12
    for _ in range(_MAX_CHUNKS):
        source.seek(position)
        header = source.read(8)
        if len(header) < 8:  # the data chunk's header cut short: libsndfile reads no frames, without a word
            return _HEADER_CUT if header[:4] == b"data" else None
        declared = int.from_bytes(header[4:], order)
        if header[:4] == b"ds64" and head[:4] in (b"RF64", b"BW64"):
            body = source.read(16)  # the RIFF size, then the data size, 64 bits each
            long_size = int.from_bytes(body[8:16], "little") if len(body) == 16 else None
        if header[:4] == b"data":
            if declared == _UNKNOWN_SIZE:
                if long_size is None:
                    return None
                declared = long_size
            present = max(size - position - 8, 0)
            if declared <= present:
                return None
            return _cut_short(declared, present)
        position += 8 + declared + (declared & 1)  # a chunk of odd size is padded to an even one
    return None


_HEADER_CUT = "its data chunk's header is cut short: it is truncated (cut short, by a crash or a copy?)"


def _cut_short(declared: int, present: int) -> str:
    return (
        f"its data chunk declares {declared:,} bytes of audio but the file holds {present:,} of them: it is "
        "truncated (cut short, by a crash or a copy?)"
    )


_W64_RIFF = bytes.fromhex("726966662e91cf11a5d628db04c10000")  # Sony Wave64's GUIDs: "riff", "wave", "data"
_W64_WAVE = bytes.fromhex("77617665f3acd3118cd100c04f8edb8a")
_W64_DATA = bytes.fromhex("64617461f3acd3118cd100c04f8edb8a")


def _w64_truncation(source: IO[bytes], size: int) -> str | None:
    """``truncation`` of a Sony Wave64 file (W64): chunks of a 16-byte GUID and a 64-bit little-endian size
    that counts their 24-byte header, each padded to 8 bytes."""
    source.seek(16 + 8)
    if source.read(16) != _W64_WAVE:
        return None
    position = 40
    for _ in range(_MAX_CHUNKS):
        source.seek(position)
        header = source.read(24)
        if len(header) < 24:  # the data chunk's header cut short: libsndfile reads no frames, without a word
            return _HEADER_CUT if len(header) >= 16 and header[:16] == _W64_DATA else None
        declared = int.from_bytes(header[16:], "little")
        if declared < 24:
            return None  # not a chunk size: libsndfile says what is wrong
        if header[:16] == _W64_DATA:
            declared -= 24
            present = max(size - position - 24, 0)
            if declared <= present:
                return None
            return _cut_short(declared, present)
        position += (declared + 7) & ~7
    return None


def check_not_truncated(source: IO[bytes], size: int, name: object) -> None:
    """``InvalidAudio`` naming ``name`` when ``truncation`` finds the file cut short."""
    why = truncation(source, size)
    if why is not None:
        raise InvalidAudio(f"{name}: {why}")


def short_read(name: object, read: int, declared: int) -> InvalidAudio:
    """The error for a file that gave fewer frames than its header declares (a FLAC cut at a frame's end)."""
    return InvalidAudio(
        f"{name}: its header declares {declared:,} frames but {read:,} could be read: it is truncated "
        "(cut short, by a crash or a copy?)"
    )
