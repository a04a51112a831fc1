"""Whether a process runs: the one check behind every "its maker is gone" decision (a migration lock's
holder, a killed backup's temp file, a throwaway test server's folder, a killed export's temp folder).

``owned_folder`` makes a temp folder that names its maker (``OWNER``: its pid and start time); ``sweep``
removes those of a prefix whose maker is gone: what a process killed with SIGKILL left in the temp folder is
removed by a later one, never what a running process uses.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

OWNER = "owner"
"""The file in each owned folder naming its maker: ``PID START`` (START: its start time in clock ticks since
boot, ``-`` where unknown)."""


def alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (one of another user counts; so does a pid no process
    can have, so that such a name is never taken for a dead one's). A zombie (ended, not yet reaped by its
    parent: a killed child its parent has not waited for) runs nothing: not alive (Linux: ``/proc``)."""
    if not 0 < pid < 2**31:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _state(pid) not in ("Z", "X")


def _state(pid: int) -> str:
    """Process ``pid``'s state letter (``/proc/PID/stat``'s field 3: ``R``, ``S``, ``Z``...), or ``-``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "-"
    fields = stat.rpartition(")")[2].split()
    return fields[0] if fields else "-"


def started(pid: int) -> str:
    """When process ``pid`` started (``/proc/PID/stat``'s field 22), or ``-`` where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "-"
    return stat.rpartition(")")[2].split()[19]  # the fields after the command's name, 3 on


def maker_alive(pid: int, start: str) -> bool:
    """Whether the process that made a folder runs: pid ``pid``, started at ``start`` (Linux: a pid reused by
    another process is not taken for its maker)."""
    return alive(pid) and (start == "-" or started(pid) in (start, "-"))


def stale(folder: Path, older_than: float = 0.0) -> bool:
    """Whether ``folder``'s maker is known and gone (and holds no lock on it: ``hold``), and the folder
    unchanged for ``older_than`` seconds. A folder naming no maker (no ``OWNER`` file, or an empty or
    garbled one: its maker was killed between making the folder and writing the file) is kept while it may
    be a maker's about to write it, and stale once unchanged for ``older_than`` (> 0) seconds: before, such a
    folder was kept for good."""
    try:
        pid_text, _, start = (folder / OWNER).read_text().strip().partition(" ")
        pid = int(pid_text)
    except (FileNotFoundError, ValueError):  # no owner named (yet)
        return older_than > 0 and _unchanged_for(folder, older_than)
    except OSError:
        return False  # unreadable (another user's): kept
    if pid <= 0 or maker_alive(pid, start or "-") or held(folder):
        return False
    return older_than <= 0 or _unchanged_for(folder, older_than)


def _unchanged_for(folder: Path, seconds: float) -> bool:
    try:
        return time.time() - folder.stat().st_mtime >= seconds
    except OSError:
        return False


def hold(folder: Path) -> int:
    """Lock ``folder``'s owner file for as long as the returned descriptor is open (``os.close`` it when the
    folder is gone): ``held`` says so to any process, so that a sweep keeps it even where its maker's pid
    is not seen (a process of another pid namespace sharing the temp folder: a container's)."""
    fd = os.open(folder / OWNER, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def held(folder: Path) -> bool:
    """Whether a process holds ``folder``'s owner file locked (``hold``): its maker runs, wherever it runs."""
    try:
        fd = os.open(folder / OWNER, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # and this probe's own lock with it
    return False


def sweep(prefix: str, older_than: float = 0.0) -> list[Path]:
    """Remove the folders ``prefix*`` in the temp folder whose maker is gone (and unchanged for
    ``older_than`` seconds); returns them."""
    removed = []
    for folder in sorted(Path(tempfile.gettempdir()).glob(f"{prefix}*")):
        if folder.is_dir() and not folder.is_symlink() and stale(folder, older_than):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def owned_folder(prefix: str) -> Path:
    """A new temp folder ``prefix*`` naming this process as its maker (``OWNER``). If the owner file cannot be
    written (a full disk), the folder is removed and the ``OSError`` raised: no sweep removes a folder naming
    no maker."""
    made = Path(tempfile.mkdtemp(prefix=prefix))
    pid = os.getpid()
    try:
        (made / OWNER).write_text(f"{pid} {started(pid)}\n")
    except BaseException:
        shutil.rmtree(made, ignore_errors=True)
        raise
    return made
