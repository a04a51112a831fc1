"""Renditions and peaks, fixes of a bug hunt's findings (session 23). Each test failed before its fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from musicstore import Store
from musicstore.audio import synthesize_music
from musicstore.audio.renditions import decode
from musicstore.models import Generation
from musicstore.rendering import render_generation, render_peaks


def _by_hand(store: Store, root: Path, row: tuple[int, int], master: tuple[int, int]) -> Generation:
    """A generation whose row says ``row`` (sample rate, channels) and whose worker wrote its master at
    ``master``'s rate and channels, completed with ``complete_generation``."""
    store.create_generation(
        "by hand", model_name="m", duration_seconds=1, sample_rate=row[0], channels=row[1]
    )
    job = store.claim_next("w")
    assert job is not None
    rate, channels = master
    path = root / f"{job.id}.wav"
    sf.write(path, np.asarray(synthesize_music(1.0, rate, seed=3))[:channels].T, rate, subtype="PCM_16")
    return store.complete_generation(job.id, file_path=path.name, file_size_bytes=path.stat().st_size)


@pytest.mark.parametrize("row", [(48_000, 3), (96_000, 2)])
def test_an_mp3_is_judged_by_the_master_not_by_what_its_row_says(
    db_url: str, tmp_path: Path, row: tuple[int, int]
) -> None:
    """A row saying 3 channels or 96 kHz was refused for MP3 ('mp3 holds 1 or 2 channels', 'mp3 takes
    sample rates') before the master, stereo 48 kHz, was read: the request is keyed by the master."""
    root = tmp_path / "audio"
    root.mkdir()
    with Store(db_url, migrate=True) as store:
        done = _by_hand(store, root, row, (48_000, 2))
        (made,) = render_generation(store, done.id, root=root, formats=["mp3"])
        assert (made.sample_rate, made.channels) == (48_000, 2)
        assert decode((root / made.storage_key).read_bytes())[0].shape[0] == 2
        assert render_generation(store, done.id, root=root, formats=["mp3"]) == [made]


@pytest.mark.parametrize("row", [(48_000, 2), (96_000, 2)])
def test_a_master_the_codec_refuses_leaves_nothing_made(
    db_url: str, tmp_path: Path, row: tuple[int, int]
) -> None:
    """A 96 kHz master, whatever its row says, is refused for MP3 before any rendition is made (the FLAC
    asked beside it too): judged by the master, still all requests before the first is written."""
    from musicstore.errors import InvalidInput

    root = tmp_path / "audio"
    root.mkdir()
    with Store(db_url, migrate=True) as store:
        done = _by_hand(store, root, row, (96_000, 2))
        with pytest.raises(InvalidInput, match="mp3 takes sample rates"):
            render_generation(store, done.id, root=root, formats=["flac", "mp3"])
        assert store.list_renditions(done.id) == [] and [p.name for p in root.iterdir()] == [f"{done.id}.wav"]


