"""``AsyncStore``: the job store for asyncio code, driving the same operations as ``Store`` with ``await``.

Each operation in ``musicstore.ops`` is a generator of query calls, written once; ``Store`` answers its steps
with blocking calls and ``AsyncStore`` with awaited ones (``musicstore.runner.drive_async``: aiosqlite for
SQLite, psycopg's async pool for PostgreSQL), so the two cannot drift apart. Needs the ``async`` extra for
SQLite (``pip install 'musicstore[async]'``) and the ``postgres`` extra for PostgreSQL.

>>> async with AsyncStore.open("sqlite:///data/generations.db") as store:   # doctest: +SKIP
...     job = await store.create_generation("lofi", model_name="musicgen", duration_seconds=30)
...     claimed = await store.claim_next("gpu-0")
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from . import ops, validate, waiting
from .drivers.methods import OPERATION_NAMES, AsyncOperations
from .drivers.opening import _Opening, async_connector
from .errors import InvalidInput, NotFound, WriteConflict
from .models import Generation
from .ops import Operation, Step, Steps, progress
from .ops.attempts import put_back
from .runner import (
    CONFLICT_RETRIES,
    Clock,
    Driver,
    check_schema,
    conflict_wait,
    drive_async,
    one_query,
    start,
    start_in,
    utcnow,
    warn_skew,
)
from .store import refuse_missing_file
from .urls import DatabaseURL, resolve

P = ParamSpec("P")
T = TypeVar("T")

__all__ = [  # with the vocabulary and its names, which live in drivers/methods.py
    "OPERATION_NAMES",
    "AsyncOperations",
    "AsyncStore",
    "AsyncTransaction",
]

_CLAIMS = frozenset((ops.claim_next, ops.claim_batch))
"""The writes ``AsyncStore.run`` runs through ``_claim``: a cancel never leaves their jobs taken unseen."""
_PUT_BACK = "the claiming task was cancelled as the claim committed: put back in the queue"

_open_transactions: ContextVar[tuple[AsyncTransaction, ...]] = ContextVar(
    "musicstore_async_transactions", default=()
)
"""The transactions open in the current context; each is joined only by the task that opened it."""


class AsyncStore(Driver, AsyncOperations):
    """The job store behind one database URL, for asyncio. Safe to share between the tasks of one event loop:
    each operation borrows a connection of its own (aiosqlite: an idle one or a new one; PostgreSQL: from an
    ``AsyncConnectionPool`` of at most ``pool_size``).

    Open it with ``AsyncStore.open(url, ...)``, which checks the schema as ``Store(url)`` does
    (``migrate=True`` applies pending migrations first). The constructor alone does no database I/O (the
    first of a dialect in a process parses the SQL files on the calling thread, once): a store used
    without ``open()`` (``async with AsyncStore(url)``) makes the same check at its first operation, once
    (``_first_use``). ``busy_timeout``, ``clock`` and ``pool_size`` mean what they mean for ``Store``.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        busy_timeout: float = 5.0,
        clock: Clock = utcnow,
        pool_size: int = 10,
    ) -> None:
        busy_timeout, pool_size = validate.store_options(url, busy_timeout, pool_size, clock)
        self.url: DatabaseURL = resolve(url)
        self._connect(async_connector(self.url, busy_timeout=busy_timeout, pool_size=pool_size), clock)
        self._direct: dict[Operation[Any, Any], Callable[..., Any]] = {}
        self._claims: set[asyncio.Future[None]] = set()  # in flight (``_claim``): ``close`` waits for them
        self._busy_timeout = busy_timeout
        self._checked = False  # the schema check passed (``_first_use``): the one test each operation makes
        self._checking: asyncio.Future[None] | None = None  # the end of the check under way

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        migrate: bool = False,
        busy_timeout: float = 5.0,
        clock: Clock = utcnow,
        pool_size: int = 10,
    ) -> _Opening:
        """``store = await AsyncStore.open(url)`` (then ``await store.close()``) or ``async with
        AsyncStore.open(url) as store``. Raises ``MigrationError`` for a database that lacks migrations,
        unless ``migrate=True``, which applies them first (in a worker thread).
        """
        store = cls(url, busy_timeout=busy_timeout, clock=clock, pool_size=pool_size)
        return _Opening(store, migrate=validate.flag(migrate, "migrate"))

    async def _start(self, *, migrate: bool) -> None:
        try:
            if migrate:
                from .migrate import migrate as apply_migrations

                await asyncio.to_thread(apply_migrations, self.url.url)
            await self._checked_first()
        except BaseException:
            await self.close()
            raise

    async def _first_use(self) -> Any:
        """The check ``Store(url)`` makes as it opens (``_check``), made by ``open()`` or else by the first
        operation (``_connection``, a direct read, a wait), once: the tasks that make their first calls
        together wait for the one check and raise its error. A check that failed (or whose task was
        cancelled) is made again by the next call: the database may be migrated meanwhile. Before, a store
        used without ``open()`` checked nothing: its operations wrote to a database that lacked migrations,
        or one a later musicstore migrated, without a word. Once passed, each operation pays one attribute
        test (``_checked``). Returns the connection the check ran on, lent to the caller (its operation
        runs on it: already running, as one that did not check, if ``close`` comes meanwhile), or None."""
        loop = asyncio.get_running_loop()
        while not self._checked and not self._connector.closed:  # closed: the operation says so, as ever
            checking = self._checking
            if checking is not None and checking.get_loop() is loop and not checking.done():
                await asyncio.shield(checking)  # another task's check: its error is this call's
                continue
            self._checking = ended = loop.create_future()
            try:
                return await self._check()
            except Exception as exc:
                ended.set_exception(exc)
                ended.exception()  # retrieved: no task may be waiting for it
                raise
            finally:
                self._checking = None
                if not ended.done():  # passed, or cancelled: a waiting task makes it in its place
                    ended.set_result(None)
        return None

    async def _check(self) -> Any:
        """What ``Store(url)`` checks: the SQLite file there and migrated (``refuse_missing_file``, before a
        connection opens), every migration shipped applied and none of a later version (``check_schema``),
        the PostgreSQL server's clock (``warn_skew``); on a connection, returned lent. Two queries on
        PostgreSQL, one on SQLite."""
        refuse_missing_file(self.url)
        with self._translating:
            conn = await self._connector.acquire()
        try:
            check_schema(self.url.masked, await self._read(conn, ops.applied_migrations))
            if self.clock is utcnow and self._connector.dialect == "postgres":  # hosts share it: same clocks?
                warn_skew(self.url.masked, await self._read(conn, ops.server_clock_offset))
        except BaseException:
            await self._connector.release(conn)
            raise
        self._checked = True
        return conn

    async def _read(self, conn: Any, op: Operation[[], T]) -> T:
        steps, step = start(op)
        with self._translating:
            return await drive_async(self, conn, steps, step)

    async def _checked_first(self) -> None:
        """``_first_use`` where no operation follows on its connection (``open()``, a wait's start)."""
        conn = await self._first_use()
        if conn is not None:
            await self._connector.release(conn)

    def __repr__(self) -> str:
        return f"AsyncStore({self.url.masked!r})"

    async def __aenter__(self) -> AsyncStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the store's connections (idle ones; one in use is closed by ``close`` later) and, even when
        cancelled, its waits' listeners, once the claims in flight are over (``_claim``: a cancelled one puts
        back the jobs it took), up to twice ``busy_timeout`` (the claim's wait, its put-back's)."""
        loop = asyncio.get_running_loop()
        try:
            if claims := [claim for claim in self._claims if claim.get_loop() is loop]:
                await asyncio.wait(claims, timeout=2 * self._busy_timeout)
        finally:
            try:
                await self._connector.close()
            finally:
                await waiting.close_async(self)

    async def claim_next(
        self, worker_id: str, *, wait: float | None = None, **options: Any
    ) -> Generation | None:
        """As ``Store.claim_next``: with ``wait``, up to that many seconds for a job to claim."""
        if wait is None:
            return await self.run(ops.claim_next, worker_id, **options)
        seconds = waiting.seconds(wait, "wait")
        waiting.outside_transaction(self, "claim_next(wait=...)")
        if not self._checked:  # before the wait's listener connects
            await self._checked_first()
        plan = waiting.plan(seconds, waiting.claimed)
        return await waiting.wait_async(
            self, waiting.claiming(options), plan, lambda: self.run(ops.claim_next, worker_id, **options)
        )

    async def wait_for(self, generation_id: str, *, timeout: float = waiting.WAIT_FOR_SECONDS) -> Generation:
        """As ``Store.wait_for``: the generation once finished, or as it is after ``timeout`` seconds (default
        ``waiting.WAIT_FOR_SECONDS``: until it finishes)."""
        seconds = waiting.seconds(timeout, "timeout")
        waiting.outside_transaction(self, "wait_for")
        if not self._checked:  # before the wait's listener connects
            await self._checked_first()

        async def read() -> Generation:
            found = await self.run(ops.get_generation, generation_id)
            if found is None:
                raise NotFound(f"no generation with id {generation_id}")
            return found

        plan = waiting.plan(seconds, waiting.is_finished)
        return await waiting.wait_async(self, waiting.awaited(generation_id), plan, read)

    async def report_progress(
        self,
        generation_id: str,
        worker_id: str,
        fraction: float,
        stage: str | None = None,
        *,
        lease_seconds: float | None = None,
    ) -> bool:
        """As ``Store.report_progress`` (coalesced; returns whether this report was written)."""
        gid, worker, done, label, lease = progress.checked_report(
            generation_id, worker_id, fraction, stage, lease_seconds
        )
        if not (coalescer := progress.coalescer(self)).due(gid, worker, done, label, lease):
            await self.run(progress.still_running, gid, worker)
            return False
        await self.run(progress.report_progress, gid, worker, done, label, lease_seconds=lease_seconds)
        coalescer.wrote(gid, worker, label, None if (tx := self._joined()) is None else tx.undo)
        return True

    def bound(self, op: Operation[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
        """``op`` as a coroutine method of this store: a read that is one query runs without its generator
        (``_direct_read``), as ``Store``'s do; anything else through ``run``."""
        direct = self._direct.get(op)
        if direct is None:
            if op.query is not None or op.plan is not None:
                direct = _direct_read(self, op)
            else:
                direct = functools.partial(self.run, op)
            setattr(direct, "operation", op)  # noqa: B010  # what it runs, as on Store
            self._direct[op] = direct
        return direct

    def _joined(self) -> AsyncTransaction | None:
        """The transaction this task opened on this store, if it is still open (``transaction``)."""
        task = asyncio.current_task()
        for tx in _open_transactions.get():
            if tx.store is self and tx.task is task and not tx.closed:
                return tx
        return None

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        conn = None if self._checked else await self._first_use()
        if conn is None:
            with self._translating:
                conn = await self._connector.acquire()
        try:
            yield conn
        finally:
            await self._connector.release(conn)

    async def run(self, op: Operation[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``op`` in this task's open transaction, else on its own (a write in its own transaction)."""
        tx = self._joined()
        if tx is not None:
            return await tx.run(op, *args, **kwargs)
        try:
            steps, step = start(op, *args, **kwargs)  # argument checks run before any connection is taken
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        if not op.writes:
            async with self._connection() as conn:
                with self._translating:
                    return await drive_async(self, conn, steps, step)
        if op in _CLAIMS:
            committing: list[bool] = []
            return await self._claim(
                self._written(op, steps, step, args, kwargs, committing=committing), committing
            )
        return await self._written(op, steps, step, args, kwargs, committing=None)

    async def _written(
        self, op: Operation[P, T], steps: Steps[T], step: Step, args: Any, kwargs: Any, *, committing: Any
    ) -> T:
        """A write operation run (``run``), again on a ``WriteConflict``."""
        attempt = 0
        while True:
            try:
                return await self._write(steps, step, alone=op.alone, committing=committing)
            except WriteConflict:  # as Store.run: PostgreSQL aborted the transaction, run the operation again
                attempt += 1
                if attempt > CONFLICT_RETRIES:
                    raise
                await asyncio.sleep(conflict_wait(attempt))
                steps, step = start(op, *args, **kwargs)

    async def _write(self, steps: Steps[T], step: Step, *, alone: bool, committing: list[bool] | None) -> T:
        """Answer a write's steps in a transaction of its own (``alone``: begun later, as ``Store`` begins an
        ``Operation.alone`` write). ``committing`` (a claim's, ``_claim``) gets an item once it may commit:
        before PostgreSQL's first statement (``alone``: in autocommit), before SQLite's COMMIT."""
        async with self._connection() as conn:
            if committing is not None and self._connector.dialect == "postgres":
                committing.append(True)
            with self._translating:
                async with self._connector.transaction(conn, write=True, alone=alone):
                    value = await drive_async(self, conn, steps, step)
                    if committing is not None:
                        committing.append(True)
            return value

    async def _claim(self, claiming: Coroutine[Any, Any, T], committing: list[bool]) -> T:
        """A claim (``claim_next``, ``claim_batch``) that a cancel of the awaiting task does not leave half
        done: it runs in a task of its own; cancelled before it may commit (``committing`` empty: waiting for
        a connection, SQLite's writer lock or its statement), it is cancelled too and rolls back; after, it is
        waited for and the jobs it took are put back in the queue (a retry: the attempt counted, as
        ``AsyncWorker`` puts back a job its claim took as its task was cancelled), then ``CancelledError``."""
        claim, over = asyncio.ensure_future(claiming), asyncio.get_running_loop().create_future()
        self._claims.add(over)
        try:
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            if not committing:
                claim.cancel()
            while not claim.done():
                with suppress(asyncio.CancelledError):  # cancelled again: the claim is still waited for
                    await asyncio.wait((claim,))
            taken: Any = None if claim.cancelled() or claim.exception() is not None else claim.result()
            for job in taken if isinstance(taken, list) else [taken] if taken is not None else []:
                with suppress(Exception):  # a put-back that fails (cancelled meanwhile, busy): its lease
                    await put_back(self, job, _PUT_BACK)
            raise
        finally:
            self._claims.discard(over)
            over.set_result(None)

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[AsyncTransaction]:
        """``async with store.transaction() as tx``: committed when the block ends, rolled back if it raises.

        As ``Store.transaction``: ``write=True`` takes SQLite's writer lock up front; ``write=False`` is a
        read snapshot that refuses write operations. Operations awaited on this store by the same task
        meanwhile take part in it; other tasks (even ones it starts) run outside it, like other threads.
        """
        write = validate.flag(write, "write")
        if self._joined() is not None:
            raise InvalidInput(
                "a transaction is already open in this task; nested transactions are not supported"
            )
        async with self._connection() as conn:
            tx = AsyncTransaction(self, conn, write=write)
            with self._translating, progress.undoing(tx.undo):  # rolled back: undo what it remembered
                async with self._connector.transaction(conn, write=write, block=True):
                    opened = _open_transactions.get()
                    if opened:  # less those ended in another task (a dropped async generator's), kept else
                        opened = tuple(other for other in opened if not other.closed)
                    token = _open_transactions.set((*opened, tx))
                    try:
                        yield tx
                    finally:
                        tx.closed = True
                        with suppress(ValueError):  # ended in another task (a dropped async generator
                            _open_transactions.reset(token)  # finalized by its loop): _joined skips it


class AsyncTransaction(waiting.AsyncTransactionClaim, AsyncOperations):
    """One open transaction; the same coroutine operations as ``AsyncStore``, all inside it, but for
    ``wait_for`` and ``claim_next(wait=...)`` (no waiting inside a transaction: ``InvalidInput``) and
    ``report_progress`` (coalesced by the store: ``await store.report_progress`` in this task takes part in
    the transaction)."""

    def __init__(self, store: AsyncStore, conn: Any, *, write: bool) -> None:
        self.store = store
        self.write = write
        self.task = asyncio.current_task()
        self.closed = False
        self._conn = conn
        self.undo: list[Callable[[], None]] = []  # run if it rolls back, as ``Transaction.undo``

    async def run(self, op: Operation[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            steps, step = start_in(self, op, *args, **kwargs)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        with self.store._translating:
            return await drive_async(self.store, self._conn, steps, step)


def _direct_read(store: AsyncStore, op: Operation[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
    """``await store.run(op, ...)`` for a read that is one named query: no generator, no ``run``. What it
    runs comes from ``runner.one_query``, the one definition ``Store``'s direct reads run too; this only
    awaits it (its connector's ``execute``) on a borrowed connection. Inside this task's transaction it defers
    to ``run``. The same answers and errors as ``run``: the argument checks before any connection is
    taken, a backend's error translated."""
    run, joined, prepare = store.run, store._joined, one_query(store, op)
    connector, translating, execute = store._connector, store._translating, store._connector.execute

    async def read(*args: P.args, **kwargs: P.kwargs) -> T:
        if _open_transactions.get() and joined() is not None:
            return await run(op, *args, **kwargs)
        query, params, rows, finish = prepare(*args, **kwargs)
        conn = None if store._checked else await store._first_use()
        with translating:
            if conn is None:
                conn = await connector.acquire()
            try:
                found = await execute(conn, query, params, rows)
            finally:
                await connector.release(conn)
        return found if finish is None else finish(found)  # type: ignore[no-any-return]

    read.__name__ = read.__qualname__ = op.__name__
    read.__doc__ = op.__doc__
    return read
