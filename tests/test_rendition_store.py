"""The renditions table (migration 0007) through the store: record, get, list, on both backends, sync and
async; one row per request; rows go with their generation; the schema's own checks."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore import (
    DatabaseError,
    Generation,
    InvalidAudio,
    InvalidInput,
    InvalidTransition,
    NotFound,
    StorageError,
    Store,
)
from musicstore.aio import AsyncStore
from musicstore.ops import Rendition
from musicstore.rendering import render_generation
from musicstore.store import Transaction
from musicstore.testing import FakeClock
from musicstore.urls import resolve

MISSING = "01a20180-5e48-7dc6-afbf-cdf54fb09fcb"
MP3: dict[str, Any] = {
    "format": "mp3",
    "sample_rate": 32_000,
    "channels": 2,
    "bitrate_mode": "constant",
    "bitrate_kbps": 192,
}
STREAMING: dict[str, Any] = {"profile": "streaming", "target_lufs": -14.0, "ceiling_dbtp": -1.0}


def completed(store: Any, n: int = 1) -> list[str]:
    """Ids of ``n`` completed generations."""
    ids = []
    for i in range(n):
        store.create_generation(f"p{i}", model_name="m", duration_seconds=2.0)
        job = store.claim_next("w")
        store.complete_generation(job.id, file_path=f"2026/{job.id}.wav", file_size_bytes=100)
        ids.append(job.id)
    return ids


def figures(key: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "storage_key": key,
        "settings": MP3,
        **STREAMING,
        "file_size_bytes": 1234,
        "duration_seconds": 2.0,
        "loudness_lufs": -14.2,
        "true_peak_dbtp": -1.3,
        "loudness_status": "normalized",
        "checksum": hashlib.sha256(key.encode()).hexdigest(),
    }
    return {**values, **changes}


def test_record_get_list_and_the_generation_takes_its_renditions(store: Store, clock: FakeClock) -> None:
    gid, other = completed(store, 2)
    mp3 = store.create_rendition(gid, **figures(f"2026/{gid}.streaming.a.mp3"))
    assert mp3.generation_id == gid and mp3.created_at == clock.now and mp3.codec == "MPEG_LAYER_III"
    assert (mp3.format, mp3.bitrate_mode, mp3.bitrate_kbps, mp3.sample_rate, mp3.channels) == (
        "mp3", "constant", 192, 32_000, 2,
    )  # fmt: skip
    opus_settings = {"format": "opus", "sample_rate": 48_000, "channels": 2, "bitrate_kbps": 96}
    silent = store.create_rendition(
        gid,
        **figures(
            f"2026/{gid}.podcast.b.opus",
            settings=opus_settings,
            profile="podcast",
            target_lufs=-16.0,
            loudness_lufs=float("-inf"),
            true_peak_dbtp=None,
            loudness_status="silent",
        ),
    )
    assert silent.loudness_lufs is None and silent.true_peak_dbtp is None and silent.codec == "OPUS"
    assert store.get_rendition(mp3.id) == mp3 and store.get_rendition(MISSING) is None
    assert store.list_renditions(gid) == [mp3, silent]  # by format, then settings
    assert store.list_renditions(other) == []
    assert store.get_rendition_by_settings(gid, MP3, **STREAMING) == mp3
    podcast: dict[str, Any] = {"profile": "podcast", "target_lufs": -16.0, "ceiling_dbtp": -1.0}
    assert store.get_rendition_by_settings(gid, MP3, **podcast) is None
    assert mp3.as_dict()["created_at"] == clock.now.isoformat()

    store.delete_generation(gid)  # ON DELETE CASCADE
    assert store.get_rendition(mp3.id) is None and store.list_renditions(gid) == []


def test_a_request_is_recorded_once_and_a_file_once(store: Store) -> None:
    gid, other = completed(store, 2)
    first = store.create_rendition(gid, **figures("x.mp3"))
    with pytest.raises(InvalidInput, match="already has this mp3 rendition"):
        store.create_rendition(gid, **figures("y.mp3"))
    with pytest.raises(InvalidInput, match=f"'x.mp3' is already rendition {first.id}'s"):  # the same file
        store.create_rendition(other, **figures("x.mp3"))
    # the same codec settings at another profile are another request
    store.create_rendition(gid, **figures("z.mp3", profile="broadcast", target_lufs=-23.0))
    assert first in store.list_renditions(gid)
    assert len(store.list_renditions(gid)) == 2 and store.list_renditions(other) == []


def test_only_a_completed_generation_gets_renditions(store: Store) -> None:
    job = store.create_generation("p", model_name="m", duration_seconds=1.0)
    with pytest.raises(InvalidTransition, match="completed"):
        store.create_rendition(job.id, **figures("a.mp3"))
    with pytest.raises(NotFound):
        store.create_rendition(MISSING, **figures("a.mp3"))
    for bad in (
        {"true_peak_dbtp": -0.5},  # over the ceiling
        {"loudness_status": "loud"},
        {"checksum": "ABC"},
        {"storage_key": "../outside.mp3"},
        {"settings": {**MP3, "format": "aac"}},
        {"settings": {**MP3, "sample_rate": 1}},
        {"target_lufs": -70.0},
        {"loudness_lufs": float("nan")},
    ):
        with pytest.raises(InvalidInput):
            store.create_rendition(job.id, **figures("a.mp3", **bad))
    assert store.list_renditions(job.id) == []


def test_async_store_records_gets_and_lists(db_url: str, clock: FakeClock) -> None:
    with Store(db_url, clock=clock) as store:
        (gid,) = completed(store)

    async def main() -> None:
        async with AsyncStore.open(db_url, clock=clock) as astore:
            made = await astore.create_rendition(gid, **figures("a.mp3"))
            assert await astore.get_rendition(made.id) == made
            assert await astore.list_renditions(gid) == [made]
            assert await astore.get_rendition_by_settings(gid, MP3, **STREAMING) == made
            with pytest.raises(InvalidInput):
                await astore.create_rendition(gid, **figures("b.mp3"))
            await astore.delete_generation(gid)
            assert await astore.list_renditions(gid) == []

    asyncio.run(main())


def test_merge_metadata_adds_keys_to_a_completed_generation_only(store: Store) -> None:
    store.create_generation("p", model_name="m", duration_seconds=1.0, metadata={"bpm": 90, "seed": 3})
    job = store.claim_next("w")
    assert job is not None
    with pytest.raises(InvalidTransition, match="completed"):  # a worker still owns its metadata
        store.merge_metadata(job.id, {"peaks": {"key": "a.json"}})
    store.complete_generation(job.id, file_path=f"2026/{job.id}.wav", file_size_bytes=100, metadata={"x": 1})
    merged = store.merge_metadata(job.id, {"peaks": {"key": "a.json", "bits": 8}, "seed": 4})
    assert merged.metadata == {"bpm": 90, "seed": 4, "x": 1, "peaks": {"key": "a.json", "bits": 8}}
    assert store.get_generation(job.id) == merged  # the row holds exactly what was returned
    again = store.merge_metadata(job.id, {"peaks": {"key": "b.json"}})  # a key's value is replaced whole
    assert again.metadata == {**merged.metadata, "peaks": {"key": "b.json"}}
    for bad in (
        {},
        {"peaks": float("nan")},
        {"peaks": (1, 2)},
        {1: "a"},
        ["peaks"],
        {"big": "x" * (1 << 20)},
    ):
        with pytest.raises(InvalidInput):
            store.merge_metadata(job.id, bad)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        store.merge_metadata(MISSING, {"peaks": {}})
    assert store.get_generation(job.id) == again  # nothing changed by the refusals


def test_async_merge_metadata(db_url: str, clock: FakeClock) -> None:
    with Store(db_url, clock=clock) as store:
        (gid,) = completed(store)

    async def main() -> None:
        async with AsyncStore.open(db_url, clock=clock) as astore:
            merged = await astore.merge_metadata(gid, {"peaks": {"key": "a.json"}})
            assert merged.metadata["peaks"] == {"key": "a.json"}
            assert await astore.get_generation(gid) == merged
            with pytest.raises(NotFound):
                await astore.merge_metadata(MISSING, {"peaks": {}})

    asyncio.run(main())


_settings = st.fixed_dictionaries(
    {
        "format": st.sampled_from(["mp3", "opus", "vorbis", "flac", "wav"]),
        "sample_rate": st.sampled_from([16_000, 32_000, 44_100, 48_000]),
        "channels": st.integers(1, 2),
    },
    optional={
        "bitrate_kbps": st.integers(8, 320),
        "quality": st.floats(0, 10),
        "bitrate_mode": st.sampled_from(["constant", "variable", "average"]),
        "subtype": st.sampled_from(["PCM_16", "PCM_24"]),
    },
)
_request = st.tuples(
    _settings,
    st.sampled_from([("streaming", -14.0), ("podcast", -16.0), ("broadcast", -23.0), ("custom", -20.5)]),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    requests=st.lists(_request, min_size=1, max_size=6),
    loudness=st.none() | st.floats(-60, -5),
    peak=st.none() | st.floats(-30, -1),
)
def test_round_trip_one_row_per_request_and_delete_cascades(
    db_url: str, requests: list[Any], loudness: float | None, peak: float | None
) -> None:
    """Whatever the requests: each distinct one is recorded once and reads back equal (get and list); a
    repeated one is refused; deleting the generation deletes every row."""
    with Store(db_url, clock=FakeClock()) as store:
        (gid,) = completed(store)
        made: dict[str, Rendition] = {}
        for n, (codec, (profile, target)) in enumerate(requests):
            fields = figures(
                f"{gid}.{n}.x", settings=codec, profile=profile, target_lufs=target, ceiling_dbtp=-1.0,
                loudness_lufs=loudness, true_peak_dbtp=peak,
            )  # fmt: skip
            found = store.get_rendition_by_settings(
                gid, codec, profile=profile, target_lufs=target, ceiling_dbtp=-1.0
            )
            if found is not None:
                with pytest.raises(InvalidInput):
                    store.create_rendition(gid, **fields)
                continue
            row = store.create_rendition(gid, **fields)
            assert store.get_rendition(row.id) == row
            made[row.id] = row
        listed = store.list_renditions(gid)
        assert {r.id: r for r in listed} == made and len(listed) == len(made)
        assert [(r.format, r.settings) for r in listed] == sorted(
            ((r.format, r.settings) for r in listed), key=lambda fs: (fs[0], _key(fs[1]))
        )
        store.delete_generation(gid)
        assert store.list_renditions(gid) == [] and all(store.get_rendition(i) is None for i in made)


def _key(settings: dict[str, Any]) -> str:
    from musicstore.ops.renditions import settings_key

    return settings_key(settings)


def _raw(sqlite_url: str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(resolve(sqlite_url).path), isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


GOOD = {
    "id": "01a20180-5e48-7dc6-afbf-cdf54fb09fc0",
    "format": "mp3",
    "codec": "MPEG_LAYER_III",
    "sample_rate": 44_100,
    "channels": 2,
    "settings": '{"format":"mp3"}',
    "profile": "streaming",
    "target_lufs": -14.0,
    "ceiling_dbtp": -1.0,
    "storage_key": "a.mp3",
    "file_size_bytes": 10,
    "duration_seconds": 1.0,
    "loudness_lufs": -14.0,
    "true_peak_dbtp": -1.5,
    "loudness_status": "normalized",
    "checksum": "0" * 64,
    "created_at": 0,
}


@pytest.mark.parametrize(
    "change",
    [
        {"format": "aac"},
        {"sample_rate": 100},
        {"channels": 9},
        {"settings": "[1]"},
        {"settings": "not json"},
        {"target_lufs": -80.0},
        {"ceiling_dbtp": 1.0},
        {"true_peak_dbtp": -0.5},
        {"loudness_status": "loud"},
        {"checksum": "A" * 64},
        {"checksum": "0" * 63},
        {"file_size_bytes": 0},
        {"bitrate_mode": "fast"},
        {"id": "short"},
        {"generation_id": MISSING},
    ],
)
def test_schema_checks_hold_without_python(sqlite_url: str, change: dict[str, Any]) -> None:
    with Store(sqlite_url) as store:
        (gid,) = completed(store)
    conn = _raw(sqlite_url)
    good = {**GOOD, "generation_id": gid}
    with pytest.raises(sqlite3.IntegrityError):
        _insert(conn, {**good, **change})
    _insert(conn, good)
    with pytest.raises(sqlite3.IntegrityError):  # one row per (generation, format, settings)
        _insert(conn, {**good, "id": MISSING[:-1] + "1", "storage_key": "b.mp3"})
    conn.execute("DELETE FROM generations WHERE id = ?", (gid,))
    assert conn.execute("SELECT count(*) FROM renditions").fetchone() == (0,)


def _insert(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    conn.execute(f"INSERT INTO renditions ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})", row)


# --- render_generation: files made beside the master and recorded ------------------------------------------


def exported(store: Store, root: Path, seconds: float = 1.5) -> Generation:
    """A completed generation whose master (WAV, 32 kHz stereo) is under ``root``."""
    from musicstore.audio import synthesize_music
    from musicstore.recording import export_generation

    store.create_generation("lofi", model_name="m", duration_seconds=seconds, metadata={"seed": 7})
    job = store.claim_next("w")
    assert job is not None
    return export_generation(store, job, synthesize_music(seconds, 32_000, seed=1), root=root).generation


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_render_generation_writes_beside_the_master_and_records_each_file(
    store: Store, tmp_path: Path
) -> None:
    done = exported(store, tmp_path)
    master = files(tmp_path)
    made = render_generation(store, done.id, root=tmp_path, formats=["mp3", "flac"], profile="streaming")
    assert [r.format for r in made] == ["mp3", "flac"]
    assert files(tmp_path) == master | {r.storage_key for r in made}
    for row in made:
        path = tmp_path / row.storage_key
        assert path.parent == (tmp_path / str(done.file_path)).parent
        assert path.name.startswith(f"{done.id}.streaming.")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row.checksum
        assert path.stat().st_size == row.file_size_bytes
        assert row.true_peak_dbtp is not None and row.true_peak_dbtp <= -1.0
        assert row.loudness_lufs is not None and abs(row.loudness_lufs + 14.0) <= 0.5
    assert sorted(store.list_renditions(done.id), key=lambda r: r.format) == sorted(
        made, key=lambda r: r.format
    )
    # the same request again: nothing made, the rows returned
    again = render_generation(store, done.id, root=tmp_path, formats=["mp3"], profile="streaming")
    assert again == made[:1] and files(tmp_path) == master | {r.storage_key for r in made}
    # another profile is another request, another file
    (quiet,) = render_generation(store, done.id, root=tmp_path, formats="mp3", profile="broadcast")
    assert quiet.id != made[0].id and quiet.storage_key != made[0].storage_key


def test_render_generation_leaves_nothing_when_the_row_cannot_be_recorded(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = exported(store, tmp_path)
    before = files(tmp_path)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise DatabaseError("refused")

    monkeypatch.setattr(Transaction, "create_rendition", refuse, raising=False)
    with pytest.raises(DatabaseError, match="refused") as raised:
        render_generation(store, done.id, root=tmp_path, formats=["mp3"])
    assert "its file was removed" in str(raised.value.__notes__)
    assert files(tmp_path) == before and store.list_renditions(done.id) == []
    monkeypatch.undo()
    # the put fails inside the transaction (as it links the written file into place): the row is rolled
    # back and nothing is left
    monkeypatch.setattr(os, "link", lambda *a, **k: (_ for _ in ()).throw(OSError("disk gone")))
    with pytest.raises(StorageError, match="disk gone"):
        render_generation(store, done.id, root=tmp_path, formats=["opus"])
    monkeypatch.undo()
    assert files(tmp_path) == before and store.list_renditions(done.id) == []


def test_render_generation_refuses_bad_requests_before_writing(store: Store, tmp_path: Path) -> None:
    done = exported(store, tmp_path)
    before = files(tmp_path)
    pending = store.create_generation("p", model_name="m", duration_seconds=1.0)
    cases: list[tuple[Callable[[], object], type[Exception]]] = [
        (lambda: render_generation(store, MISSING, root=tmp_path), NotFound),
        (lambda: render_generation(store, pending.id, root=tmp_path), InvalidTransition),
        (lambda: render_generation(store, done.id, root=tmp_path, formats=["aac"]), InvalidInput),
        (lambda: render_generation(store, done.id, root=tmp_path, profile="loud"), InvalidInput),
        (
            lambda: render_generation(store, done.id, root=tmp_path, formats=["mp3"], bitrate_kbps=100),
            InvalidInput,
        ),
        (
            lambda: render_generation(store, done.id, root=tmp_path, formats=["vorbis"], bitrate_kbps=128),
            InvalidInput,
        ),
        (lambda: render_generation(store, done.id, root=tmp_path / "elsewhere"), InvalidInput),  # no master
    ]
    for call, error in cases:
        with pytest.raises(error):
            call()
    assert files(tmp_path) == before and store.list_renditions(done.id) == []
    master = tmp_path / str(done.file_path)
    master.write_bytes(master.read_bytes()[:-2] + b"\x00\x01")  # damaged: fails its recorded checksum
    with pytest.raises(InvalidAudio, match="sha256"):
        render_generation(store, done.id, root=tmp_path)
    assert files(tmp_path) == before and store.list_renditions(done.id) == []


def test_cli_render_and_show(sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``musicstore render`` mirrors render_generation; ``show`` lists the renditions (table and JSON)."""
    import json

    from musicstore.cli import main

    with Store(sqlite_url) as store:
        done = exported(store, tmp_path)
    where = ["--database", sqlite_url, "--output-root", str(tmp_path)]
    assert main(["render", done.id, "--format", "mp3", "--bitrate", "128k", "--json", *where]) == 0
    (made,) = json.loads(capsys.readouterr().out)["renditions"]
    assert (
        made["format"] == "mp3" and made["bitrate_kbps"] == 128 and (tmp_path / made["storage_key"]).is_file()
    )
    assert main(["show", done.id, "--database", sqlite_url, "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)["renditions"]] == [made["id"]]
    assert main(["show", done.id, "--database", sqlite_url]) == 0
    shown = capsys.readouterr().out
    assert "renditions:" in shown and made["storage_key"] in shown
    assert main(["render", done.id, "--format", "vorbis", "--bitrate", "96", *where]) == 1  # not for vorbis
    assert "bitrate applies to mp3 and opus" in capsys.readouterr().err


# --- maintenance: rendition files are known to reconcile and go with their generation in cleanup ----------


def test_reconcile_knows_rendition_files_and_cleanup_deletes_them(store: Store, tmp_path: Path) -> None:
    from musicstore.maintenance.reconcile import reconcile
    from musicstore.maintenance.retention import cleanup

    root = tmp_path / "audio"  # the database lives in tmp_path
    done = exported(store, root)
    kept = exported(store, root)
    made = render_generation(store, done.id, root=root, formats=["mp3", "opus", "flac"])
    (other,) = render_generation(store, kept.id, root=root, formats=["vorbis"])
    (root / "cover.mp3").write_bytes(b"not ours")  # another mp3: not musicstore's, left alone
    report = reconcile(store, root)
    assert report.consistent and report.orphan_count == 0, report
    # masters, peaks (each with its normalised file), renditions
    assert report.referenced_files == 2 + 4 + 4 and report.unknown_files == 1
    assert report.peaks_files == 4

    dry = cleanup(store, root, statuses=["completed"], model_name="m", dry_run=True)
    assert {i.id: i.renditions_deleted for i in dry.deleted} == {done.id: 3, kept.id: 1}
    assert all((root / r.storage_key).exists() for r in made)
    store.delete_generation(kept.id)  # outside cleanup: its rendition row goes, the file stays an orphan
    assert store.get_rendition(other.id) is None
    orphans = reconcile(store, root)
    kept_peaks = str(kept.metadata["peaks"]["key"])  # the export's waveform peaks: an orphan too
    kept_normalized = str(kept.metadata["peaks"]["normalized"]["key"])  # and their normalised form
    assert {o.path for o in orphans.orphans} == {
        str(kept.file_path),
        kept_peaks,
        kept_normalized,
        other.storage_key,
    }

    applied = cleanup(store, root, statuses=["completed"], dry_run=False)
    assert [(i.id, i.file_action, i.renditions_deleted) for i in applied.deleted] == [(done.id, "deleted", 3)]
    assert applied.files_deleted == 1 + 2 + 3 and applied.errors == []  # master, peaks (2), renditions
    assert not (root / str(done.metadata["peaks"]["key"])).exists()
    assert not any((root / r.storage_key).exists() for r in made)
    assert store.list_renditions(done.id) == []
    assert (root / "cover.mp3").exists()


def test_reconcile_finds_a_rendition_whose_file_is_gone_and_repair_deletes_its_row(
    store: Store, tmp_path: Path
) -> None:
    from musicstore.maintenance.reconcile import reconcile

    root = tmp_path / "audio"
    done = exported(store, root)
    lost, resized, kept = render_generation(store, done.id, root=root, formats=["mp3", "opus", "flac"])
    (root / lost.storage_key).unlink()
    (root / resized.storage_key).write_bytes(b"short")
    report = reconcile(store, root)
    assert not report.consistent and report.renditions_checked == 3 and report.dangling_rendition_count == 2
    assert {(d.id, d.problem, d.actual_bytes) for d in report.dangling_renditions} == {
        (lost.id, "missing", None),
        (resized.id, "size_mismatch", 5),
    }
    assert len(store.list_renditions(done.id)) == 3  # reported only
    repaired = reconcile(store, root, repair=True, delete_orphans=True)
    assert {d.action for d in repaired.dangling_renditions} == {"deleted_row"}
    assert [r.id for r in store.list_renditions(done.id)] == [kept.id]
    assert reconcile(store, root).consistent  # the resized file, now an orphan, was deleted by the repair


def test_a_request_recorded_by_another_process_meanwhile_returns_its_row(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two renders of one request at once: the second to commit removes its own file and returns the row of
    the first (simulated: the first look-up misses a row another process recorded)."""
    root = tmp_path / "audio"
    done = exported(store, root)
    (first,) = render_generation(store, done.id, root=root, formats=["mp3"])
    before = files(root)
    real = store.get_rendition_by_settings
    calls: list[int] = []

    def racing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return None if len(calls) == 1 else real(*args, **kwargs)

    monkeypatch.setattr(store, "get_rendition_by_settings", racing)
    assert render_generation(store, done.id, root=root, formats=["mp3"]) == [first]
    assert len(calls) == 2 and files(root) == before and store.list_renditions(done.id) == [first]
