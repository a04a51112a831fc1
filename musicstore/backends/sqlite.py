"""The embedded SQLite backend: connections and their PRAGMAs, transactions, parameter encoding, errors.

Sync (sqlite3, one connection per thread) here; the async connector (aiosqlite) in ``sqlite_async``, which
shares everything here but the connection calls.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import DatabaseBusy, DatabaseError, MigrationError, MusicstoreError
from ..models import to_micros
from ..queries import execute, load
from . import closed_store

DIALECT = "sqlite"
BEGIN_WRITE = "BEGIN IMMEDIATE"
BEGIN_READ = "BEGIN"
PRAGMAS = ("PRAGMA synchronous = NORMAL", "PRAGMA foreign_keys = ON")


_last: list[tuple[datetime | None, int, datetime | None, int]] = [(None, 0, None, 0)]
"""In its one item, the two moments ``encode`` converted last, each with its microseconds, the latest first
(an operation's moments are often bound by several of its queries: a claim batch's ``now`` and lease expiry
by each claim). Held, so no other object can take their identity; one tuple, replaced whole, so a thread
never reads one moment's microseconds with another."""


def encode(params: dict[str, Any]) -> dict[str, Any]:
    """Bind datetimes as integer microseconds since the epoch, the schema's timestamp encoding."""
    encoded = params
    for key, value in params.items():
        if isinstance(value, datetime):
            if encoded is params:
                encoded = dict(params)  # copied once, and only when there is something to convert
            last = _last[0]
            if value is last[0]:
                encoded[key] = last[1]
            elif value is last[2]:
                encoded[key] = last[3]
            else:
                micros = encoded[key] = to_micros(value)
                _last[0] = (value, micros, last[0], last[1])
    return encoded


def translate(exc: BaseException, where: object) -> MusicstoreError | None:
    """The musicstore error for a sqlite3 error (None for anything else)."""
    if not isinstance(exc, sqlite3.Error):
        return None
    message = str(exc)
    if isinstance(exc, sqlite3.OperationalError):
        if "locked" in message or "busy" in message:
            return DatabaseBusy(
                f"{where}: the database stayed locked by another writer past the busy timeout ({message}); "
                "retry, or raise busy_timeout"
            )
        if "no such table" in message:
            return MigrationError(
                f"{where}: {message}: the schema is missing; run `musicstore migrate` or musicstore.migrate()"
            )
        folder = getattr(exc, "sqlite_errorname", "") == "SQLITE_READONLY_DIRECTORY"  # WAL's -shm not made
        if (message == "unable to open database file" or folder) and (why := unwritable_folder(where)):
            return DatabaseError(
                f"{where}: {message}: {why}; SQLite in WAL mode keeps its -wal and -shm files beside the "
                "database, even to read it: open it in a folder this user can write (a copy of it, with any "
                "-wal file)"
            )
    if isinstance(exc, sqlite3.IntegrityError):
        return DatabaseError(f"{where}: a schema constraint refused the change ({message})")
    if message == "unable to open database file":  # SQLite says no more: one cause is the descriptors
        message += out_of_descriptors()
    message += file_write_failure(exc, where)
    return DatabaseError(f"{where}: {message}")


