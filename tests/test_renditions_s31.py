"""Renditions as an acceptance review found them (session 31).

- A custom ``LoudnessProfile`` with a named profile's numbers (target, ceiling, tolerance) made a second
  rendition beside the named one's: the profile's name was part of the request's key. The same numbers make
  the same audio: one rendition, recorded under the named profile's name; a row recorded under another name
  with the same numbers (before this, or by ``create_rendition``) is found and refused as that request.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from musicstore import InvalidInput, Store
from musicstore.audio import LoudnessProfile
from musicstore.rendering import render_generation
from tests.test_rendition_store import exported, files

# --- one rendition for one set of numbers, whatever the profile's name ----------------------------------


@pytest.mark.parametrize("custom_first", [False, True])
def test_a_custom_profile_with_a_named_ones_numbers_is_that_rendition(
    store: Store, tmp_path: Path, custom_first: bool
) -> None:
    """``LoudnessProfile(-14, -1)`` (named "custom") is ``streaming``'s numbers: it made a second FLAC
    beside the streaming one. Either order: one row, one file, recorded as ``streaming``."""
    done = exported(store, tmp_path)
    master = files(tmp_path)
    custom = LoudnessProfile(-14.0, -1.0)
    order: list[str | LoudnessProfile] = [custom, "streaming"] if custom_first else ["streaming", custom]
    (first,) = render_generation(store, done.id, root=tmp_path, formats=["flac"], profile=order[0])
    (second,) = render_generation(store, done.id, root=tmp_path, formats=["flac"], profile=order[1])
    assert second == first
    assert first.profile == "streaming"
    assert store.list_renditions(done.id) == [first]
    assert files(tmp_path) == master | {first.storage_key}


def test_custom_profiles_with_equal_numbers_and_other_names_are_one_rendition(
    store: Store, tmp_path: Path
) -> None:
    """Two custom profiles, ``quiet`` and ``custom``, of the same numbers: the second finds the first's row
    (its name is the one recorded); other numbers (the tolerance) are another rendition."""
    done = exported(store, tmp_path)
    (quiet,) = render_generation(
        store, done.id, root=tmp_path, formats=["flac"], profile=LoudnessProfile(-20.0, -2.0, name="quiet")
    )
    (same,) = render_generation(
        store, done.id, root=tmp_path, formats=["flac"], profile=LoudnessProfile(-20, -2)
    )
    assert same == quiet and quiet.profile == "quiet"
    (other,) = render_generation(
        store, done.id, root=tmp_path, formats=["flac"], profile=LoudnessProfile(-20.0, -2.0, 0.3)
    )
    assert other.id != quiet.id
    assert len(store.list_renditions(done.id)) == 2


def _completed(store: Store) -> str:
    store.create_generation("lofi", model_name="m", duration_seconds=2.0)
    job = store.claim_next("w")
    assert job is not None
    store.complete_generation(job.id, file_path=f"2026/{job.id}.wav", file_size_bytes=100)
    return job.id


_MP3: dict[str, Any] = {"format": "mp3", "sample_rate": 32_000, "channels": 2, "bitrate_mode": "constant",
                        "bitrate_kbps": 192}  # fmt: skip


def _figures(key: str, profile: str, target: float = -14.0) -> dict[str, Any]:
    return {
        "storage_key": key, "settings": _MP3, "profile": profile, "target_lufs": target, "ceiling_dbtp": -1.0,
        "file_size_bytes": 1234, "duration_seconds": 2.0, "loudness_lufs": -14.2, "true_peak_dbtp": -1.5,
        "loudness_status": "normalized", "checksum": hashlib.sha256(key.encode()).hexdigest(),
    }  # fmt: skip


def test_a_row_recorded_under_another_name_is_found_by_its_numbers(store: Store) -> None:
    """A row recorded as ``custom`` with streaming's numbers (as the defect recorded them, its key holding
    the name) answers a request for ``streaming``, and a second row for it is refused; others do not."""
    gid = _completed(store)
    made = store.create_rendition(gid, **_figures(f"{gid}.custom.mp3", "custom"))
    streaming: dict[str, Any] = {"profile": "streaming", "target_lufs": -14.0, "ceiling_dbtp": -1.0}
    assert store.get_rendition_by_settings(gid, _MP3, **streaming) == made
    with pytest.raises(InvalidInput, match="already has this mp3 rendition"):
        store.create_rendition(gid, **_figures(f"{gid}.streaming.mp3", "streaming"))
    assert store.get_rendition_by_settings(
        gid, _MP3, profile="custom", target_lufs=-16.0, ceiling_dbtp=-1.0
    ) is None  # fmt: skip
    podcast = store.create_rendition(gid, **_figures(f"{gid}.podcast.mp3", "podcast", -16.0))
    assert store.list_renditions(gid) == sorted([made, podcast], key=lambda r: r.settings["profile"])
