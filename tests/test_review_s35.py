"""Regressions found by session 35's hunt of the public callables' arguments (docs/usage.md, "What arguments
accept": a wrong type or an out-of-range value is a typed error, never a bare TypeError nor a quiet answer).
One test per finding; each failed before its fix."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from musicstore import Store
from musicstore.audio import (
    RenditionOptions,
    RenditionSpec,
    WaveformPeaks,
    compute_peaks,
    get_profile,
    render_audio,
    synthesize_music,
)
from musicstore.errors import InvalidInput
from musicstore.filestore import AsyncFileStore, LocalFileStore, S3FileStore, Upload
from musicstore.metrics import GENERATION_BUCKETS, Distribution, priority_class
from musicstore.rendering import peaks_name, rendition_name
from musicstore.testing import FakeClock


@pytest.mark.parametrize("field", ["margin_db", "max_limiting_db", "max_gain_db"])
def test_rendition_options_take_none_only_for_the_headroom(field: str, tmp_path: Path) -> None:
    """None skipped the check and ended in a bare TypeError inside the encode (``float + None``)."""
    with pytest.raises(InvalidInput, match=field):
        RenditionOptions(**{field: None})  # type: ignore[arg-type]
    assert RenditionOptions(headroom_db=None).headroom_db is None  # the format's default
    options = RenditionOptions(max_attempts=np.int64(3))  # type: ignore[arg-type]
    assert type(options.max_attempts) is int and options.max_attempts == 3  # a plain int, as the others
    clip = synthesize_music(1.0, 8000, seed=1)
    render_audio(clip, 8000, tmp_path / "a.flac", RenditionSpec("flac"), options=options)
    assert (tmp_path / "a.flac").is_file()


def _peaks() -> WaveformPeaks:
    return compute_peaks(synthesize_music(1.0, 8000, seed=1), 8000, 256)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bits", -1), ("bits", "x"), ("bits", True), ("bits", 10**30),
        ("sample_rate", float("nan")), ("sample_rate", 0), ("sample_rate", "8000"),
        ("samples_per_pixel", -5), ("samples_per_pixel", 1.5),
        ("frames", "x"), ("frames", -1),
        ("extremes", None), ("extremes", [[[0.0, 0.1]]]), ("extremes", np.zeros((4, 1, 3), np.float32)),
        ("extremes", np.zeros((4, 1, 2), np.int16)),
    ],
)  # fmt: skip
def test_waveform_peaks_check_their_fields(field: str, value: Any) -> None:
    """A peaks object made by hand took anything: its methods then raised a bare ValueError (a negative
    shift), TypeError or AttributeError, or wrote NaN into the JSON."""
    good = _peaks()
    fields = {n: getattr(good, n) for n in ("sample_rate", "samples_per_pixel", "bits", "frames", "extremes")}
    with pytest.raises(InvalidInput, match=field):
        WaveformPeaks(**{**fields, field: value})


def test_waveform_peaks_keep_numpy_integers_as_ints(tmp_path: Path) -> None:
    """``np.int64`` fields were kept, and ``to_json`` raised a bare TypeError (not JSON serializable)."""
    good = _peaks()
    made = WaveformPeaks(
        np.int64(8000),  # type: ignore[arg-type]
        np.int64(256),  # type: ignore[arg-type]
        np.int64(8),  # type: ignore[arg-type]
        np.int64(good.frames),  # type: ignore[arg-type]
        good.extremes,
    )
    assert made.to_json() == good.to_json()
    assert all(type(getattr(made, n)) is int for n in ("sample_rate", "samples_per_pixel", "bits", "frames"))
    with pytest.raises(InvalidInput, match="files must be a FileStore"):
        good.put(str(tmp_path), "a.peaks.json")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("now", [datetime(2026, 1, 1), None, "2026-01-01", 5])
def test_lease_expired_takes_an_aware_moment(now: Any, tmp_path: Path) -> None:
    """A processing row raised a bare TypeError, any other answered False for anything."""
    with Store(f"sqlite:///{tmp_path / 'db.sqlite'}", migrate=True) as store:
        store.create_generation("lofi", model_name="m", duration_seconds=1)
        claimed = store.claim_next("gpu-0")
        pending = store.create_generation("jazz", model_name="m", duration_seconds=1)
    assert claimed is not None
    for row in (claimed, pending):
        with pytest.raises(InvalidInput, match="now must be a timezone-aware datetime"):
            row.lease_expired(now)
        assert row.lease_expired(datetime(2026, 1, 1, tzinfo=UTC)) is False
    assert claimed.lease_expired(datetime(9999, 1, 1, tzinfo=UTC)) is True


@pytest.mark.parametrize(
    ("rate", "channels", "what"),
    [("44100", 2, "sample_rate"), (None, 2, "sample_rate"), (True, 2, "sample_rate"),
     (30000.0, 2, "sample_rate"), (48_000, 0, "channels"), (48_000, -1, "channels"),
     (48_000, True, "channels"), (48_000, "x", "channels")],
)  # fmt: skip
def test_a_spec_settings_check_the_master(rate: Any, channels: Any, what: str) -> None:
    """``settings`` took any master: a bare TypeError, ZeroDivisionError (opus, 0 channels), or a str, None
    or True copied into the rendition's description."""
    for spec in (RenditionSpec("wav"), RenditionSpec("flac"), RenditionSpec("opus")):
        with pytest.raises(InvalidInput, match=what):
            spec.settings(rate, channels)
    made = RenditionSpec("mp3").settings(np.int64(44_100), np.int64(2))  # type: ignore[arg-type]
    assert made.description["sample_rate"] == 44_100 and type(made.description["channels"]) is int