def out_of_descriptors() -> str:
    """Why SQLite could not open a file where this process has each file descriptor it may open in use
    (``ulimit -n``; blank otherwise): SQLite says only 'unable to open database file'."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    try:
        used = len(os.listdir("/proc/self/fd")) - 1  # the listing's own
    except OSError as exc:
        if exc.errno != errno.EMFILE:
            return ""
        used = soft
    if soft == resource.RLIM_INFINITY or used < soft - 2:
        return ""
    return f" (this process has {used} of its {soft} file descriptors open: raise ulimit -n, or open fewer)"


def file_write_failure(exc: BaseException, path: object) -> str:
    """``write_failure`` for a write to the database file at ``path`` (a ``Path``; else "")."""
    if not isinstance(exc, sqlite3.Error) or not isinstance(path, Path):
        return ""
    return write_failure(exc, path.parent, max(file_sizes(path)))


def file_sizes(path: Path) -> tuple[int, int]:
    """Bytes of the database file at ``path`` and of its -wal (0 for one that cannot be read)."""
    sizes = [0, 0]
    for n, file in enumerate((path, Path(f"{path}-wal"))):
        with contextlib.suppress(OSError):
            sizes[n] = file.stat().st_size
    return sizes[0], sizes[1]


WRITE_MARGIN = 1 << 20
"""Bytes beyond a database file's size that a failed write is taken to have needed (a transaction's pages)."""


def write_failure(exc: sqlite3.Error, folder: Path, size: int, margin: int = WRITE_MARGIN) -> str:
    """Why SQLite's write failed, where its "disk I/O error" does not say ("" where it cannot tell): it names
    a full disk (ENOSPC) alone, and a file past the process's size limit (``ulimit -f``: EFBIG) is an I/O
    error. ``size``: the bytes of the file being written; ``margin``: what the write may have added."""
    if not (exc.sqlite_errorname or "").startswith("SQLITE_IOERR"):
        return ""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and limit < size + margin:
        return f" (file too large: this process's file size limit, ulimit -f, is {limit:,} bytes)"
    try:
        stats = os.statvfs(folder)
    except OSError:
        return ""
    free = stats.f_bavail * stats.f_frsize
    return f" (no space left: {free:,} bytes free on the file system)" if free < size + margin else ""


def unwritable_folder(where: object) -> str | None:
    """Why the database's folder cannot take the -wal and -shm files, if it cannot (None: it can, unknown)."""
    if not isinstance(where, Path):
        return None
    folder = where.parent
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"its folder {folder} is on a read-only file system"
        if not os.access(folder, os.W_OK):
            return f"its folder {folder} is not writable by this user (permission denied)"
    except OSError:
        return None
    return None


MISSING_REMEDY = (
    "create it with musicstore.migrate(url) or `musicstore migrate`, or open the store with migrate=True"
)
"""The end of the message of a SQLite database that is not there (``require_file``'s, and by default
``drivers.opening.refuse_missing_file``'s)."""


def require_file(path: Path | str, remedy: str = MISSING_REMEDY) -> None:
    """Refuse, before a connection opens (a store's, the waits' poller's), a database file that is not there:
    sqlite3 would create an empty one, which then failed for its schema and stayed behind (an ``AsyncStore``
    used without ``open()``, whose check ``Store(url)`` makes; a database removed while a store was open).
    Only ``migrate`` creates one. SQLite's ``:memory:`` names no file (no URL gives it; a test's stand-in).
    ``remedy`` ends the message (the CLI names its command)."""
    if path != ":memory:" and not os.path.exists(path):
        raise MigrationError(f"no database at {path}; {remedy}")


WAL_RETRY_SECONDS = 0.005
"""How long a switch to WAL that SQLite answered "locked" waits before it tries again."""


def switch_to_wal(conn: sqlite3.Connection, deadline: float | None) -> str:
    """``PRAGMA journal_mode = WAL`` (returns the mode now), tried again until ``deadline`` (monotonic) while
    the database is locked: switching a file still in a rollback journal needs its exclusive lock, and where
    two connections both hold a read lock and want it, SQLite answers one of them "database is locked" at
    once, busy timeout or not (8 processes switching at once: 7 of 160 failed; 8 opening a migrated file in a
    rollback journal with Store(): 7 of 96)."""
    while True:
        try:
            mode: str = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            return mode
        except sqlite3.OperationalError as exc:
            if not switch_may_retry(exc, deadline):
                raise
        time.sleep(WAL_RETRY_SECONDS)


def switch_may_retry(exc: sqlite3.OperationalError, deadline: float | None) -> bool:
    """Whether a switch to WAL that failed with ``exc`` is tried again: the file was locked, before
    ``deadline``."""
    locked = exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return locked and (deadline is None or time.monotonic() < deadline)


