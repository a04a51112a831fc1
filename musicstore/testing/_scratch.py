"""The throwaway servers' temp folders (``musicstore-pg-*``, ``musicstore-s3-*``): each records the process
that made it, and a new one first removes those whose process is gone.

A test run killed before its teardown (SIGKILL, a CI timeout) left its folder, and a CI machine's temp
filled up run by run. A folder's ``owner`` file holds its maker's pid and start time (Linux: a pid reused
by another process is not taken for its maker); a folder without one (made by an older musicstore, or being
made right now) and one whose maker lives (a concurrent run's) are never touched; nor one whose maker holds
its owner file locked (``processes.hold``), as every folder made here is until ``release``: a run in
another pid namespace sharing the temp folder (a container's) has a pid this one cannot see.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..processes import OWNER, hold, owned_folder, stale, started, sweep

_started = started
_held: dict[Path, int] = {}
"""The folders this process made, with the descriptor that holds each one's owner file locked until
``release``: a sweep by a process that cannot see this one's pid (another pid namespace sharing the temp
folder, a container's) keeps them."""


def _stale(folder: Path) -> bool:
    """Whether ``folder``'s maker is known and gone."""
    return stale(folder)


def folder(prefix: str) -> Path:
    """A new temp folder ``prefix*`` owned by this process, after removing those of processes gone; held
    (its owner file locked) until ``release``."""
    sweep(prefix)
    made = owned_folder(prefix)
    _held[made] = hold(made)
    return made


def release(made: Path) -> None:
    """Let the lock on ``made`` (a ``folder``) go: its server stopped, the folder removed."""
    fd = _held.pop(made, None)
    if fd is not None:
        os.close(fd)


__all__ = ["OWNER", "folder", "release", "sweep"]
