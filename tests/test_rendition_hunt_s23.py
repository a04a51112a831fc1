"""Renditions and their codecs, a bug hunt (session 23): what a demanding user of ``render_generation`` and
``musicstore.audio.renditions`` would call wrong. Each test failed before its fix."""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicstore import InvalidAudio, Status, Store
from musicstore.audio import RenditionSpec, file_peaks, get_profile, synthesize_music
from musicstore.audio.analysis import analyze_file
from musicstore.audio.renditions import (
    EXTENSIONS,
    RenditionOptions,
    decode,
    read_master,
    render_audio,
    render_file,
)
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.usage import storage_stats
from musicstore.models import Generation
from musicstore.recording import export_generation
from musicstore.rendering import render_generation, rendition_name


def _completed_by_hand(store: Store, root: Path, rate: int, channels: int) -> Generation:
    """A generation created with the defaults (32 kHz, stereo) whose worker wrote its own master at ``rate``
    with ``channels`` and completed it with ``complete_generation`` (docs/async.md's worker)."""
    store.create_generation("by hand", model_name="m", duration_seconds=1)
    job = store.claim_next("w")
    assert job is not None
    audio = np.asarray(synthesize_music(1.0, rate, seed=2))[:channels]
    path = root / f"{job.id}.wav"
    sf.write(path, audio.T, rate, subtype="PCM_16")
    return store.complete_generation(job.id, file_path=path.name, file_size_bytes=path.stat().st_size)


@pytest.mark.parametrize(("rate", "channels", "fmt"), [(44_100, 2, "mp3"), (32_000, 1, "opus")])
def test_a_master_unlike_its_row_is_rendered_once_then_found(
    db_url: str, tmp_path: Path, rate: int, channels: int, fmt: str
) -> None:
    """The request's key was made from the row's sample rate and channels, the recorded row from the
    master's: a second render_generation missed the row, encoded again and raised InvalidInput ('already has
    this rendition'), the file name's digest naming a request that was never recorded."""
    root = tmp_path / "audio"
    root.mkdir()
    with Store(db_url, migrate=True) as store:
        done = _completed_by_hand(store, root, rate, channels)
        assert (done.sample_rate, done.channels) == (32_000, 2)
        made = render_generation(store, done.id, root=root, formats=[fmt])
        assert made[0].channels == channels and made[0].sample_rate == (48_000 if fmt == "opus" else rate)
        audio, _ = decode((root / made[0].storage_key).read_bytes())
        assert audio.shape[0] == channels
        again = render_generation(store, done.id, root=root, formats=[fmt])
        assert again == made and store.list_renditions(done.id) == made
        assert sorted(p.name for p in root.iterdir()) == sorted([f"{done.id}.wav", made[0].storage_key])


@pytest.mark.parametrize("how", ["replay", "replay_all"])
def test_a_replayed_generation_keeps_no_rendition_of_its_lost_master(
    db_url: str, tmp_path: Path, how: str
) -> None:
    """A completed generation whose master went missing is marked failed by reconcile; replayed, its worker
    exports a new master. Its renditions' rows stayed, so render_generation returned (and list_renditions,
    show and delivery served) the rendition of the lost master as that of the new one."""
    root = tmp_path / "audio"
    with Store(db_url, migrate=True) as store:
        store.create_generation("lost then made again", model_name="m", duration_seconds=1)
        job = store.claim_next("w")
        assert job is not None
        first = export_generation(store, job, synthesize_music(1.0, 32_000, seed=1), root=root).generation
        (old,) = render_generation(store, first.id, root=root, formats=["mp3"])
        (root / str(first.file_path)).unlink()
        reconcile(store, root, repair=True)
        assert store.get_generation(first.id).status is Status.FAILED  # type: ignore[union-attr]
        if how == "replay":
            store.replay(first.id)
        else:
            assert store.replay_all() == [first.id]
        assert store.list_renditions(first.id) == []
        assert storage_stats(store).renditions == 0
        job = store.claim_next("w")
        assert job is not None and job.id == first.id
        quieter = np.asarray(synthesize_music(1.0, 32_000, seed=99))[:1]  # another clip: mono
        export_generation(store, job, np.repeat(quieter, 2, axis=0), root=root)
        (new,) = render_generation(store, first.id, root=root, formats=["mp3"])
        assert new.id != old.id and new.checksum != old.checksum
        assert new.storage_key == old.storage_key  # the same request's name: the old file was replaced
        assert hashlib.sha256((root / new.storage_key).read_bytes()).hexdigest() == new.checksum
        assert store.list_renditions(first.id) == [new] and storage_stats(store).renditions == 1


