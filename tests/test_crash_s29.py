"""Crash safety of exports (session 29): a Ctrl-C landing right after a write placed a file, before the
export noted it as placed; and how long the cleanup of a put whose outcome is unknown holds the row's lock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from musicstore import recording
from musicstore.recording import placing


def _claimed(store: Any, name: str) -> Any:
    store.create_generation(name, model_name="m", duration_seconds=1.0, sample_rate=16_000)
    job = store.claim_next("gpu-0")
    assert job is not None
    return job


def test_an_export_interrupted_as_its_peaks_write_returns_leaves_no_peaks_file(
    musicstore_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/recording.md: a failed placing leaves nothing at the final paths ("the audio (and any peaks file
    this call wrote) removed"); docs/queue.md: a Ctrl-C puts the worker's job back. A KeyboardInterrupt
    landing as the peaks file's write returned (renamed onto its final path beside the master), before the
    export noted it as placed, removed the master but left the peaks file, recorded by no row, under a note
    saying 'its file was removed'."""
    store = musicstore_store
    job = _claimed(store, "interrupted peaks")
    root = tmp_path / "audio"
    real = placing.LocalFileStore.put

    def written_then_interrupted(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        real(self, key, *args, **kwargs)
        raise KeyboardInterrupt  # Ctrl-C as the put returned: the peaks file is at its final path

    monkeypatch.setattr(placing.LocalFileStore, "put", written_then_interrupted)
    audio = np.zeros((job.channels, 16_000), dtype=np.float32)
    with pytest.raises(KeyboardInterrupt) as raised:
        recording.export_generation(store, job, audio, root=root)
    monkeypatch.undo()
    assert any("its file was removed" in note for note in raised.value.__notes__)
    assert [path for path in root.rglob("*") if path.is_file()] == []
    assert store.get_generation(job.id).is_processing


def test_an_interrupted_peaks_write_leaves_an_older_peaks_file_of_other_bytes(
    musicstore_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cleanup of a peaks write interrupted before its rename removes the file at the peaks path only
    when it holds this export's bytes: one the write did not replace stays as it was."""
    store = musicstore_store
    job = _claimed(store, "interrupted before the rename")
    root = tmp_path / "audio"

    def interrupted(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        (root / key).write_text("older")  # what was there, which the write never replaced
        raise KeyboardInterrupt

    monkeypatch.setattr(placing.LocalFileStore, "put", interrupted)
    audio = np.zeros((job.channels, 16_000), dtype=np.float32)
    with pytest.raises(KeyboardInterrupt):
        recording.export_generation(store, job, audio, root=root)
    monkeypatch.undo()
    (left,) = [path for path in root.rglob("*") if path.is_file()]
    assert left.name.endswith(".json") and left.read_text() == "older"


@pytest.mark.parametrize("which", [0, 1], ids=["master", "peaks"])
def test_an_upload_interrupted_as_its_put_returns_leaves_no_object(
    musicstore_store: Any, musicstore_s3_files: Any, monkeypatch: pytest.MonkeyPatch, which: int
) -> None:
    """docs/recording.md: nothing is left at the keys of an export whose placing failed; docs/queue.md: a
    Ctrl-C puts the worker's job back. A KeyboardInterrupt landing as a put returned (its reply received),
    before the export noted the object as placed, left that object at its key, recorded by no row, under a
    note saying 'its file was removed' (c144739 covered a Ctrl-C while the reply was awaited only)."""
    store = musicstore_store
    job = _claimed(store, f"interrupted upload {which}")
    real = placing._Placing._put
    calls: list[str] = []

    def put_then_interrupted(self: Any, objects: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        info = real(self, objects, key, *args, **kwargs)
        calls.append(key)
        if len(calls) == which + 1:
            raise KeyboardInterrupt  # Ctrl-C as the put returned: the object is at its key
        return info

    monkeypatch.setattr(placing._Placing, "_put", put_then_interrupted)
    audio = np.zeros((job.channels, 16_000), dtype=np.float32)
    with pytest.raises(KeyboardInterrupt) as raised:
        recording.export_generation(store, job, audio, root=musicstore_s3_files)
    monkeypatch.undo()
    assert len(calls) == which + 1
    assert any("was removed from" in note for note in raised.value.__notes__), raised.value.__notes__
    assert list(musicstore_s3_files.list()) == []
    assert store.get_generation(job.id).is_processing
