"""Tempo: within ±2 BPM of the beat or None (never an octave error) on drum patterns, music, no beat."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore.audio import estimate_tempo, synthesize_music
from musicstore.errors import InvalidInput
from tests.tempo_corpus import BEATLESS, HATS, PATTERNS, RATES, beatless, corpus, drum_pattern, judge

TEMPOS = [60.0, 83.3, 117.9, 151.2, 180.0]  # the dense corpus: python -m tests.tempo_corpus


def test_corpus_is_right_or_none_and_mostly_answered() -> None:
    verdicts: dict[str, list[str]] = {}
    for clip in corpus(TEMPOS, rates=RATES[:8]):  # 192 and 384 kHz: test_long_clips_at_any_rate
        verdict = judge(clip, estimate_tempo(clip.audio, clip.rate))
        assert verdict != "wrong", f"{clip.name} at {clip.bpm} BPM, {clip.rate} Hz"
        verdicts.setdefault(clip.name.split("/")[0], []).append(verdict)
    answered = [v == "right" for vs in verdicts.values() for v in vs]
    assert sum(answered) >= 0.95 * len(answered)
    assert all(v == "right" for v in verdicts["click"])
    assert all(v == "right" for v in verdicts["synth"])


@pytest.mark.parametrize("kind", BEATLESS)
def test_no_beat_gives_none(kind: str) -> None:
    for i, rate in enumerate(RATES[:7]):
        assert estimate_tempo(beatless(kind, 10.0, rate, seed=i), rate) is None


@settings(max_examples=25, deadline=None)
@given(
    bpm=st.floats(60.0, 180.0),
    pattern=st.sampled_from([*PATTERNS, "synth"]),
    hats=st.sampled_from(HATS),
    seed=st.integers(0, 2**31 - 1),
    rate=st.sampled_from(RATES[:8]),
)
def test_any_pattern_is_right_or_none(bpm: float, pattern: str, hats: str, seed: int, rate: int) -> None:
    if pattern == "halftime":
        bpm = 60.0 + (bpm - 60.0) / 4  # the beat of a half-time feel notated at 120–180
    if pattern == "synth":
        clip = synthesize_music(10.0, rate, bpm=bpm, seed=seed, drums=HATS.index(hats) / 2)
    else:
        clip = drum_pattern(pattern, bpm, 10.0, rate, hats=hats, seed=seed)
    estimate = estimate_tempo(clip, rate)
    assert estimate is None or abs(estimate - bpm) <= 2.0


def test_long_clips_at_any_rate() -> None:
    for rate, bpm, seconds in (
        (8_000, 61.5, 30.0),
        (44_100, 97.3, 30.0),
        (192_000, 143.0, 8.0),
        (384_000, 178.2, 8.0),
    ):
        estimate = estimate_tempo(synthesize_music(seconds, rate, bpm=bpm, seed=3), rate)
        assert estimate is not None and abs(estimate - bpm) <= 0.5


def test_short_clips_and_bad_ranges() -> None:
    assert estimate_tempo(drum_pattern("backbeat", 120.0, 5.9, 16_000), 16_000) is None  # under 6 s
    clip = np.zeros((1, 16_000 * 8), dtype=np.float32)
    for bad in [(180.0, 60.0), (0.0, 100.0), (60.0, 1e9), ("a", "b"), (60.0,)]:
        with pytest.raises(InvalidInput):
            estimate_tempo(clip, 16_000, bpm_range=bad)  # type: ignore[arg-type]
