"""Output layout and atomic, durable file writes.

A file is written to a temp file in its target directory, fsynced, given normal permissions, renamed
into place with ``os.replace`` and the directory is fsynced. On any failure the temp file is removed
and nothing is left at the final path.
"""

from __future__ import annotations

import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from musicstore.errors import InvalidInput, StorageError
from musicstore.fsync import fsync

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
EXTENSIONS = {"wav": "WAV", "flac": "FLAC"}
_TEMP_STEM_BYTES = 200  # + ".", ".flac", "." + 8 random + ".tmp" stays under the usual 255-byte limit


def _default_file_mode() -> int:
    mask = os.umask(0)  # read the umask once, at import, before any thread exists
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _default_file_mode()


def format_for(path: Path) -> str:
    """The soundfile format ("WAV"/"FLAC") named by the path's extension."""
    ext = path.suffix.lower().lstrip(".")
    if ext not in EXTENSIONS:
        raise InvalidInput(f"{path.name}: the extension must be one of {sorted(EXTENSIONS)}")
    return EXTENSIONS[ext]


def layout_path(root: str | Path, generation_id: str, ext: str = "wav", when: datetime | None = None) -> Path:
    """``<root>/YYYY/MM/DD/<generation_id>.<ext>`` by the UTC date of ``when`` (default: now).

    The id may hold letters, digits, ``-`` and ``_`` only (a UUID fits), so the path cannot leave root.
    """
    if not isinstance(generation_id, str) or not _ID.fullmatch(generation_id):
        raise InvalidInput(f"generation id {generation_id!r} must be 1–128 letters, digits, '-' or '_'")
    if ext.lower() not in EXTENSIONS:
        raise InvalidInput(f"extension {ext!r} must be one of {sorted(EXTENSIONS)}")
    if when is None:
        when = datetime.now(UTC)
    elif when.tzinfo is None:
        raise InvalidInput("when must be timezone-aware (the layout uses the UTC date)")
    day = when.astimezone(UTC)
    base = Path(root)
    path = base / f"{day.year:04d}" / f"{day.month:02d}" / f"{day.day:02d}" / f"{generation_id}.{ext.lower()}"
    if not path.resolve().is_relative_to(base.resolve()):
        raise InvalidInput(f"{path} would be outside the output root {base}")
    return path


def _remove(path: Path, error: BaseException) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as cleanup:
        error.add_note(f"and removing {path} failed too: {cleanup}")


def _temp_prefix(path: Path) -> str:
    """``.<name>.``, the stem shortened so that the temp name fits where ``path``'s own name does."""
    stem = path.stem
    while len(os.fsencode(stem)) > _TEMP_STEM_BYTES:
        stem = stem[:-1]
    return f".{stem}{path.suffix}."


def _make_directories(directory: Path) -> None:
    """``mkdir -p``, durably: each new folder's entry in its parent is flushed, so that after a crash a file
    whose row was committed is not lost with a ``YYYY/MM/DD`` folder created for it."""
    missing: list[Path] = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
        fsync(folder.parent, directory=True)


def write_atomic(path: Path, frames: NDArray[np.generic], sample_rate: int, fmt: str, subtype: str) -> int:
    """Write ``(S, C)`` frames to ``path`` atomically and durably; return the file size in bytes.

    An existing file at ``path`` is replaced (a retried export overwrites its earlier file).
    """
    directory = path.parent
    try:
        _make_directories(directory)
        fd, name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=directory)
        os.close(fd)
    except OSError as exc:
        raise StorageError(f"cannot create a file in {directory}: {exc}; check the output root") from exc
    temp = Path(name)
    placed = False
    try:
        sf.write(temp, frames, sample_rate, subtype=subtype, format=fmt)
        fsync(temp)
        os.chmod(temp, _FILE_MODE)
        size = temp.stat().st_size
        os.replace(temp, path)
        placed = True
        fsync(directory, directory=True)
    except BaseException as exc:
        _remove(temp, exc)
        if placed:
            _remove(path, exc)
        if isinstance(exc, OSError | sf.SoundFileError):
            raise StorageError(f"writing {path} failed: {exc}; nothing was left at that path") from exc
        raise
    return size
