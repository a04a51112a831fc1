"""Export: formats, loudness handling, the limiter, atomic writes, layout and batches."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from numpy.typing import NDArray

from musicstore.audio import (
    ExportOptions,
    export_audio,
    export_batch,
    integrated_loudness,
    layout_path,
    synthesize_music,
    true_peak,
)
from musicstore.audio.truepeak import to_db
from musicstore.errors import InvalidInput, StorageError
from tests.reference_meter import reference_true_peak_db

RATE = 32_000


def read(path: Path) -> tuple[NDArray[np.float32], int]:
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), rate


def dynamic_signal(seconds: float = 20.0) -> NDArray[np.float32]:
    """A quiet noise bed with short loud clicks twice a second (peak-to-loudness ratio > 25 dB)."""
    rng = np.random.default_rng(11)
    audio = (rng.standard_normal((2, round(seconds * RATE))) * 0.02).astype(np.float32)
    click = np.hanning(6).astype(np.float32) * np.float32(0.98)
    for start in range(RATE // 4, audio.shape[1] - 6, RATE // 2):
        audio[:, start : start + 6] += click
    return audio


@pytest.fixture(scope="module")
def music() -> NDArray[np.float32]:
    return synthesize_music(6.0, RATE, seed=3)


@pytest.mark.parametrize(
    ("name", "subtype"),
    [
        ("a.wav", "PCM_16"),
        ("a.wav", "PCM_24"),
        ("a.wav", "PCM_32"),
        ("a.wav", "FLOAT"),
        ("a.flac", "PCM_16"),
        ("a.flac", "PCM_24"),
    ],
)
def test_formats_round_trip(name: str, subtype: str, music: NDArray[np.float32], tmp_path: Path) -> None:
    result = export_audio(music, RATE, tmp_path / name, ExportOptions(subtype=subtype))
    info = sf.info(result.path)
    assert (info.subtype, info.format) == (subtype, result.format)
    assert (info.frames, info.channels, info.samplerate) == (music.shape[1], 2, RATE)
    assert result.bytes == result.path.stat().st_size
    data, _ = read(result.path)
    assert integrated_loudness(data, RATE).lufs == pytest.approx(-16.0, abs=0.1)
    assert to_db(true_peak(data)) <= -1.0
    assert result.target_reached and result.status in ("normalized", "limited")
    assert result.loudness_after == pytest.approx(-16.0, abs=0.02)
    assert result.duration == pytest.approx(6.0)


def test_result_figures_match_the_file(music: NDArray[np.float32], tmp_path: Path) -> None:
    result = export_audio(music, RATE, tmp_path / "m.wav", ExportOptions(subtype="FLOAT"))
    data, _ = read(result.path)
    assert result.loudness_before == pytest.approx(integrated_loudness(music, RATE).lufs, abs=1e-9)
    assert result.loudness_after == pytest.approx(
        pyloudnorm.Meter(RATE).integrated_loudness(data.T.astype(np.float64)), abs=1e-3
    )
    assert result.true_peak_after == pytest.approx(reference_true_peak_db(data), abs=0.05)
    assert result.true_peak_after >= to_db(true_peak(data)) - 1e-3  # the Annex 2 meter reads no higher
    assert result.sample_peak == pytest.approx(to_db(float(np.abs(data).max())), abs=1e-4)
    assert result.elapsed >= sum(vars(result.timings).values()) > 0
    metadata = result.as_metadata()
    assert metadata["loudness_lufs"] == pytest.approx(-16.0, abs=0.01)
    assert metadata["target_reached"] is True


def test_pcm16_is_dithered_reproducibly(tmp_path: Path) -> None:
    quiet = (np.sin(np.arange(RATE) * 0.05) * 1e-4).astype(np.float32)[None, :]  # about 3 LSB
    options = ExportOptions(normalize=False, dither_seed=7)
    first = export_audio(quiet, RATE, tmp_path / "a.wav", options)
    second = export_audio(quiet, RATE, tmp_path / "b.wav", options)
    a = sf.read(first.path, dtype="int16")[0]
    assert np.array_equal(a, sf.read(second.path, dtype="int16")[0])
    plain = np.rint(quiet[0] * 32768).astype(np.int16)
    assert not np.array_equal(a, plain)  # dither changed some samples...
    assert np.abs(a.astype(int) - plain).max() <= 2  # ...by at most the TPDF span


def test_mono_stays_mono(tmp_path: Path) -> None:
    mono = synthesize_music(3.0, RATE, channels=1)
    result = export_audio(mono[0], RATE, tmp_path / "mono.flac")
    assert result.channels == 1 and sf.info(result.path).channels == 1
    assert result.loudness_after == pytest.approx(-16.0, abs=0.02)


def test_silence_is_written_unchanged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    silence = np.zeros((2, RATE), dtype=np.float32)
    result = export_audio(silence, RATE, tmp_path / "s.wav", ExportOptions(subtype="FLOAT"))
    assert result.status == "silent" and not result.target_reached and result.gain_db == 0.0
    assert result.loudness_before == float("-inf")
    assert not read(result.path)[0].any()
    assert result.as_metadata()["loudness_lufs"] is None


def test_near_silence_and_too_quiet_are_never_amplified(tmp_path: Path) -> None:
    noise = np.random.default_rng(1).standard_normal((2, RATE * 2)).astype(np.float32)
    for level, status in ((1e-4, "silent"), (1e-3, "too_quiet")):  # about -77 and -57 LUFS
        audio = noise * np.float32(level)
        result = export_audio(audio, RATE, tmp_path / f"{status}.wav", ExportOptions(subtype="FLOAT"))
        assert result.status == status and result.gain_db == 0.0
        np.testing.assert_array_equal(read(result.path)[0], audio)


def test_normalize_off_writes_as_is_and_reports_clipping(tmp_path: Path) -> None:
    audio = (np.sin(np.arange(RATE) * 0.01) * 1.5).astype(np.float32)[None, :]
    result = export_audio(audio, RATE, tmp_path / "hot.wav", ExportOptions(normalize=False, subtype="PCM_24"))
    over = int(np.count_nonzero(np.abs(audio) > 1.0))
    assert result.status == "as_is" and result.clipped_samples == over > 0
    data, _ = read(result.path)
    assert data.max() == pytest.approx(1.0, abs=1e-6) and data.min() >= -1.0  # clipped, not wrapped
    float_result = export_audio(
        audio, RATE, tmp_path / "hot_f.wav", ExportOptions(normalize=False, subtype="FLOAT")
    )
    np.testing.assert_array_equal(read(float_result.path)[0], audio)


def test_short_clip_is_flagged(tmp_path: Path) -> None:
    short = synthesize_music(0.3, RATE)
    result = export_audio(short, RATE, tmp_path / "short.wav")
    assert result.short_clip and result.target_reached
    assert integrated_loudness(read(result.path)[0], RATE).lufs == pytest.approx(-16.0, abs=0.1)


def test_dynamic_signal_reaches_target_under_ceiling(tmp_path: Path) -> None:
    audio = dynamic_signal()
    plr = to_db(true_peak(audio)) - integrated_loudness(audio, RATE).lufs
    assert plr >= 25.0
    # -16 LUFS at -1 dBTP is a PLR of 15 dB: this signal needs about 13 dB of peak reduction,
    # more than the default 6 dB cap (see the next test), so the cap is raised to 14 dB.
    options = ExportOptions(max_limiting_db=14.0, subtype="FLOAT")
    result = export_audio(audio, RATE, tmp_path / "dyn.wav", options)
    data, _ = read(result.path)
    assert result.status == "limited" and result.target_reached
    assert pyloudnorm.Meter(RATE).integrated_loudness(data.T.astype(np.float64)) == pytest.approx(
        -16.0, abs=0.1
    )
    assert to_db(true_peak(data)) <= -1.0
    assert 12.0 < result.limiter_max_reduction_db <= 14.0
    assert 0.0 < result.limiter_fraction < 0.05


def test_depth_cap_keeps_ceiling_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="musicstore.audio"):
        result = export_audio(dynamic_signal(), RATE, tmp_path / "cap.wav", ExportOptions(subtype="FLOAT"))
    assert result.status == "target_missed" and not result.target_reached
    assert result.loudness_after < -16.1
    assert result.limiter_max_reduction_db == pytest.approx(6.0, abs=0.05)
    assert to_db(true_peak(read(result.path)[0])) <= -1.0
    assert "misses the target" in caplog.text


def test_limiter_off_keeps_ceiling(music: NDArray[np.float32], tmp_path: Path) -> None:
    result = export_audio(music, RATE, tmp_path / "nolim.wav", ExportOptions(limiter=False, subtype="FLOAT"))
    assert result.limiter_max_reduction_db == 0.0
    assert to_db(true_peak(read(result.path)[0])) <= -1.0
    assert result.status == "target_missed"  # this music needs limiting to reach -16 LUFS


def test_loud_input_is_turned_down(music: NDArray[np.float32], tmp_path: Path) -> None:
    result = export_audio(
        music * np.float32(1.9), RATE, tmp_path / "loud.wav", ExportOptions(target_lufs=-23.0)
    )
    assert result.gain_db < 0 and result.target_reached
    assert result.loudness_after == pytest.approx(-23.0, abs=0.02)


def test_file_permissions_follow_umask(music: NDArray[np.float32], tmp_path: Path) -> None:
    result = export_audio(music, RATE, tmp_path / "perm.wav")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o666 & ~mask


def test_existing_file_is_replaced(music: NDArray[np.float32], tmp_path: Path) -> None:
    target = tmp_path / "again.wav"
    target.write_bytes(b"old")
    result = export_audio(music, RATE, target)
    assert result.bytes == target.stat().st_size > 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.wav"]


class _DiskFills(io.FileIO):
    """Below ``files._Sink`` (``class Full(files._Sink, _DiskFills)``): the OS write fails with ENOSPC once
    ``room`` bytes are written (or at once for a temp file whose name holds ``only``), as a full disk does."""

    room = 1 << 62
    only = ""

    def write(self, data: Any, /) -> int:
        view = memoryview(data).cast("B")
        if self.only not in str(self.name):
            return super().write(view) or 0
        if self.room <= 0:
            raise OSError(28, "No space left on device")
        done = super().write(view[: self.room]) or 0
        self.room -= done
        return done


def disk_fills(monkeypatch: pytest.MonkeyPatch, *, room: int = 0, only: str = "") -> None:
    """Writes of the audio files fail with ENOSPC after ``room`` bytes (files named with ``only``)."""
    from musicstore.audio import files

    class Full(files._Sink, _DiskFills):
        pass

    Full.room, Full.only = room, only
    monkeypatch.setattr(files, "_Sink", Full)


@pytest.mark.parametrize("where", ["write", "fsync", "replace", "chmod"])
def test_failed_write_leaves_nothing(
    where: str, music: NDArray[np.float32], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError(5, f"{where} failed")

    if where == "write":
        disk_fills(monkeypatch, room=20_000)  # part of the file is on disk when the disk fills up
    elif where == "fsync":  # the directory fsync runs after the rename: the file must go again
        real_fsync = os.fsync
        calls: list[int] = []

        def fsync(fd: int) -> None:
            calls.append(fd)
            if len(calls) == 2:
                raise OSError(5, "fsync failed")
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
    else:
        monkeypatch.setattr(os, where, broken)
    target = tmp_path / "d" / "x.wav"
    with pytest.raises(StorageError):
        export_audio(music, RATE, target)
    assert not target.exists()
    assert list((tmp_path / "d").iterdir()) == []


def test_unwritable_root_raises_storage_error(music: NDArray[np.float32], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(StorageError):
        export_audio(music, RATE, blocker / "x.wav")


def test_layout_path(tmp_path: Path) -> None:
    when = datetime(2024, 3, 9, 23, 30, tzinfo=timezone(timedelta(hours=-5)))  # 2024-03-10 in UTC
    path = layout_path(tmp_path, "0b5e6f0e-9a47-4b4e-8f7c-2b3c4d5e6f70", "flac", when)
    assert path == tmp_path / "2024" / "03" / "10" / "0b5e6f0e-9a47-4b4e-8f7c-2b3c4d5e6f70.flac"
    before = datetime.now(UTC)
    parent = layout_path(tmp_path, "abc").parent
    after = datetime.now(UTC)  # the same day, unless a UTC midnight passed meanwhile: then either is now's
    assert parent in {tmp_path / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}" for day in (before, after)}


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "..", ".hidden", "a b", "x" * 129, "a\x00"])
def test_layout_rejects_escaping_ids(bad: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        layout_path(tmp_path, bad)


def test_layout_rejects_naive_time_and_bad_extension(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        layout_path(tmp_path, "a", "wav", datetime(2024, 1, 1))
    with pytest.raises(InvalidInput):
        layout_path(tmp_path, "a", "mp3")


def test_batch_exports_every_item(tmp_path: Path) -> None:
    batch = np.stack([synthesize_music(4.0, RATE, seed=s) * np.float32(0.3 + 0.2 * s) for s in range(4)])
    paths = [layout_path(tmp_path, f"gen-{i}") for i in range(4)]
    results = export_batch(batch, RATE, paths)
    assert [r.path for r in results] == paths
    for result, item in zip(results, batch, strict=True):
        assert result.target_reached
        assert result.loudness_before == pytest.approx(integrated_loudness(item, RATE).lufs, abs=1e-9)
        assert sf.info(result.path).frames == batch.shape[2]


def test_batch_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = np.stack([synthesize_music(2.0, RATE, seed=s) for s in range(3)])
    disk_fills(monkeypatch, only=".b.wav.")
    with pytest.raises(StorageError) as caught:
        export_batch(batch, RATE, [tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "c.wav"])
    assert "No space left on device (ENOSPC)" in str(caught.value)
    assert "batch item 1" in "".join(caught.value.__notes__)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("error", [MemoryError("out of memory"), AssertionError("did not converge")])
def test_batch_is_all_or_nothing_whatever_the_error(
    error: Exception, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = np.stack([synthesize_music(2.0, RATE, seed=s) for s in range(3)])
    real = sf.SoundFile.write

    def write(self: sf.SoundFile, data: Any) -> None:  # libsndfile encoding a block of a.wav's frames
        if ".a.wav." in str(self.name):
            raise error
        real(self, data)

    monkeypatch.setattr(sf.SoundFile, "write", write)
    with pytest.raises(type(error)) as caught:
        export_batch(batch, RATE, [tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "c.wav"], workers=1)
    assert list(tmp_path.iterdir()) == []  # b.wav and c.wav, written after a.wav failed, are removed too
    assert "batch item 0" in "".join(caught.value.__notes__)


@pytest.mark.parametrize("error", [MemoryError("out of memory"), KeyboardInterrupt()])
def test_a_failure_while_quantizing_leaves_the_path_as_it_was(
    error: BaseException, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The frames are quantized a block at a time while the file is written: a failure there, with part of
    the file written, removes the temp file and leaves an earlier file at the path untouched."""
    from musicstore.audio import quantize

    real = quantize._Quantizer.into
    calls: list[int] = []

    def into(self: Any, start: int, target: Any) -> None:
        calls.append(start)
        if len(calls) == 3:
            raise error
        real(self, start, target)

    monkeypatch.setattr(quantize._Quantizer, "into", into)
    target = tmp_path / "x.wav"
    target.write_bytes(b"earlier")
    with pytest.raises(type(error)):
        export_audio(synthesize_music(5.0, RATE, seed=1), RATE, target)
    assert calls == [0, 65_536, 131_072]
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]
    assert target.read_bytes() == b"earlier"


