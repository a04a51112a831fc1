"""The throwaway servers' temp folders (``musicstore-pg-*``, ``musicstore-s3-*``): each records the process
that made it, and a new one first removes those whose process is gone.

A test run killed before its teardown (SIGKILL, a CI timeout) left its folder, and a CI machine's temp
filled up run by run. A folder's ``owner`` file holds its maker's pid and start time (Linux: a pid reused
by another process is not taken for its maker); a folder without one (made by an older musicstore, or being
made right now) and one whose maker lives (a concurrent run's) are never touched.
"""

from __future__ import annotations

from pathlib import Path

from ..processes import OWNER, owned_folder, stale, started, sweep

_started = started


def _stale(folder: Path) -> bool:
    """Whether ``folder``'s maker is known and gone."""
    return stale(folder)


def folder(prefix: str) -> Path:
    """A new temp folder ``prefix*`` owned by this process, after removing those of processes gone."""
    sweep(prefix)
    return owned_folder(prefix)


__all__ = ["OWNER", "folder", "sweep"]
