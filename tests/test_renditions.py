"""Renditions (musicstore.audio.renditions): every format keeps the profile's ceiling once decoded, reports
what its file measures, carries its tags exactly, and bad input leaves nothing at the target."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutagen import flac, mp3, oggopus, oggvorbis, wave

from musicstore.audio import click_track, export_audio, synthesize_music
from musicstore.audio.loudness import integrated_loudness
from musicstore.audio.profiles import LoudnessProfile, get_profile
from musicstore.audio.renditions import (
    RenditionOptions,
    RenditionResult,
    RenditionSpec,
    render_audio,
    render_file,
)
from musicstore.audio.tags import Provenance, read_wav_info
from musicstore.audio.truepeak import to_db, true_peak
from musicstore.errors import InvalidAudio, InvalidInput, RenditionFailed
from tests.test_truepeak_ideal import corpus

# mutagen is untyped: its classes are used through Any
FLAC: Any = flac.FLAC
MP3: Any = mp3.MP3
BitrateMode: Any = mp3.BitrateMode
OggOpus: Any = oggopus.OggOpus
OggVorbis: Any = oggvorbis.OggVorbis
WAVE: Any = wave.WAVE

SPECS = {
    "mp3": (RenditionSpec("mp3", 128), "mp3"),
    "mp3-vbr": (RenditionSpec("mp3", bitrate_mode="variable", quality=4), "mp3"),
    "opus": (RenditionSpec("opus", 64), "opus"),
    "vorbis": (RenditionSpec("vorbis", quality=3), "ogg"),
    "flac": (RenditionSpec("flac"), "flac"),
    "wav": (RenditionSpec("wav", subtype="PCM_24"), "wav"),
}
HOSTILE = (
    "a \"lofi\" 'hip hop' beat\nwith ünïcödé, 漢字, emoji 🎵🎶, back\\slash, tab\t, CRLF\r\n= and ; " * 200
)
PROVENANCE = Provenance(
    HOSTILE,
    model_name="musicgen-small",
    model_version='1.0 "beta"',
    seed=2**63 + 5,
    generation_id="0b5e6f0e-9a47-4b4e-8f7c-2b3c4d5e6f70",
    created_at=datetime(2026, 12, 2, 1, 2, 3, 456789, tzinfo=UTC),
)


def bright(seconds: float, rate: int) -> np.ndarray:
    """Loud, bright music: the synthesiser's kick, snare and differenced-noise hats, drums 1.5x."""
    return synthesize_music(seconds, rate, seed=5, drums=1.5)


def decoded(path: Path) -> tuple[float, float]:
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    audio = np.ascontiguousarray(data.T)
    return integrated_loudness(audio, rate).lufs, to_db(true_peak(audio))


def same(a: float, b: float) -> bool:
    return a == b or abs(a - b) < 1e-6