@pytest.mark.parametrize(("name", "subtype"), [("a.wav", "PCM_16"), ("a.flac", "PCM_24"), ("a.wav", "FLOAT")])
def test_libsndfile_is_handed_a_block_of_frames_at_a_time(
    name: str, subtype: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No whole-clip frame array is made or handed over (libsndfile's write callback copies what it is
    given at once): the export quantizes and writes blocks of at most 65,536 frames."""
    real = sf.SoundFile.write
    blocks: list[tuple[int, ...]] = []

    def write(self: sf.SoundFile, data: Any) -> None:
        blocks.append(data.shape)
        real(self, data)

    monkeypatch.setattr(sf.SoundFile, "write", write)
    audio = synthesize_music(5.0, RATE, seed=2)  # 160,000 frames
    export_audio(audio, RATE, tmp_path / name, ExportOptions(subtype=subtype))
    assert blocks == [(65_536, 2), (65_536, 2), (28_928, 2)]


def test_files_are_those_written_before_the_block_writes(tmp_path: Path) -> None:
    """The same bytes as the export wrote with the whole frames in one call (sha256 of its files)."""
    rng = np.random.default_rng(3)
    clip = (rng.standard_normal((2, 150_000)) * 0.3).astype(np.float32)  # some values beyond full scale
    expected = {
        "PCM_16": "3444bf0238a00aafb7bbcaf69a4bcafac9342c49e9cfddde993ce568fcf74beb",
        "PCM_24": "d6e6070702cbe26b6bd8f0d16810837c50f675df927b5f2ab4c6063c62c36941",
        "PCM_32": "4975075929696ef1c24f40e26a4d6bd73ddbd7ab95422691d1842958dd9d84c9",
    }
    for subtype, digest in expected.items():
        path = tmp_path / f"{subtype}.wav"
        export_audio(clip, 16_000, path, ExportOptions(normalize=False, subtype=subtype, dither_seed=3))
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, subtype


@pytest.mark.parametrize(
    ("name", "subtype"), [("a.wav", "PCM_16"), ("a.flac", "PCM_16"), ("a.wav", "PCM_24")]
)
def test_with_or_without_frames_seen_the_file_is_the_same(name: str, subtype: str, tmp_path: Path) -> None:
    """``frames_seen`` gets the whole frames (made at once, written in blocks); without it they are quantized
    block by block as written: the same frames, the same file."""
    audio = synthesize_music(5.0, RATE, seed=4)
    options = ExportOptions(subtype=subtype, dither_seed=11)
    seen: list[NDArray[np.generic]] = []
    plain = export_audio(audio, RATE, tmp_path / f"plain.{name}", options)
    watched = export_audio(audio, RATE, tmp_path / f"seen.{name}", options, frames_seen=seen.append)
    assert (tmp_path / f"plain.{name}").read_bytes() == (tmp_path / f"seen.{name}").read_bytes()
    assert plain.bytes == watched.bytes
    data = sf.read(tmp_path / f"plain.{name}", dtype="int32" if subtype == "PCM_24" else "int16")[0]
    (frames,) = seen
    assert np.array_equal(data, frames)  # PCM_24: in an int32's top 24 bits, as libsndfile reads them


@pytest.mark.parametrize("stem", ["é" * 120, "x" * 250])
def test_longest_file_names_can_be_written(stem: str, music: NDArray[np.float32], tmp_path: Path) -> None:
    target = tmp_path / f"{stem}.wav"  # 244 and 254 bytes: valid names (the limit is 255)
    assert len(os.fsencode(target.name)) <= 255
    result = export_audio(music, RATE, target)
    assert result.bytes == target.stat().st_size
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_new_date_folders_are_flushed_into_their_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a crash, a committed row's file must not vanish with a YYYY/MM/DD folder made for it."""
    from musicstore.audio import files
    from musicstore.filestore.fsync import fsync as real

    flushed: list[Path] = []

    def recording(path: Path, *, directory: bool = False) -> None:
        if directory:
            flushed.append(Path(path))
        real(path, directory=directory)

    monkeypatch.setattr(files, "fsync", recording)
    root = tmp_path / "audio"
    root.mkdir()
    first = layout_path(root, "first", "wav", when=datetime(2026, 11, 29, tzinfo=UTC))
    export_audio(synthesize_music(1.0, RATE, seed=1), RATE, first)
    day = first.parent
    assert flushed == [root, day.parent.parent, day.parent, day]  # each new folder's parent, then the rename
    flushed.clear()
    export_audio(synthesize_music(1.0, RATE, seed=2), RATE, day / "second.wav")
    assert flushed == [day]  # nothing new to create: only the rename is flushed


def test_status_is_a_deprecated_alias_of_loudness_status() -> None:
    """The export's ``Status`` clashed with ``musicstore.models.Status``; the old name still imports."""
    from musicstore.audio import LoudnessStatus, export

    with pytest.warns(DeprecationWarning, match="LoudnessStatus"):
        assert export.Status is LoudnessStatus
    with pytest.raises(AttributeError):
        _ = export.NoSuchName


@pytest.mark.parametrize(
    ("seed", "drums", "target"),
    [
        (2, 1.0, -16.0),
        (3, 3.0, -12.0),
        (2, 1.0, -9.0),
        (5, 3.0, -6.0),
    ],  # the last three: beyond the shallow map
)
def test_the_shallow_first_map_changes_nothing(
    seed: int, drums: float, target: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limiter first maps detector values only down to what gains 1 dB above the target's can lift (and
    maps deeper when the gain it needs lies beyond): the files and figures are those of a map down to the
    depth cap's floor at once."""
    from musicstore.audio import limiter

    audio = synthesize_music(4.0, 44_100, seed=seed, drums=drums)
    options = ExportOptions(target_lufs=target, dither_seed=1)
    results = []
    for shallow_db, name in ((limiter.SHALLOW_DB, "shallow.wav"), (100.0, "deep.wav")):
        monkeypatch.setattr(limiter, "SHALLOW_DB", shallow_db)
        results.append(export_audio(audio, 44_100, tmp_path / name, options))
    shallow, deep = results
    assert shallow.status in ("limited", "target_missed")
    assert shallow.status == deep.status
    for figure in ("loudness_after", "true_peak_after", "gain_db", "limiter_max_reduction_db"):
        assert getattr(shallow, figure) == pytest.approx(getattr(deep, figure), abs=1e-6)  # float rounding
    assert (tmp_path / "shallow.wav").read_bytes() == (tmp_path / "deep.wav").read_bytes()
