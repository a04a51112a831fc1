"""``Store``: the job store opened from a URL, its transactions, and the operations bound to both.

Each operation in ``musicstore.ops`` is a generator of query calls; ``Store`` and ``Transaction`` only drive
them (``musicstore.runner.drive``) through a backend connector (``musicstore.backends.sqlite``,
``musicstore.backends.postgres``). A write operation runs in its own transaction (``BEGIN IMMEDIATE`` on
SQLite), or inside the caller's ``store.transaction()``; a read runs as a single autocommit statement, or
inside it. ``musicstore.aio.AsyncStore`` drives the same operations with ``await``.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from . import ops, validate, waiting
from .drivers.methods import Operations
from .drivers.opening import refuse_missing_file, sync_connector
from .errors import InvalidInput, NotFound, WriteConflict
from .models import Generation
from .ops import Operation, progress
from .queries import COUNT, ONE
from .runner import (
    CONFLICT_RETRIES,
    Clock,
    Driver,
    check_schema,
    conflict_wait,
    drive,
    fixed_write,
    one_query,
    start,
    start_in,
    utcnow,
    warn_skew,
)
from .urls import DatabaseURL, resolve

P = ParamSpec("P")
T = TypeVar("T")

__all__ = [  # with the vocabulary and the opening helpers, which live in drivers/
    "Clock",
    "Operations",
    "Store",
    "Transaction",
    "refuse_missing_file",
    "require_store",
    "sync_connector",
    "utcnow",
]


def require_store(store: object, needs: str, advice: str) -> Store:
    """``store`` if it is a ``Store``; ``InvalidInput`` otherwise, saying ``needs`` (what takes a Store) and,
    for an ``AsyncStore``, ``advice`` (a sync call on an AsyncStore gets coroutines where rows are expected,
    and on None a bare AttributeError, further on, maybe with work spent). The one check of every sync
    caller: recording, delivery and rendering, maintenance."""
    if isinstance(store, Store):
        return store
    from .aio import AsyncStore  # aio imports this module

    hint = f"; {advice}" if isinstance(store, AsyncStore) else ""
    raise InvalidInput(f"{needs}, got {type(store).__name__}{hint}")


class _Thread(threading.local):
    tx: Transaction | None = None
    """The transaction this thread opened, if one is open (a class default: no exception when unset)."""


class Store(Driver, Operations):
    """The job store behind one database URL. Thread-safe: each thread uses its own connection.

    ``busy_timeout``: how long a write waits for another writer's lock (SQLite) or for a pooled connection
    (PostgreSQL) before ``DatabaseBusy``. ``clock``: a callable returning the current aware datetime.
    ``pool_size``: the most PostgreSQL connections kept open.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        busy_timeout: float = 5.0,
        clock: Clock = utcnow,
        migrate: bool = False,
        pool_size: int = 10,
    ) -> None:
        busy_timeout, pool_size = validate.store_options(url, busy_timeout, pool_size, clock)
        self.url: DatabaseURL = resolve(url)
        if validate.flag(migrate, "migrate"):
            from .migrate import migrate as apply_migrations

            apply_migrations(self.url.url)
        else:
            refuse_missing_file(self.url)
        self._connect(sync_connector(self.url, busy_timeout=busy_timeout, pool_size=pool_size), clock)
        self._local = _Thread()
        self._direct: dict[Operation[Any, Any], Callable[..., Any]] = {}
        try:
            check_schema(self.url.masked, self.run(ops.applied_migrations))
            if clock is utcnow and self._connector.dialect == "postgres":  # hosts share it: same clocks?
                warn_skew(self.url.masked, self.run(ops.server_clock_offset))
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"Store({self.url.masked!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection this store opened, in any thread."""
        self._connector.close()
        waiting.close(self)

    def claim_next(self, worker_id: str, *, wait: float | None = None, **options: Any) -> Generation | None:
        """``ops.claim_next`` (``options``: its keyword arguments); with ``wait``, up to that many seconds
        for a job to claim when none is pending (woken by NOTIFY on PostgreSQL, a ``PRAGMA data_version``
        poll on SQLite; ``musicstore.waiting``). Not inside a transaction."""
        if wait is None:  # the direct write (``bound``), which defers to an open transaction itself
            return self.bound(ops.claim_next)(worker_id, **options)
        seconds = waiting.seconds(wait, "wait")
        waiting.outside_transaction(self, "claim_next(wait=...)")
        plan = waiting.plan(seconds, waiting.claimed)
        wake = waiting.claiming(options)
        return waiting.wait(self, wake, plan, lambda: self.run(ops.claim_next, worker_id, **options))

    def wait_for(self, generation_id: str, *, timeout: float = waiting.WAIT_FOR_SECONDS) -> Generation:
        """The generation once it is completed, failed or cancelled, or as it is after ``timeout`` seconds
        (check ``is_finished``; default ``waiting.WAIT_FOR_SECONDS``, the longest: until it finishes). Woken
        by NOTIFY on PostgreSQL, a ``PRAGMA data_version`` poll on SQLite. Raises NotFound if there is no
        such generation, or as soon as it is deleted while the wait goes on (migration 0023 on PostgreSQL)."""
        seconds = waiting.seconds(timeout, "timeout")
        waiting.outside_transaction(self, "wait_for")

        def read() -> Generation:
            found = self.run(ops.get_generation, generation_id)
            if found is None:
                raise NotFound(f"no generation with id {generation_id}")
            return found

        plan = waiting.plan(seconds, waiting.is_finished)
        return waiting.wait(self, waiting.awaited(generation_id), plan, read)

    def report_progress(
        self,
        generation_id: str,
        worker_id: str,
        fraction: float,
        stage: str | None = None,
        *,
        lease_seconds: float | None = None,
    ) -> bool:
        """Report the progress of a generation ``worker_id`` is processing: ``fraction`` from 0 to 1, and a
        ``stage`` label. Coalesced (``musicstore.ops.progress.Coalescer``): returns whether this report was
        written. A report raises Cancelled if the generation was cancelled, LeaseLost if the worker no longer
        owns it (one the coalescer drops reads the row to check, without writing); a written one with
        ``lease_seconds`` also extends the lease to at least that long from now, as ``heartbeat`` does (a
        longer one is kept; without it, the lease the claim or a heartbeat set holds)."""
        gid, worker, done, label, lease = progress.checked_report(
            generation_id, worker_id, fraction, stage, lease_seconds
        )
        coalescer = progress.coalescer(self)
        if not coalescer.due(gid, worker, done, label, lease):
            self.run(progress.still_running, gid, worker)
            return False
        self.run(progress.report_progress, gid, worker, done, label, lease_seconds=lease_seconds)
        coalescer.wrote(gid, worker, label, None if (tx := self._local.tx) is None else tx.undo)
        return True

    def bound(self, op: Operation[P, T]) -> Callable[P, T]:
        """``op`` as a method of this store: a read that is one query runs without its generator
        (``_direct_read``), a write in a transaction of its own (``_direct_write``)."""
        direct = self._direct.get(op)
        if direct is None:
            if op.query is not None or op.plan is not None:
                direct = _direct_read(self, op)
            elif op.writes:
                direct = _direct_write(self, op)
            else:
                direct = functools.partial(self.run, op)
            setattr(direct, "operation", op)  # noqa: B010  # what it runs (the compatibility test)
            self._direct[op] = direct
        return direct

    def run(self, op: Operation[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``op`` in this thread's open transaction, else on its own (a write in its own transaction)."""
        tx = self._local.tx
        if tx is not None:
            return tx.run(op, *args, **kwargs)
        if op.writes or op.query is not None or op.plan is not None:
            return self.bound(op)(*args, **kwargs)
        try:
            steps, step = start(op, *args, **kwargs)  # argument checks run before any connection is taken
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        connector = self._connector
        with self._translating:
            conn = connector.acquire()
            try:
                return drive(self, conn, steps, step)
            finally:
                connector.release(conn)

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Transaction]:
        """A transaction: committed when the block ends, rolled back if it raises.

        ``write=True`` takes the writer lock up front on SQLite (``BEGIN IMMEDIATE``), so it waits for other
        writers instead of failing half-way; ``write=False`` is a consistent read snapshot that refuses write
        operations. Store operations called on this thread meanwhile take part in it.
        """
        write = validate.flag(write, "write")
        if self._local.tx is not None:
            raise InvalidInput(
                "a transaction is already open on this thread; nested transactions are not supported"
            )
        connector = self._connector
        with self._translating:
            conn = connector.acquire()
            try:
                try:  # BEGIN inside: an interrupt (Ctrl-C) as it returns must not leave its transaction open
                    connector.begin(conn, write=write)
                except BaseException:
                    connector.rollback(conn)  # only if one is open (a BEGIN that failed opened none)
                    raise
                tx = self._local.tx = Transaction(self, conn, write=write)
                try:
                    yield tx
                    connector.commit(conn)
                except BaseException:
                    progress.rolled_back(tx.undo)  # in memory: what the rollback takes back
                    connector.rollback(conn)
                    raise
                finally:
                    tx.closed = True  # its connection goes back: refuse to run outside the transaction
                    self._local.tx = None
            finally:
                connector.release(conn)


class Transaction(waiting.TransactionClaim, Operations):
    """One open transaction; the same operations as ``Store``, all inside it, but for ``wait_for`` and
    ``claim_next(wait=...)`` (no waiting inside a transaction: ``InvalidInput``) and ``report_progress``
    (coalesced by the store: ``store.report_progress`` on this thread takes part in the transaction)."""

    def __init__(self, store: Store, conn: Any, *, write: bool) -> None:
        self.store = store
        self.write = write
        self.closed = False
        self._conn = conn
        self.undo: list[Callable[[], None]] = []
        """Run if it rolls back, last first (``progress.Coalescer.wrote``)."""

    def run(self, op: Operation[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            steps, step = start_in(self, op, *args, **kwargs)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        with self.store._translating:
            return drive(self.store, self._conn, steps, step)


def _direct_read(store: Store, op: Operation[P, T]) -> Callable[P, T]:
    """``store.run(op, ...)`` for a read that is one named query, as one function: no generator, no
    ``Store.run``, no ``queries.execute`` call. What it runs comes from ``runner.one_query`` (the definition
    ``AsyncStore``'s direct reads share); this function only runs it, as ``queries.execute`` would, inlined.
    Inside the thread's transaction it defers to ``run`` (the transaction runs it). The same answers and
    errors as ``run``: the argument checks before any connection is taken, then the query, a backend's error
    translated (``runner.Translating``)."""
    local, run, prepare = store._local, store.run, one_query(store, op)
    connector = store._connector
    acquire, release = connector.acquire, connector.release
    errors, translate = connector.errors, connector.translate

    def read(*args: P.args, **kwargs: P.kwargs) -> T:
        if local.tx is not None:
            return run(op, *args, **kwargs)
        query, params, rows, finish = prepare(*args, **kwargs)
        try:
            conn = acquire()
            try:
                cursor = conn.execute(query.sql, params)
                returns = query.returns
                if returns is COUNT:
                    found: Any = cursor.rowcount
                else:
                    build = query.builders.get(rows) or query.builder(rows, cursor.description)
                    if returns is ONE:
                        row = cursor.fetchone()
                        cursor.close()
                        found = None if row is None else build(row)
                    else:
                        found = cursor.fetchall()
                        if build is not tuple or (found and found[0].__class__ is not tuple):
                            found = list(map(build, found))
            finally:
                release(conn)
        except errors as exc:
            translated = translate(exc)
            if translated is None:
                raise
            raise translated from exc
        return found if finish is None else finish(found)  # type: ignore[no-any-return]

    read.__name__ = read.__qualname__ = op.__name__
    read.__doc__ = op.__doc__
    return read


def _direct_write(store: Store, op: Operation[P, T]) -> Callable[P, T]:
    """``store.run(op, ...)`` for a write, as one function: in a transaction of its own (``BEGIN IMMEDIATE``
    on SQLite, its backend's ``BEGIN_WRITE``), the operation's steps answered by ``runner.drive``, or a
    ``Fixed`` write run without its generator (``runner.fixed_write``) unless its ``first`` gives steps for
    the call; run again from its first step after a ``WriteConflict`` (up to ``runner.CONFLICT_RETRIES``
    times); inside the thread's transaction it defers to ``run``. The argument checks run before any
    connection is taken."""
    local, run = store._local, store.run
    connector = store._connector
    acquire, release, rollback = connector.acquire, connector.release, connector.rollback
    begin_write, end = connector.BEGIN_LATER if op.alone else connector.BEGIN_WRITE, connector.COMMIT
    errors, translate = connector.errors, connector.translate
    prepare: Callable[..., tuple[Any, ...]]
    stepped = functools.partial(start, op), functools.partial(drive, store)  # body(conn, steps, step)
    first = None
    if op.fixed is not None:
        prepare, body = op.fixed.check, fixed_write(store, op)  # body(conn, *checked)
        first = op.fixed.first  # a call it gives steps for runs as ``stepped``
    else:
        prepare, body = stepped

    def write(*args: P.args, **kwargs: P.kwargs) -> T:
        if local.tx is not None:
            return run(op, *args, **kwargs)
        attempt = 0
        while True:
            runs = body
            try:
                prepared = prepare(*args, **kwargs)  # the argument checks
                if first is not None and first(*prepared) is not None:
                    prepared, runs = stepped[0](*args, **kwargs), stepped[1]  # checked again: cheap, rare
            except StopIteration as done:  # an operation that needs no database
                return done.value  # type: ignore[no-any-return]
            try:
                conn = acquire()
                try:
                    try:  # BEGIN inside: an interrupt as it returns must not leave its transaction open
                        conn.execute(begin_write)
                        result: T = runs(conn, *prepared)
                        conn.execute(end)
                    except BaseException:
                        rollback(conn)  # only if a transaction is open (a BEGIN that failed opened none)
                        raise
                    return result
                finally:
                    release(conn)
            except errors as exc:
                translated = translate(exc)
                if translated is None:
                    raise
                if not isinstance(translated, WriteConflict):
                    raise translated from exc
                attempt += 1  # PostgreSQL aborted the transaction: run the operation again
                if attempt > CONFLICT_RETRIES:
                    raise translated from exc
                time.sleep(conflict_wait(attempt))

    write.__name__ = write.__qualname__ = op.__name__
    write.__doc__ = op.__doc__
    return write
