"""Renditions end to end, a bug hunt (session 26): ``render_generation``, the store's rendition rows and the
``musicstore render`` command, as a demanding user would call them. Each test failed before its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from musicstore import InvalidInput, Store
from musicstore.audio import LoudnessProfile, synthesize_music
from musicstore.models import Generation
from musicstore.recording import export_generation
from musicstore.rendering import render_generation


def _completed(store: Store, root: Path) -> Generation:
    store.create_generation("render hunt", model_name="m", duration_seconds=1)
    job = store.claim_next("w")
    assert job is not None
    return export_generation(store, job, synthesize_music(1.0, 32_000, seed=1), root=root).generation


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("length", [101, 200])
def test_a_profile_name_longer_than_its_column_is_refused_before_anything_is_made(
    db_url: str, tmp_path: Path, length: int
) -> None:
    """The request's check took a profile name of up to 200 characters (a model name's limit), the column
    holds 100 (migration 0007): a custom profile named with 101–200 characters was encoded, put, then refused
    by the database's CHECK (``DatabaseError``, "a schema constraint refused the change") and its file
    removed. Now ``InvalidInput`` before the encode, as for any bad request; ``create_rendition`` alike."""
    root = tmp_path / "audio"
    with Store(db_url, migrate=True) as store:
        done = _completed(store, root)
        before = _files(root)
        profile = LoudnessProfile(-14.0, name="p" * length)
        with pytest.raises(InvalidInput, match="profile has"):
            render_generation(store, done.id, root=root, formats=["flac"], profile=profile)
        assert _files(root) == before and store.list_renditions(done.id) == []
        row = {
            "storage_key": "r.flac", "settings": {"format": "flac", "sample_rate": 32_000, "channels": 2},
            "profile": "streaming", "target_lufs": -14.0, "ceiling_dbtp": -1.0, "file_size_bytes": 1,
            "duration_seconds": 1.0, "loudness_lufs": -14.0, "true_peak_dbtp": -1.5,
            "loudness_status": "normalized", "checksum": "0" * 64,
        }  # fmt: skip
        with pytest.raises(InvalidInput, match="profile has"):
            store.create_rendition(done.id, **{**row, "profile": "p" * length})
        with pytest.raises(InvalidInput, match="subtype"):  # the codec column holds 40
            store.create_rendition(done.id, **{**row, "settings": {**row["settings"], "subtype": "S" * 41}})
        assert store.create_rendition(done.id, **{**row, "profile": "p" * 100}).profile == "p" * 100