def check(result: RenditionResult) -> None:
    """The file on disk measures what the result says, holds the ceiling, and the status is honest."""
    loudness, peak = decoded(result.path)
    profile = result.profile
    assert peak <= profile.ceiling_dbtp
    assert same(peak, result.true_peak) and same(loudness, result.loudness)
    assert result.bytes == result.path.stat().st_size
    assert result.sha256 == hashlib.sha256(result.path.read_bytes()).hexdigest()
    within = abs(result.loudness - profile.target_lufs) <= profile.tolerance_lu
    if result.target_reached:  # a too_quiet clip within the tolerance reached it, as an export's does
        assert abs(loudness - profile.target_lufs) <= profile.tolerance_lu
        assert result.status in ("normalized", "limited", "too_quiet")
    else:
        assert result.status in ("target_missed", "silent", "too_quiet")
        assert result.status == "silent" or not within
    assert not [p for p in result.path.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("name", list(SPECS))
def test_every_format_keeps_the_ceiling_and_reaches_the_target(name: str, tmp_path: Path) -> None:
    spec, ext = SPECS[name]
    result = render_audio(bright(1.5, 44_100), 44_100, tmp_path / f"r.{ext}", spec, "streaming")
    check(result)
    assert result.target_reached, result.attempts
    assert 1 <= len(result.attempts) <= 4
    assert result.sample_rate == (48_000 if name == "opus" else 44_100)


@pytest.mark.parametrize("name", ["mp3", "opus", "vorbis"])
def test_clicks_and_a_near_nyquist_tone_keep_the_ceiling(name: str, tmp_path: Path) -> None:
    spec, ext = SPECS[name]
    clicks = click_track(180.0, 1.0, 48_000, amplitude=0.9)
    tone = corpus("nyquist_sine", 48_000, 0.8, seed=1)
    for i, audio in enumerate((clicks, tone)):
        check(render_audio(audio, 48_000, tmp_path / f"{i}.{ext}", spec, "podcast"))


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    kind=st.sampled_from(["music", "bursts", "chirp", "square", "clipped", "bed"]),
    rate=st.sampled_from([16_000, 32_000, 44_100, 48_000]),
    seconds=st.floats(0.5, 1.0),
    name=st.sampled_from(["mp3", "mp3-vbr", "opus", "vorbis"]),
    profile=st.sampled_from(["streaming", "podcast", "broadcast"]),
    seed=st.integers(0, 1000),
)
def test_any_clip_holds_the_ceiling_or_raises(
    tmp_path: Path, *, kind: str, rate: int, seconds: float, name: str, profile: str, seed: int
) -> None:
    """Property: the decoded rendition's true peak is at most the ceiling and a reached target is within
    the tolerance; or RenditionFailed, and no file."""
    spec, ext = SPECS[name]
    if kind == "music":
        audio = synthesize_music(seconds, rate, seed=seed, drums=2.0)
    else:
        audio = corpus(kind, rate, seconds, seed=seed)
    target = tmp_path / f"{kind}-{rate}-{name}-{seed}.{ext}"
    try:
        result = render_audio(audio, rate, target, spec, profile)
    except RenditionFailed:
        assert not target.exists()
        return
    check(result)


def test_an_encode_over_the_ceiling_is_never_kept(tmp_path: Path) -> None:
    """Opus at 64 kbps overshoots bright music by about 2 dB: one attempt without headroom raises, the loop
    (which records the overshoot of its first attempt) holds."""
    audio = synthesize_music(1.5, 48_000, seed=1)
    one = RenditionOptions(max_attempts=1, headroom_db=0.0)
    with pytest.raises(RenditionFailed, match="nothing was written"):
        render_audio(audio, 48_000, tmp_path / "a.opus", RenditionSpec("opus", 64), "streaming", options=one)
    assert list(tmp_path.iterdir()) == []
    result = render_audio(
        audio,
        48_000,
        tmp_path / "a.opus",
        RenditionSpec("opus", 64),
        options=RenditionOptions(headroom_db=0.0),
    )
    check(result)
    assert result.first_overshoot_db > 0.0 and len(result.attempts) >= 2


def vorbis_tags(tags: object) -> dict[str, list[str]]:
    return {key.upper(): value for key, value in dict(tags).items()}  # type: ignore[call-overload]