def test_the_file_names_check_their_arguments() -> None:
    """``peaks_name`` and ``rendition_name`` (``musicstore.rendering``): a str master was a bare
    AttributeError, NaN a ValueError, and True, 1.5 or -1 went into the name."""
    master = Path("2026/01/01/x.wav")
    assert peaks_name(master, np.int64(256), 8, False) == "x.peaks.256.8.json"  # type: ignore[arg-type]
    bad_peaks: list[tuple[Any, ...]] = [
        ("a/x.wav", 256, 8, False), (master, float("nan"), 8, False), (master, True, 8, False),
        (master, 256, -1, False), (master, 256, 8, "no"), (master, 1.5, 8, False),
    ]  # fmt: skip
    for args in bad_peaks:
        with pytest.raises(InvalidInput):
            peaks_name(*args)
    with pytest.raises(InvalidInput, match="generation_id"):
        peaks_name(master, 256, 8, False, 5)  # type: ignore[arg-type]
    profile = get_profile("streaming")
    settings = RenditionSpec("mp3").settings(44_100, 2).description
    assert rendition_name(master, settings, profile).startswith("x.streaming.")
    bad_names: list[tuple[Any, ...]] = [
        ("a/x.wav", settings, profile), (master, {}, profile), (master, None, profile),
        (master, settings, "streaming"),
    ]  # fmt: skip
    for bad in bad_names:
        with pytest.raises(InvalidInput):
            rendition_name(*bad)


@pytest.mark.parametrize("upload", ["x", None, 5, {"key": "k", "upload_id": "u"}, Upload("k", 5, None)])  # type: ignore[arg-type]
def test_abort_takes_an_upload(upload: Any, tmp_path: Path) -> None:
    """A non-Upload was a bare AttributeError on every backend (an S3 one's id of another type went on to
    botocore). Refused before any request: the S3 store here has no server."""
    local = LocalFileStore(tmp_path)
    s3 = S3FileStore(
        "bucket", endpoint_url="http://127.0.0.1:9", access_key_id="a", secret_access_key="s", max_attempts=1
    )
    for abort in (local.abort, s3.abort, lambda u: asyncio.run(AsyncFileStore(local).abort(u))):
        with pytest.raises(InvalidInput, match="upload"):
            abort(upload)


