"""The far part's kernel spectrum and pocketfft's plan off an export's peak: the spectrum not cached while
its output is made and checked, kept after its write where the clip's length recurs (in a mapping of its
own), no plan kept; the same files and far parts either way; the first export of a 30 s and of a 1-minute
48 kHz stereo clip under 2x the clip (traced)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore.audio import export_audio, farfield, limited_far, synthesize_music
from musicstore.audio.export import ExportOptions, export_batch
from musicstore.audio.farfield import FarField, keep_spectrum
from musicstore.audio.limited_far import LimitedFarField


@pytest.fixture(autouse=True)
def _empty_caches() -> Iterator[None]:
    """Each test starts (and leaves the next) with no spectrum, kernel or count of misses kept."""

    def clear() -> None:
        farfield._SPECTRA.clear()
        farfield._KERNELS.clear()
        farfield._MISSES.counts.clear()

    clear()
    yield
    clear()


def _key(samples: int) -> tuple[int, int, int, int]:
    return farfield._transform_key(samples)


def _count_spectra(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on in this test, the transform size of each far spectrum made (its one call of
    ``_lowpass_response``), in a list."""
    made: list[int] = []
    response = farfield._lowpass_response

    def counted(step: int, size: int) -> Any:
        made.append(size)
        return response(step, size)

    monkeypatch.setattr(farfield, "_lowpass_response", counted)
    return made


