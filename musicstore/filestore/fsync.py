"""Flush a file, or a directory's entries (after a rename into it), to stable storage."""

from __future__ import annotations

import os
from pathlib import Path


def fsync(path: Path, *, directory: bool = False) -> None:
    """Flush the file at ``path``, or the directory (``directory=True``) so a rename in it persists."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
