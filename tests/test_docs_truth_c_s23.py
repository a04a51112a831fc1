"""Claims of docs/storage.md, renditions.md, dashboard.md, architecture.md and README.md that the code did not
keep (or that the page got wrong): each test quotes the claim it holds the code to."""

from __future__ import annotations

from pathlib import Path

import pytest

from musicstore import InvalidInput
from musicstore.audio import RenditionSpec, render_audio, synthesize_music


@pytest.mark.parametrize(
    ("rate", "low", "high"), [(44_100, 32, 320), (48_000, 32, 320), (22_050, 8, 160), (11_025, 8, 64)]
)
def test_an_average_mp3_takes_the_bitrates_of_its_mpeg_versions_range(
    rate: int, low: int, high: int, tmp_path: Path
) -> None:
    # renditions.md: '"average" with any whole number of kbps in the MPEG version's range (the same 32–320,
    # 8–160, 8–64: an average 16 kbps MP3 of a 44.1 kHz master is InvalidInput, before anything is encoded';
    # the page said 8–320 whatever the rate, and 16 kbps at 44.1 kHz was refused
    clip = synthesize_music(0.5, rate, seed=1)
    for kbps in (low - 1, high + 1):
        if 8 <= kbps <= 320:  # outside 8–320 the spec itself refuses it
            spec = RenditionSpec("mp3", kbps, bitrate_mode="average")
            with pytest.raises(InvalidInput, match=f"{low}–{high} kbps"):
                render_audio(clip, rate, tmp_path / "a.mp3", spec)
            assert not (tmp_path / "a.mp3").exists()
    made = render_audio(clip, rate, tmp_path / "b.mp3", RenditionSpec("mp3", low, bitrate_mode="average"))
    assert made.codec["bitrate_kbps"] == low and (tmp_path / "b.mp3").is_file()
    resampled = RenditionSpec("mp3", 16, bitrate_mode="average", sample_rate=22_050)
    assert render_audio(clip, rate, tmp_path / "c.mp3", resampled).codec["bitrate_kbps"] == 16
