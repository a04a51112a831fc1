"""Who holds a SQLite database open, before ``restore`` replaces it (``musicstore.maintenance.backup``).

``in_use`` sees another process's connections, by the lock each holds on byte 128 of the ``-shm`` file;
``held_open`` sees those of this process too, by SQLite's own exclusive lock on the database file.
``short_of_header`` tells a file cut short (a truncated copy of a backup) from a whole one.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from pathlib import Path

from .. import validate
from ..errors import InvalidInput, StorageError

_SHM_DMS_BYTE = 128
"""SQLite's unix VFS: every connection to a WAL database holds a shared lock on this byte of ``-shm``."""


def file_argument(value: object, what: str) -> Path:
    """A file's path given as a str or an os.PathLike (InvalidInput otherwise), not empty (``Path("")`` is the
    working directory), without a NUL (no file can be named so), a path the OS takes
    (``validate.os_path``), and not ending with a ``/`` (a folder's path: ``Path`` drops the slash, and a
    backup to ``backups/`` was written as a file named ``backups``)."""
    text = validate.os_path(value, what)
    if text.endswith(("/", os.sep)):
        raise InvalidInput(f"{what} ends with '/': that names a folder; give a file's path (in it, say)")
    return Path(text)


def in_use(path: str | Path) -> bool:
    """Whether another process has the SQLite database at ``path`` open (WAL mode: its ``-shm`` is locked).

    Call it from a process that does not itself have the database open. A ``path`` that is no path (another
    type, empty, a NUL) is InvalidInput.
    """
    shm = Path(f"{file_argument(path, 'path')}-shm")
    try:
        fd = os.open(shm, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _SHM_DMS_BYTE, os.SEEK_SET)
        except OSError:
            return True
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, _SHM_DMS_BYTE, os.SEEK_SET)
        return False
    finally:
        os.close(fd)


def held_open(path: Path) -> bool:
    """Whether any connection, in this process or another, has the database at ``path`` open: an exclusive
    lock on the file is refused while one does (in WAL mode each connection holds a shared lock on it for as
    long as it is open). ``in_use`` cannot see this process's own connections (a process never conflicts
    with its own locks), SQLite's does: it tracks the locks of every connection of the process per file.
    Its connection's close drops no lock of another connection of this process (SQLite keeps the file open
    until they are gone), where ``in_use``'s ``close`` of the ``-shm`` drops them all (POSIX locks are the
    process's). A database SQLite cannot read (corrupt) counts as not held, as ``_fold_logs`` treats it."""
    if not path.is_file():
        return False
    try:
        conn = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            # opened as any connection first (the -wal read, the -shm shared), so that its close, the last,
            # folds and removes them as every last close does; only then the exclusive lock is asked for
            conn.execute("PRAGMA schema_version").fetchone()
            conn.execute("PRAGMA locking_mode = EXCLUSIVE")
            conn.execute("BEGIN EXCLUSIVE")
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return exc.sqlite_errorname in {"SQLITE_BUSY", "SQLITE_LOCKED"}
    return False


def short_of_header(path: Path) -> str | None:
    """Why the database file at ``path`` is shorter than its header says it is, or None: a copy cut short
    (a transfer stopped, a full disk). SQLite reads the missing bytes as zeros and ``PRAGMA integrity_check``
    passes where they held only a row's text (a restore put in place a database whose row read back as
    zeros, the store raising on it). Not judged while a ``-wal`` or ``-journal`` beside it may hold pages
    the file does not yet (a live database), nor where the header's page count is not kept (SQLite < 3.7)."""
    if any(os.path.lexists(f"{path}-{log}") for log in ("wal", "journal")):
        return None
    try:
        with open(path, "rb") as file:
            header, size = file.read(100), os.fstat(file.fileno()).st_size
    except OSError:
        return None  # SQLite says why
    if len(header) < 100 or not header.startswith(b"SQLite format 3\0") or header[24:28] != header[92:96]:
        return None
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    expected = int.from_bytes(header[28:32], "big") * page_size
    if size >= expected:
        return None
    pages = expected // page_size
    return f"truncated: the file has {size:,} bytes, its header says {expected:,} ({pages:,} pages)"


__all__ = ["file_argument", "held_open", "in_use", "short_of_header"]


def refuse_open(path: Path, then: str = "restore") -> None:
    """InvalidInput while a connection of this process or another has the database at ``path`` open."""
    if held_open(path):  # first: in_use's close of the -shm would drop this process's own locks on it
        raise InvalidInput(
            f"{path} is open in another process or in this one: close every Store on it and stop every "
            f"worker and server using it, then {then}"
        )
    try:
        busy = in_use(path)
    except OSError as exc:  # e.g. a file where a folder of the path should be
        raise StorageError(f"cannot restore to {path}: {exc}") from exc
    if busy:
        raise InvalidInput(
            f"{path} is open in another process (its -shm file is locked): stop every worker and server "
            f"using it, then {then}"
        )
