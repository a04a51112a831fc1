"""Session 26's export hunt: promises of docs/export.md checked on the files written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicstore.audio import ExportOptions, export_audio, true_peak
from musicstore.audio.truepeak import to_db
from tests.reference_meter import reference_true_peak

RATE = 16_000


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
@pytest.mark.parametrize("seed", range(6))
def test_a_clip_turned_down_to_the_ceiling_holds_it_once_dithered_and_rounded(
    tmp_path: Path, seed: int, subtype: str
) -> None:
    """A too quiet clip whose true peak is over the ceiling (a lone click in a quiet bed) is turned down by a
    plain gain. It was put at the ceiling itself, so the PCM_16 dither (and the rounding) put half of these
    files 0.00015 dB over it, by the library's own meter and by an independent one alike; the limited path
    keeps ``CEILING_MARGIN_DB`` (0.01 dB) under it for just that."""
    rng = np.random.default_rng(seed)
    clip = (rng.standard_normal((1, RATE)) * 1e-4).astype(np.float32)
    clip[0, RATE // 2] = 2.0
    options = ExportOptions(subtype=subtype, dither_seed=seed, max_gain_db=3.0)
    result = export_audio(clip, RATE, tmp_path / "click.wav", options)
    assert result.status == "too_quiet" and result.gain_db < 0.0
    written = sf.read(result.path, dtype="float32", always_2d=True)[0].T
    assert to_db(true_peak(written)) <= options.ceiling_dbtp
    assert to_db(reference_true_peak(written.astype(np.float64))) <= options.ceiling_dbtp
    assert result.true_peak_after <= options.ceiling_dbtp
