"""The master is tagged at export (recording.py), before it is placed or put: provenance and ReplayGain in
WAV ``LIST/INFO`` + ``id3 `` and FLAC Vorbis comments, read back with mutagen; the recorded size and SHA-256
are those of the tagged file; the audio is unchanged."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf
from mutagen.flac import FLAC
from mutagen.wave import WAVE

from musicstore import InvalidInput, Status, Store
from musicstore.audio import ExportOptions
from musicstore.audio import tags as tags_module
from musicstore.audio.tags import read_wav_info
from musicstore.filestore import open_filestore
from musicstore.ops.storage import get_storage
from musicstore.recording import export_generation
from tests.test_record import OPTIONS, audio_under, claimed, files_under, music

PROMPT = 'lofi "tape" at 90 BPM\nsecond line: ünïcode 漢字'


def _claimed(store: Store, seed: Any = 42) -> Any:
    return claimed(store, prompt=PROMPT, model_name="musicgen-small", metadata={"seed": seed, "bpm": 90})


def _checked_row(store: Store, gid: str, data: bytes) -> None:
    stored = store.run(get_storage, gid)
    assert stored.checksum == hashlib.sha256(data).hexdigest() and stored.size == len(data)


def test_a_wav_master_carries_info_and_id3_tags_and_its_row_the_tagged_checksum(
    store: Store, tmp_path: Path
) -> None:
    job = _claimed(store)
    recorded = export_generation(store, job, music(), root=tmp_path / "audio", options=OPTIONS)
    (path,) = audio_under(tmp_path / "audio")
    data = path.read_bytes()
    _checked_row(store, job.id, data)
    assert recorded.result.bytes == len(data) == recorded.generation.file_size_bytes
    info = read_wav_info(path)
    assert info["INAM"] == PROMPT and info["ICMT"] == PROMPT and info["ICRD"] == f"{job.created_at:%Y-%m-%d}"
    id3: Any = WAVE(path).tags  # type: ignore[no-untyped-call]
    assert id3["TIT2"].text == [PROMPT] and id3["TXXX:MODEL"].text == ["musicgen-small"]
    assert id3["TXXX:SEED"].text == ["42"] and id3["TXXX:GENERATION_ID"].text == [job.id]
    assert id3["TXXX:CREATION_TIME"].text == [job.created_at.isoformat()]
    loudness = recorded.generation.metadata["loudness_lufs"]
    gain = float(id3["TXXX:REPLAYGAIN_TRACK_GAIN"].text[0].removesuffix(" dB"))
    assert gain == pytest.approx(-18.0 - loudness, abs=0.01) and gain == pytest.approx(-2.0, abs=0.1)
    peak = float(id3["TXXX:REPLAYGAIN_TRACK_PEAK"].text[0])
    assert peak == pytest.approx(10 ** (recorded.generation.metadata["true_peak_dbtp"] / 20), abs=1e-3)
    audio, rate = sf.read(path, dtype="float32")  # still plain PCM audio, every frame
    assert rate == job.sample_rate and audio.shape[0] == recorded.generation.metadata["frames"]


def test_a_flac_master_carries_vorbis_comments_and_no_seed_when_none_is_given(
    store: Store, tmp_path: Path
) -> None:
    job = _claimed(store, seed="not a number")
    export_generation(
        store, job, music(), root=tmp_path / "audio", ext="flac", options=ExportOptions(subtype="PCM_16")
    )
    (path,) = audio_under(tmp_path / "audio")
    _checked_row(store, job.id, path.read_bytes())
    comments: Any = FLAC(path).tags  # type: ignore[no-untyped-call]
    assert comments["TITLE"] == [PROMPT] and comments["COMMENT"] == [PROMPT]
    assert comments["GENERATION_ID"] == [job.id] and comments["MODEL"] == ["musicgen-small"]
    assert "SEED" not in comments and comments["REPLAYGAIN_TRACK_GAIN"][0].endswith(" dB")
    assert comments["DATE"] == [f"{job.created_at:%Y-%m-%d}"]


def test_tags_false_leaves_the_file_as_the_export_wrote_it(store: Store, tmp_path: Path) -> None:
    job = _claimed(store)
    export_generation(store, job, music(), root=tmp_path / "audio", options=OPTIONS, tags=False)
    (path,) = audio_under(tmp_path / "audio")
    assert read_wav_info(path) == {} and WAVE(path).tags is None  # type: ignore[no-untyped-call]
    _checked_row(store, job.id, path.read_bytes())


def test_tags_true_without_mutagen_is_refused_before_anything_is_written(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _claimed(store)
    monkeypatch.setattr(tags_module, "tags_available", lambda: False)
    with pytest.raises(InvalidInput, match="mutagen"):
        export_generation(store, job, music(), root=tmp_path / "audio", options=OPTIONS, tags=True)
    assert files_under(tmp_path / "audio") == []
    row = store.get_generation(job.id)
    assert row is not None and row.status is Status.PROCESSING  # untouched: a caller mistake
    export_generation(
        store, job, music(), root=tmp_path / "audio", options=OPTIONS
    )  # None: untagged, not refused
    (path,) = audio_under(tmp_path / "audio")
    assert WAVE(path).tags is None  # type: ignore[no-untyped-call]


def test_a_tagging_failure_fails_the_job_and_places_nothing(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _claimed(store)

    def broken(*args: Any, **kwargs: Any) -> int:
        raise OSError("disk full while tagging")

    monkeypatch.setattr("musicstore.recording.placing.tag_master", broken)
    with pytest.raises(OSError, match="tagging"):
        export_generation(store, job, music(), root=tmp_path / "audio", options=OPTIONS)
    row = store.get_generation(job.id)
    assert row is not None and row.status is Status.FAILED
    assert [p for p in files_under(tmp_path / "audio") if not p.name.startswith(".")] == []


def test_a_master_put_to_s3_is_tagged_and_its_object_checksum_recorded(
    store: Store, musicstore_s3_url: str
) -> None:
    job = _claimed(store)
    objects = open_filestore(musicstore_s3_url)
    try:
        recorded = export_generation(store, job, music(), root=objects, options=OPTIONS)
        assert recorded.key is not None
        data = b"".join(objects.get(recorded.key))
    finally:
        objects.close()
    _checked_row(store, job.id, data)
    id3: Any = WAVE(io.BytesIO(data)).tags  # type: ignore[no-untyped-call]
    assert id3["TXXX:GENERATION_ID"].text == [job.id] and id3["TXXX:SEED"].text == ["42"]
