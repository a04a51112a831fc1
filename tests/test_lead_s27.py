"""The lead's fixes of session 27, each with the test that failed before it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from musicstore.audio import synthesize_music
from musicstore.audio.loudness import integrated_loudness
from musicstore.audio.profiles import get_profile
from musicstore.audio.renditions import RenditionOptions, RenditionSpec, render_audio


def test_a_too_quiet_rendition_within_the_tolerance_reached_its_target(tmp_path: Path) -> None:
    """A clip left at its own level (``max_gain_db=0``: ``too_quiet``) whose loudness is within the profile's
    tolerance reached the target, as an export's does (docs/renditions.md); it said False."""
    profile = get_profile("streaming")
    rate = 48_000
    clip = synthesize_music(4.0, rate, seed=3)
    level = integrated_loudness(clip, rate).lufs
    under = 0.6 * profile.tolerance_lu  # quieter than the target, within the tolerance
    clip = (clip * 10 ** ((profile.target_lufs - under - level) / 20)).astype(np.float32)
    result = render_audio(
        clip,
        rate,
        tmp_path / "r.flac",
        RenditionSpec("flac"),
        "streaming",
        options=RenditionOptions(max_gain_db=0.0),
    )
    assert result.status == "too_quiet"
    assert abs(result.loudness - profile.target_lufs) <= profile.tolerance_lu
    assert result.target_reached
