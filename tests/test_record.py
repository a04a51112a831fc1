"""Recording: a claimed generation's audio exported under the root and the row completed, on both backends."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from musicstore import (
    Cancelled,
    Generation,
    InvalidAudio,
    InvalidInput,
    InvalidTransition,
    LeaseLost,
    NotFound,
    Status,
    StorageError,
    Store,
)
from musicstore.audio import ExportOptions, layout_path, synthesize_music
from musicstore.recording import Recorded, export_batch_generations, export_generation
from tests.conftest import FakeClock, new_job

RATE = 16_000
OPTIONS = ExportOptions(dither_seed=0)


def music(seconds: float = 1.5, *, channels: int = 2, seed: int = 0) -> np.ndarray:
    return synthesize_music(seconds, RATE, channels=channels, seed=seed)


def claimed(store: Store, worker: str = "gpu-0", **kwargs: Any) -> Generation:
    job = new_job(store, duration_seconds=1.5, sample_rate=RATE, **kwargs)
    got = store.claim_next(worker, lease_seconds=60)
    assert got is not None and got.id == job.id
    return got


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The output root (the SQLite database lives beside it in tmp_path)."""
    return tmp_path / "audio"


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def with_peaks(*masters: Path) -> list[Path]:
    """The masters and the waveform peaks an export puts beside each by default (the audiowaveform file and
    the normalised one), sorted."""
    peaks = [m.with_name(f"{m.stem}.peaks.256.8{kind}.json") for m in masters for kind in ("", ".normalized")]
    return sorted([*masters, *peaks])


def audio_under(root: Path) -> list[Path]:
    return [p for p in files_under(root) if not p.name.endswith(".json")]


def test_happy_path_writes_layout_path_and_completes(store: Store, root: Path, clock: FakeClock) -> None:
    job = claimed(store, metadata={"bpm": 96})
    clock.advance(2.5)
    recorded = export_generation(store, job, music(), root=root, options=OPTIONS)

    final = layout_path(root, job.id, "wav", when=job.created_at)
    assert isinstance(recorded, Recorded)
    assert recorded.result.path == final and final.is_file()
    assert files_under(root) == with_peaks(final)  # the staging file was renamed, nothing else left
    row = store.get_generation(job.id)
    assert row is not None and row == recorded.generation
    assert row.status is Status.COMPLETED
    assert row.file_path == final.relative_to(root).as_posix()
    assert row.file_path == f"{job.created_at:%Y/%m/%d}/{job.id}.wav"
    assert row.file_size_bytes == os.path.getsize(final) == recorded.result.bytes
    assert row.generation_time_seconds == pytest.approx(2.5)  # since the claim, by the store's clock
    meta = row.metadata
    assert meta["bpm"] == 96  # the request's metadata is kept
    assert meta["loudness_lufs"] == pytest.approx(-16.0, abs=0.1)
    assert meta["loudness_before_lufs"] < -16.5 and meta["true_peak_dbtp"] <= -1.0
    assert meta["target_reached"] is True and meta["sample_rate"] == RATE and meta["channels"] == 2
    info = sf.info(str(final))
    assert (info.samplerate, info.channels, info.frames) == (RATE, 2, meta["frames"])


def test_explicit_time_metadata_and_flac(store: Store, root: Path) -> None:
    job = claimed(store)
    recorded = export_generation(
        store, job, music(), root=root, ext="flac", generation_time_seconds=7.25,
        metadata={"seed": 3, "loudness_status": "caller wins"},
    )  # fmt: skip
    row = recorded.generation
    assert row.generation_time_seconds == 7.25 and row.file_path is not None
    assert row.file_path.endswith(".flac") and sf.info(str(root / row.file_path)).format == "FLAC"
    assert row.metadata["seed"] == 3 and row.metadata["loudness_status"] == "caller wins"


def test_mono_generation_takes_1d_audio(store: Store, root: Path) -> None:
    job = claimed(store, channels=1)
    recorded = export_generation(store, job, music(channels=1)[0], root=root)
    assert recorded.generation.metadata["channels"] == 1 and recorded.result.channels == 1


def nan_audio() -> np.ndarray:
    audio = music()
    audio[1, 100] = np.nan
    return audio