@pytest.mark.parametrize("name", ["mp3", "opus", "vorbis", "flac", "wav"])
def test_tags_round_trip_exactly(name: str, tmp_path: Path) -> None:
    spec, ext = SPECS[name]
    result = render_audio(
        synthesize_music(0.8, 48_000, seed=3),
        48_000,
        tmp_path / f"t.{ext}",
        spec,
        "podcast",
        provenance=PROVENANCE,
    )
    path, loudness = result.path, result.loudness
    fields = {
        "MODEL": "musicgen-small",
        "MODEL_VERSION": '1.0 "beta"',
        "SEED": str(2**63 + 5),
        "GENERATION_ID": "0b5e6f0e-9a47-4b4e-8f7c-2b3c4d5e6f70",
        "CREATION_TIME": "2026-12-02T01:02:03.456789+00:00",
    }
    gain = {
        "REPLAYGAIN_TRACK_GAIN": f"{-18.0 - loudness:.2f} dB",
        "REPLAYGAIN_TRACK_PEAK": f"{10 ** (result.true_peak / 20):.6f}",
    }
    if name in ("mp3", "wav"):
        id3 = MP3(path).tags if name == "mp3" else WAVE(path).tags
        assert id3 is not None
        assert id3["TIT2"].text == [HOSTILE] and id3.getall("COMM")[0].text == [HOSTILE]
        assert id3["TDRC"].text[0].text == "2026-12-02 01:02:03"
        assert {f.desc: f.text[0] for f in id3.getall("TXXX")} == fields | gain
        if name == "wav":
            info = read_wav_info(path)
            assert info == {"INAM": HOSTILE, "ICMT": HOSTILE, "ISFT": "musicstore", "ICRD": "2026-12-02"}
            assert sf.info(path).frames == result.frames  # the chunks added after the data leave it readable
        return
    handler = {"opus": OggOpus, "vorbis": OggVorbis, "flac": FLAC}[name](path)
    tags = vorbis_tags(handler.tags)
    expected = {key: [value] for key, value in fields.items()}
    expected |= {"TITLE": [HOSTILE], "COMMENT": [HOSTILE], "DATE": ["2026-12-02"]}
    if name == "opus":  # RFC 7845: R128_TRACK_GAIN in Q7.8 to -23 LUFS, and no ReplayGain tags
        expected["R128_TRACK_GAIN"] = [str(round(256 * (-23.0 - loudness)))]
    else:
        expected |= {key: [value] for key, value in gain.items()}
    assert {k: v for k, v in tags.items() if k != "ENCODER"} == expected
    assert result.tags["GENERATION_ID"] == fields["GENERATION_ID"]


def test_mp3_bitrates_are_what_was_asked(tmp_path: Path) -> None:
    audio = synthesize_music(1.0, 32_000, seed=2)
    cbr = render_audio(audio, 32_000, tmp_path / "c.mp3", RenditionSpec("mp3", 96), "broadcast")
    info = MP3(cbr.path).info
    assert info.bitrate == 96_000 and info.bitrate_mode in (BitrateMode.CBR, BitrateMode.UNKNOWN)
    assert info.sample_rate == 32_000 and cbr.codec["bitrate_kbps"] == 96
    vbr = render_audio(
        audio,
        32_000,
        tmp_path / "v.mp3",
        RenditionSpec("mp3", bitrate_mode="variable", quality=0),
        "broadcast",
    )
    assert MP3(vbr.path).info.bitrate_mode == BitrateMode.VBR


def test_a_master_file_is_rendered_after_its_checksum(tmp_path: Path) -> None:
    master = tmp_path / "master.wav"
    export_audio(synthesize_music(1.5, 32_000, seed=8), 32_000, master)
    digest = hashlib.sha256(master.read_bytes()).hexdigest()
    result = render_file(master, tmp_path / "out" / "m.opus", RenditionSpec("opus"), sha256=digest)
    check(result)
    assert result.sample_rate == 48_000 and abs(result.duration - 1.5) < 0.01  # resampled by soxr
    with pytest.raises(InvalidAudio, match="sha256"):
        render_file(master, tmp_path / "bad.mp3", RenditionSpec("mp3"), sha256="0" * 64)
    with pytest.raises(InvalidInput, match="does not exist"):
        render_file(tmp_path / "missing.wav", tmp_path / "bad.mp3", RenditionSpec("mp3"))
    (tmp_path / "junk.wav").write_bytes(b"RIFF junk")
    with pytest.raises(InvalidAudio):
        render_file(tmp_path / "junk.wav", tmp_path / "bad.mp3", RenditionSpec("mp3"))
    assert not (tmp_path / "bad.mp3").exists()


