"""Acceptance-style probes of issue 10 (session 30), through the public API only: paths the OS holds that
are not UTF-8 (a name with an undecodable byte, as ``os.fsdecode`` gives it), which ``export_audio`` writes
and every reader of a local audio file must read back or refuse with a typed error."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from musicstore.audio import ExportOptions, analyze_file, export_audio, file_peaks


def _clip(seconds: float = 1.0, rate: int = 16_000) -> np.ndarray:
    rng = np.random.default_rng(10)
    return (rng.standard_normal((2, int(seconds * rate))) * 0.1).astype(np.float32)


@pytest.mark.parametrize("suffix", ["wav", "flac"])
def test_a_file_named_with_an_undecodable_byte_is_read_back(tmp_path: Path, suffix: str) -> None:
    """``validate.os_path`` takes a name ``os.fsdecode`` made of an undecodable byte, and ``export_audio``
    writes it; ``analyze_file`` and ``file_peaks`` read the same path (they raised a bare
    ``UnicodeEncodeError``: soundfile encodes a str path as strict UTF-8)."""
    path = tmp_path / os.fsdecode(b"take-\xff." + suffix.encode())
    result = export_audio(_clip(), 16_000, path, ExportOptions(subtype="PCM_24"))
    assert os.fsencode(path.name) in os.listdir(os.fsencode(tmp_path))
    info = analyze_file(path)
    assert info.duration == pytest.approx(1.0)
    assert info.integrated_loudness == pytest.approx(result.loudness_after, abs=0.05)
    peaks = file_peaks(path, 160, split_channels=True)
    assert peaks.channels == 2 and peaks.length == 100 and peaks.frames == 16_000


def test_the_dashboards_waveform_of_a_file_under_a_root_named_with_an_undecodable_byte(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The dashboard draws the waveform of a master in a local root whose folder name holds an undecodable
    byte (its frame count was read by ``sf.info`` on the path as a str: a bare ``UnicodeEncodeError``)."""
    pytest.importorskip("starlette")
    pytest.importorskip("jinja2")
    from starlette.testclient import TestClient

    from musicstore import Store
    from musicstore.web import create_app

    root = tmp_path / os.fsdecode(b"out-\xff")
    root.mkdir()
    with Store(sqlite_url) as store:
        store.create_generation("undecodable", model_name="m", duration_seconds=1)
        job = store.claim_next("gpu-0")
        assert job is not None
        path = root / f"{job.id}.wav"
        export_audio(_clip(), 16_000, path)
        store.complete_generation(job.id, file_path=path.name, file_size_bytes=path.stat().st_size)
        with TestClient(create_app(store, root=root), raise_server_exceptions=False) as client:
            peaks = client.get(f"/api/generations/{job.id}/peaks")
            assert peaks.status_code == 200, peaks.text
            assert peaks.json()["frames"] == 16_000 and peaks.json()["peaks"]