def test_two_generations_whose_masters_share_a_stem_each_get_their_rendition(
    db_url: str, tmp_path: Path
) -> None:
    """Masters completed by hand at track.wav and track.flac, one folder: a rendition's name was the master's
    stem and a digest of the request alone, the same for both, so the second generation's rendition was
    refused for good (InvalidInput: 'storage_key ... is already rendition ...'s, of the first generation)."""
    root = tmp_path / "audio"
    root.mkdir()
    with Store(db_url, migrate=True) as store:
        ids = []
        for seed, ext in enumerate(("wav", "flac")):
            store.create_generation(f"take {seed}", model_name="m", duration_seconds=1)
            job = store.claim_next("w")
            assert job is not None
            path = root / f"track.{ext}"
            sf.write(path, np.asarray(synthesize_music(1.0, 32_000, seed=seed)).T, 32_000)
            store.complete_generation(job.id, file_path=path.name, file_size_bytes=path.stat().st_size)
            ids.append(job.id)
        made = [render_generation(store, gid, root=root, formats=["mp3"])[0] for gid in ids]
        assert [r.generation_id for r in made] == ids and made[0].storage_key != made[1].storage_key
        for row in made:
            assert row.storage_key.startswith("track.streaming.") and row.storage_key.endswith(".mp3")
            assert hashlib.sha256((root / row.storage_key).read_bytes()).hexdigest() == row.checksum
        assert [render_generation(store, gid, root=root, formats=["mp3"])[0] for gid in ids] == made


def test_a_rendition_beside_a_master_named_after_its_generation_keeps_its_name(tmp_path: Path) -> None:
    """The export's masters (``<id>.<ext>``) keep the names their renditions always had."""
    settings = RenditionSpec("mp3").settings(32_000, 2).description
    gid = "01a245d6-baba-729a-87db-c06e38422039"
    master = Path(f"2026/12/05/{gid}.wav")
    assert (
        rendition_name(master, settings, get_profile("streaming"), gid)
        == rendition_name(master, settings, get_profile("streaming"))
        == f"{gid}.streaming.d7eaedd1.mp3"
    )


