"""The SQLite backend's async driver (``musicstore.backends.sqlite``): the ``AsyncStore``'s connector over
aiosqlite connections (each runs sqlite3 on its own thread), kept in an idle list between uses."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from ..errors import DatabaseBusy, InvalidInput, MusicstoreError
from ..models import RowReader
from ..queries import Query, execute
from . import closed_store
from .sqlite import (
    BEGIN_READ,
    BEGIN_WRITE,
    DIALECT,
    PRAGMAS,
    WAL_RETRY_SECONDS,
    _check_wal,
    encode,
    require_file,
    switch_may_retry,
    translate,
)


def _daemonic(connecting: Any) -> None:
    """Make an aiosqlite connection's thread (not started yet) a daemon: a store left open when its event loop
    ends (``asyncio.run`` returning without ``close``) would keep the process from ever exiting, each thread
    waiting for work that cannot come (aiosqlite 0.22: a thread the connection owns; before, the connection
    itself). What it committed is on disk; an unfinished transaction rolls back, as after any crash. On
    aiosqlite 0.22 the thread runs ``_worker``, which outlives a closed event loop."""
    thread = getattr(connecting, "_thread", connecting)
    if not isinstance(thread, threading.Thread) or thread.is_alive():
        return
    thread.daemon = True
    from aiosqlite import core

    if getattr(thread, "_target", None) is getattr(core, "_connection_worker_thread", _worker):
        connecting._thread = threading.Thread(
            target=_worker, args=(connecting._tx,), name=thread.name, daemon=True
        )


def _worker(calls: Any) -> None:
    """aiosqlite 0.22's connection thread (``core._connection_worker_thread``) but for one thing: an answer
    for an event loop that has closed is dropped. aiosqlite's thread raised 'Event loop is closed' there
    and ended, and the calls queued behind never ran: an ``asyncio.run`` that ended while a cancelled
    write's ``BEGIN IMMEDIATE`` still waited for the writer lock left the rollback queued behind it, and the
    dead thread's connection held SQLite's writer lock for the rest of the process (every other writer, in
    any process: DatabaseBusy)."""
    from aiosqlite.core import _STOP_RUNNING_SENTINEL, set_exception, set_result

    answer: Callable[[Any, Any], None]
    while True:
        future, function = calls.get()
        try:
            result, answer = function(), set_result
        except BaseException as exc:  # as aiosqlite: the awaiting task's to raise
            result, answer = exc, set_exception
        if future is not None:
            with suppress(RuntimeError):  # its loop is closed: nobody awaits the answer
                future.get_loop().call_soon_threadsafe(answer, future, result)
        if result is _STOP_RUNNING_SENTINEL:
            return


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
        require_file(self.path)
        connecting = aiosqlite.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        _daemonic(connecting)
        opening = asyncio.ensure_future(connecting)
        try:
            conn = await asyncio.shield(opening)
        except asyncio.CancelledError:  # its thread goes on opening: the connection is closed once made
            closing = asyncio.ensure_future(self._close_opened(opening, connecting))
            self._settling.add(closing)
            closing.add_done_callback(self._settling.discard)
            raise
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

    async def _close_opened(self, opening: asyncio.Future[Any], connecting: Any) -> None:
        """Close the connection of an open whose caller was cancelled (a claim's wait cancelled as it began):
        dropped, aiosqlite's thread made it for no one and only the garbage collector closed it, its file
        descriptor kept open while another connection of this process held the file's locks (SQLite defers
        the close), after ``close()`` too."""
        try:
            conn = await opening
        except BaseException:
            await _stopped(connecting)
            return
        await conn.close()

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
            self._forsake_closed_loop()
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

    def _forsake_closed_loop(self) -> None:
        """After the event loop the connections were lent in closed (an ``asyncio.run`` ended without
        ``close``), before another uses the store: what that loop's tasks held, nobody gives back (a cancelled
        transaction's connection waiting for its rollback, whose task ended with the loop). Each is closed
        on its thread, after what is queued there (its rollback), and its slot is free: before, each stayed
        taken for good, and a later ``asyncio.run`` had that many connections fewer (``pool_size=1``: none,
        every operation ``DatabaseBusy``)."""
        if self._slots_loop is None or not self._slots_loop.is_closed():
            return
        for conn in self._lent:
            with suppress(Exception):
                conn.stop()  # queued: its thread closes the connection after the calls before
        self._lent, self._rolling_back, self._settling, self._taken = set(), {}, set(), 0

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
    async def transaction(
        self, conn: Any, *, write: bool, alone: bool = False, block: bool = False
    ) -> AsyncIterator[None]:
        """A transaction on ``conn`` (``alone`` and ``block`` change nothing here: writes begin ``BEGIN
        IMMEDIATE``)."""
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
        self._forsake_closed_loop()
        idle, self._idle, self._lent = self._idle, [], set()
        if self._slots is not None and self._slots.locked():
            self._slots.release()  # wakes a task waiting for a slot: it raises closed_store, waking the next
        for conn in idle:
            await conn.close()
        while self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
