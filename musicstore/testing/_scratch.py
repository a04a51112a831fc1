"""The throwaway servers' temp folders (``musicstore-pg-*``, ``musicstore-s3-*``): each records the process
that made it, and a new one first removes those whose process is gone.

A test run killed before its teardown (SIGKILL, a CI timeout) left its folder, and a CI machine's temp
filled up run by run. A folder's ``owner`` file holds its maker's pid and start time (Linux: a pid reused
by another process is not taken for its maker); a folder without one (made by an older musicstore, or being
made right now) and one whose maker lives (a concurrent run's) are never touched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..processes import alive

OWNER = "owner"
"""The file in each folder naming its maker: ``PID START`` (START: its start time in clock ticks since boot,
``-`` where unknown)."""


def _started(pid: int) -> str:
    """When process ``pid`` started (``/proc/PID/stat``'s field 22), or ``-`` where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "-"
    return stat.rpartition(")")[2].split()[19]  # the fields after the command's name, 3 on


def _alive(pid: int, started: str) -> bool:
    """Whether the process that made a folder runs: pid ``pid``, started at ``started``."""
    return alive(pid) and (started == "-" or _started(pid) in (started, "-"))


def _stale(folder: Path) -> bool:
    """Whether ``folder``'s maker is known and gone."""
    try:
        pid_text, _, started = (folder / OWNER).read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return False  # no owner named (yet): kept
    return pid > 0 and not _alive(pid, started or "-")


def sweep(prefix: str) -> list[Path]:
    """Remove the folders ``prefix*`` in the temp folder whose maker is gone; returns them."""
    removed = []
    for folder in sorted(Path(tempfile.gettempdir()).glob(f"{prefix}*")):
        if folder.is_dir() and not folder.is_symlink() and _stale(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def folder(prefix: str) -> Path:
    """A new temp folder ``prefix*`` owned by this process, after removing those of processes gone."""
    sweep(prefix)
    made = Path(tempfile.mkdtemp(prefix=prefix))
    pid = os.getpid()
    (made / OWNER).write_text(f"{pid} {_started(pid)}\n")
    return made
