"""Online backup of a live SQLite store, and restore; PostgreSQL is pg_dump's job (docs/maintenance.md).

``backup`` copies with the sqlite3 backup API in steps of ``pages`` pages, inside one read transaction on the
source: in WAL mode that transaction is a fixed snapshot that writers never wait for, so the copy is the
database exactly as it was when the backup began (every transaction committed before that, none after) while
workers go on writing, and the steps never restart. The copy is written beside the destination under a
temp name, checked with ``PRAGMA integrity_check``, fsynced and put in place: renamed over the destination
with ``overwrite=True``, else hard-linked to it, which fails if a file appeared there meanwhile (a destination
open elsewhere is refused; a ``-wal`` left beside it is set aside, never replayed onto the copy).
Temps that a backup or restore killed midway left beside the same destination are removed first, those of
processes that are gone only.

``restore`` refuses while any connection has the target database open: one of this process (SQLite's own
exclusive lock on the file, ``held_open``) or of another (the probe SQLite itself uses: the lock every
connection holds on byte 128 of the ``-shm`` file), checks the backup, checkpoints the old
database's ``-wal`` into it (so that a restore killed midway loses none of its commits), and replaces it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .. import validate
from ..backends.sqlite import file_sizes, out_of_descriptors, unwritable_folder, write_failure
from ..errors import InvalidInput, StorageError
from ..filestore.fsync import fsync
from ..urls import resolve, without_password
from .backup_files import (
    _fold_logs,
    _make_folder,
    _only_a_file,
    _remove_dead_temps,
    _remove_temp,
    _replace_database,
    _temp_beside,
    _writable_folder,
)
from .holders import file_argument, in_use, refuse_open, short_of_header

PGDUMP_HINT = (
    "online backup here is for SQLite; for PostgreSQL use pg_dump, e.g. "
    "`pg_dump --format=custom --file=musicstore.dump DBNAME`, and restore with "
    "`pg_restore --dbname=NEWDB musicstore.dump` (see docs/maintenance.md)"
)


@dataclass(slots=True)
class BackupReport:
    """A finished backup or restore: where from and to, how many pages and bytes, how long it took."""

    source: str
    destination: str
    pages: int
    bytes: int
    integrity: str
    seconds: float


def _sqlite_path(url: str | None) -> Path:
    target = resolve(url)
    if target.dialect != "sqlite":
        raise InvalidInput(f"{without_password(target.url)}: {PGDUMP_HINT}")
    assert target.path is not None
    return target.path


def _read_only(
    path: str | Path, isolation_level: Literal["DEFERRED"] | None = "DEFERRED"
) -> sqlite3.Connection:
    """A read-only connection to exactly the file at ``path``: the URI percent-encodes it, so a '#', '?' or
    '%' in its name is part of the name (pasted in as is, it cut the name short)."""
    uri = f"{Path(path).absolute().as_uri()}?mode=ro"
    return sqlite3.connect(uri, uri=True, isolation_level=isolation_level)


def integrity(path: str | Path) -> str:
    """``PRAGMA integrity_check`` of a database file: "ok", or SQLite's list of problems (or why the file
    cannot be read as a database). A ``path`` that is no path (another type, empty, a NUL) is InvalidInput."""
    path = file_argument(path, "path")
    if (short := short_of_header(path)) is not None:  # integrity_check passes where zeros stand in for text
        return short
    try:
        conn = _read_only(path)
    except sqlite3.Error as exc:
        return f"cannot open {path} as a SQLite database: {exc}"
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return f"not a SQLite database: {exc}"
    finally:
        conn.close()
    return "\n".join(str(row[0]) for row in rows)


def _holds_generations(path: Path) -> bool:
    """Whether the database at ``path`` has musicstore's ``generations`` table."""
    conn = _read_only(path)
    try:
        return bool(conn.execute("PRAGMA table_info(generations)").fetchall())
    finally:
        conn.close()


def _copy(
    source: sqlite3.Connection,
    temp: Path,
    pages: int,
    progress: Callable[[int], None] | None,
) -> int:
    """Copy ``source`` (already in its read transaction) to ``temp``; returns the page count."""
    total = 0

    def step(status: int, remaining: int, count: int) -> None:
        nonlocal total
        total = count
        if progress is not None:
            progress(count - remaining)

    target = sqlite3.connect(temp)
    try:
        source.backup(target, pages=pages, progress=step, sleep=0)
        target.execute("PRAGMA journal_mode = DELETE")  # a single self-contained file
    finally:
        target.close()
    if progress is not None and total == 0:
        progress(0)
    return total


