"""Session 28, a mono export's memory: the far kernel's spectrum held as its imaginary parts alone (the kernel
is odd: its taps laid circularly have an imaginary spectrum), half the bytes beside the clip's transform; the
far part the same as the float64 convolution to float32 rounding, and its kernel the same as from the full
complex spectrum. The limiter's region-sized buffers in mappings of their own."""

from __future__ import annotations

import mmap
from collections.abc import Iterator

import numpy as np
import pytest

from musicstore.audio import farfield
from musicstore.audio.far_grid import _GRID_START, _decimated_low_band, _far_taps, _transform_key
from musicstore.audio.far_spectra import ODD_FROM, _lowpass_response, odd_kernel
from musicstore.audio.farfield import FarField
from musicstore.audio.kernel_pieces import _PIECE
from musicstore.audio.limiter_gain import region_buffer


@pytest.fixture(autouse=True)
def _empty_caches() -> Iterator[None]:
    farfield._SPECTRA.clear()
    farfield._KERNELS.clear()
    yield
    farfield._SPECTRA.clear()
    farfield._KERNELS.clear()


def _clip(channels: int, samples: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((channels, samples)) * 0.2).astype(np.float32)


def _reference_grid(x: np.ndarray) -> np.ndarray:
    """The far part's grid of channel 0 by float64 transforms of the float32 taps and low band."""
    first, last, step, size = _transform_key(x.shape[1])
    count = -(-x.shape[1] // step)
    low = _decimated_low_band(x[0], count, step).astype(np.float64)
    spectrum = np.fft.rfft(_far_taps(first, last, step).astype(np.float64), size)
    spectrum /= _lowpass_response(step, size)
    values = np.fft.irfft(np.fft.rfft(low, size) * spectrum, size)
    return values[count - 1 : count + last - _GRID_START]


@pytest.mark.parametrize("samples", [960_001, 1_440_000, 2_000_003])
def test_a_long_clips_kernel_spectrum_is_held_as_its_imaginary_parts(samples: int) -> None:
    """From ODD_FROM points the cached spectrum is float32, one value a bin (the complex spectrum's imaginary
    parts over the anti-alias response): what the far part multiplies the clip's spectrum by."""
    key = _transform_key(samples)
    first, last, step, size = key
    assert size >= ODD_FROM and odd_kernel(first, last, size)
    spectrum = farfield._far_spectrum(*key, keep=False)
    assert spectrum.dtype == np.float32
    assert spectrum.shape == (size // 2 + 1,)
    # the imaginary parts of the circular odd taps' spectrum
    reach = max(-first, last)
    circular = np.zeros(size)
    circular[: reach + 1] = _far_taps(0, reach, step)
    circular[size - reach :] = _far_taps(-reach, -1, step)
    full = np.fft.rfft(circular) / _lowpass_response(step, size)
    assert np.abs(full.real).max() < 1e-12 * np.abs(full.imag).max()
    np.testing.assert_allclose(spectrum, full.imag, rtol=0, atol=2e-6 * np.abs(full.imag).max())


def test_short_transforms_keep_the_complex_spectrum() -> None:
    """Under ODD_FROM points the spectrum is the padded taps' complex transform, as before."""
    key = _transform_key(200_000)
    assert key[3] < ODD_FROM
    assert farfield._far_spectrum(*key, keep=False).dtype == np.complex64


@pytest.mark.parametrize(("samples", "channels"), [(960_001, 1), (1_440_003, 2), (2_000_003, 1)])
def test_the_far_part_by_the_odd_spectrum_is_the_convolution(samples: int, channels: int) -> None:
    """The grid (read at t mod size from the circular convolution) is the float64 convolution's to float32
    rounding: within 4e-7 of its largest value (pocketfft's float32 transforms of the full spectrum read
    2.2-2.5e-7 on these clips)."""
    x = _clip(channels, samples, seed=samples)
    far = FarField.measure(x, keep=False)
    reference = _reference_grid(x)
    assert far.grid.shape[1] == reference.shape[0]
    assert np.abs(far.grid[0] - reference).max() <= 4e-7 * np.abs(reference).max()


def test_the_kernel_from_the_odd_spectrum_is_the_taps() -> None:
    """The kernel a limiter's output is checked with, made from the odd spectrum (with the far part, or later
    from the cached spectrum: the same), is the taps' within float32 rounding, and not bent (its far lags
    read 1 / lag within the deviation)."""
    samples = 1_440_000
    x = _clip(1, samples, seed=7)
    far = FarField.measure(x, kernel=True, keep=False)
    first, kernel = farfield._kernel_for(far, samples)
    farfield._KERNELS.clear()
    farfield._far_spectrum(*_transform_key(samples))  # cached: the kernel made from it alone
    again = farfield._kernel_for(far, samples)[1]
    np.testing.assert_array_equal(kernel.taps, again.taps)
    assert kernel.deviation == again.deviation and kernel.window == again.window
    assert kernel.deviation < farfield._KERNEL_DEVIATION
    first_lag, last, step, size = _transform_key(samples)
    spectrum = np.fft.rfft(_far_taps(first_lag, last, step).astype(np.float64), size)
    reference = np.fft.irfft(spectrum / _lowpass_response(step, size), size)  # lag l at l - first
    window = kernel.window
    expected = reference[np.arange(-window, window + 1) - first_lag]
    kept = kernel.taps[_PIECE : _PIECE + 2 * window + 1]
    assert first == first_lag
    assert np.abs(kept - expected).max() <= 1e-6 * np.abs(expected).max()


def test_the_limiters_region_buffers_are_mapped_apart_from_256_kib() -> None:
    """The search's and the output's region-sized buffers (the curve's two, the difference and the limited
    samples) are made in mappings of their own from 256 KiB (not in the allocator's heap, whose extent it
    keeps resident through the output's check), as numpy arrays below it; writable, of the shape asked."""

    def owner(array: np.ndarray) -> object:
        base: object = array
        while isinstance(base, np.ndarray | memoryview):
            base = base.base if isinstance(base, np.ndarray) else base.obj
        return base

    small = region_buffer(1000)
    assert small.dtype == np.float32 and small.shape == (1000,) and owner(small) is None
    large = region_buffer((2, 1 << 16))
    assert large.dtype == np.float32 and large.shape == (2, 1 << 16)
    assert isinstance(owner(large), mmap.mmap)
    large[:] = 1.0
    assert float(large.sum()) == 2 * (1 << 16)
