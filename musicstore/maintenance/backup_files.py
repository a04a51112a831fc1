"""The files of a backup and a restore (``musicstore.maintenance.backup``): the temp copy beside the
destination and the temps that killed runs left there, the destination checked and its folder made, the copy
put in place with the old database's logs folded into it or set aside."""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import stat
import time
from pathlib import Path

from ..backends.sqlite import unwritable_folder
from ..errors import InvalidInput, StorageError
from ..filestore.fsync import fsync
from ..processes import alive

_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})
"""What ``link(2)`` says on a file system without hard links (FAT says EPERM)."""


def _put_in_place(temp: Path, destination: Path, overwrite: bool) -> None:
    """Rename ``temp`` onto ``destination`` (``overwrite``), or hard-link it there and drop the temp name:
    the link raises FileExistsError if a file appeared at ``destination`` after it was checked, where a
    rename would have replaced it. Then the folder is fsynced."""
    if overwrite:
        os.replace(temp, destination)
    else:
        try:
            os.link(temp, destination)
        except FileExistsError:
            raise
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            # a file system without hard links (FAT, some network shares): check, then rename
            if os.path.lexists(destination):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(destination)) from exc
            os.replace(temp, destination)
        else:
            temp.unlink()
    fsync(destination.parent, directory=True)


def _fold_logs(path: Path) -> None:
    """Fold the old database's logs into it before they are moved aside: its ``-wal`` checkpointed
    (``TRUNCATE``), a hot ``-journal`` rolled back, so that a restore killed between moving them aside and
    putting the copy in place leaves the old database whole, with every transaction it committed.

    A database SQLite cannot read (corrupt: a reason to restore) is left as it is, its logs moved aside as
    before; one that another connection holds (opened since ``in_use`` looked) raises InvalidInput.
    """
    if not path.is_file() or not any(Path(f"{path}-{log}").exists() for log in ("wal", "journal")):
        return
    busy = f"{path} is open in another process: stop every worker and server using it, then restore"
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA schema_version").fetchone()  # recovery: the WAL read, a hot journal undone
            blocked = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        finally:
            conn.close()  # the last connection: SQLite removes the emptied -wal and the -shm
    except sqlite3.Error as exc:
        if exc.sqlite_errorname in {"SQLITE_BUSY", "SQLITE_LOCKED"}:
            raise InvalidInput(busy) from exc
        return  # unreadable: nothing to fold, the logs go aside as they are
    if blocked:
        raise InvalidInput(busy)


def _replace_database(temp: Path, path: Path, overwrite: bool) -> None:
    """Put ``temp`` in place as ``path`` (``_put_in_place``: FileExistsError without ``overwrite`` if a
    database appeared there meanwhile); the old database's -wal/-shm (or a hot rollback -journal left by a
    crash) must not be replayed onto it.

    They are moved aside first and put back if putting the copy in place fails, so a failed restore loses
    nothing.
    """
    aside: list[tuple[Path, Path]] = []
    try:
        for log in (Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
            if log.exists():
                kept = log.with_name(f"{log.name}.before-restore")
                os.replace(log, kept)
                aside.append((kept, log))
        _put_in_place(temp, path, overwrite)
    except BaseException:
        for kept, log in reversed(aside):
            os.replace(kept, log)
        raise
    for kept, _ in aside:
        kept.unlink(missing_ok=True)


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the folder {folder}: {exc}") from exc


def _temp_beside(destination: Path) -> Path:
    return destination.with_name(f".{destination.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")


def _remove_temp(temp: Path) -> None:
    """Remove ``temp`` and the ``-journal``/``-wal``/``-shm`` SQLite left beside it: a copy that failed (a
    full disk) leaves its rollback journal, one more file per failed attempt while the process lives. A
    name that is not there is not unlinked: on a read-only file system that raised EROFS, not ENOENT, and
    hid why the copy failed behind a temp name the caller never gave."""
    for name in (temp, *(Path(f"{temp}-{log}") for log in ("journal", "wal", "shm"))):
        if os.path.lexists(name):
            name.unlink(missing_ok=True)


def _writable_folder(destination: Path, what: str) -> None:
    """StorageError naming ``destination`` and why, where its folder cannot take the temp copy (a read-only
    mount, a folder of another user): SQLite said only "unable to open database file" of the temp."""
    why = unwritable_folder(destination)
    if why is not None:
        raise StorageError(f"cannot write {what} {destination}: {why}; nothing was written")


def _remove_dead_temps(destination: Path) -> None:
    """Remove the temps that a backup or restore to ``destination`` killed before it finished (SIGKILL, a
    power cut) left beside it, with their SQLite ``-journal``/``-wal``/``-shm``: only regular files named
    exactly as ``_temp_beside`` names them for this destination, whose process is gone."""
    pattern = re.compile(
        rf"\.{re.escape(destination.name)}\.([0-9]{{1,10}})\.[0-9]+\.tmp(?:-journal|-wal|-shm)?"
    )
    folder = destination.parent
    try:
        with os.scandir(folder) as entries:
            stale = [
                entry.name
                for entry in entries
                if (match := pattern.fullmatch(entry.name))
                and entry.is_file(follow_symlinks=False)
                and not alive(int(match[1]))
            ]
        for name in stale:
            (folder / name).unlink(missing_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot remove the temp files a killed backup or restore left in {folder}: {exc}"
        ) from exc


def _only_a_file(path: Path, what: str) -> None:
    """What ``overwrite`` replaces is a database file: a folder, a device, a pipe or a socket at ``path`` is
    refused before any work (the rename replaced it: as root, a backup onto /dev/null took its place)."""
    try:
        mode = path.stat().st_mode
    except OSError:  # not there (or not reachable: said later, as before)
        return
    if stat.S_ISDIR(mode):
        raise InvalidInput(f"{path} is a folder, not {what}; give a file's path")
    if not stat.S_ISREG(mode):
        raise InvalidInput(f"{path} is not a regular file (a device, a pipe or a socket), not {what}")