@pytest.mark.parametrize(
    ("on_error", "status"), [("fail", Status.FAILED), ("retry", Status.PENDING), ("raise", Status.PROCESSING)]
)
def test_export_failure_fails_requeues_or_leaves_the_row(
    store: Store, root: Path, on_error: str, status: Status
) -> None:
    job = claimed(store)
    with pytest.raises(InvalidAudio, match="non-finite") as raised:
        export_generation(store, job, nan_audio(), root=root, on_error=on_error)  # type: ignore[arg-type]
    assert any(f"is now {status}" in n or "left processing" in n for n in raised.value.__notes__)
    row = store.get_generation(job.id)
    assert row is not None and row.status is status
    if on_error != "raise":
        assert row.error_message is not None and "non-finite" in row.error_message
    assert files_under(root) == []


def test_retry_stops_at_max_attempts(store: Store, root: Path) -> None:
    job = claimed(store)
    with pytest.raises(InvalidAudio):
        export_generation(store, job, nan_audio(), root=root, on_error="retry", max_attempts=1)
    row = store.get_generation(job.id)
    assert row is not None and row.status is Status.FAILED


def test_channel_mismatch_is_an_export_failure(store: Store, root: Path) -> None:
    job = claimed(store, channels=2)
    with pytest.raises(InvalidAudio, match="requested 2"):
        export_generation(store, job, music(channels=1), root=root)
    row = store.get_generation(job.id)
    assert row is not None and row.status is Status.FAILED and "1 channel" in (row.error_message or "")
    assert files_under(root) == []


def test_lost_lease_removes_the_file_and_leaves_the_row(store: Store, root: Path, clock: FakeClock) -> None:
    stale = claimed(store, "gpu-0")
    clock.advance(61)
    assert store.requeue_expired().requeued == [stale.id]
    taken = store.claim_next("gpu-1")
    assert taken is not None and taken.id == stale.id
    with pytest.raises(LeaseLost) as raised:
        export_generation(store, stale, music(), root=root)
    assert any("file was removed" in n for n in raised.value.__notes__)
    assert files_under(root) == []
    assert store.get_generation(stale.id) == taken  # unchanged: still gpu-1's


def test_lost_lease_never_touches_the_winners_file(store: Store, root: Path, clock: FakeClock) -> None:
    stale = claimed(store, "gpu-0")
    clock.advance(61)
    store.requeue_expired()
    taken = store.claim_next("gpu-1")
    assert taken is not None
    winner = export_generation(store, taken, music(seed=1), root=root)
    kept = winner.result.path.read_bytes()
    with pytest.raises(LeaseLost):  # the same final path: the loser's file is staged and dropped
        export_generation(store, stale, music(seed=2), root=root)
    assert files_under(root) == with_peaks(winner.result.path) and winner.result.path.read_bytes() == kept
    assert store.get_generation(stale.id) == winner.generation


def test_row_deleted_meanwhile_removes_the_file(store: Store, root: Path) -> None:
    job = claimed(store)
    store.cancel(job.id)
    store.delete_generation(job.id)
    with pytest.raises(NotFound):
        export_generation(store, job, music(), root=root, worker_id=None)
    assert files_under(root) == []


def test_cancelled_meanwhile_without_worker_check(store: Store, root: Path) -> None:
    job = claimed(store)
    store.cancel(job.id, "user gave up")
    with pytest.raises(LeaseLost):  # the claim's worker id is checked by default
        export_generation(store, job, music(), root=root)
    assert files_under(root) == []
    row = store.get_generation(job.id)
    assert row is not None and row.status is Status.CANCELLED


@pytest.mark.parametrize(("on_error", "status"), [("raise", Status.PROCESSING), ("fail", Status.FAILED)])
def test_failed_final_rename_rolls_the_completion_back_then_follows_on_error(
    store: Store, root: Path, monkeypatch: pytest.MonkeyPatch, on_error: str, status: Status
) -> None:
    """The file could not take its place: the completion is rolled back, then the row goes as ``on_error``
    says (the same as a failed put to an object store: tests/test_record_s3.py)."""
    job = claimed(store)
    real_replace = os.replace

    def replace_but_not_onto_final(src: Any, dst: Any) -> None:
        if not Path(dst).name.startswith("."):  # the audio writer's own renames go to the hidden staging file
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_but_not_onto_final)
    with pytest.raises(StorageError, match="No space left"):
        export_generation(store, job, music(), root=root, on_error=on_error)  # type: ignore[arg-type]
    assert files_under(root) == []
    row = store.get_generation(job.id)
    if status is Status.PROCESSING:
        assert row is not None and row == job  # the completion was rolled back with the transaction
    else:
        assert row is not None and row.status is status and row.file_path is None
        assert row.error_message is not None and "No space left" in row.error_message


