"""The PostgreSQL backend's async driver (``musicstore.backends.postgres``): the ``AsyncStore``'s connector
over psycopg_pool's ``AsyncConnectionPool``, with its spare connection, and its connections' class."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from time import monotonic
from typing import Any

from ..errors import InvalidInput, MusicstoreError
from ..queries import execute_async
from ..urls import without_password
from . import closed_store
from .postgres import (
    _FAILED,
    _IDLE,
    _OPEN,
    BEGIN_LATER,
    COMMIT,
    DIALECT,
    READ_ONLY_SNAPSHOT,
    SPARE_SECONDS,
    Command,
    _aborted,
    _due,
    _lock_setting,
    _lost,
    _modules,
    _unreachable,
    _unsettable,
    _watch,
    commit_failed,
    encode,
    translate,
)
from .postgres_settings import _connect_timeout, connect_settings, pool_options


@functools.cache
def async_connection_class() -> type[Any]:
    """The async pool's connection class: ``BEGIN_LATER`` as on ``connection_class``'s (a ``Command`` goes
    out through psycopg's own ``execute``: libpq's ``PQexec`` would block the event loop)."""
    import psycopg

    execute = psycopg.AsyncConnection.execute

    class AsyncConnection(psycopg.AsyncConnection[Any]):
        later = 0
        """``BEGIN_LATER``'s state: 1 before the first statement, 2 before the second, else 0."""
        idle: Any = None
        """A ``select.poll`` of its socket, for ``_lost`` (made by the pool's ``configure``)."""

        async def execute(
            self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool = False
        ) -> Any:
            due = _due(self, query)
            if due is not None:
                try:
                    await execute(self, str(due))
                except Exception as exc:
                    if due is COMMIT:
                        commit_failed(self, exc)
                    raise
            if query.__class__ is Command:
                return None
            try:
                return await execute(self, query, params, prepare=prepare, binary=binary)
            except Exception as exc:
                if self.later == 2:  # a write's first statement, in autocommit: it commits itself
                    commit_failed(self, exc)
                raise

    return AsyncConnection


def _configure_async(timeout: float) -> Any:
    """``_configure`` for the async pool."""
    sql, params = _lock_setting(timeout, "apsycopg")

    async def configure(conn: Any) -> None:
        await conn.execute(sql, params)
        _watch(conn)

    return configure


