"""Renditions as a user reaches them (a bug hunt against issue 14): requests the codecs cannot honour are
refused with ``InvalidInput`` before anything is encoded or written, never read as something else."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from musicstore import InvalidInput, Store
from musicstore.audio import synthesize_music
from musicstore.audio.renditions import RenditionSpec, render_audio
from musicstore.rendering import render_generation
from tests.test_rendition_store import exported, files


@given(
    kbps=st.integers(max_value=0),
    fmt=st.sampled_from(["mp3", "opus"]),
    mode=st.sampled_from(["constant", "average"]),
)
def test_a_bitrate_under_one_kbps_is_refused(kbps: int, fmt: str, mode: str) -> None:
    """0 kbps was taken for "not given" and silently made the default bitrate (192 kbps MP3, 128 Opus)."""
    with pytest.raises(InvalidInput, match="bitrate"):
        RenditionSpec(fmt, kbps, bitrate_mode=mode if fmt == "mp3" else "constant").settings(48_000, 2)


def test_a_zero_bitrate_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="bitrate"):
        render_audio(
            synthesize_music(0.5, 48_000, seed=1), 48_000, tmp_path / "x.mp3", RenditionSpec("mp3", 0)
        )
    assert list(tmp_path.iterdir()) == []


def test_render_generation_refuses_a_zero_bitrate(sqlite_url: str, tmp_path: Path) -> None:
    with Store(sqlite_url, migrate=True) as store:
        done = exported(store, tmp_path)
        before = files(tmp_path)
        for fmt in ("mp3", "opus"):
            with pytest.raises(InvalidInput, match="bitrate"):
                render_generation(store, done.id, root=tmp_path, formats=[fmt], bitrate_kbps=0)
        assert files(tmp_path) == before and store.list_renditions(done.id) == []
