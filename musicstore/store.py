"""``Store``: the job store opened from a URL, its transactions, and the operations bound to both.

Each operation in ``musicstore.ops`` is a generator of query calls; ``Store`` and ``Transaction`` only drive
them. A write operation runs in its own ``BEGIN IMMEDIATE`` transaction, or inside the caller's
``store.transaction()``; a read runs as a single statement (autocommit, a WAL snapshot) or inside it.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

from . import ops, sqlite
from .errors import InvalidInput, MigrationError
from .migrate import shipped_migrations
from .ops import NOW, Operation, Steps
from .queries import Query, load
from .urls import DatabaseURL, resolve

P = ParamSpec("P")
T = TypeVar("T")

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The default clock: the current time, UTC, timezone-aware."""
    return datetime.now(UTC)


class Runner(Protocol):
    def run(self, op: Operation[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...


class _Bound(Generic[P, T]):
    """An operation as a method of ``Store`` and ``Transaction``, and as a function taking either first."""

    def __init__(self, op: Operation[P, T]) -> None:
        self.op = op
        self.__doc__ = op.__doc__
        self.name = op.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Callable[Concatenate[Runner, P], T]: ...
    @overload
    def __get__(self, obj: Runner, owner: type) -> Callable[P, T]: ...
    def __get__(self, obj: Runner | None, owner: type) -> Callable[..., T]:
        if obj is None:
            return functools.partial(_run_on, self.op)
        bound = functools.partial(obj.run, self.op)
        obj.__dict__[self.name] = bound  # later look-ups skip this descriptor
        return bound


def _run_on(op: Operation[P, T], runner: Runner, /, *args: P.args, **kwargs: P.kwargs) -> T:
    return runner.run(op, *args, **kwargs)


class Operations:
    """The store's vocabulary; ``Store`` and ``Transaction`` provide ``run``."""

    create_generation = _Bound(ops.create_generation)
    get_generation = _Bound(ops.get_generation)
    list_generations = _Bound(ops.list_generations)
    get_pending_generations = _Bound(ops.get_pending_generations)
    count_generations = _Bound(ops.count_generations)
    get_database_stats = _Bound(ops.get_database_stats)
    claim_next = _Bound(ops.claim_next)
    claim_batch = _Bound(ops.claim_batch)
    heartbeat = _Bound(ops.heartbeat)
    complete_generation = _Bound(ops.complete_generation)
    fail = _Bound(ops.fail)
    cancel = _Bound(ops.cancel)
    requeue_expired = _Bound(ops.requeue_expired)
    update_generation_status = _Bound(ops.update_generation_status)
    delete_generation = _Bound(ops.delete_generation)
    reset_database = _Bound(ops.reset_database)
    track_prompt_usage = _Bound(ops.track_prompt_usage)
    get_prompt_by_text = _Bound(ops.get_prompt_by_text)
    get_most_used_prompts = _Bound(ops.get_most_used_prompts)

    get_all_generations = _Bound(ops.get_all_generations)

    def run(self, op: Operation[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``op`` with these arguments; each subclass decides where."""
        raise NotImplementedError


class Store(Operations):
    """The job store behind one database URL. Thread-safe: each thread uses its own connection.

    >>> store = Store("sqlite:///data/generations.db")          # doctest: +SKIP
    >>> job = store.create_generation("lofi hip hop at 90 BPM", model_name="musicgen", duration_seconds=30)
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        busy_timeout: float = 5.0,
        clock: Clock = utcnow,
        migrate: bool = False,
    ) -> None:
        self.url: DatabaseURL = resolve(url)
        if self.url.dialect != sqlite.DIALECT:
            raise InvalidInput(f"{self.url.url}: this version of musicstore opens SQLite URLs only")
        if migrate:
            from .migrate import migrate as apply_migrations

            apply_migrations(self.url.url)
        self.busy_timeout = busy_timeout
        self.clock = clock
        self._queries: dict[str, Query] = load(sqlite.DIALECT, sqlite.DRIVER)
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()
        self._check_schema()

    def __repr__(self) -> str:
        return f"Store({self.url.url!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection this store opened, in any thread."""
        with self._opened_lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():  # a forked child opens its own
            conn = sqlite.connect(self.url.path, busy_timeout=self.busy_timeout)  # type: ignore[arg-type]
            local.conn, local.pid, local.tx = conn, os.getpid(), None
            with self._opened_lock:
                self._opened.append(conn)
        return conn

    def _check_schema(self) -> None:
        with sqlite.errors_translated(self.url.url):
            rows = self._queries["applied_migrations"].fn(self._connection())
            applied = {row["migration_id"] for row in rows}
        missing = sorted(set(shipped_migrations()) - applied)
        if missing:
            raise MigrationError(
                f"{self.url.url} lacks migrations {', '.join(missing)}; run `musicstore migrate` "
                "(or `yoyo apply`, or musicstore.migrate(url)), or open the store with migrate=True"
            )

    def _drive(self, conn: sqlite3.Connection, steps: Steps[T], step: Any) -> T:
        """Answer the operation's steps until it returns; ``step`` is its first."""
        queries, clock, encode = self._queries, self.clock, sqlite.encode
        try:
            while True:
                if step is NOW:
                    value: Any = clock()
                else:
                    query = queries[step.name]
                    value = query.fn(conn, **encode(step.params))
                    if query.returns_rows:
                        value = list(value)
                step = steps.send(value)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        except sqlite3.Error as exc:
            raise sqlite.translate(exc, self.url.url) from exc

    def run(self, op: Operation[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``op`` in this thread's open transaction, else on its own (a write in BEGIN IMMEDIATE)."""
        conn = self._connection()
        tx: Transaction | None = self._local.tx
        if tx is not None:
            return tx.run(op, *args, **kwargs)
        steps = op.steps(*args, **kwargs)
        try:
            first = next(steps)  # argument checks run here, before any lock is taken
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        if not op.writes:
            return self._drive(conn, steps, first)
        with self.transaction(write=True):
            return self._drive(conn, steps, first)

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Transaction]:
        """A transaction on this thread's connection: commit on success, roll back on any exception.

        ``write=True`` starts with ``BEGIN IMMEDIATE`` (the writer lock is taken up front, so it cannot fail
        half-way for contention); ``write=False`` is a read snapshot and refuses write operations. Store
        operations called on this thread meanwhile take part in it.
        """
        conn = self._connection()
        if self._local.tx is not None:
            raise InvalidInput(
                "a transaction is already open on this thread; nested transactions are not supported"
            )
        with sqlite.errors_translated(self.url.url):
            conn.execute(sqlite.BEGIN_WRITE if write else sqlite.BEGIN_READ)
        tx = self._local.tx = Transaction(self, conn, write=write)
        try:
            yield tx
            with sqlite.errors_translated(self.url.url):
                conn.execute("COMMIT")
        finally:
            self._local.tx = None
            if conn.in_transaction:
                conn.execute("ROLLBACK")


class Transaction(Operations):
    """One open transaction; the same operations as ``Store``, all inside it."""

    def __init__(self, store: Store, conn: sqlite3.Connection, *, write: bool) -> None:
        self.store = store
        self.write = write
        self._conn = conn

    def run(self, op: Operation[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        if op.writes and not self.write:
            raise InvalidInput(f"{op.__name__} writes; open the transaction with write=True")
        steps = op.steps(*args, **kwargs)
        try:
            first = next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        return self.store._drive(self._conn, steps, first)
