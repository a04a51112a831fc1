"""What the sync and async drivers share: the clock, the schema check, the one error translation, the
operations as methods, and the loop that answers an operation's steps (the schema and clock checks live in
``musicstore.drivers.opening``, the operations as methods in ``musicstore.drivers.methods``: imported here).

``musicstore.store`` (blocking calls) and ``musicstore.aio`` (awaited calls) drive the generators of
``musicstore.ops`` with these pieces; neither imports the other.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from . import validate
from .drivers.methods import Bound, coroutine_method, method
from .drivers.opening import CLOCK_SKEW_SECONDS, check_schema, warn_skew
from .errors import InvalidInput
from .models import RowReader
from .ops import EXPLAIN, MORE, NOW, Operation, Params, Step, Steps
from .ops.steps import unchanged
from .queries import COUNT, ONE, ROWS, Query, load, rows_of

P = ParamSpec("P")
T = TypeVar("T")

Clock = Callable[[], datetime]
CLOCK = "the store's clock"


def utcnow() -> datetime:
    """The default clock: the current time, UTC, timezone-aware."""
    return datetime.now(UTC)


now = functools.partial(datetime.now, UTC)
"""``utcnow`` without a Python frame, for the step loop (the default clock's value needs no check)."""


CONFLICT_RETRIES = 4
"""How many more times a write operation runs after PostgreSQL aborted it for a deadlock or a serialization
conflict (``WriteConflict``). Each try is a new transaction from the operation's first step, so nothing of the
aborted one remains. Two writers touching the same running-total rows in opposite orders (a batch that spans
models or days, while their pid shards collide) is the case this exists for."""


def conflict_wait(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): 10 ms doubled each time, randomised by +-50 % so
    that the two conflicting writers do not meet again in step."""
    return 0.01 * 2.0 ** (attempt - 1) * _JITTER.uniform(0.5, 1.5)


_JITTER = random.Random()
"""The conflict waits' own generator: a library's retries leave the application's ``random`` state alone (a
seeded simulation, Hypothesis' strategies drawing while a retry waits)."""


class Translating:
    """A context manager (reusable, no state per use): a backend's error leaving the block (sqlite3, psycopg,
    a pool timeout) is raised as its ``musicstore.errors`` counterpart, the original as its cause."""

    __slots__ = ("errors", "translate")

    def __init__(self, connector: Any) -> None:
        self.errors: tuple[type[BaseException], ...] = connector.errors
        self.translate: Callable[[BaseException], BaseException | None] = connector.translate

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and isinstance(exc, self.errors):
            translated = self.translate(exc)
            if translated is not None:
                raise translated from exc


def start(op: Operation[P, T], *args: P.args, **kwargs: P.kwargs) -> tuple[Steps[T], Step]:
    """The operation's steps and their first request: its argument checks run here, before any connection is
    taken. Raises ``StopIteration`` carrying the result when the operation needs no database at all."""
    steps = op.steps(*args, **kwargs)
    return steps, next(steps)


def start_in(tx: Any, op: Operation[P, T], *args: P.args, **kwargs: P.kwargs) -> tuple[Steps[T], Step]:
    """``start`` in an open transaction ``tx`` (``Transaction``, ``AsyncTransaction``), which must still be
    open, and open for writing if ``op`` writes."""
    if tx.closed:
        raise InvalidInput(f"{op.__name__}: this transaction has ended; open a new one")
    if op.writes and not tx.write:
        raise InvalidInput(f"{op.__name__} writes; open the transaction with write=True")
    return start(op, *args, **kwargs)


class Driver:
    """What a driver (``Store``, ``AsyncStore``) answers an operation's steps with: its queries, its clock,
    its connector (its parameter encoding), and the translation of the connector's errors."""

    clock: Clock
    _connector: Any
    _queries: dict[str, Query]
    _translating: Translating

    def _connect(self, connector: Any, clock: Clock) -> None:
        self.clock = clock
        self._connector = connector
        self._translating = Translating(connector)
        self._queries = load(connector.dialect, connector.driver)


Prepared = tuple[Query, Params, "RowReader[Any] | None", "Callable[[Any], Any] | None"]
"""What a read that is one query runs (``one_query``): the loaded query, its parameters encoded for the
backend, its row reader, and what makes the result of what it returns (None: that is the result)."""


def one_query(driver: Driver, op: Operation[P, Any]) -> Callable[P, Prepared]:
    """The one definition of a read that is one named query (``op.query``, or ``op.plan`` choosing it) that
    both drivers run without its generator (``Store``'s and ``AsyncStore``'s direct reads): from the
    operation's arguments, checked here (before any connection is taken), what to run (``Prepared``). A
    driver only runs the query and applies the result's ``finish``: the same answers as the generator's.
    The query's text and what it returns are looked up once; parameters are encoded only when there are any.
    """
    queries, encode = driver._queries, driver._connector.encode
    if op.query is not None:
        name, rows, params_of, finish = op.query
        query = queries[name]

        def fixed(*args: P.args, **kwargs: P.kwargs) -> Prepared:
            params = params_of(*args, **kwargs)
            return query, encode(params) if params else params, rows, finish

        return fixed
    plan = op.plan
    if plan is None:
        raise TypeError(f"{op.__name__} is not a read of one query")

    def planned(*args: P.args, **kwargs: P.kwargs) -> Prepared:
        name, params, rows, finish = plan(*args, **kwargs)
        return queries[name], encode(params) if params else params, rows, finish

    return planned


def fixed_write(driver: Driver, op: Operation[P, T]) -> Callable[..., T]:
    """What runs a ``Fixed`` write (``op.fixed``) on a connection in its open write transaction, without its
    generator: ``run(conn, *checked)``, ``checked`` what ``op.fixed.check`` returned for the operation's
    arguments. The clock as ``drive`` answers ``NOW``, each query as ``queries.execute`` runs it, inlined as
    in ``drive`` (its moments made by the connector's ``stamp`` where it has one, else the parameters
    encoded, one dict serving several queries once; each looked up by name when it runs, as ``drive`` does),
    the same result (``more``'s, driven by ``drive`` in the same transaction, when ``finish`` asks for
    them), and the same error: ``explain``'s, driven by ``drive`` in the same transaction. Two shapes run
    leaner: one UPDATE (its row count alone) and queries that all return rows (no row reader for no rows;
    dicts only: a later query's function of the rows before runs in the general shape)."""
    fixed = op.fixed
    if fixed is None:
        raise TypeError(f"{op.__name__} is not a write of fixed queries")
    named, params_of, finish, connector = fixed.queries, fixed.params, fixed.finish, driver._connector
    stamp: Callable[[Any], Any] | None = getattr(connector, "stamp", None)
    encode: Callable[[Params], Params] | None = None
    if stamp is None:  # a connector without ``stamp`` encodes the parameters (psycopg: nothing to do)
        stamp, encode = unchanged, connector.encode

    kinds = {name: query.returns for name, query in driver._queries.items()}
    if len(named) == 1 and kinds[named[0][0]] is COUNT:  # one UPDATE: its row count
        name = named[0][0]

        def count(conn: Any, *checked: Any) -> T:
            clock = driver.clock
            moment = now() if clock is utcnow else validate.moment(clock(), CLOCK)
            (each,) = params_of(moment, stamp, checked)  # a dict: only a later query's may be a function
            sql = driver._queries[name].sql  # looked up by name on each run, as ``drive`` does
            changed = conn.execute(sql, each if encode is None or not each else encode(each)).rowcount  # type: ignore[arg-type]
            result = finish([changed], moment, checked)
            if result is EXPLAIN or result is MORE:
                return _further(driver, conn, op, result, moment=moment, checked=checked)
            return result  # type: ignore[no-any-return]

        return count

    if all(kinds[name] is ROWS for name, _ in named):  # queries that return rows (requeue_expired)

        def fetch(conn: Any, *checked: Any) -> T:
            clock = driver.clock
            moment = now() if clock is utcnow else validate.moment(clock(), CLOCK)
            found: list[Any] = []
            queries = driver._queries
            given = params_of(moment, stamp, checked)  # one per query (the steps zip them strictly)
            for (name, rows), each in zip(named, given):  # noqa: B905  # strict=: a keyword call, 0.1 µs
                query = queries[name]
                cursor = conn.execute(query.sql, each if encode is None or not each else encode(each))  # type: ignore[arg-type]
                got = cursor.fetchall()
                if got:  # no rows (the common case: none due) need no row reader
                    got = rows_of(got, query.builders.get(rows) or query.builder(rows, cursor.description))
                found.append(got)
            result = finish(found, moment, checked)
            if result is EXPLAIN or result is MORE:
                return _further(driver, conn, op, result, moment=moment, checked=checked)
            return result  # type: ignore[no-any-return]

        return fetch

    def run(conn: Any, *checked: Any) -> T:
        clock = driver.clock
        moment = now() if clock is utcnow else validate.moment(clock(), CLOCK)
        found: list[Any] = []
        given = params = None
        queries = driver._queries
        for (name, rows), entry in zip(named, params_of(moment, stamp, checked), strict=True):
            query = queries[name]
            if entry is not given:
                each = entry(found) if callable(entry) else entry  # a function of the rows before
                if each is None:
                    break
                given, params = entry, each if encode is None or not each else encode(each)
            cursor = conn.execute(query.sql, params)  # queries.execute, inlined as in drive
            returns = query.returns
            if returns is COUNT:
                found.append(cursor.rowcount)
            else:
                build = query.builders.get(rows) or query.builder(rows, cursor.description)
                if returns is ONE:
                    row = cursor.fetchone()
                    cursor.close()
                    if row is None:  # no row: the last query to run (``Fixed``)
                        found.append(None)
                        break
                    found.append(build(row))
                else:
                    found.append(rows_of(cursor.fetchall(), build))
        result = finish(found, moment, checked)
        if result is EXPLAIN or result is MORE:
            return _further(driver, conn, op, result, moment=moment, checked=checked)
        return result  # type: ignore[no-any-return]

    return run


def _further(
    driver: Driver, conn: Any, op: Operation[P, T], result: Any, *, moment: Any, checked: tuple[Any, ...]
) -> T:
    """What a ``Fixed`` write raises whose ``finish`` returned ``EXPLAIN``, or returns whose ``finish``
    returned ``MORE``."""
    if result is EXPLAIN:
        raise _explained(driver, conn, op, checked)
    return _more(driver, conn, op, moment, checked)


def _explained(driver: Driver, conn: Any, op: Operation[P, Any], checked: tuple[Any, ...]) -> Exception:
    """The error a ``Fixed`` write raises when its ``finish`` returned ``EXPLAIN``: its ``explain`` steps'
    result, driven by ``drive`` in the same transaction."""
    explain = op.fixed.explain if op.fixed is not None else None
    if explain is None:
        raise TypeError(f"{op.__name__}: EXPLAIN without explain steps")
    steps = explain(*checked)
    return drive(driver, conn, steps, next(steps))


def _more(driver: Driver, conn: Any, op: Operation[P, T], moment: Any, checked: tuple[Any, ...]) -> T:
    """The result of a ``Fixed`` write whose ``finish`` returned ``MORE``: its ``more`` steps', driven by
    ``drive`` in the same transaction at the same ``moment``."""
    more = op.fixed.more if op.fixed is not None else None
    if more is None:
        raise TypeError(f"{op.__name__}: MORE without more steps")
    steps = more(moment, *checked)
    try:
        step = next(steps)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    result: T = drive(driver, conn, steps, step)
    return result


def drive(driver: Driver, conn: Any, steps: Steps[T], step: Step) -> T:
    """Answer an operation's steps with blocking calls until it returns; ``step`` is its first. Each query
    runs as ``queries.execute`` runs it, inlined (one Python call less per step); the same ``Call`` yielded
    again (``claim_batch``'s claims) runs as looked up and encoded the first time."""
    queries, clock, encode = driver._queries, driver.clock, driver._connector.encode
    execute = conn.execute
    send = steps.send
    last: Any = None
    try:
        while True:
            if step is NOW:
                value: Any = now() if clock is utcnow else validate.moment(clock(), CLOCK)
            else:
                if step is not last:
                    name, params, rows = step  # type: ignore[misc]
                    query, params = queries[name], encode(params) if params else params
                    returns, build, last = query.returns, None, step
                cursor = execute(query.sql, params)
                if returns is COUNT:
                    value = cursor.rowcount
                else:
                    if build is None:
                        build = query.builders.get(rows) or query.builder(rows, cursor.description)
                    if returns is ONE:
                        row = cursor.fetchone()
                        cursor.close()
                        value = None if row is None else build(row)
                    else:
                        value = rows_of(cursor.fetchall(), build)
            step = send(value)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def drive_async(driver: Driver, conn: Any, steps: Steps[T], step: Step) -> T:
    """``drive`` with awaited calls: the same loop, written twice on purpose (only the query is awaited; one
    loop shared through another generator would add a layer to every step of the sync driver's hot path)."""
    queries, clock, connector = driver._queries, driver.clock, driver._connector
    encode, execute = connector.encode, connector.execute  # its ``queries.execute_async``
    last: Any = None
    try:
        while True:
            if step is NOW:
                value: Any = now() if clock is utcnow else validate.moment(clock(), CLOCK)
            else:
                if step is not last:  # a step yielded again runs as encoded the first time, as in ``drive``
                    name, params, rows = step  # type: ignore[misc]
                    query, params, last = queries[name], encode(params), step
                value = await execute(conn, query, params, rows)
            step = steps.send(value)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


__all__ = [
    "CLOCK_SKEW_SECONDS",
    "Bound",
    "Clock",
    "Driver",
    "Prepared",
    "Translating",
    "check_schema",
    "coroutine_method",
    "drive",
    "drive_async",
    "fixed_write",
    "method",
    "one_query",
    "start",
    "start_in",
    "utcnow",
    "warn_skew",
]
