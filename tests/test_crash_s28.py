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