def test_a_rendition_may_use_another_profile_than_its_master(tmp_path: Path) -> None:
    master = tmp_path / "master.flac"
    export_audio(
        synthesize_music(1.5, 48_000, seed=9), 48_000, master, get_profile("podcast").export_options()
    )
    custom = LoudnessProfile(-20.0, -2.0, tolerance_lu=0.3)
    result = render_file(master, tmp_path / "c.ogg", RenditionSpec("vorbis"), custom)
    check(result)
    assert result.target_reached and result.true_peak <= -2.0 and result.profile.name == "custom"


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: RenditionSpec("aac"), "unknown rendition format"),
        (lambda: RenditionSpec("mp3", 100), "a constant mp3 bitrate"),
        (lambda: RenditionSpec("mp3", 400, bitrate_mode="average"), "8–320"),
        (lambda: RenditionSpec("mp3", bitrate_mode="variable", quality=12), "quality"),
        (lambda: RenditionSpec("mp3", 128, bitrate_mode="variable"), "bitrate_kbps applies"),
        (lambda: RenditionSpec("opus", 700), "opus at 2 channel"),
        (lambda: RenditionSpec("opus", 2), "opus at 2 channel"),
        (lambda: RenditionSpec("opus", sample_rate=44_100), "opus takes sample rates"),
        (lambda: RenditionSpec("mp3", sample_rate=96_000), "mp3 takes sample rates"),
        (lambda: RenditionSpec("vorbis", quality=11), "quality"),
        (lambda: RenditionSpec("flac", subtype="FLOAT"), "subtype must be"),
        (lambda: RenditionSpec("flac", compression_level=9), "compression_level"),
        (lambda: RenditionSpec("wav", bitrate_kbps=128), "bitrate_kbps applies"),
        (lambda: RenditionSpec("mp3", bitrate_mode="sometimes"), "bitrate_mode"),
    ],
)
def test_bad_specs_are_refused_and_nothing_is_written(make: object, match: str, tmp_path: Path) -> None:
    audio = synthesize_music(0.5, 48_000, seed=1)
    with pytest.raises(InvalidInput, match=match):
        spec = make()  # type: ignore[operator]
        render_audio(audio, 48_000, tmp_path / f"x.{SPECS[spec.format][1]}", spec)
    assert list(tmp_path.iterdir()) == []


def test_bad_input_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    audio = synthesize_music(0.5, 48_000, seed=1)
    cases = [
        (audio, 48_000, "x.mp3", RenditionSpec("mp3"), "loud", InvalidInput),  # unknown profile
        (audio, 48_000, "x.ogg", RenditionSpec("mp3"), "streaming", InvalidInput),  # extension
        (audio, 96_000, "x.mp3", RenditionSpec("mp3"), "streaming", InvalidInput),  # mp3 at 96 kHz
        (np.zeros((3, 24_000), np.float32), 48_000, "x.mp3", RenditionSpec("mp3"), "podcast", InvalidInput),
        (
            np.full((2, 100), np.nan, np.float32),
            48_000,
            "x.opus",
            RenditionSpec("opus"),
            "podcast",
            InvalidAudio,
        ),
        (audio, 400_000, "x.flac", RenditionSpec("flac"), "podcast", InvalidInput),
        (audio, 192_000 * 2, "x.ogg", RenditionSpec("vorbis"), "podcast", InvalidInput),
    ]
    for samples, rate, name, spec, profile, error in cases:
        with pytest.raises(error):
            render_audio(samples, rate, tmp_path / name, spec, profile)
    with pytest.raises(InvalidInput):
        render_audio(
            audio, 48_000, tmp_path / "x.mp3", RenditionSpec("mp3"), options=RenditionOptions(max_attempts=0)
        )
    with pytest.raises(InvalidInput):
        Provenance("   ")
    with pytest.raises(InvalidInput):
        Provenance("ok", created_at=datetime(2026, 1, 1))  # naive
    with pytest.raises(InvalidInput):
        Provenance("a\x00b")
    assert list(tmp_path.iterdir()) == []


def test_silence_is_written_as_silence(tmp_path: Path) -> None:
    result = render_audio(np.zeros((2, 24_000), np.float32), 48_000, tmp_path / "s.mp3", RenditionSpec("mp3"))
    assert result.status == "silent" and not result.target_reached and result.tags == {}
    check(result)


def test_an_encoder_failure_is_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from musicstore.audio import renditions

    def broken(*_: object) -> bytes:
        raise sf.LibsndfileError(1, "encoding: ")

    monkeypatch.setattr(renditions, "encode", broken)
    with pytest.raises(RenditionFailed, match="encoder failed"):
        render_audio(synthesize_music(0.5, 48_000), 48_000, tmp_path / "x.mp3", RenditionSpec("mp3"))
    assert list(tmp_path.iterdir()) == []
