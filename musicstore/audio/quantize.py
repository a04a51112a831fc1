"""Float audio to the sample format of the file, in numpy, ready for soundfile ``(frames, channels)``.

PCM_16 gets TPDF dither (±1 LSB triangular); PCM_24 and PCM_32 are rounded; FLOAT is written as is.
Integers are clipped to full scale here, so libsndfile never wraps an out-of-range value around.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from musicstore.errors import InvalidInput

_CHUNK = 1 << 16
SUBTYPES = {"WAV": ("PCM_16", "PCM_24", "PCM_32", "FLOAT"), "FLAC": ("PCM_16", "PCM_24")}

# full-scale factor, integer dtype, largest float32 that converts without overflow, left shift
_PCM = {
    "PCM_16": (2.0**15, np.int16, 2.0**15 - 1, 0),
    "PCM_24": (2.0**23, np.int32, 2.0**23 - 1, 8),  # libsndfile keeps the top 24 bits of an int32
    "PCM_32": (2.0**31, np.int32, 2.0**31 - 128, 0),  # 2**31 - 1 is not a float32
}


SAMPLE_BYTES = {"PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4}
WAV_MAX_AUDIO_BYTES = 0xFFFF_FFFF - (1 << 20)
"""The most bytes of samples a WAV export writes. A RIFF header counts bytes in 32 bits: libsndfile writes a
larger data chunk with the size 0xFFFFFFFF, which it then reads as the first 4 GiB alone. 1 MiB is kept for
the headers and a recording's tags (a 20,000-character prompt, twice)."""


def check_wav_size(fmt: str, subtype: str, shape: tuple[int, ...]) -> None:
    """``InvalidInput`` when ``(…, C, S)`` audio is more than a ``fmt`` file of ``subtype`` holds (a WAV
    file's ``WAV_MAX_AUDIO_BYTES``; FLAC counts frames in 36 bits, beyond any clip)."""
    channels, samples = shape[-2:]
    size = channels * samples * SAMPLE_BYTES[subtype]
    if fmt == "WAV" and size > WAV_MAX_AUDIO_BYTES:
        raise InvalidInput(
            f"{samples:,} samples of {channels} channel(s) as {subtype} are {size:,} bytes: more than a WAV "
            f"file holds ({WAV_MAX_AUDIO_BYTES:,}: its header counts 32 bits); export FLAC (PCM_16 or "
            "PCM_24), a smaller subtype or shorter clips"
        )


def tpdf_dither(shape: tuple[int, ...], rng: np.random.Generator) -> NDArray[np.float32]:
    """Triangular dither in LSB, in (−1, 1): the difference of two uniform 16-bit draws."""
    count = int(np.prod(shape))
    raw = np.frombuffer(rng.bytes(4 * count), dtype=np.int16)
    dither = raw[:count].astype(np.float32)
    dither -= raw[count:]
    dither *= np.float32(1.0 / 65536.0)
    return dither.reshape(shape)


def dithers(sample_peak: float) -> bool:
    """Whether a clip of this sample peak (linear) gets PCM_16's dither: not digital silence, whose every
    sample is under half a 16-bit step (it rounds to zeros and is written as zeros, not as dither noise)."""
    return sample_peak >= 0.5 / 32_768


def on_16_bit_grid(audio: NDArray[np.float32]) -> bool:
    """Whether every sample of ``(C, S)`` audio is a whole number of 16-bit steps (16-bit or 8-bit audio
    given with its scale, or float audio made from it): written unchanged, it needs no rounding, so no
    dither. A chunk at a time, stopping at the first chunk off the grid (float model output: the first)."""
    for start in range(0, audio.shape[1], _CHUNK):
        steps = audio[:, start : start + _CHUNK] * np.float32(32_768)  # exact: a power of two
        if not np.array_equal(np.rint(steps), steps):
            return False
    return True


def written_as_zeros(sample_peak: float, subtype: str) -> bool:
    """Whether a clip of this sample peak (linear) is written as zeros in ``subtype``: every sample under half
    a step of a PCM subtype (then not dithered: ``dithers``) rounds to 0; FLOAT keeps any nonzero value."""
    if subtype == "FLOAT":
        return sample_peak == 0.0
    return sample_peak < 0.5 / _PCM[subtype][0]


WRITTEN_PEAK_SHARE = 1 / 250
"""An export's true peak is measured on the quantized frames unless quantizing can move it by no more than
this share of it (0.035 dB): ``measures_written``."""


