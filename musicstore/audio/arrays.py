"""Turn torch tensors and numpy arrays into validated float32 numpy audio.

Layouts are never guessed from sizes: ``(S,)`` is mono, ``(C, S)`` is channels × samples and
``(B, C, S)`` a batch. Everything is checked before any file is touched.
"""

from __future__ import annotations

import ctypes
import math
import mmap
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from musicstore import validate
from musicstore.errors import InvalidAudio, InvalidInput, shown

MAX_CHANNELS = 8
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 384_000

Audio = NDArray[np.float32]
Rows = NDArray[np.integer[Any]]  # row indices, int32 or int64
_FLOAT_KINDS = frozenset({"f"})
MAPPED_FROM = 1 << 20  # bytes from which mapped_empty gives an array a mapping of its own
# private, anonymous, its pages made in one call (Linux), not a fault each: every such array is written whole;
# None where mmap has no anonymous mappings (Windows): the arrays are then made as numpy makes them
_MAP_FLAGS = (
    mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
    if hasattr(mmap, "MAP_ANONYMOUS") and hasattr(mmap, "MAP_PRIVATE")
    else None
)
_INT_KINDS = frozenset({"i", "u"})


def mapped_empty(
    shape: int | tuple[int, ...], dtype: type[np.generic] | np.dtype[Any], *, least: int = MAPPED_FROM
) -> NDArray[Any]:
    """``np.empty(shape, dtype)`` in an anonymous memory mapping of its own where it is ``MAPPED_FROM`` bytes
    or more, for a temporary made beside the export's largest buffers: not in the allocator's heap, which
    would keep its memory resident once it is freed (glibc's mmap threshold rises to the size of the largest
    block it has given back, up to 32 MiB: after pocketfft's transform buffers every smaller array is made
    in the heap), but given back to the system as soon as it is freed. Its pages are made with it (resident
    at once): for arrays written whole as soon as they are made."""
    return _mapped(shape, dtype, np.empty, least)


def mapped_zeros(shape: int | tuple[int, ...], dtype: type[np.generic] | np.dtype[Any]) -> NDArray[Any]:
    """``np.zeros(shape, dtype)`` as :func:`mapped_empty` makes it (a fresh mapping reads zeros)."""
    return _mapped(shape, dtype, np.zeros, MAPPED_FROM)


def _mapped(
    shape: int | tuple[int, ...],
    dtype: type[np.generic] | np.dtype[Any],
    small: Callable[..., NDArray[Any]],
    least: int,
) -> NDArray[Any]:
    dims = (shape,) if isinstance(shape, int) else shape
    kind = np.dtype(dtype)
    count = math.prod(dims)
    if _MAP_FLAGS is None or count * kind.itemsize < least:
        made: NDArray[Any] = small(dims, dtype=kind)
        return made
    mapping = mmap.mmap(-1, count * kind.itemsize, flags=_MAP_FLAGS)
    return np.frombuffer(mapping, dtype=kind, count=count).reshape(dims)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (ctypes, which releases the GIL through the call), or None elsewhere."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, TypeError):  # not glibc (musl, macOS), or no C library to load (Windows)
        return None
    return trim


_TRIM = _malloc_trim() if sys.platform.startswith("linux") else None


def scaled(x: NDArray[np.float32], gain: float) -> NDArray[np.float32]:
    """``x * gain`` in float32, an export's output (the size of the clip, its largest buffer), made once the
    allocator's freed heap memory is given back to the system (glibc's ``malloc_trim``; elsewhere nothing).
    Otherwise the far part's and the limiter's temporaries freed before it stay resident in glibc's heap
    under the output (about 0.4x a 10-minute mono clip): the export's peak 2.12x that clip, 1.99x with it
    given back (``benchmarks/bench_export_memory.py --channels 1``). The pass over the heap's free chunks
    costs 0.4-2 ms for a 30 s 48 kHz stereo clip, 0.6 ms for 10 minutes."""
    if _TRIM is not None:
        _TRIM(0)
    out: NDArray[np.float32] = x * np.float32(gain)
    return out


def check_sample_rate(sample_rate: object) -> int:
    """Return ``sample_rate`` as an int after checking it is a whole number in 8 kHz–384 kHz."""
    rate = validate.whole_number(sample_rate)
    if rate is None:
        raise InvalidInput(f"sample_rate must be an integer number of Hz, got {shown(sample_rate)}")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InvalidInput(
            f"sample_rate {shown(rate)} Hz is outside {MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz; pass the real "
            "rate"
        )
    return rate


FLAC_ANY_RATE_TO = 65_535
"""FLAC's frame headers name a rate in Hz up to this and in tens of Hz beyond (libFLAC's streamable subset,
which libsndfile's encoder keeps): above it a FLAC file takes multiples of 10 Hz only."""


def check_flac_rate(rate: int) -> None:
    """``InvalidInput`` when a FLAC file cannot hold ``rate`` (libsndfile refuses it only when it starts
    writing, as "problem with initialization of the flac decoder")."""
    if rate > FLAC_ANY_RATE_TO and rate % 10:
        raise InvalidInput(
            f"a FLAC file cannot hold {rate:,} Hz: above {FLAC_ANY_RATE_TO:,} Hz FLAC takes multiples of "
            "10 Hz only; write a WAV file, or resample"
        )


