"""``Store``: the job store opened from a URL, its transactions, and the operations bound to both.

Each operation in ``musicstore.ops`` is a generator of query calls; ``Store`` and ``Transaction`` only drive
them through a backend connector (``musicstore.backends.sqlite``, ``musicstore.backends.postgres``). A write
operation runs in its own transaction (``BEGIN IMMEDIATE`` on SQLite), or inside the caller's
``store.transaction()``; a read runs as a single autocommit statement, or inside it.
``musicstore.aio.AsyncStore`` drives the same operations with ``await``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

from . import ops, validate
from .errors import InvalidInput, MigrationError
from .migrate import shipped_migrations
from .ops import NOW, Operation, Steps
from .queries import Query, execute, load
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
    get_all_generations = _Bound(ops.get_all_generations)
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

    def run(self, op: Operation[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``op`` with these arguments; each subclass decides where."""
        raise NotImplementedError


def start(op: Operation[P, T], *args: P.args, **kwargs: P.kwargs) -> tuple[Steps[T], Any]:
    """Create the operation's steps and run its argument checks, up to its first database step.

    Returns the steps and their first request, or raises ``StopIteration`` carrying the result when the
    operation needs no database at all.
    """
    steps = op.steps(*args, **kwargs)
    return steps, next(steps)


def check_schema(url: str, applied: set[str]) -> None:
    """Raise MigrationError unless every migration this version ships has been applied."""
    missing = sorted(set(shipped_migrations()) - applied)
    if missing:
        raise MigrationError(
            f"{url} lacks migrations {', '.join(missing)}; run `musicstore migrate` "
            "(or `yoyo apply`, or musicstore.migrate(url)), or open the store with migrate=True"
        )


def sync_connector(target: DatabaseURL, *, busy_timeout: float, pool_size: int) -> Any:
    """The sync connector for a URL's backend."""
    if target.dialect == "postgres":
        from .backends.postgres import PostgresConnector

        return PostgresConnector(target.url, pool_size=pool_size, timeout=busy_timeout)
    from .backends.sqlite import SQLiteConnector

    assert target.path is not None
    return SQLiteConnector(target.path, busy_timeout=busy_timeout)


class Store(Operations):
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
        validate.store_options(url, busy_timeout, pool_size, clock)
        self.url: DatabaseURL = resolve(url)
        if migrate:
            from .migrate import migrate as apply_migrations

            apply_migrations(self.url.url)
        self.clock = clock
        self._connector = sync_connector(self.url, busy_timeout=busy_timeout, pool_size=pool_size)
        self._queries: dict[str, Query] = load(self._connector.dialect, self._connector.driver)
        self._local = threading.local()
        try:
            check_schema(self.url.masked, self.run(ops.applied_migrations))
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

    def _drive(self, conn: Any, steps: Steps[T], step: Any) -> T:
        """Answer the operation's steps until it returns; ``step`` is its first."""
        queries, clock, encode = self._queries, self.clock, self._connector.encode
        try:
            while True:
                if step is NOW:
                    value: Any = validate.moment(clock(), "the store's clock")
                else:
                    value = execute(conn, queries[step.name], encode(step.params))
                step = steps.send(value)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        except self._connector.errors as exc:
            raise self._connector.translate(exc) from exc

    def _acquire(self) -> Any:
        """A connection, with a pool timeout or a database that cannot be opened translated."""
        try:
            return self._connector.acquire()
        except self._connector.errors as exc:
            raise self._connector.translate(exc) from exc

    def run(self, op: Operation[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``op`` in this thread's open transaction, else on its own (a write in its own transaction)."""
        tx: Transaction | None = getattr(self._local, "tx", None)
        if tx is not None:
            return tx.run(op, *args, **kwargs)
        try:
            steps, first = start(op, *args, **kwargs)  # argument checks run before any lock is taken
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        connector = self._connector
        conn = self._acquire()
        try:
            if not op.writes:
                return self._drive(conn, steps, first)
            with self._translated(), connector.transaction(conn, write=True):
                return self._drive(conn, steps, first)
        finally:
            connector.release(conn)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except self._connector.errors as exc:
            raise self._connector.translate(exc) from exc

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Transaction]:
        """A transaction: committed when the block ends, rolled back if it raises.

        ``write=True`` takes the writer lock up front on SQLite (``BEGIN IMMEDIATE``), so it waits for other
        writers instead of failing half-way; ``write=False`` is a consistent read snapshot that refuses write
        operations. Store operations called on this thread meanwhile take part in it.
        """
        if getattr(self._local, "tx", None) is not None:
            raise InvalidInput(
                "a transaction is already open on this thread; nested transactions are not supported"
            )
        connector = self._connector
        conn = self._acquire()
        try:
            with self._translated(), connector.transaction(conn, write=write):
                tx = self._local.tx = Transaction(self, conn, write=write)
                try:
                    yield tx
                finally:
                    tx.closed = True  # its connection goes back: refuse to run outside the transaction
                    self._local.tx = None
        finally:
            connector.release(conn)


class Transaction(Operations):
    """One open transaction; the same operations as ``Store``, all inside it."""

    def __init__(self, store: Store, conn: Any, *, write: bool) -> None:
        self.store = store
        self.write = write
        self.closed = False
        self._conn = conn

    def run(self, op: Operation[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        if self.closed:
            raise InvalidInput(f"{op.__name__}: this transaction has ended; open a new one")
        if op.writes and not self.write:
            raise InvalidInput(f"{op.__name__} writes; open the transaction with write=True")
        try:
            steps, first = start(op, *args, **kwargs)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        return self.store._drive(self._conn, steps, first)