class AsyncPostgresConnector:
    """A psycopg_pool ``AsyncConnectionPool``, opened on first use."""

    dialect = DIALECT
    driver = "apsycopg"
    encode = staticmethod(encode)
    execute = staticmethod(execute_async)
    closed = False
    """Set by ``close``: no pool is opened again."""

    def __init__(self, url: str, *, pool_size: int, timeout: float) -> None:
        psycopg, psycopg_pool = _modules()
        self.url = url
        self.where = without_password(url)
        self.pool_size = pool_size
        self.timeout = timeout
        self.errors: tuple[type[BaseException], ...] = (psycopg.Error, psycopg_pool.PoolTimeout)
        self._pool: Any = None
        self._returning: set[asyncio.Future[None]] = set()
        self._owners: dict[int, Any] = {}  # id(connection) -> the pool it came from
        self._spare: list[Any] = []  # at most one idle connection kept out of the pool (see ``acquire``)
        self._spare_until = 0.0  # when the spare goes back through the pool (its checks and expiry)
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the pool was opened in (its workers')
        self._watch: asyncio.Future[None] | None = None  # closes the pool as its loop ends (``_watch_pool``)

    def translate(self, exc: BaseException) -> MusicstoreError | None:
        return translate(exc, self.where)

    async def acquire(self) -> Any:
        """A connection: the spare one if it is free, else one from the pool.

        As ``PostgresConnector.acquire``: the last connection given back clean (idle, no open transaction)
        is kept aside as the spare, still lent out in the pool's books, and the next ``acquire`` takes it
        without awaiting anything (nothing can cancel it half-way); it goes back through the pool at least
        every ``SPARE_SECONDS``. The pool's ``getconn`` and ``putconn`` each run in a task of their own
        (below, ``release``): measured, a claim took 12 event-loop iterations with them, 6 with the spare.

        ``InvalidInput`` in another event loop than the pool's (``_other_loop``)."""
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            raise closed_store() if self.closed else _other_loop()
        if self._spare:
            conn = self._spare.pop()
            if not _lost(conn):  # as in the sync backend's acquire
                return conn
            await self._discard(conn)
        conn = await self._getconn_lent()
        for _ in range(self.pool_size):
            if not _lost(conn):
                break
            await self._discard(conn)
            conn = await self._getconn_lent()
        return conn

    async def _getconn_lent(self) -> Any:
        """A connection from the pool (opened on first use), lent out in this connector's books."""
        if self._pool is None:
            if self.closed:
                raise closed_store()
            _, psycopg_pool = _modules()
            pool = psycopg_pool.AsyncConnectionPool(
                self.url,
                **pool_options(self.url, self.pool_size, self.timeout),
                connection_class=async_connection_class(),
                configure=_configure_async(self.timeout),
                open=False,
            )
            await pool.open()
            self._pool, self._loop = pool, asyncio.get_running_loop()
            self._watch = asyncio.ensure_future(self._watch_pool(pool))
        pool = self._pool
        try:
            conn = await self._getconn(pool, None)
        except _modules()[1].PoolTimeout:
            if len(self._owners) >= self.pool_size:  # every connection lent out: busy
                raise
            await self._check_reachable()  # as in the sync backend's acquire
            conn = await self._getconn(pool, _connect_timeout(self.timeout))
        self._owners[id(conn)] = pool  # returned to this pool even if the store is closed meanwhile
        return conn

    async def _discard(self, conn: Any) -> None:
        """As ``PostgresConnector._discard`` (shielded, as ``release``)."""
        await conn.close()
        pool = self._owners.pop(id(conn))
        await asyncio.shield(self._put_back(pool, conn))
        if not pool.closed:
            await asyncio.shield(pool.check())

    async def _getconn(self, pool: Any, timeout: float | None) -> Any:
        """A connection from ``pool`` (waiting ``timeout``, or the pool's). psycopg_pool's getconn can swallow
        a cancellation and return a connection (psycopg#1345): it waits in a task of its own, so the
        caller's cancellation always lands, and what arrives too late is handed back."""
        getting = asyncio.ensure_future(pool.getconn(timeout=timeout))
        try:
            return await asyncio.shield(getting)
        except asyncio.CancelledError:
            getting.add_done_callback(lambda done: self._give_back(pool, done))
            raise

    async def _check_reachable(self) -> None:
        """As ``PostgresConnector._check_reachable``."""
        psycopg = _modules()[0]
        try:
            conn = await psycopg.AsyncConnection.connect(self.url, **connect_settings(self.url, self.timeout))
        except psycopg.Error as exc:
            raise _unreachable(self.where, exc) from exc
        async with conn:
            try:
                await conn.execute(*_lock_setting(self.timeout, "apsycopg"))
            except psycopg.Error as exc:
                raise _unsettable(self.where, exc) from exc

    def _give_back(self, pool: Any, done: asyncio.Future[Any]) -> None:
        if not done.cancelled() and done.exception() is None:
            self._put_back(pool, done.result())

    def _put_back(self, pool: Any, conn: Any) -> asyncio.Future[None]:
        """Return ``conn`` to ``pool`` (a closed pool closes it) in a task of its own, kept until done."""
        returning: asyncio.Future[None] = asyncio.ensure_future(pool.putconn(conn))
        self._returning.add(returning)
        returning.add_done_callback(self._returning.discard)
        return returning

    async def release(self, conn: Any) -> None:
        """Keep ``conn`` as the spare if none is kept and it is clean (see ``acquire``), else give it back to
        the pool it came from (a closed pool closes it)."""
        conn.later = 0  # a BEGIN_LATER never ended (a caller that neither committed nor rolled back)
        if not self._spare and conn.pgconn.transaction_status == _IDLE:
            pool = self._owners.get(id(conn))
            if pool is not None and pool is self._pool:
                now = monotonic()
                if now < self._spare_until:
                    self._spare.append(conn)
                    return
                self._spare_until = now + SPARE_SECONDS  # this one goes back; the next may stay
        # Shielded: a task cancelled while its connection is being reset must not take it from the pool.
        pool = self._owners.pop(id(conn))
        await asyncio.shield(self._put_back(pool, conn))
        if conn.broken and not pool.closed:  # as PostgresConnector.release: test the idle ones now
            await asyncio.shield(pool.check())

    @asynccontextmanager
    async def transaction(
        self, conn: Any, *, write: bool, alone: bool = False, block: bool = False
    ) -> AsyncIterator[None]:
        """A transaction on ``conn``; ``alone``: a write whose first statement may commit by itself, begun
        with ``BEGIN_LATER`` as ``Store`` begins it (``Operation.alone``); ``block``: the caller's own
        (``AsyncStore.transaction``), whose connection the server may end while it is idle (``_lost``, asked
        before its COMMIT as ``PostgresConnector.commit`` asks)."""
        if not alone:
            committing = False
            try:
                async with conn.transaction():
                    if not write:
                        await conn.execute(READ_ONLY_SNAPSHOT)
                    yield
                    if conn.pgconn.transaction_status == _FAILED or (block and _lost(conn)):
                        raise _aborted(self.where, ended=block and _lost(conn))  # COMMIT: a silent rollback
                    committing = True  # psycopg's transaction commits as it ends
            except Exception as exc:
                if committing:
                    commit_failed(conn, exc)
                raise
            return
        await conn.execute(BEGIN_LATER)
        try:
            yield
        except BaseException:
            conn.later = 0
            if conn.pgconn.transaction_status in _OPEN:
                # a connection the failure broke goes back to the pool, which discards it: the failure
                # raised is the write's own
                with suppress(_modules()[0].Error):
                    await conn.execute("ROLLBACK")
            raise
        await conn.execute(COMMIT)

    async def close(self) -> None:
        """Close the pool (a connection lent out goes back to it and is closed then); none is opened again.

        In another event loop than the pool's (an ``asyncio.run`` after the one that opened it), the pool's
        workers, tasks of that loop, cannot be awaited here: its idle connections are closed at once, and
        one lent out when it comes back (the pool is marked closed)."""
        self.closed = True
        pool, self._pool = self._pool, None
        spare, self._spare = self._spare, []
        watch, self._watch = self._watch, None
        if watch is not None:  # its pool is not the store's now: it closes nothing
            _cancel(watch)
        if pool is None:
            return
        if self._loop is not asyncio.get_running_loop():
            for conn in spare:
                self._owners.pop(id(conn), None)
            _close_abandoned(pool, spare)
            return
        for conn in spare:
            self._owners.pop(id(conn), None)
            await pool.putconn(conn)
        await pool.close()

    async def _watch_pool(self, pool: Any) -> None:
        """Wait to be cancelled, then, if ``pool`` is still the store's, send its workers their stop:
        ``asyncio.run`` ending with the store never closed cancels every task of its loop, then waits for
        them all, and psycopg_pool's worker (3.3) swallows a cancel that comes as it connects (the pool
        growing, or replacing a lost connection), then waits for its next task for ever: the process never
        exited. With its stop queued, it ends once its connect does. The pool and its connections stay as
        they were (``close``, in a later loop, closes them: ``_close_abandoned``). Cancelled by ``close``,
        it does nothing."""
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            stop = getattr(pool, "_signal_stop_worker", None)  # psycopg_pool's own, as its close sends them
            if self._pool is pool and stop is not None:
                with suppress(Exception):
                    await stop()
            raise


def _other_loop() -> InvalidInput:
    return InvalidInput(
        "this AsyncStore was opened in another event loop, and its PostgreSQL pool runs there: open one per "
        "event loop (per asyncio.run)"
    )


def _cancel(task: asyncio.Future[None]) -> None:
    """Cancel a task of this loop, or of another loop through its queue (``Task.cancel`` is not thread-safe);
    nothing where that loop is closed (its tasks never run again: cancelling there raised RuntimeError)."""
    loop = task.get_loop()
    if loop is asyncio.get_running_loop():
        task.cancel()
        return
    with suppress(RuntimeError):  # closed, or closing meanwhile
        loop.call_soon_threadsafe(task.cancel)


def _close_abandoned(pool: Any, spare: list[Any]) -> None:
    """Close ``pool``'s idle connections and ``spare`` without its event loop (gone, or another thread's):
    libpq's ``finish`` on each; psycopg_pool's own ``close`` would await its workers in that loop. Its
    ``_closed`` set, a connection lent out is closed as it comes back, and none is handed out again."""
    pool._closed = True  # psycopg_pool's flag: getconn raises PoolClosed, putconn closes
    idle = getattr(pool, "_pool", None)
    for conn in [*spare, *(idle or ())]:
        with suppress(Exception):
            conn.pgconn.finish()
    if idle is not None:
        idle.clear()
