"""The embedded SQLite backend: connections and their PRAGMAs, transactions, parameter encoding, errors.

Sync (sqlite3, one connection per thread) and async (aiosqlite, one connection per event loop task group)
connectors share everything here but the connection calls.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import DatabaseBusy, DatabaseError, InvalidInput, MigrationError, MusicstoreError
from ..models import RowReader, to_micros
from ..queries import Query, execute
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
        if message == "unable to open database file" and (why := unwritable_folder(where)):
            return DatabaseError(
                f"{where}: {message}: {why}; SQLite in WAL mode keeps its -wal and -shm files beside the "
                "database, even to read it: open it in a folder this user can write (a copy of it, with any "
                "-wal file)"
            )
    if isinstance(exc, sqlite3.IntegrityError):
        return DatabaseError(f"{where}: a schema constraint refused the change ({message})")
    return DatabaseError(f"{where}: {message}")


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


def _prepare(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseError(f"{path}: cannot create the database's folder ({exc}); check the URL") from exc


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
        _prepare(self.path)
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
        left = lent[conn] - 1
        if left:
            lent[conn] = left
            return
        del lent[conn]
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


def _daemonic(connecting: Any) -> None:
    """Make an aiosqlite connection's thread (not started yet) a daemon: a store left open when its event loop
    ends (``asyncio.run`` returning without ``close``) would keep the process from ever exiting, each thread
    waiting for work that cannot come (aiosqlite 0.22: a thread the connection owns; before, the connection
    itself). What it committed is on disk; an unfinished transaction rolls back, as after any crash."""
    thread = getattr(connecting, "_thread", connecting)
    if isinstance(thread, threading.Thread) and not thread.is_alive():
        thread.daemon = True


async def _stopped(connecting: Any) -> None:
    """Wait for the thread of an aiosqlite connection that failed to open: aiosqlite tells it to stop without
    waiting, and a thread that answers after the event loop closed (an ``asyncio.run`` ending on this error)
    prints 'RuntimeError: Event loop is closed' tracebacks on stderr."""
    thread = getattr(connecting, "_thread", None)
    if thread is not None and thread.is_alive():
        await asyncio.to_thread(thread.join, 5.0)


async def execute_on_thread(
    conn: Any, query: Query, params: dict[str, Any], rows: RowReader[Any] | None = None
) -> Any:
    """``queries.execute`` for an aiosqlite connection, run whole on the connection's own thread (one call:
    its statement, its fetch and its cursor's end), so no cursor ever reaches the awaiting task. Awaited as
    three calls (``execute``, a fetch, ``close``), a task cancelled as the statement's cursor came back to it
    left that cursor in the cancelled await (kept as long as its ``CancelledError`` was: a kept task or
    error), its statement unfinished on the connection: each later ``COMMIT`` on it failed, ``cannot commit
    transaction - SQL statements in progress``."""
    return await conn._execute(execute, conn._conn, query, params, rows)


class AsyncSQLiteConnector:
    """aiosqlite connections (each runs sqlite3 on its own thread), kept in an idle list between uses: at
    most ``pool_size`` lent out at once (a connection whose cancelled transaction still rolls back counts);
    a task beyond them waits up to ``busy_timeout`` for one, then ``DatabaseBusy``, as from PostgreSQL's pool.
    """

    dialect = DIALECT
    driver = "aiosqlite"
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    encode = staticmethod(encode)
    execute = staticmethod(execute_on_thread)
    closed = False
    """Set by ``close``: no connection is opened again."""

    def __init__(self, path: Path, *, busy_timeout: float, pool_size: int = 10) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.pool_size = pool_size
        self._slots: asyncio.Semaphore | None = None  # the connections that may be lent out; made per loop
        self._slots_loop: asyncio.AbstractEventLoop | None = None
        self._taken = 0  # slots taken (a connection lent, opening, or rolling back)
        self._idle: list[Any] = []
        self._lent: set[Any] = set()  # in use; one lent before close() is closed when it comes back
        self._rolling_back: dict[Any, asyncio.Future[None]] = {}  # a cancelled transaction's rollback
        self._settling: set[asyncio.Task[None]] = set()  # connections given back once their rollback ends

    def translate(self, exc: BaseException) -> MusicstoreError | None:
        return translate(exc, self.path)

    async def _open(self) -> Any:
        import aiosqlite

        if self.closed:
            raise closed_store()
        _prepare(self.path)
        connecting = aiosqlite.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        _daemonic(connecting)
        try:
            conn = await connecting
        except BaseException:
            await _stopped(connecting)
            raise
        try:
            deadline = time.monotonic() + self.busy_timeout
            while True:  # as switch_to_wal
                try:
                    async with conn.execute("PRAGMA journal_mode = WAL") as cursor:
                        row = await cursor.fetchone()
                    break
                except sqlite3.OperationalError as exc:
                    if not switch_may_retry(exc, deadline):
                        raise
                await asyncio.sleep(WAL_RETRY_SECONDS)
            _check_wal(row[0] if row else "", self.path)
            for pragma in PRAGMAS:
                await conn.execute(pragma)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def acquire(self) -> Any:
        """An idle connection, or a new one, once one of the ``pool_size`` slots is free."""
        await self._take_slot()
        try:
            if self.closed:  # closed while it waited
                raise closed_store()
            conn = self._idle.pop() if self._idle else await self._open()
        except BaseException:
            self._free_slot()
            raise
        self._lent.add(conn)
        return conn

    async def _take_slot(self) -> None:
        """One of the ``pool_size`` slots, waiting up to ``busy_timeout`` (then ``DatabaseBusy``)."""
        loop = asyncio.get_running_loop()
        if self._slots_loop is not loop:  # a semaphore's waits belong to one loop (asyncio.run after another)
            if self._slots_loop is not None and self._slots_loop.is_running():  # another thread's, meanwhile
                raise InvalidInput(
                    "this AsyncStore is in use in another event loop (another thread's): open one per loop"
                )
            self._slots = asyncio.Semaphore(max(self.pool_size - self._taken, 0))
            self._slots_loop = loop
        slots = self._slots
        assert slots is not None
        if not slots.locked():
            await slots.acquire()  # free: taken without a wait
        else:
            try:
                async with asyncio.timeout(self.busy_timeout):
                    await slots.acquire()
            except TimeoutError:
                raise DatabaseBusy(
                    f"{self.path}: all {self.pool_size} of the store's connections stayed in use past the "
                    f"busy timeout ({self.busy_timeout:g} s); raise pool_size"
                ) from None
        self._taken += 1

    def _free_slot(self) -> None:
        self._taken -= 1
        if self._slots is not None:
            self._slots.release()

    async def release(self, conn: Any) -> None:
        rolling_back = self._rolling_back.pop(conn, None)
        if rolling_back is not None:  # a cancelled transaction's: lent to no one until its rollback ends
            settling = asyncio.ensure_future(self._settle(conn, rolling_back))
            self._settling.add(settling)
            settling.add_done_callback(self._settling.discard)
            return
        self._free_slot()
        if conn in self._lent and not conn.in_transaction and not self.closed:
            self._lent.remove(conn)
            self._idle.append(conn)
        else:  # lent (or still opening) before close(), or its rollback failed: never hand it out again
            self._lent.discard(conn)
            await conn.close()

    async def _settle(self, conn: Any, rolling_back: asyncio.Future[None]) -> None:
        """Give ``conn`` back (``release``) once the rollback of its cancelled transaction has run (a task
        of its own: what fails here has no caller to raise to; a connection that failed is not lent again)."""
        with suppress(Exception):
            await rolling_back
        with suppress(Exception):
            await self.release(conn)

    @asynccontextmanager
    async def transaction(self, conn: Any, *, write: bool, alone: bool = False) -> AsyncIterator[None]:
        """A transaction on ``conn`` (``alone`` changes nothing here: writes begin ``BEGIN IMMEDIATE``)."""
        try:
            await conn.execute(BEGIN_WRITE if write else BEGIN_READ)
            yield
            await conn.execute("COMMIT")
        except BaseException as exc:
            # A cancelled BEGIN or COMMIT still runs on the connection's thread; this rollback is queued
            # behind it, so the connection leaves any transaction before its next use.
            rolling_back = asyncio.ensure_future(conn.rollback())
            if isinstance(exc, asyncio.CancelledError):
                # Not awaited: a BEGIN IMMEDIATE waiting for the writer lock runs up to busy_timeout, and the
                # cancelled task ends now; ``release`` lends the connection again once the rollback ran.
                self._rolling_back[conn] = rolling_back
                raise
            with suppress(sqlite3.Error):
                await asyncio.shield(rolling_back)
            raise

    async def close(self) -> None:
        """Close the idle connections (a lent one when it comes back; one whose cancelled transaction is
        still rolling back once it has: waited for here); the store opens none again."""
        self.closed = True
        idle, self._idle, self._lent = self._idle, [], set()
        if self._slots is not None and self._slots.locked():
            self._slots.release()  # wakes a task waiting for a slot: it raises closed_store, waking the next
        for conn in idle:
            await conn.close()
        while self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