def _finish(
    temp: Path, destination: Path, *, overwrite: bool, started: float, source: str, pages: int
) -> BackupReport:
    checked = integrity(temp)
    if checked != "ok":
        raise StorageError(
            f"the copy at {temp} failed PRAGMA integrity_check: {checked}; nothing was replaced"
        )
    fsync(temp)
    refuse_open(destination, "back up to it")  # it would be replaced under its connections
    try:  # as restore: a -wal left beside the old file (a killed reader) is not replayed onto the copy
        _replace_database(temp, destination, overwrite)
    except FileExistsError as exc:
        raise InvalidInput(
            f"{destination} exists (it appeared while the backup ran) and was left as it is; "
            "pass overwrite=True to replace it"
        ) from exc
    except OSError as exc:
        raise StorageError(f"putting the backup at {destination} failed: {exc}") from exc
    return BackupReport(
        source=source,
        destination=str(destination),
        pages=pages,
        bytes=destination.stat().st_size,
        integrity=checked,
        seconds=round(time.monotonic() - started, 3),
    )


def _unopenable(exc: sqlite3.Error, path: Path) -> str:
    """SQLite's message for the database at ``path``, with why it cannot be opened where its folder says so
    (a database in WAL mode needs its -wal and -shm beside it, even to be read)."""
    unopened = str(exc) == "unable to open database file"
    why = unwritable_folder(path) if unopened else None
    if why is None:
        return str(exc) + (out_of_descriptors() if unopened else "")
    return (
        f"{exc}: {why}; SQLite in WAL mode keeps its -wal and -shm files beside the database, even to read "
        "it: back up a copy of it (with any -wal file) in a folder this user can write"
    )