def written_error_steps(samples: int) -> float:
    """How far quantizing can move the true peak of a clip of ``samples`` samples, in steps of the subtype:
    each sample moves by at most 1.5 steps (PCM_16's TPDF dither, under 1 step, and half a step of rounding),
    and the sum of |sinc(t − n)| over the samples, zero-padded or looped, is under (2/π)(ln S + 2) (10.7 for
    a minute at 48 kHz; 17.2 at 2**36 samples)."""
    return 1.5 * (2.0 / math.pi) * (math.log(max(samples, 1)) + 2.0)


MEASURED_WRITTEN_SAMPLES = 1 << 22
"""The longest clip (samples a channel: 87 s at 48 kHz) whose true peak ``measures_written`` may measure
again: a longer one's far part (the transforms of the whole clip) beside the output took a quiet 10-minute
48 kHz export from 1.37x to 2.13x its clip in stereo, 1.92x to 3.0x in mono (peak resident memory)."""


def measures_written(true_peak: float, subtype: str, samples: int) -> bool:
    """Whether a clip of this true peak (linear, of its float samples) and length is measured again as
    ``subtype``'s quantized frames: quantizing (dither, rounding) may move its true peak by more than
    ``WRITTEN_PEAK_SHARE`` of it (a minute at 48 kHz: under −18.2 dBTP in PCM_16, −66.4 in PCM_24), and it
    is no longer than ``MEASURED_WRITTEN_SAMPLES`` (memory). FLOAT is written as is; a true peak of 0,
    zeros."""
    if subtype == "FLOAT" or not true_peak > 0.0 or samples > MEASURED_WRITTEN_SAMPLES:
        return False
    return true_peak * WRITTEN_PEAK_SHARE < written_error_steps(samples) / _PCM[subtype][0]


def as_read(frames: NDArray[np.generic], subtype: str) -> NDArray[np.float32]:
    """The ``(C, S)`` float32 samples a reader gets back from ``to_frames``'s ``(S, C)`` frames for a PCM
    ``subtype`` (PCM_24's are shifted into the top bits of an int32): divided by a power of two, exactly."""
    scale = 2.0**15 if subtype == "PCM_16" else 2.0**31
    return frames.T.astype(np.float32) * np.float32(1.0 / scale)


def quantize_in_place(
    audio: NDArray[np.float32], subtype: str, rng: np.random.Generator, *, dither: bool = True
) -> None:
    """Put ``(C, S)`` float32 ``audio`` on ``subtype``'s grid in place: the values a reader gets back from
    ``to_frames(audio, subtype, rng, dither=dither)`` (the same draws), a chunk at a time. Quantized again
    without dither, they give those frames exactly (each is a whole number of steps). Memory: one chunk."""
    quantizer = _Quantizer(audio, subtype, rng, dither=dither)
    block = np.empty((min(_CHUNK, audio.shape[1]), audio.shape[0]), dtype=quantizer.dtype)
    for start in range(0, audio.shape[1], _CHUNK):
        part = block[: min(_CHUNK, audio.shape[1] - start)]
        quantizer.into(start, part)  # reads the chunk before it is overwritten
        audio[:, start : start + part.shape[0]] = as_read(part, subtype)


def clipped_samples(audio: NDArray[np.float32], sample_peak: float) -> int:
    """How many sample values are beyond full scale (|x| > 1)."""
    return 0 if sample_peak <= 1.0 else int(np.count_nonzero(np.abs(audio) > 1.0))


def to_frames(
    audio: NDArray[np.float32], subtype: str, rng: np.random.Generator, *, dither: bool = True
) -> NDArray[np.generic]:
    """Quantize ``(C, S)`` float32 audio for ``subtype`` and return C-contiguous ``(S, C)`` frames
    (``dither=False``: PCM_16 rounded without dither, e.g. digital silence kept as zeros).

    Works in chunks of samples, in the frames' layout, so the only full-size allocation is the result.
    """
    if subtype == "FLOAT":
        return np.ascontiguousarray(audio.T)
    quantizer = _Quantizer(audio, subtype, rng, dither=dither)
    frames = np.empty((audio.shape[1], audio.shape[0]), dtype=quantizer.dtype)
    for start in range(0, audio.shape[1], _CHUNK):
        quantizer.into(start, frames[start : start + _CHUNK])
    return frames


