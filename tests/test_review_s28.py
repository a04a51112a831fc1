"""Session 28's review: what it found in the session's changes, pinned."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from musicstore.audio import files
from musicstore.errors import StorageError


def test_a_temp_file_whose_close_fails_is_removed_and_its_descriptor_closed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``files.stage``: an ``os.close`` of the temp file that raised (EIO: the descriptor is released all the
    same) was followed by a second ``os.close`` of that number in the cleanup: EBADF raised from there, as a
    plain OSError, the temp file left behind (and, in a batch's threads, the number may be another file's by
    then: closed under it). Now the error is the StorageError of any failed write and the temp file goes."""
    real_close = os.close
    closed: list[int] = []

    def failing_close(fd: int) -> None:
        real_close(fd)
        closed.append(fd)
        if len(closed) == 1:
            raise OSError(errno.EIO, "Input/output error")

    def write(fd: int, name: str) -> None:
        os.write(fd, b"abc")
        monkeypatch.setattr(os, "close", failing_close)

    target = tmp_path / "out.wav"
    with pytest.raises(StorageError):
        files.stage(target, write)
    monkeypatch.undo()
    assert len(closed) == 1  # closed once, not again by the cleanup
    assert list(tmp_path.iterdir()) == []
