"""Session 24's lead fixes, each with the test that failed before it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from numpy.typing import NDArray

from musicstore import Status, Store
from musicstore.aio import AsyncStore
from musicstore.audio import ExportOptions, export_audio
from musicstore.audio.loudness import integrated_loudness
from musicstore.errors import Cancelled
from musicstore.web import templating
from musicstore.worker import AsyncJob, AsyncWorker, Job, Worker, WorkerReport
from tests.conftest import FakeClock, new_job
from tests.reference_meter import reference_true_peak_db


def test_a_handler_that_catches_its_jobs_cancel_and_returns_is_counted_cancelled(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """It was counted done, with a WARNING that the job 'stays processing until its lease expires': it is
    cancelled."""
    job = new_job(store)

    def handler(job: Job) -> None:
        store.cancel(job.id, "the user pressed stop")
        try:
            job.heartbeat()
        except Cancelled:
            return  # dropping the work, as asked

    with caplog.at_level(logging.WARNING, logger="musicstore.worker"):
        assert Worker(store, "gpu-0", handler).run(max_jobs=1) == WorkerReport(cancelled=1)
    assert "stays processing" not in caplog.text
    read = store.get_generation(job.id)
    assert read is not None and read.status is Status.CANCELLED


def test_an_async_handler_that_catches_its_jobs_cancel_and_returns_is_counted_cancelled(
    db_url: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with Store(db_url, clock=clock) as sync:
        job = new_job(sync)

    async def main() -> WorkerReport:
        async with AsyncStore.open(db_url, clock=clock) as store:

            async def handler(job: AsyncJob) -> None:
                await store.cancel(job.id)
                try:
                    await job.progress(0.5, "decoding")
                except Cancelled:
                    return

            return await AsyncWorker(store, "gpu-0", handler).run(max_jobs=1)

    with caplog.at_level(logging.WARNING, logger="musicstore.worker"):
        assert asyncio.run(main()) == WorkerReport(cancelled=1)
    assert "stays processing" not in caplog.text
    with Store(db_url, clock=clock) as sync:
        read = sync.get_generation(job.id)
        assert read is not None and read.status is Status.CANCELLED


def test_a_handler_that_returns_unfinished_is_still_warned_of_and_counted_done(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """The contract beside the fix: no Cancelled seen, the job left to its lease, as before."""
    new_job(store)
    with caplog.at_level(logging.WARNING, logger="musicstore.worker"):
        assert Worker(store, "gpu-0", lambda job: None).run(max_jobs=1) == WorkerReport(done=1)
    assert "stays processing" in caplog.text


RATE = 32_000


def _hot_but_quiet(kind: str) -> NDArray[np.float32]:
    """Clips BS.1770 reads as silent or too quiet whose true peak is over the ceiling: a slow ramp to
    nearly full scale (DC to K-weighting: silent, +1.06 dBTP written before), 3 Hz infrasound beyond full
    scale, spikes beyond full scale in a quiet bed."""
    n = RATE * 2
    if kind == "ramp":
        clip = np.linspace(0, 0.99, n, dtype=np.float32)
    elif kind == "infrasound":
        clip = (np.sin(2 * np.pi * 3 * np.arange(n) / RATE) * 1.2).astype(np.float32)
    else:
        clip = (np.sin(np.arange(n) * 0.05) * 0.3).astype(np.float32)
        clip[np.random.default_rng(0).integers(n, size=5)] = np.float32(3.0)
    return clip.reshape(1, n)


@pytest.mark.parametrize(
    ("kind", "options", "status"),
    [
        ("ramp", {}, "silent"),
        ("infrasound", {}, "too_quiet"),
        ("spikes", {"target_lufs": -1.0, "max_gain_db": 0.0}, "too_quiet"),
    ],
)
@pytest.mark.parametrize(("fmt", "subtype"), [("wav", "PCM_16"), ("wav", "FLOAT"), ("flac", "PCM_24")])
def test_a_silent_or_too_quiet_clip_over_the_ceiling_is_turned_down_never_up(
    tmp_path: Path, *, kind: str, options: dict[str, float], status: str, fmt: str, subtype: str
) -> None:
    """Issue 10's property, for any input: the file's true peak by an ideal reconstruction is within the
    ceiling + 0.2 dB. A clip written unchanged for its status kept its peak (a ramp read +1.06 dBTP, spikes
    were clipped at full scale); now a plain gain under 0 dB puts it at the ceiling, as renditions do."""
    audio = _hot_but_quiet(kind)
    opts = ExportOptions(subtype=subtype, **options)  # type: ignore[arg-type]
    result = export_audio(audio, RATE, tmp_path / f"c.{fmt}", opts)
    assert result.status == status and result.clipped_samples == 0
    assert result.gain_db < 0.0  # turned down, never up
    data, _ = sf.read(result.path, dtype="float64", always_2d=True)
    measured = reference_true_peak_db(data.T)
    assert measured <= opts.ceiling_dbtp + 0.2
    assert result.true_peak_after == pytest.approx(measured, abs=0.1)
    written = integrated_loudness(data.T.astype(np.float32), RATE).lufs
    assert result.loudness_after == pytest.approx(written, abs=0.05)  # -inf for the ramp: gated
    big = np.abs(audio) > 0.1  # a plain gain: every sample scaled alike (dither aside)
    assert np.allclose(data.T[big] / audio[big], 10 ** (result.gain_db / 20), atol=1e-3)


def test_a_silent_clip_under_the_ceiling_is_still_written_unchanged(tmp_path: Path) -> None:
    audio = np.linspace(0, 0.5, RATE, dtype=np.float32)[None, :]
    result = export_audio(audio, RATE, tmp_path / "s.wav", ExportOptions(subtype="FLOAT"))
    assert result.status == "silent" and result.gain_db == 0.0
    np.testing.assert_array_equal(sf.read(result.path, dtype="float32", always_2d=True)[0].T, audio)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "–"), (0.0, "0.0 s"), (59.94, "59.9 s"), (59.96, "1.0 min"), (90.0, "1.5 min"),
     (3599.9, "1.0 h"), (86_399.0, "1.0 d"), (-59.96, "-1.0 min"), (3.0 * 86_400, "3.0 d")],
)  # fmt: skip
def test_the_dashboards_ages_name_the_unit_they_fill_as_shown(seconds: float | None, shown: str) -> None:
    """59.96 s read "60.0 s", 3599.9 s "60.0 min" (the web helper's report, session 24)."""
    assert templating._age(seconds) == shown


@pytest.mark.parametrize(
    ("size", "shown"),
    [(None, ""), (0, "0 B"), (999, "999 B"), (1_000, "1.0 kB"), (999_949, "999.9 kB"), (999_960, "1.0 MB"),
     (5 * 10**12, "5.0 TB"), (5 * 10**15, "5.0 PB"), (2 * 10**18, "2000.0 PB")],
)  # fmt: skip
def test_the_dashboards_sizes_go_past_gigabytes(size: int | None, shown: str) -> None:
    """5 TB read "5000.0 GB" (its TB branch could not be reached) and 999,960 bytes "1000.0 kB"."""
    assert templating._size(size) == shown


def test_a_folder_whose_listing_fails_part_way_is_an_error_of_reconciles_report_not_a_crash(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading a folder's entries can fail after it opened (EIO, a network file system): the OSError
    escaped reconcile bare (the fuzz helper's `reconcile(store, "/")`). Now the folder is reported in
    ``errors``, as one that cannot be opened is, and the rest of the walk goes on."""
    import errno
    import os

    from musicstore.maintenance.reconcile import reconcile

    root = tmp_path / "audio"
    (root / "bad").mkdir(parents=True)
    (root / "good").mkdir()
    for folder in ("bad", "good"):
        for i in range(3):
            (root / folder / f"x{i}.txt").write_bytes(b"x")
    real = os.scandir

    class Failing:
        def __init__(self, fd: int | str) -> None:
            self.inner, self.seen = real(fd), 0
            named = os.readlink(f"/proc/self/fd/{fd}") if isinstance(fd, int) else fd
            self.bad = os.path.basename(named) == "bad"

        def __enter__(self) -> Failing:
            return self

        def __exit__(self, *exc: object) -> None:
            self.inner.close()

        def __iter__(self) -> Failing:
            return self

        def __next__(self) -> os.DirEntry[str]:
            if self.bad and self.seen == 1:
                raise OSError(errno.EIO, "Input/output error")
            self.seen += 1
            return next(self.inner)

    monkeypatch.setattr(os, "scandir", Failing)  # the os module scan reads it from
    report = reconcile(store, root)
    assert any("cannot list all of" in e and "bad" in e and "Input/output" in e for e in report.errors)
    assert report.files_scanned >= 3  # the good folder's three files were walked


def test_the_overviews_claims_in_flight_card_says_when_it_is_a_lower_bound(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The card counted the processing rows read (at most 10,000) with no sign when more were in flight, where
    /api/overview's processing_truncated and /workers say so (the web helper's report, session 24)."""
    from starlette.testclient import TestClient

    from musicstore.metrics import reads
    from musicstore.web import create_app

    monkeypatch.setattr(reads, "PROCESSING_LIMIT", 2)  # the read's 10,000, made small
    with Store(db_url) as store:
        for i in range(3):
            new_job(store, f"lofi {i}")
        with TestClient(create_app(store, root=tmp_path)) as client:
            for claimed in (1, 2, 3):
                store.claim_next(f"gpu-{claimed}", lease_seconds=60)
                page = client.get("/").text
                assert ('id="claims-truncated"' in page) is (claimed > 2)