def frame_blocks(
    audio: NDArray[np.float32], subtype: str, rng: np.random.Generator, *, dither: bool = True
) -> Iterator[NDArray[np.generic]]:
    """The frames of :func:`to_frames`, a block of up to 65,536 of them at a time, quantized as they are
    asked for (the same values and the same dither draws, in the same order).

    Each block is a view of one buffer that the next block overwrites: write it (or copy it) before asking for
    the next. Memory: one block, where ``to_frames`` makes the whole ``(S, C)`` array.
    """
    channels, samples = audio.shape
    if subtype == "FLOAT":
        for start in range(0, samples, _CHUNK):
            yield np.ascontiguousarray(audio[:, start : start + _CHUNK].T)
        return
    quantizer = _Quantizer(audio, subtype, rng, dither=dither)
    buffer = np.empty((min(_CHUNK, samples), channels), dtype=quantizer.dtype)
    for start in range(0, samples, _CHUNK):
        block = buffer[: min(_CHUNK, samples - start)]
        quantizer.into(start, block)
        yield block


class _Quantizer:
    """PCM quantizing of ``audio`` one chunk at a time, into ``(n, C)`` integer frames: scaled,
    TPDF-dithered for PCM_16 (the draws of ``tpdf_dither(part.shape, rng)`` for each chunk in turn),
    rounded, clipped to full scale, shifted into libsndfile's top bits. The chunks must be asked for in
    order (the dither draws). The arithmetic runs in the clip's own ``(C, n)`` layout and each channel is
    cast into its column of the frames: 4.3 ms for 30 s of stereo at 32 kHz, where scaling the transposed
    chunk and casting it whole took 10.4 ms (numpy's strided float32-to-int16 cast of ``(n, 2)`` is 4x
    slower than two column writes)."""

    def __init__(
        self, audio: NDArray[np.float32], subtype: str, rng: np.random.Generator, *, dither: bool = True
    ) -> None:
        self.audio, self.subtype, self.rng = audio, subtype, rng
        self.dithered = dither and subtype == "PCM_16"
        self.scale, self.dtype, self.top, self.shift = _PCM[subtype]
        channels, samples = audio.shape
        size = min(_CHUNK, samples)
        self.buffer = np.empty((channels, size), dtype=np.float32)  # one chunk, in the clip's layout
        self.dither = np.empty(channels * size, dtype=np.float32)

    def into(self, start: int, target: NDArray[Any]) -> None:
        """Quantize the samples from ``start`` into ``target`` (``(n, C)``, ``n`` ≤ 65,536)."""
        part = self.audio[:, start : start + target.shape[0]]
        channels, n = part.shape
        scaled = self.buffer[:, :n]
        with np.errstate(over="ignore"):  # a value written as is, beyond float32 once scaled: inf, clipped
            np.multiply(part, np.float32(self.scale), out=scaled)
        if self.dithered:  # the same draws, in the same order, as tpdf_dither(part.shape, rng)
            count = channels * n
            raw = _uint32_draws(self.rng, count).view(np.int16)
            drawn = self.dither[:count]
            np.subtract(raw[:count], raw[count:], out=drawn, dtype=np.float32)
            drawn *= np.float32(1.0 / 65536.0)
            scaled += drawn.reshape(channels, n)
        np.rint(scaled, out=scaled)
        np.clip(scaled, -self.scale, self.top, out=scaled)
        for channel in range(channels):  # in range and whole: the cast is exact
            np.copyto(target[:, channel], scaled[channel], casting="unsafe")
        if self.shift:
            target <<= self.shift


def _uint32_draws(rng: np.random.Generator, count: int) -> NDArray[np.uint32]:
    """``count`` little-endian uint32 draws, the values ``rng.bytes(4 * count)`` holds (numpy's
    ``Generator.bytes`` is ``integers(0, 2**32, count, uint32)``). PCG64 (``default_rng``'s) makes those
    from its 64-bit outputs, low half first, buffering an odd one's high half: with an even count and no
    half buffered they are its raw outputs' halves, read 1.7x faster (0.10 against 0.17 ms for 131,072)."""
    generator = rng.bit_generator
    if (
        type(generator) is np.random.PCG64
        and count % 2 == 0
        and sys.byteorder == "little"
        and not generator.state["has_uint32"]
    ):
        raw: NDArray[np.uint64] = generator.random_raw(count // 2)
        return raw.view(np.uint32)
    drawn: NDArray[np.uint32] = rng.integers(0, 2**32, size=count, dtype=np.uint32).astype("<u4", copy=False)
    return drawn
