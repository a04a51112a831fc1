"""Loudness profiles (musicstore.audio.profiles): the named ones, custom ones, and their checks."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore.audio import export_audio, synthesize_music
from musicstore.audio.profiles import PROFILES, LoudnessProfile, get_profile
from musicstore.errors import InvalidInput


def test_the_named_profiles() -> None:
    figures = {name: (p.target_lufs, p.ceiling_dbtp) for name, p in PROFILES.items()}
    assert figures == {"streaming": (-14.0, -1.0), "podcast": (-16.0, -1.0), "broadcast": (-23.0, -1.0)}
    assert get_profile("broadcast") is PROFILES["broadcast"] and get_profile("podcast").name == "podcast"
    custom = LoudnessProfile(-18.0, -2.0)
    assert get_profile(custom) is custom and custom.name == "custom"
    assert custom.as_metadata() == {
        "profile": "custom", "target_lufs": -18.0, "ceiling_dbtp": -2.0, "tolerance_lu": 0.5
    }  # fmt: skip


@pytest.mark.parametrize("name", ["Streaming", "loud", "", "streaming ", None, 14, "x" * 500])
def test_an_unknown_profile_is_refused(name: object) -> None:
    with pytest.raises(InvalidInput, match="unknown loudness profile") as info:
        get_profile(name)  # type: ignore[arg-type]
    assert len(str(info.value)) < 250


@settings(max_examples=80, deadline=None)
@given(
    target=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.text(max_size=3)),
    ceiling=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-30, 5)),
    tolerance=st.floats(-1, 5),
)
def test_a_custom_profile_is_checked(target: object, ceiling: object, tolerance: float) -> None:
    """Valid when every figure is a finite number in its range; otherwise InvalidInput."""
    valid = (
        isinstance(target, float) and math.isfinite(target) and -70.0 < target <= 0.0
        and isinstance(ceiling, float | int) and math.isfinite(ceiling) and -20.0 <= ceiling <= 0.0
        and 0.0 < tolerance <= 3.0
    )  # fmt: skip
    if valid:
        profile = LoudnessProfile(target, ceiling, tolerance)  # type: ignore[arg-type]
        assert profile.target_lufs == target
    else:
        with pytest.raises(InvalidInput):
            LoudnessProfile(target, ceiling, tolerance)  # type: ignore[arg-type]


def test_a_bad_profile_name_is_refused() -> None:
    with pytest.raises(InvalidInput):
        LoudnessProfile(-18.0, name="my profile; drop")


def test_a_master_exported_at_a_profile(tmp_path: Path) -> None:
    options = get_profile("broadcast").export_options(subtype="PCM_24")
    assert (options.target_lufs, options.ceiling_dbtp, options.subtype) == (-23.0, -1.0, "PCM_24")
    result = export_audio(synthesize_music(2.0, 32_000, seed=1), 32_000, tmp_path / "m.wav", options)
    assert result.target_reached and abs(result.loudness_after + 23.0) <= 0.1
    assert result.true_peak_after <= -1.0