def test_caller_mistakes_raise_before_anything(store: Store, root: Path) -> None:
    job = claimed(store)
    pending = new_job(store, sample_rate=RATE)
    with pytest.raises(InvalidTransition, match="claim it"):
        export_generation(store, pending, music(), root=root)
    with pytest.raises(InvalidInput):
        export_generation(store, job, music(), root=root, ext="mp3")
    with pytest.raises(InvalidInput):
        export_generation(store, job, music(), root=root, on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        export_generation(store, job, music(), root=root, metadata={"x": float("nan")})
    assert files_under(root) == []
    row = store.get_generation(job.id)
    assert row is not None and row.status is Status.PROCESSING and row.error_message is None


@pytest.mark.parametrize("subtype", ["FLOAT", "PCM_32"])
def test_subtype_the_format_cannot_hold_is_a_caller_mistake(store: Store, root: Path, subtype: str) -> None:
    # a worker configured with FLAC and a WAV-only subtype must not fail every generation it claims
    job = claimed(store)
    with pytest.raises(InvalidInput, match="FLAC"):
        export_generation(store, job, music(), root=root, ext="flac", options=ExportOptions(subtype=subtype))
    assert files_under(root) == []
    row = store.get_generation(job.id)
    assert row is not None and row.status is Status.PROCESSING and row.error_message is None
    batch = [job, claimed(store)]
    with pytest.raises(InvalidInput, match="FLAC"):  # a batch raises at once instead of failing each item
        export_batch_generations(
            store,
            batch,
            np.stack([music(), music()]),
            root=root,
            ext="flac",
            options=ExportOptions(subtype=subtype),
        )
    assert files_under(root) == []
    assert all(store.get_generation(g.id).status is Status.PROCESSING for g in batch)  # type: ignore[union-attr]


def test_nothing_escapes_the_root(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = Path("out") / "audio"  # a relative root, as the demo's data/audio
    job = claimed(store)
    recorded = export_generation(store, job, music(), root=str(root))
    assert recorded.result.path.resolve().is_relative_to(root.resolve())
    path = recorded.generation.file_path
    assert path is not None and not Path(path).is_absolute() and ".." not in Path(path).parts
    assert (root / path).resolve() == recorded.result.path.resolve()
    # an id that would climb out of the root (or be absolute) is refused before anything is written
    evil = claimed(store)
    for bad_id in ("../../etc/passwd", "/tmp/x", "a/../../b", ".."):
        with pytest.raises(InvalidInput):
            export_generation(store, replace(evil, id=bad_id), music(), root=root)
    outside = [
        p for p in tmp_path.rglob("*") if p.is_file() and not p.resolve().is_relative_to(root.resolve())
    ]
    assert [p.name for p in outside if ".db" not in p.name] == []  # only the SQLite database
    assert files_under(root) == with_peaks(recorded.result.path)
    row = store.get_generation(evil.id)
    assert row is not None and row.status is Status.PROCESSING


def test_batch_items_complete_or_fail_independently(store: Store, root: Path) -> None:
    jobs = [new_job(store, f"song {i}", duration_seconds=1.5, sample_rate=RATE) for i in range(4)]
    batch = store.claim_batch("gpu-0", 4, lease_seconds=60)
    assert sorted(g.id for g in batch) == sorted(j.id for j in jobs)  # same clock tick: ordered by id
    audio = np.stack([music(seed=i) for i in range(4)])
    audio[2, 0, 50] = np.inf  # item 2 is bad
    store.cancel(batch[3].id)  # item 3 is taken away before it is recorded

    outcomes = export_batch_generations(
        store, batch, audio, root=root, on_error="retry", metadata=[{"n": i} for i in range(4)]
    )
    assert [type(o) for o in outcomes] == [Recorded, Recorded, InvalidAudio, Cancelled]  # a LeaseLost
    done = [o for o in outcomes if isinstance(o, Recorded)]
    assert [r.generation.metadata["n"] for r in done] == [0, 1]
    assert files_under(root) == with_peaks(*(r.result.path for r in done))
    for r in done:
        row = store.get_generation(r.generation.id)
        assert row is not None and row.status is Status.COMPLETED
        assert row.file_size_bytes == os.path.getsize(r.result.path)
        assert row.metadata["loudness_lufs"] == pytest.approx(-16.0, abs=0.1)
    statuses = [store.get_generation(g.id).status for g in batch[2:]]  # type: ignore[union-attr]
    assert statuses == [Status.PENDING, Status.CANCELLED]


def test_clean_batch_and_its_shape_checks(store: Store, root: Path) -> None:
    for i in range(3):
        new_job(store, f"song {i}", duration_seconds=1.5, sample_rate=RATE)
    batch = store.claim_batch("gpu-0", 3)
    audio = np.stack([music(seed=i) for i in range(3)])
    with pytest.raises(InvalidInput, match=r"\(3, C, S\)"):
        export_batch_generations(store, batch, audio[:2], root=root)
    with pytest.raises(InvalidInput):
        export_batch_generations(store, [batch[0], batch[0], batch[1]], audio, root=root)
    assert files_under(root) == []
    outcomes = export_batch_generations(store, batch, audio, root=root, workers=2)
    assert all(isinstance(o, Recorded) for o in outcomes)
    assert store.get_database_stats().by_status[Status.COMPLETED] == 3
    assert files_under(root) == with_peaks(*audio_under(root)) and len(audio_under(root)) == 3


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_torch_tensors_single_and_batch(store: Store, root: Path, device: str) -> None:
    torch = pytest.importorskip("torch")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    job = claimed(store)
    tensor = torch.from_numpy(music()).to(device=device, dtype=torch.float16)
    recorded = export_generation(store, job, tensor, root=root)
    assert recorded.generation.status is Status.COMPLETED and recorded.result.channels == 2
    for i in range(2):
        new_job(store, f"batch {i}", duration_seconds=1.5, sample_rate=RATE)
    batch = store.claim_batch("gpu-0", 2)
    audio = torch.from_numpy(np.stack([music(seed=i) for i in range(2)])).to(device=device)
    outcomes = export_batch_generations(store, batch, audio.to(torch.bfloat16), root=root)
    assert all(isinstance(o, Recorded) for o in outcomes) and len(audio_under(root)) == 3
    assert files_under(root) == with_peaks(*audio_under(root))


def test_demo_exports_real_audio(sqlite_url: str, root: Path) -> None:
    from musicstore.cli.demo import run_demo

    lines: list[str] = []
    stats = run_demo(sqlite_url, count=3, output_root=root, seconds=2.0, echo=lines.append)
    assert stats.by_status[Status.COMPLETED] == 3
    files = audio_under(root)
    assert files_under(root) == with_peaks(*files)
    assert len(files) == 3 and stats.total_file_bytes == sum(p.stat().st_size for p in files)
    header = next(line for line in lines if line.startswith("file"))
    assert all(word in header for word in ("LUFS in", "LUFS out", "dBTP", "gain dB", "limit dB"))
    table = [line for line in lines if line.endswith(".wav") or ".wav " in line]
    assert len(table) == 3 and all("-16.00" in line for line in table)


def test_cli_demo_output_root(sqlite_url: str, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from musicstore.cli import main

    assert main(["demo", "-d", sqlite_url, "--output-root", str(root), "--count", "1"]) == 0
    out = capsys.readouterr().out
    assert "completed" in out and "LUFS out" in out
    assert len(audio_under(root)) == 1 and files_under(root) == with_peaks(*audio_under(root))


def test_batches_on_short_lived_threads_do_not_leak_connections(sqlite_url: str, tmp_path: Path) -> None:
    """Each batch runs on a fresh thread pool; the connections of its finished threads get closed."""

    database = sqlite_url.removeprefix("sqlite:///")

    def open_fds() -> int:  # descriptors on this database's files (-wal, -shm too)
        fds = [os.path.join("/proc/self/fd", fd) for fd in os.listdir("/proc/self/fd")]
        return sum(1 for fd in fds if os.path.exists(fd) and os.readlink(fd).startswith(database))

    with Store(sqlite_url) as store:

        def one_batch() -> None:
            jobs = [claimed(store) for _ in range(4)]
            audio = np.zeros((4, 2, RATE // 10), dtype=np.float32)
            outcomes = export_batch_generations(
                store, jobs, audio, root=tmp_path / "audio", options=OPTIONS, workers=4
            )
            assert not [o for o in outcomes if isinstance(o, Exception)]

        one_batch()
        before = open_fds()
        for _ in range(10):
            one_batch()
        # 40 threads came and went (a leak keeps ~80 more descriptors); SQLite may hold a few closed ones
        # for reuse while other connections hold locks on the file
        assert before > 0 and open_fds() <= before + 8