@pytest.mark.parametrize(
    ("options", "keyed", "status"),
    [
        (RenditionOptions(max_limiting_db=24.0), {"max_limiting_db": 24}, "target_missed"),
        (RenditionOptions(max_gain_db=12), {"max_gain_db": 12}, "too_quiet"),
    ],
)
def test_options_that_change_the_rendition_make_another_request(
    db_url: str, tmp_path: Path, options: RenditionOptions, keyed: dict[str, float], status: str
) -> None:
    """docs/renditions: a clip the limiter's 6 dB depth keeps short of the target comes closer with a larger
    max_limiting_db. render_generation keyed a request by the codec settings and profile only, so asked
    again with max_limiting_db=24 (or max_gain_db=12, under which this clip is too quiet to level) it
    returned the row made with the defaults without a word. Options that change what is made
    (max_limiting_db, max_gain_db) are part of the request when not the defaults; how hard to try
    (max_attempts, headroom_db, margin_db, dither_seed) is not."""
    root = tmp_path / "audio"
    with Store(db_url, migrate=True) as store:
        store.create_generation("quiet bed under loud clicks", model_name="m", duration_seconds=2)
        job = store.claim_next("w")
        assert job is not None
        clip = np.asarray(synthesize_music(2.0, 32_000, seed=3)) * 0.05
        clip[:, ::4000] = 0.9
        done = export_generation(store, job, clip, root=root).generation  # -30.9 LUFS: 6 dB cannot lift it
        (default,) = render_generation(store, done.id, root=root, formats=["flac"])
        (other,) = render_generation(store, done.id, root=root, formats=["flac"], options=options)
        assert other.id != default.id and other.storage_key != default.storage_key
        assert (default.loudness_status, other.loudness_status) == ("target_missed", status)
        assert other.settings == default.settings | keyed
        assert other.loudness_lufs is not None and default.loudness_lufs is not None
        if "max_limiting_db" in keyed:
            assert other.loudness_lufs > default.loudness_lufs + 10.0
        again = render_generation(store, done.id, root=root, formats=["flac"], options=options)
        assert again == [other] and len(store.list_renditions(done.id)) == 2
        tries = RenditionOptions(max_attempts=2, headroom_db=0.5, margin_db=0.5, dither_seed=3)
        assert render_generation(store, done.id, root=root, formats=["flac"], options=tries) == [default]


@pytest.mark.parametrize("fmt", ["mp3", "opus", "vorbis", "flac", "wav"])
def test_a_clip_too_short_to_resample_is_refused_for_what_it_is(fmt: str, tmp_path: Path) -> None:
    """5 samples at 384 kHz make no sample at 8 kHz: the empty resampled clip went on to the loudness meter
    (a RuntimeWarning, 'invalid value encountered in divide', an exception where warnings are errors) and
    was refused as 'audio is empty (shape (2, 0))', which the 5 samples given are not."""
    target = tmp_path / f"x{EXTENSIONS[fmt][0]}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InvalidAudio, match=r"5 samples at 384000 Hz .* 8000 Hz"):
            render_audio(
                np.full((2, 5), 0.5, np.float32), 384_000, target, RenditionSpec(fmt, sample_rate=8_000)
            )
    assert list(tmp_path.iterdir()) == []


def _streamed_flac(frames: int) -> bytes:
    """A FLAC whose STREAMINFO does not say how many frames it holds (total samples 0, "unknown": what a
    FLAC encoder writing to a pipe leaves, ffmpeg's or flac's own reading stdin)."""
    buffer = io.BytesIO()
    noise = np.random.default_rng(1).standard_normal((frames, 2)) * 0.1
    sf.write(buffer, noise, 48_000, format="FLAC")
    raw = bytearray(buffer.getvalue())
    assert raw[:4] == b"fLaC" and raw[4] & 0x7F == 0  # STREAMINFO first: its 64 bits at 18 end in the total
    field = int.from_bytes(raw[18:26], "big") & ~((1 << 36) - 1)
    raw[18:26] = field.to_bytes(8, "big")
    return bytes(raw)


def test_a_flac_master_that_does_not_say_its_length_is_invalid_audio(tmp_path: Path) -> None:
    """libsndfile gives such a file 2**63 - 1 frames and fails at its end: read_master, render_file and
    analyze_file raised numpy's bare ValueError ('array is too big') from an allocation of that many frames
    (a smaller declared size would have been a MemoryError), file_peaks 'Internal psf_fseek() failed'."""
    path = tmp_path / "streamed.flac"
    path.write_bytes(_streamed_flac(100_000))
    why = "does not say how many frames"
    with pytest.raises(InvalidAudio, match=why):
        read_master(path.read_bytes(), path.name)
    with pytest.raises(InvalidAudio, match=why):
        render_file(path, tmp_path / "out.mp3", RenditionSpec("mp3"))
    with pytest.raises(InvalidAudio, match=why):
        file_peaks(path)
    with pytest.raises(InvalidAudio, match=why):
        analyze_file(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["streamed.flac"]
