"""Crash safety of exports (session 28): what a worker killed at a chosen point leaves behind, and what the
documented later step removes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from musicstore import recording

_KILLED_BEFORE_ITS_OWNER_FILE = """
import os, signal, sys, tempfile
tempfile.tempdir = sys.argv[1]
from musicstore import processes, recording

def killed(pid):  # called after the folder is made, before its owner file is written
    os.kill(os.getpid(), signal.SIGKILL)

processes.started = killed
recording._export_folder()
"""


def test_an_export_folder_killed_before_its_owner_file_is_swept_once_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/recording.md: the temp folder an export to an object store encodes in names its maker, and a later
    export removes "the folders whose maker is gone once they are STALE_EXPORT_SECONDS old, so a worker that
    crashes again and again does not fill the host's temp folder". A worker killed between making the folder
    and writing its ``owner`` file (or while writing it: an empty file) left a folder naming no maker, which
    every sweep kept for good. Such a folder is now removed once unchanged for STALE_EXPORT_SECONDS; a
    younger one is kept (its maker may be about to write the file)."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    run = subprocess.run(
        [sys.executable, "-c", _KILLED_BEFORE_ITS_OWNER_FILE, str(temp)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    (killed,) = temp.iterdir()
    assert killed.name.startswith(recording.EXPORT_TEMP_PREFIX) and list(killed.iterdir()) == []
    empty = temp / f"{recording.EXPORT_TEMP_PREFIX}empty"  # killed while writing it: an empty owner file
    empty.mkdir()
    (empty / "owner").write_text("")
    young = temp / f"{recording.EXPORT_TEMP_PREFIX}young"  # just made: its maker writes the file next
    young.mkdir()
    old = time.time() - recording.STALE_EXPORT_SECONDS - 60
    for folder in (killed, empty):
        os.utime(folder, (old, old))
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setattr(recording, "_swept", {})  # as in a process that has not swept yet
    made = recording._export_folder()
    assert sorted(temp.iterdir()) == sorted([young, made])


def test_an_export_interrupted_as_its_rename_returns_leaves_no_file_at_the_final_path(
    musicstore_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/queue.md: a Ctrl-C (KeyboardInterrupt) ends a worker's run and puts the job in hand back;
    docs/recording.md: a completion that fails removes the file it placed ("generation ... was not recorded;
    its file was removed"). A KeyboardInterrupt raised as the final rename returned (Python runs the signal's
    handler at the next instruction: before the export noted the file as placed) left the master at its
    final path, recorded by no row, under a note saying it was removed. The staged file being gone now
    tells the rename happened."""
    store = musicstore_store
    store.create_generation("interrupted", model_name="m", duration_seconds=1.0, sample_rate=16_000)
    job = store.claim_next("gpu-0")
    assert job is not None
    root = tmp_path / "audio"
    real = os.replace

    def renamed_then_interrupted(src: Any, dst: Any, **kwargs: Any) -> None:
        real(src, dst, **kwargs)
        if not Path(dst).name.startswith("."):  # the master's rename onto its final path
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", renamed_then_interrupted)
    interrupted_export_leaves_nothing(store, job, root, monkeypatch)


def interrupted_export_leaves_nothing(
    store: Any, job: Any, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Export ``job`` (silence) under ``root``, interrupted as the test's patches make it: a
    ``KeyboardInterrupt`` noted 'its file was removed'; then, the patches undone, no file under ``root``
    and the row still processing (its job for the worker to put back)."""
    with pytest.raises(KeyboardInterrupt) as raised:
        recording.export_generation(store, job, np.zeros((job.channels, 16_000), dtype=np.float32), root=root)
    monkeypatch.undo()
    assert any("its file was removed" in note for note in raised.value.__notes__)
    assert [path for path in root.rglob("*") if path.is_file()] == []
    assert store.get_generation(job.id).is_processing


def test_an_upload_interrupted_as_its_reply_is_awaited_leaves_no_object(
    musicstore_store: Any, musicstore_s3_files: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/recording.md: a put that failed without saying whether it wrote the object is followed, the row
    still locked, by a HEAD of the key and the removal of an object there marked with this generation's id;
    docs/queue.md: a Ctrl-C puts the worker's job back. A KeyboardInterrupt landing while the put's reply was
    awaited (the object written) left the object at the layout's key, recorded by no row, under a note
    saying 'its file was removed': reconcile reported an orphan until a next attempt replaced it (and for
    good if none did). It is now removed as for a put whose reply was lost."""

    store = musicstore_store
    store.create_generation("interrupted upload", model_name="m", duration_seconds=1.0, sample_rate=16_000)
    job = store.claim_next("gpu-0")
    assert job is not None
    kind = type(musicstore_s3_files)
    real = kind.put

    def written_then_interrupted(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise KeyboardInterrupt  # Ctrl-C as the reply came: the object is there

    monkeypatch.setattr(kind, "put", written_then_interrupted)
    audio = np.zeros((job.channels, 16_000), dtype=np.float32)
    with pytest.raises(KeyboardInterrupt) as raised:
        recording.export_generation(store, job, audio, root=musicstore_s3_files, peaks=False)
    assert any("was removed from" in note for note in raised.value.__notes__), raised.value.__notes__
    assert list(musicstore_s3_files.list()) == []
    assert store.get_generation(job.id).is_processing