def backup(
    url: str | None,
    destination: str | Path,
    *,
    pages: int = 1024,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> BackupReport:
    """Copy the live SQLite database at ``url`` to the file ``destination``, consistently, while it is in use.

    The copy is a snapshot taken when the backup begins. ``pages`` pages are copied per step (``-1``: all in
    one); ``progress`` is called after each step with the number of pages copied. An existing
    ``destination`` is replaced only with ``overwrite=True``; without it, a file that appears there while the
    backup runs is left as it is (InvalidInput). A symlink there is not followed: ``overwrite`` replaces the
    link; without it one to a missing file is refused before any copy. A destination some connection has
    open is not replaced (InvalidInput); a ``-wal``/``-shm``/``-journal`` left beside it is removed, never
    replayed onto the copy.
    PostgreSQL URLs raise InvalidInput pointing to pg_dump.
    """
    started = time.monotonic()
    path = _sqlite_path(url)
    if not path.is_file():
        what = "is a folder, not a database file" if path.is_dir() else "does not exist"
        raise InvalidInput(f"{path} {what}: nothing to back up")
    pages = validate.integer(pages, "pages", -1, 2**31 - 1)  # sqlite3 takes a C int: OverflowError above
    overwrite = validate.flag(overwrite, "overwrite")
    if pages == 0:
        raise InvalidInput(f"pages must be a positive number of pages per step, or -1 for all, got {pages}")
    validate.callback(progress, "progress")
    dest = file_argument(destination, "destination").absolute()
    real, real_db = dest.resolve(), path.resolve()  # however it is spelled: .., symlinks
    if real == real_db or real in (Path(f"{real_db}-{log}") for log in ("wal", "shm", "journal")):
        raise InvalidInput(f"the destination {dest} is the database itself; choose another file")
    _only_a_file(dest, "a backup file")
    if dest.is_symlink() and not dest.exists() and not overwrite:  # the link is there: refused, not followed
        raise InvalidInput(f"{dest} is a symlink to a missing file; pass overwrite=True to replace the link")
    if dest.exists() and not overwrite:
        raise InvalidInput(f"{dest} exists; pass overwrite=True to replace it")
    _make_folder(dest.parent)
    _writable_folder(dest, "the backup")
    _remove_dead_temps(dest)
    temp = _temp_beside(dest)
    source = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    try:
        source.execute("BEGIN")
        source.execute("PRAGMA schema_version").fetchone()  # opens the read transaction: the snapshot
        if not source.execute("PRAGMA table_info(generations)").fetchall():  # an empty file, another's
            raise InvalidInput(
                f"{path} holds no musicstore database (no generations table; migrate it first?): nothing "
                "was backed up"
            )
        try:
            count = _copy(source, temp, pages, progress)
            return _finish(temp, dest, overwrite=overwrite, started=started, source=str(path), pages=count)
        finally:
            with contextlib.suppress(sqlite3.Error):
                source.execute("ROLLBACK")
            _remove_temp(temp)
    except sqlite3.Error as exc:
        copied = sum(file_sizes(path))  # the copy's bytes: about the database and its log
        why = _unopenable(exc, path) + write_failure(exc, dest.parent, 0, margin=copied)
        raise StorageError(f"backing up {path} to {dest} failed: {why}") from exc
    finally:
        source.close()


def restore(
    backup_path: str | Path,
    url: str | None,
    *,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> BackupReport:
    """Put the backup at ``backup_path`` in place as the SQLite database at ``url``.

    Refuses (InvalidInput) while another process, or a connection of this one (a ``Store`` not closed), has
    that database open (stop the workers and servers, close the stores, first), when the backup fails
    ``PRAGMA integrity_check``, and when the database exists (or appears while the restore runs) unless
    ``overwrite=True``; the connections are looked for again once the backup is copied, just before the swap.
    A ``url`` that names a symlink restores the file it points to, as SQLite opens it.
    The backup is copied (it stays as it is) to a temp
    file beside the target; the old database's ``-wal`` is checkpointed into it (``_fold_logs``) and its
    ``-wal``/``-shm``/``-journal`` files set aside and removed; then the copy is put in place
    (``_put_in_place``).
    """
    started = time.monotonic()
    overwrite = validate.flag(overwrite, "overwrite")
    validate.callback(progress, "progress")
    # the file SQLite opens: a symlink's target, its -wal and -shm beside it (the link was replaced by a plain
    # file, the database moved off the volume it named, and the old one left there with its logs)
    path = _sqlite_path(url)
    if path.is_symlink():
        path = path.resolve()
    _only_a_file(path, "a database file")
    source_path = file_argument(backup_path, "backup_path")
    if not source_path.is_file():
        what = "is a folder, not a backup file" if source_path.is_dir() else "does not exist"
        if source_path.exists() and not source_path.is_dir():
            what = "is not a regular file (a device, a pipe or a socket), not a backup file"
        raise InvalidInput(f"backup {source_path} {what}")
    checked = integrity(source_path)
    if checked != "ok":
        raise InvalidInput(f"backup {source_path} failed PRAGMA integrity_check: {checked}")
    if not _holds_generations(source_path):  # an empty file passes integrity_check
        raise InvalidInput(
            f"backup {source_path} holds no musicstore database (no generations table); nothing was replaced"
        )
    refuse_open(path)
    if path.exists() and not overwrite:
        raise InvalidInput(f"{path} exists; pass overwrite=True to replace it with the backup")
    _make_folder(path.parent)
    _writable_folder(path, "the restored database")
    _remove_dead_temps(path)
    temp = _temp_beside(path)
    source = _read_only(source_path, isolation_level=None)
    try:
        count = _copy(source, temp, -1, progress)
        source.close()  # before refuse_open: a backup restored onto itself is not "open in this process"
        checked = integrity(temp)
        if checked != "ok":
            raise StorageError(f"the copy at {temp} failed PRAGMA integrity_check: {checked}")
        fsync(temp)
        refuse_open(path)  # again: a worker may have opened it while the backup was copied (minutes)
        _fold_logs(path)
        _replace_database(temp, path, overwrite)
    except FileExistsError as exc:
        raise InvalidInput(
            f"{path} exists (it appeared while the restore ran) and was left as it is; pass overwrite=True "
            "to replace it with the backup"
        ) from exc
    except (sqlite3.Error, OSError) as exc:
        why = str(exc)
        if isinstance(exc, sqlite3.Error):
            with contextlib.suppress(OSError):
                why += write_failure(exc, path.parent, 0, margin=source_path.stat().st_size)
        raise StorageError(f"restoring {source_path} to {path} failed: {why}") from exc
    finally:
        source.close()
        _remove_temp(temp)
    return BackupReport(
        source=str(source_path),
        destination=str(path),
        pages=count,
        bytes=path.stat().st_size,
        integrity=checked,
        seconds=round(time.monotonic() - started, 3),
    )


__all__ = ["PGDUMP_HINT", "BackupReport", "backup", "in_use", "integrity", "restore"]