@settings(max_examples=25, deadline=None)
@given(samples=st.integers(64, 120_000), channels=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_measure_without_keeping_gives_the_same_far_part(samples: int, channels: int, seed: int) -> None:
    """``keep=False`` caches no spectrum (the kernel is made, as where none is cached) and measures the same
    grid, bit for bit, as a measure that caches the spectrum and as one that finds it cached."""
    farfield._SPECTRA.clear()
    farfield._KERNELS.clear()
    audio = (np.random.default_rng(seed).standard_normal((channels, samples)) * 0.3).astype(np.float32)
    unkept = FarField.measure(audio, keep=False)
    assert farfield._SPECTRA.get(_key(samples)) is None
    assert farfield._KERNELS.get(_key(samples)) is not None
    farfield._KERNELS.clear()
    kept = FarField.measure(audio)
    assert farfield._SPECTRA.get(_key(samples)) is not None
    found = FarField.measure(audio, keep=False)  # cached: used as it is
    for other in (kept, found):
        assert other.start == unkept.start
        assert np.array_equal(other.grid, unkept.grid)


def test_keep_spectrum_keeps_a_recurring_length_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """After one measure without keeping, ``keep_spectrum`` keeps nothing (a one-off length); after a second
    it caches the spectrum, equal to the one a measure makes; ``now`` caches at once; a spectrum larger
    than the cache's limit is never made there."""
    samples = 96_000
    audio = (np.random.default_rng(1).standard_normal((2, samples)) * 0.3).astype(np.float32)
    FarField.measure(audio, keep=False)
    keep_spectrum(samples)
    assert farfield._SPECTRA.get(_key(samples)) is None
    FarField.measure(audio, keep=False)
    keep_spectrum(samples)
    cached = farfield._SPECTRA.get(_key(samples))
    assert cached is not None
    farfield._SPECTRA.clear()
    made = farfield._far_spectrum(*_key(samples), keep=False)
    assert np.array_equal(cached, made)

    other = 50_000
    keep_spectrum(other, now=True)
    assert farfield._SPECTRA.get(_key(other)) is not None

    made_sizes = _count_spectra(monkeypatch)
    monkeypatch.setattr(farfield, "CACHE_BYTES", 1 << 16)
    keep_spectrum(samples, now=True)
    assert made_sizes == []


def test_exports_of_one_length_make_the_spectrum_after_the_second(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The first export of a length makes its spectrum once and keeps it not; the second makes it again
    and keeps it after its write; the third finds it. Their files are the same; while a limited output is
    checked no spectrum of its length is cached."""
    rate, clip = 48_000, synthesize_music(6.0, 48_000, seed=3)
    key = _key(clip.shape[1])
    cached_at_check: list[bool] = []
    prepare = LimitedFarField.prepare

    def seen(self: LimitedFarField) -> None:
        cached_at_check.append(farfield._SPECTRA.get(key) is not None)
        prepare(self)

    made = _count_spectra(monkeypatch)
    monkeypatch.setattr(LimitedFarField, "prepare", seen)
    files, counts, kept = [], [], []
    for n in range(3):
        made.clear()
        result = export_audio(clip, rate, tmp_path / f"{n}.wav", ExportOptions(dither_seed=5))
        assert result.status == "limited"
        files.append((tmp_path / f"{n}.wav").read_bytes())
        counts.append(len(made))
        kept.append(farfield._SPECTRA.get(key) is not None)
    assert counts == [1, 2, 0]
    assert kept == [False, True, True]
    assert cached_at_check[0] is False  # the first export's check: nothing of its length held
    assert files[0] == files[1] == files[2]


def test_a_batch_makes_its_spectrum_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A batch's items share one length: its spectrum is made once, before they start, and kept."""
    rate = 32_000
    batch = np.stack([synthesize_music(3.0, rate, seed=s) for s in range(4)])
    made = _count_spectra(monkeypatch)
    paths = [tmp_path / f"{i}.wav" for i in range(4)]
    results = export_batch(batch, rate, paths, ExportOptions(dither_seed=2))
    assert len(made) == 1
    assert farfield._SPECTRA.get(_key(batch.shape[2])) is not None
    farfield._SPECTRA.clear()
    for i, result in enumerate(results):  # the same files as single exports that find no spectrum
        single = export_audio(batch[i], rate, tmp_path / "single.wav", ExportOptions(dither_seed=2))
        assert single.status == result.status
        assert (tmp_path / "single.wav").read_bytes() == paths[i].read_bytes()


_PLAN_PROBE = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    from scipy import fft
    from musicstore.audio import farfield

    def resident():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def freed():
        before = resident()
        for length in range(1, 17):  # pushes every cached plan of these transforms out
            fft.rfft(np.zeros(length, dtype=np.float32))
        return before - resident()

    samples = int(sys.argv[1])
    audio = (np.random.default_rng(0).standard_normal((1, samples)) * 0.1).astype(np.float32)
    farfield.FarField.measure(audio)  # keeps the spectrum and the plan
    kept = freed()
    farfield._SPECTRA.clear()
    farfield.FarField.measure(audio, keep=False)
    unkept = freed()
    farfield.keep_spectrum(samples, now=True)
    after_keep = freed()
    farfield.FarField.measure(audio, keep=False)  # finds the spectrum
    found = freed()
    size = farfield._transform_key(samples)[3]
    fft.rfft(np.zeros(size, dtype=np.float32))  # scipy's own transform of that size, for comparison
    print(json.dumps({"kept": kept, "unkept": unkept, "after_keep": after_keep, "found": found,
                      "bare": freed(), "plan": 4 * size}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_an_export_leaves_no_plan_of_a_short_clip() -> None:
    """Measured for an export (``keep=False``), a short clip leaves no plan of its transform in pocketfft's
    cache, whether its spectrum was cached or is kept afterwards (``keep_spectrum``); a plain measure
    leaves it there (the probe sees one). A fresh process whose allocator maps every buffer over 64 KiB on
    its own, so that a freed plan leaves the resident memory."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    run = subprocess.run(
        [sys.executable, "-c", _PLAN_PROBE, "1500000"], capture_output=True, text=True, check=True, env=env
    )
    probe = json.loads(run.stdout)
    if probe["bare"] < probe["plan"] // 2:
        pytest.skip(f"this scipy keeps no plan of a {probe['plan'] // 4}-point transform: none to leave")
    assert probe["kept"] > probe["plan"] // 2, probe
    for step in ("unkept", "after_keep", "found"):
        assert probe[step] < probe["plan"] // 8, probe


_PEAK_PROBE = textwrap.dedent(
    """
    import json, sys, tempfile, tracemalloc
    from pathlib import Path
    import numpy as np
    from musicstore.audio import export_audio, synthesize_music

    rate, minutes = 48_000, float(sys.argv[1])
    piece = synthesize_music(30.0, rate, seed=2)[: int(sys.argv[2])]  # as bench_export_memory.py makes them
    frames = round(minutes * 60 * rate)
    clip = np.ascontiguousarray(np.tile(piece, (1, -(-frames // piece.shape[1])))[:, :frames])
    out = Path(tempfile.mkdtemp())
    export_audio(synthesize_music(2.0, rate, seed=1), rate, out / "warm.wav")
    tracemalloc.start()
    since = tracemalloc.get_traced_memory()[0]
    result = export_audio(clip, rate, out / "clip.wav")
    peak = (tracemalloc.get_traced_memory()[1] - since) / clip.nbytes
    print(json.dumps({"peak": peak, "status": result.status}))
    """
)


def first_export_peak(minutes: float, channels: int) -> dict[str, Any]:
    """The first export of a ``minutes`` long 48 kHz clip of ``channels`` in a fresh process: numpy's traced
    peak over the clip's bytes (``peak``) and the export's ``status``."""
    run = subprocess.run(
        [sys.executable, "-c", _PEAK_PROBE, str(minutes), str(channels)],
        capture_output=True,
        text=True,
        check=True,
    )
    probe: dict[str, Any] = json.loads(run.stdout)
    return probe


@pytest.mark.parametrize("minutes", [0.5, 1.0])
def test_a_short_clips_first_export_stays_under_twice_the_clip(minutes: float) -> None:
    """The first export of a 30 s and of a 1-minute 48 kHz stereo clip (limited), in a fresh process: numpy's
    allocations peak under 2x the clip (2.35x and 2.45x while the spectrum was cached at the output's
    check, the pieces' expansion made beside the check's rows and a gathered block beside the next)."""
    probe = first_export_peak(minutes, channels=2)
    assert probe["status"] == "limited"
    assert probe["peak"] < 2.0, probe


@settings(max_examples=40, deadline=None)
@given(
    windows=st.integers(200, 2000),
    held=st.integers(1, 12),
    asked=st.integers(1, 100),
    gather=st.integers(1, 64),
    after=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_windowed_sum_in_chunks_is_the_whole_sum(  # noqa: PLR0917 (hypothesis)
    windows: int, held: int, asked: int, gather: int, after: bool, seed: int
) -> None:
    """The direct windowed sum, a few rows of windows at a time (its temporaries bounded), gives what the
    whole matrix of lags gave, bit for bit, wherever the chunks end."""
    rng = np.random.default_rng(seed)
    masses = np.zeros(windows)
    masses[rng.choice(windows, min(held, windows), replace=False)] = rng.random(min(held, windows))
    reach = rng.random(windows)
    at = np.sort(rng.integers(0, windows, asked)).astype(np.int64)
    nonzero = np.flatnonzero(masses)
    lags = nonzero[None, :] - at[:, None] if after else at[:, None] - nonzero[None, :]
    terms = reach[np.maximum(lags, 0)] * masses[nonzero]
    terms[lags < 0] = 0.0
    assert nonzero.shape[0] * at.shape[0] <= windows * windows // 32  # the direct branch
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(limited_far, "_GATHER", gather)  # chunks of a few rows (read by _windowed_sum there)
        chunked = limited_far._windowed_sum(masses, reach, at, after=after)
    assert np.array_equal(chunked, terms.sum(axis=1))