def test_cli_render_takes_the_rendition_sample_rate(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``musicstore render`` had no ``--sample-rate``: an MP3 of a 96 or 88.2 kHz master (MP3 stops at 48 kHz)
    could not be made from the command line, where ``RenditionSpec("mp3", sample_rate=48_000)`` makes it."""
    import json

    from musicstore.cli import EXIT_USAGE, main

    root = tmp_path / "audio"
    root.mkdir()
    with Store(sqlite_url) as store:
        done = _by_hand(store, root, (96_000, 2), (96_000, 2))
    where = ["--database", sqlite_url, "--output-root", str(root)]
    assert main(["render", done.id, "--format", "mp3", *where]) == 1
    assert "mp3 takes sample rates" in capsys.readouterr().err
    command = ["render", done.id, "--format", "mp3", "--format", "flac", "--bitrate", "128k", "--json"]
    assert main([*command, "--sample-rate", "44.1k", *where]) == 0
    mp3, flac = json.loads(capsys.readouterr().out)["renditions"]
    assert (mp3["format"], mp3["sample_rate"], mp3["bitrate_kbps"]) == ("mp3", 44_100, 128)
    assert (flac["format"], flac["sample_rate"]) == ("flac", 44_100)
    assert sf.info(root / mp3["storage_key"]).samplerate == 44_100
    assert main([*command[:4], "--bitrate", "128", "--sample-rate", "44100", "--json", *where]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)["renditions"]] == [mp3["id"]]  # found again
    for bad in ("7", "48kHz", "", "1e9", "44.1005k", "1e999999999k", "4.41e4", "44100.5", "\u0661" * 5):
        assert main(["render", done.id, "--sample-rate", bad, *where]) == EXIT_USAGE
        assert "--sample-rate" in capsys.readouterr().err


def _at(store: Store, where: Any, path: str, seed: int) -> Generation:
    """A completed generation whose master (its own music: ``seed``) is at ``path``, recorded in ``where``."""
    import io

    from musicstore.ops.storage import record_storage

    store.create_generation(f"take {seed}", model_name="m", duration_seconds=1)
    job = store.claim_next("w")
    assert job is not None
    buffer = io.BytesIO()
    fmt = path.rpartition(".")[2].upper()
    sf.write(
        buffer, np.asarray(synthesize_music(1.0, 32_000, seed=seed)).T, 32_000, format=fmt, subtype="PCM_16"
    )
    saved = where.put(path, buffer.getvalue())
    done = store.complete_generation(job.id, file_path=path, file_size_bytes=saved.size)
    assert saved.checksum is not None
    store.run(record_storage, job.id, storage_url=where.url, key=saved.key, checksum=saved.checksum)
    return done


def test_two_masters_of_one_stem_each_get_their_peaks(
    store: Store, where: Any, tmp_path: Path, clock: Any
) -> None:
    """Two generations whose masters named by hand share a stem in one folder (`album/t.wav`, `album/t.flac`):
    the second one's render_peaks raised ObjectExists at `album/t.peaks.256.8.json`, the first one's file.
    Its peaks now get a name of their own (the 8 hex of its id); reconcile and cleanup know both as peaks
    of their master: referenced while recorded, an orphan once its generation is deleted."""
    from musicstore.maintenance.reconcile import reconcile
    from musicstore.maintenance.retention import cleanup

    first, second = _at(store, where, "album/t.wav", 1), _at(store, where, "album/t.flac", 2)
    one, two = render_peaks(store, first.id), render_peaks(store, second.id)
    assert one.key == "album/t.peaks.256.8.json" and two.key != one.key
    assert two.key.startswith("album/t.peaks.") and two.key.endswith(".256.8.json")
    assert render_peaks(store, second.id).key == two.key  # found again: a retry
    keys = {o.key for o in where.list()}
    assert keys == {"album/t.wav", "album/t.flac", one.key, two.key}
    report = reconcile(store, where)
    assert report.consistent and (report.peaks_files, report.orphan_count, report.unknown_files) == (2, 0, 0)
    store.delete_generation(second.id)
    report = reconcile(store, where)
    assert {o.path for o in report.orphans} == {"album/t.flac", two.key}, report
    assert report.orphan_peaks_count == 1 and report.unknown_files == 0
    root: Any = where if where.url.startswith("s3:") else tmp_path / "audio"
    from datetime import timedelta

    clock.advance(86_400)
    kept = cleanup(
        store, root, older_than=timedelta(hours=1), dry_run=True
    )  # the first's peaks: its own only
    assert [(i.id, i.peaks_deleted) for i in kept.deleted] == [(first.id, 1)]


def test_copy_files_takes_each_master_with_its_own_peaks(store: Store, where: Any, tmp_path: Path) -> None:
    """copy-files finds a master's peaks by its stem: each of two masters of one stem goes with its peaks,
    the second's named with the 8 hex of its id (render_peaks raised ObjectExists for them before), and
    the first does not take the second's as its own."""
    from musicstore.maintenance.reconcile import reconcile
    from musicstore.maintenance.relocate import copy_files

    first, second = _at(store, where, "album/t.wav", 1), _at(store, where, "album/t.flac", 2)
    drawn = {render_peaks(store, first.id).key, render_peaks(store, second.id).key}
    target = tmp_path / "copy"
    report = copy_files(store, target)
    assert report.rows_updated == 2 and report.peaks_copied <= 3, report  # t.flac's takes t.peaks…json too
    assert {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()} == {
        "album/t.wav", "album/t.flac", *drawn
    }  # fmt: skip
    assert reconcile(store, target).consistent