@pytest.mark.parametrize("start", [0, 0.0, False, "", [], {}, b""])
def test_a_fake_clock_refuses_a_start_that_is_falsy(start: Any) -> None:
    """``start or default`` took any falsy value for the default start (2026-01-01 12:00 UTC)."""
    with pytest.raises(InvalidInput, match="FakeClock's start must be a datetime"):
        FakeClock(start)
    assert FakeClock(None).now == datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_the_metrics_helpers_check_their_arguments() -> None:
    """``Distribution`` and ``priority_class`` (``musicstore.metrics``): None or 5 bounds were a bare
    TypeError, ``add(nan)`` made the sum NaN, ``add(True)`` counted 1, ``priority_class(1.5)`` said high."""
    for bounds in [None, 5, "x", (1.0, float("nan")), (2.0, 1.0)]:
        with pytest.raises(InvalidInput, match="bounds"):
            Distribution(bounds)  # type: ignore[arg-type]
    counted = Distribution(GENERATION_BUCKETS)
    values: list[Any] = ["x", None, True, float("nan"), []]
    for value in values:
        with pytest.raises(InvalidInput, match="value must be a number"):
            counted.add(value)
    counted.add(np.float32(2.0))  # type: ignore[arg-type]
    assert counted.count == 1 and counted.total == 2.0
    priorities: list[Any] = ["x", True, 1.5, float("nan"), [], "0"]
    for priority in priorities:
        with pytest.raises(InvalidInput, match="priority"):
            priority_class(priority)
    classes = [priority_class(p) for p in (None, 0, 3, -2, np.int64(5), np.int64(0))]  # type: ignore[arg-type]
    assert classes == ["normal", "normal", "high", "low", "high", "normal"]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:SECR\udcffETPW@127.0.0.1:1/db",  # a byte the shell passed undecoded
        "postgresql://u:pw@127.0.0.1:1/d\udcffb",
        "postgresql://u:pw@127.0.0.1:1/d%FFb",  # %-encoded
        "postgresql://u@127.0.0.1:1/db?password=SE%FFCRETPW",
        "mysql://u:SE\udcffCRETPW@h/db",
        "sqlite:////tmp/x.db?password=SE\udcffCRETPW",
    ],
)
@pytest.mark.parametrize("command", ["stats", "yoyo-url"])
def test_a_database_url_with_a_byte_that_is_not_utf8_is_one_line(
    url: str, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every command printed a traceback (UnicodeEncodeError masking the password, UnicodeDecodeError in
    psycopg's conninfo) where docs/cli.md promises one line and exit 1 for a malformed URL."""
    from musicstore.cli import main

    assert main([command, "-d", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("musicstore: error: ") and err.count("\n") == 1, err
    assert "SECR" not in err and "CRETPW" not in err
    with pytest.raises(InvalidInput):
        Store(url)


@pytest.mark.parametrize("kind", ["empty file", "another program's database"])
def test_a_backup_of_a_file_without_the_schema_is_refused(kind: str, tmp_path: Path) -> None:
    """It said "backed up ... integrity ok" (exit 0) and made a backup that restore then refused ("holds no
    musicstore database"): a cron backup pointed at the wrong file reported success."""
    import sqlite3

    from musicstore.maintenance.backup import backup

    source = tmp_path / "source.db"
    source.touch()
    if kind != "empty file":
        with contextlib.closing(sqlite3.connect(source)) as other:
            other.execute("CREATE TABLE notes (body TEXT)")
    with pytest.raises(InvalidInput, match="holds no musicstore database"):
        backup(f"sqlite:///{source}", tmp_path / "backup.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source.db"]


def test_restore_names_a_device_as_one(tmp_path: Path) -> None:
    """``restore /dev/null`` said "does not exist"."""
    from musicstore.maintenance.backup import restore

    with pytest.raises(InvalidInput, match="/dev/null is not a regular file"):
        restore("/dev/null", f"sqlite:///{tmp_path}/db.sqlite")
    assert list(tmp_path.iterdir()) == []


def test_a_files_peaks_take_its_rate_whatever_it_is(tmp_path: Path) -> None:
    """``WaveformPeaks`` checks its fields, but a file's rate is the file's: ``file_peaks`` of a 768 kHz WAV
    (over the export's 384 kHz) still gives its peaks."""
    import soundfile as sf

    from musicstore.audio import file_peaks

    sf.write(tmp_path / "high.wav", np.full((7_680, 1), 0.25, dtype=np.float32), 768_000)
    peaks = file_peaks(tmp_path / "high.wav", 256)
    assert (peaks.sample_rate, peaks.length, peaks.frames) == (768_000, 30, 7_680)
