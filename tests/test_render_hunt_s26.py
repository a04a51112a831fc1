"""Renditions end to end, a bug hunt (session 26): ``render_generation``, the store's rendition rows and the
``musicstore render`` command, as a demanding user would call them. Each test failed before its fix."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from musicstore import InvalidInput, StorageError, Store, rendering
from musicstore.audio import LoudnessProfile, synthesize_music
from musicstore.audio.analysis import analyze_file
from musicstore.maintenance.reconcile import reconcile
from musicstore.models import Generation
from musicstore.recording import export_generation
from musicstore.rendering import render_generation, render_peaks


def _completed(store: Store, root: Path) -> Generation:
    store.create_generation("render hunt", model_name="m", duration_seconds=1)
    job = store.claim_next("w")
    assert job is not None
    return export_generation(store, job, synthesize_music(1.0, 32_000, seed=1), root=root).generation


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("length", [101, 200])
def test_a_profile_name_longer_than_its_column_is_refused_before_anything_is_made(
    db_url: str, tmp_path: Path, length: int
) -> None:
    """The request's check took a profile name of up to 200 characters (a model name's limit), the column
    holds 100 (migration 0007): a custom profile named with 101–200 characters was encoded, put, then refused
    by the database's CHECK (``DatabaseError``, "a schema constraint refused the change") and its file
    removed. Now ``InvalidInput`` before the encode, as for any bad request; ``create_rendition`` alike."""
    root = tmp_path / "audio"
    with Store(db_url, migrate=True) as store:
        done = _completed(store, root)
        before = _files(root)
        profile = LoudnessProfile(-14.0, name="p" * length)
        with pytest.raises(InvalidInput, match="profile has"):
            render_generation(store, done.id, root=root, formats=["flac"], profile=profile)
        assert _files(root) == before and store.list_renditions(done.id) == []
        row: dict[str, Any] = {
            "storage_key": "r.flac", "settings": {"format": "flac", "sample_rate": 32_000, "channels": 2},
            "profile": "streaming", "target_lufs": -14.0, "ceiling_dbtp": -1.0, "file_size_bytes": 1,
            "duration_seconds": 1.0, "loudness_lufs": -14.0, "true_peak_dbtp": -1.5,
            "loudness_status": "normalized", "checksum": "0" * 64,
        }  # fmt: skip
        with pytest.raises(InvalidInput, match="profile has"):
            store.create_rendition(done.id, **{**row, "profile": "p" * length})
        with pytest.raises(InvalidInput, match="subtype"):  # the codec column holds 40
            store.create_rendition(done.id, **{**row, "settings": {**row["settings"], "subtype": "S" * 41}})
        assert store.create_rendition(done.id, **{**row, "profile": "p" * 100}).profile == "p" * 100


def _lose_and_export_again(store: Store, done: Generation, root: Path) -> None:
    """The master lost, reconcile's repair marks the row failed, it is replayed and its worker exports a
    new master (1.5 s, another clip) at the same key: the layout's name, by its creation date."""
    (root / str(done.file_path)).unlink()
    assert reconcile(store, root, repair=True).dangling_count == 1
    store.replay(done.id)
    job = store.claim_next("w")
    assert job is not None and job.id == done.id
    again = export_generation(store, job, synthesize_music(1.5, 32_000, seed=9), root=root).generation
    assert again.file_path == done.file_path


def test_a_master_exported_again_at_its_key_while_a_rendition_was_made_gets_none_of_the_old_ones(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``render_generation`` read the master, encoded, then checked under the row's lock that the row still
    named the master's place (store URL and key) only: while it encoded, the master was lost, reconcile
    marked the row failed, ``replay`` forgot its renditions and the worker exported a new master at the same
    key. The rendition of the lost master was then recorded as the new one's: what replay forgets renditions
    for. The place read anew must hold the same file (its size and SHA-256 too): ``StorageError``, nothing
    recorded, and the next render makes it from the new master."""
    root = tmp_path / "audio"
    with Store(db_url, migrate=True) as store:
        done = _completed(store, root)
        made_from = rendering.render_bytes  # type: ignore[attr-defined]

        def lost_and_made_again(*args: Any, **kwargs: Any) -> Any:
            encoded = made_from(*args, **kwargs)  # of the master as read
            _lose_and_export_again(store, done, root)
            return encoded

        monkeypatch.setattr(rendering, "render_bytes", lost_and_made_again)
        with pytest.raises(StorageError, match="changed while the flac rendition was made"):
            render_generation(store, done.id, root=root, formats=["flac"])
        assert store.list_renditions(done.id) == []
        monkeypatch.setattr(rendering, "render_bytes", made_from)
        (row,) = render_generation(store, done.id, root=root, formats=["flac"])
        master = analyze_file(root / str(done.file_path))
        rendition = analyze_file(root / row.storage_key)
        assert rendition.frames == master.frames == 48_000  # made from the master there now (1.5 s)
        assert hashlib.sha256((root / row.storage_key).read_bytes()).hexdigest() == row.checksum


def test_peaks_of_a_master_exported_again_meanwhile_are_not_recorded_as_the_new_ones(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``render_peaks`` alike: the peaks of the lost master were recorded in the row of the new one."""
    root = tmp_path / "audio"
    with Store(db_url, migrate=True) as store:
        done = _completed(store, root)
        put = rendering._put_peaks

        def lost_and_made_again(*args: Any) -> Any:
            _lose_and_export_again(store, done, root)
            return put(*args)

        monkeypatch.setattr(rendering, "_put_peaks", lost_and_made_again)
        with pytest.raises(StorageError, match="changed while its peaks were made"):
            render_peaks(store, done.id, root=root, samples_per_pixel=512)
        recorded = store.get_generation(done.id)
        assert recorded is not None and recorded.metadata["peaks"]["samples_per_pixel"] == 256  # the export's
        monkeypatch.setattr(rendering, "_put_peaks", put)
        stored = render_peaks(store, done.id, root=root, samples_per_pixel=512)
        assert stored.peaks.length == 48_000 // 512 + 1  # of the master there now (1.5 s)


def test_peaks_made_before_a_replay_are_made_again_from_the_new_master(db_url: str, tmp_path: Path) -> None:
    """Peaks ``render_peaks`` put beside a master later lost stayed after its dead letter was replayed and
    exported again (named after an existing generation, reconcile keeps them); asked again at that
    resolution, ``render_peaks`` met other bytes at its own name and raised ``ObjectExists`` for good. Now
    they carry the generation's id, as its renditions do, and are replaced by the new master's."""
    root = tmp_path / "audio"
    with Store(db_url, migrate=True) as store:
        done = _completed(store, root)
        before = render_peaks(store, done.id, root=root, samples_per_pixel=512)
        _lose_and_export_again(store, done, root)
        assert reconcile(store, root, repair=True).consistent
        after = render_peaks(store, done.id, root=root, samples_per_pixel=512)
        assert after.key == before.key and after.peaks.length == 48_000 // 512 + 1 != before.peaks.length
        data = (root / after.key).read_bytes()
        assert hashlib.sha256(data).hexdigest() == after.sha256 and len(data) == after.bytes
        recorded = store.get_generation(done.id)
        assert recorded is not None and recorded.metadata["peaks"] == after.as_metadata()