def _check_wal(mode: str, path: Path) -> None:
    if mode != "wal":
        raise DatabaseError(f"{path}: SQLite refused WAL mode (journal_mode is {mode!r})")


class _Thread(threading.local):
    conn: sqlite3.Connection | None = None
    """This thread's connection (class defaults: reading an unset one raises nothing)."""
    forks = -1
    """``SQLiteConnector.forks`` when it was opened."""


class SQLiteConnector:
    """sqlite3 connections, one per thread (and per process after a fork), opened in WAL mode.

    Rows come back as tuples (no row factory): operations build them by position (``musicstore.queries``).
    """

    dialect = DIALECT
    driver = "sqlite3"
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    encode = staticmethod(encode)
    closed = False
    """Set by ``close``: no connection is opened again."""
    stamp = staticmethod(to_micros)
    """One moment as ``encode`` binds it (``runner.fixed_write``: a ``Fixed`` write's parameters are made
    with their moments encoded, and need no ``encode``)."""
    BEGIN_WRITE = BEGIN_WRITE
    """What starts a write transaction (``store._direct_write``)."""
    BEGIN_LATER = BEGIN_WRITE
    """What starts a write whose first statement may commit by itself (``Operation.alone``): here the same,
    the writer lock taken up front."""
    COMMIT = "COMMIT"
    forks = 0
    """How many forks led to this process: a connection opened before a fork is never used after it."""

    @classmethod
    def _forked(cls) -> None:
        cls.forks += 1

    def __init__(self, path: Path, *, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._local = _Thread()
        self._opened: dict[tuple[threading.Thread, int], sqlite3.Connection] = {}
        self._lent: dict[sqlite3.Connection, int] = {}  # in use (acquired, not yet released): how many times
        self._lock = threading.Lock()

    def translate(self, exc: BaseException) -> MusicstoreError | None:
        return translate(exc, self.path)

    def _open(self) -> sqlite3.Connection:
        if self.closed:
            raise closed_store()
        require_file(self.path)
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=256,
        )
        try:
            _check_wal(switch_to_wal(conn, time.monotonic() + self.busy_timeout), self.path)
            for pragma in PRAGMAS:
                conn.execute(pragma)
        except BaseException:
            conn.close()
            raise
        return conn

    def acquire(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use; lent until :meth:`release`: :meth:`close` closes no
        connection another thread is using (sqlite3 closing one under a running statement crashes the
        process), its thread does when it gives it back."""
        local = self._local
        conn = local.conn
        if conn is None or local.forks != self.forks:  # a forked child opens its own
            conn = self._open()
            pid = os.getpid()
            local.conn, local.forks = conn, self.forks
            with self._lock:
                self._close_finished_threads(pid)
                self._opened[threading.current_thread(), pid] = conn
        lent = self._lent
        lent[conn] = lent.get(conn, 0) + 1  # marked before ``closed`` is read; close() sets it, then looks
        if self.closed:
            self.release(conn)
            raise closed_store()
        return conn

    def _close_finished_threads(self, pid: int) -> None:
        """Close what threads of this process that have ended opened (a thread pool's threads come and go)."""
        for key in [key for key in self._opened if key[1] == pid and not key[0].is_alive()]:
            self._opened.pop(key).close()

    def release(self, conn: sqlite3.Connection) -> None:
        """The connection stays with its thread; closed here if the store was closed while it was lent."""
        lent = self._lent
        left = lent.pop(conn, 1) - 1  # (one not lent here, as a test's wrapper of it, is given back as one)
        if left:
            lent[conn] = left
            return
        if self.closed:
            with self._lock:
                conn.close()

    @staticmethod
    def begin(conn: sqlite3.Connection, *, write: bool) -> None:
        """BEGIN IMMEDIATE (write: the writer lock up front) or BEGIN."""
        conn.execute(BEGIN_WRITE if write else BEGIN_READ)

    @staticmethod
    def commit(conn: sqlite3.Connection) -> None:
        conn.execute("COMMIT")

    @staticmethod
    def rollback(conn: sqlite3.Connection) -> None:
        """ROLLBACK, if a transaction is still open (a failed COMMIT leaves it open)."""
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    def close(self) -> None:
        """Close every connection, or, one another thread is using, as that thread gives it back; the store
        opens none again and lends none (``closed_store``)."""
        self.closed = True
        with self._lock:
            for conn in self._opened.values():
                if conn not in self._lent:
                    conn.close()
            self._opened.clear()
        self._local = _Thread()


os.register_at_fork(after_in_child=SQLiteConnector._forked)


STORE_TABLES = frozenset(
    {
        *("generations", "prompts", "renditions", "owner_lanes", "owner_limits", "generation_totals"),
        *("generation_day_totals", "generation_model_totals", "prompt_totals", "rendition_totals"),
    }
)
"""The tables musicstore's migrations make (``tests/test_review_s38.py`` checks)."""


def _check_sqlite_file(path: Path, timeout: float) -> None:
    """Refuse at once, before anything is written, a file that is not a SQLite database (yoyo's lock loop
    would retry it until timeout); one without a musicstore schema that holds another program's tables of
    the store's names (migrate failed half-way, the file switched to WAL, yoyo's tables in it, 0001
    recorded; an application's database with tables of other names takes the store's beside them, asked
    for); and one whose text is UTF-16 with no schema yet (it compares text by UTF-16's bytes, not by the
    byte order of UTF-8 the store's lists promise). Waits up to ``timeout`` for another connection's
    exclusive lock (migrate's ``lock_timeout``)."""
    if not path.exists():
        return
    with contextlib.closing(sqlite3.connect(path, timeout=timeout)) as conn:
        encoding = conn.execute("PRAGMA encoding").fetchone()[0]
        tables = [row["name"] for row in execute(conn, load(DIALECT, "sqlite3")["table_names"], {})]
    if "_yoyo_migration" in tables:
        return
    if taken := [name for name in tables if name in STORE_TABLES]:
        raise MigrationError(
            f"{path} holds another program's tables of musicstore's names ({', '.join(taken)}) and no"
            " musicstore schema: nothing was written; migrate a new file"
        )
    if encoding != "UTF-8":
        raise MigrationError(
            f"{path}'s text encoding is {encoding}, which orders text otherwise than the store promises:"
            " nothing was written; migrate a new file (SQLite's default, UTF-8)"
        )


def unopened_why(exc: BaseException, path: Path) -> str:
    """Why migrate could not open the SQLite database at ``path``, after SQLite's message ("" unknown)."""
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return "; another connection held it locked past lock_timeout: retry, or raise lock_timeout"
    if why := unwritable_folder(path):
        return f"; {why}: SQLite in WAL mode keeps its -wal and -shm files beside the database"
    return ""


def refuse_unmigrated(path: Path, remedy: str) -> None:
    """MigrationError for a SQLite file that does not exist (``remedy`` ends the message) or lacks the schema
    (no ``_yoyo_migration`` table), found without changing it: a store's first connection switches a file to
    WAL mode, which the file keeps (another program's database opened by mistake, an empty file). Nothing
    where it cannot tell (not a database, a folder): the store's own open says why."""
    require_file(path, remedy)
    try:
        # no wait: a file another connection holds (EXCLUSIVE) goes on to the store's own open, which waits
        # for it up to the store's busy timeout (this one's default, 5 s, came on top of it)
        with contextlib.closing(sqlite3.connect(path, timeout=0)) as conn:
            if conn.execute("PRAGMA table_info(_yoyo_migration)").fetchall():
                return
    except sqlite3.Error:
        return
    raise MigrationError(
        f"{path}: no such table: _yoyo_migration: the schema is missing; run `musicstore migrate` or "
        "musicstore.migrate()"
    )