def as_audio(audio: Any, *, scale: float | None = None) -> Audio:
    """Validate one clip, ``(S,)`` or ``(C, S)``, and return it as a float32 ``(C, S)`` array."""
    data, wide = _to_float32(audio, scale)
    if data.ndim == 3:
        raise InvalidAudio(f"got a batch of shape {data.shape}; export it with export_batch")
    return _checked(data, wide)


def as_audio_batch(audio: Any, *, scale: float | None = None) -> NDArray[np.float32]:
    """Validate a batch ``(B, C, S)`` and return it as one float32 array (one device transfer)."""
    data, wide = _to_float32(audio, scale)
    if data.ndim != 3:
        raise InvalidAudio(f"a batch must have shape (B, C, S), got {data.shape}")
    return _checked(data, wide)


def is_torch_tensor(audio: object) -> bool:
    """Whether ``audio`` is a torch tensor, a subclass too (``nn.Parameter``, a library's own), not any torch
    object (``x.shape``, a storage); torch is not imported: a tensor exists only once it is."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(audio, torch.Tensor)


def _to_float32(audio: Any, scale: float | None) -> tuple[NDArray[np.float32], Any]:
    """The clip as float32, and the source where its floats are wider than float32's (a float64 array or
    tensor, a long double array; None otherwise): read only to tell why a clip is refused."""
    is_tensor = is_torch_tensor(audio)
    if not is_tensor and not isinstance(audio, np.ndarray):
        raise InvalidAudio(f"audio must be a torch tensor or a numpy array, got {type(audio).__name__}")
    # the rank before converting: np.ascontiguousarray turns a 0-d value into shape (1,)
    if audio.ndim not in (1, 2, 3):
        raise InvalidAudio(f"audio must have shape (S,), (C, S) or (B, C, S); got {audio.ndim} dimensions")
    dtype = audio.dtype
    wider = str(dtype) == "torch.float64" if is_tensor else dtype.kind == "f" and dtype.itemsize > 4
    wide = audio if wider else None
    if is_tensor:
        return _tensor_to_numpy(audio, scale), wide
    return _numpy_to_float32(audio, scale), wide


def check_scale_applies(audio: object, scale: object) -> None:
    """``InvalidInput`` when ``scale`` is given for a floating-point tensor or array, from its dtype alone
    (nothing converted): ``scale=`` applies to integer audio only. A caller mistake, which ``as_audio`` raises
    too; a recording checks it before its export, where a failed export fails the row."""
    if scale is None or not (isinstance(audio, np.ndarray) or is_torch_tensor(audio)):
        return
    dtype = getattr(audio, "dtype", None)
    floating = getattr(dtype, "is_floating_point", None)  # a torch dtype's; numpy's has its kind
    if floating is True or (floating is None and getattr(dtype, "kind", None) == "f"):
        raise InvalidInput(f"scale= applies to integer audio only; this audio is {dtype}")


def _check_scale(kind: str, scale: float | None, dtype: object) -> float | None:
    if kind in _INT_KINDS:
        if scale is None:
            raise InvalidAudio(
                f"integer audio ({dtype}) needs scale= (its full-scale value, e.g. 32768 for int16, "
                "128 for uint8: unsigned audio's midpoint is its silence)"
            )
        factor = validate.real_number(scale, fractions=True)  # a Fraction, numpy's: as a plain float
        if factor is None or not math.isfinite(factor) or factor <= 0:
            raise InvalidInput(f"scale must be a positive finite number, got {shown(scale)}")
        return factor
    if scale is not None:
        raise InvalidInput(f"scale= applies to integer audio only; this audio is {dtype}")
    return None


def _numpy_to_float32(array: NDArray[Any], scale: float | None) -> NDArray[np.float32]:
    kind = array.dtype.kind
    if kind not in _FLOAT_KINDS | _INT_KINDS:
        raise InvalidAudio(f"audio dtype {array.dtype} is not supported; use float16/32/64")
    factor = _check_scale(kind, scale, array.dtype)
    with np.errstate(over="ignore"):  # a float64 beyond float32's range: inf, refused by _checked
        data = np.ascontiguousarray(array, dtype=np.float32)
    return _scaled(data, factor, 8 * array.dtype.itemsize if kind == "u" else None)


def _tensor_to_numpy(tensor: Any, scale: float | None) -> NDArray[np.float32]:
    import torch  # torch is optional: imported only when given a tensor

    dtype = tensor.dtype
    if dtype.is_complex or dtype == torch.bool:
        raise InvalidAudio(f"audio dtype {dtype} is not supported; use a float tensor")
    if tensor.layout != torch.strided or tensor.is_meta or tensor.is_nested:
        raise InvalidAudio(
            f"audio must be a dense tensor with data, got a {tensor.layout} tensor on {tensor.device}"
            + (" (nested)" if tensor.is_nested else "")
        )
    if tensor.is_quantized:
        raise InvalidAudio(f"audio dtype {dtype} is not supported; dequantize() it to a float tensor")
    kind = "f" if dtype.is_floating_point else "i" if dtype.is_signed else "u"
    factor = _check_scale(kind, scale, dtype)
    # a view with its negative or conjugate bit set (``z.conj().imag``) has no numpy view: resolved here
    dense = tensor.detach().resolve_conj().resolve_neg()
    data = np.ascontiguousarray(_to_host_float32(dense, torch).numpy())
    return _scaled(data, factor, torch.iinfo(dtype).bits if kind == "u" else None)


def _scaled(data: NDArray[np.float32], factor: float | None, unsigned_bits: int | None) -> Audio:
    """Integer samples as float32 full scale: divided by ``factor``. Unsigned audio is offset binary (8-bit
    WAV's convention: 128 is silence for uint8), so its midpoint is subtracted first; ``data`` is then a
    converted copy, changed in place."""
    if unsigned_bits is not None:
        np.subtract(data, np.float32(2 ** (unsigned_bits - 1)), out=data)
    if factor is not None:
        data = data * np.float32(1.0 / factor)
    return data


def _to_host_float32(tensor: Any, torch: Any) -> Any:
    """Cast on the device, then copy to the host once (a whole batch in one transfer).

    A CUDA tensor lands in page-locked memory from torch's caching host allocator: the copy is one DMA
    with no page faults, and a worker exporting batch after batch reuses the same buffer.
    """
    if not tensor.is_cuda:
        return tensor.to(dtype=torch.float32).cpu()
    host = torch.empty(tensor.shape, dtype=torch.float32, pin_memory=True)
    host.copy_(tensor.to(dtype=torch.float32))
    return host


def _checked(data: NDArray[np.float32], wide: Any = None) -> NDArray[np.float32]:
    if data.ndim == 1:
        data = data[np.newaxis, :]
    channels = data.shape[-2]
    if data.size == 0:
        raise InvalidAudio(f"audio is empty (shape {data.shape})")
    if channels > MAX_CHANNELS:
        raise InvalidAudio(
            f"audio has {channels} channels (shape {data.shape}); at most {MAX_CHANNELS} are supported. "
            "Layouts are not guessed: pass (C, S), not (S, C)"
        )
    if not _all_finite(data):
        _raise_non_finite(data if wide is None else _wide_numpy(wide).reshape(data.shape))
    return data


def _wide_numpy(wide: Any) -> NDArray[Any]:
    if isinstance(wide, np.ndarray):
        return wide
    return np.asarray(wide.detach().resolve_conj().resolve_neg().cpu().numpy())


def check_finite_frames(frames: NDArray[np.float32], name: object) -> None:
    """``InvalidAudio`` naming the file ``name`` when its ``(S, C)`` frames, as read, hold NaN or infinite
    samples (a FLOAT file): their count and the first (not as_audio's message, which is for model output)."""
    if _all_finite(frames):
        return
    finite = np.isfinite(frames)
    bad = frames.size - int(np.count_nonzero(finite))
    frame, channel = np.unravel_index(int(np.argmin(finite)), frames.shape)
    raise InvalidAudio(
        f"{name} holds NaN or infinite samples ({bad}, the first at channel {int(channel)}, sample "
        f"{int(frame)}): it cannot be measured"
    )


def _all_finite(data: NDArray[np.float32]) -> bool:
    """Whether every value is finite: a NaN or an infinity makes the float32 sum NaN or infinite (a quarter
    of the time of a float64 sum, which converts every value: the serial step before a batch's items);
    only a sum that overflows on finite values (beyond 1e31 or so) is checked value by value."""
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.sum(data)
    return bool(np.isfinite(total)) or bool(np.isfinite(data).all())


def _raise_non_finite(data: NDArray[Any]) -> None:
    """InvalidAudio naming the non-finite values of ``data``; where ``data`` is the wider floats a clip was
    converted from and all are finite, the values beyond float32's range (which the conversion made inf)."""
    finite = np.isfinite(data)
    if finite.all():
        with np.errstate(over="ignore"):
            beyond = np.isinf(data.astype(np.float32))
        first = np.unravel_index(int(np.argmax(beyond)), data.shape)
        raise InvalidAudio(
            f"audio has {int(np.count_nonzero(beyond))} values beyond float32's range (|x| over "
            f"{float(np.finfo(np.float32).max):.4g}, the largest {float(np.abs(data).max()):.4g}); the first "
            f"at {_position(first, data.ndim)}. Check the model output"
        )
    bad = data.size - int(np.count_nonzero(finite))
    nans = int(np.count_nonzero(np.isnan(data)))
    first = np.unravel_index(int(np.argmin(finite)), data.shape)
    raise InvalidAudio(
        f"audio has {bad} non-finite values ({nans} NaN, {bad - nans} Inf); the first is at "
        f"{_position(first, data.ndim)}. Check the model output"
    )


def _position(index: tuple[Any, ...], ndim: int) -> str:
    return ", ".join(
        f"{name} {int(i)}" for name, i in zip(("item", "channel", "sample")[-ndim:], index, strict=True)
    )
