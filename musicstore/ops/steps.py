"""What an operation yields (``Call``, ``NOW``) and what makes a generator an ``Operation``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from typing import Any, Generic, NamedTuple, ParamSpec, TypeVar, overload

from ..models import RowReader

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")
Params = dict[str, Any]


class Call(NamedTuple):
    """Run the named query from ``sql/`` with these parameters.

    The operation receives the row count (``!`` queries), or the rows (a list; one row or None for ``^``
    queries) built by ``rows``, a row reader from ``musicstore.models`` (default: dicts by column name).
    """

    name: str
    params: dict[str, Any]
    rows: RowReader[Any] | None = None


class _Now:
    __slots__ = ()


NOW = _Now()
"""Ask the runner for the current time (the store's clock, which tests may replace)."""

Step = Call | _Now
Steps = Generator[Step, Any, T]


class Query(NamedTuple):
    """A read that is one named query: the query, its row reader, the function of the operation's arguments
    that checks them and returns the parameters, and what makes the result of the rows (None: the rows)."""

    name: str
    rows: RowReader[Any]
    params: Callable[..., Params]
    finish: Callable[[Any], Any] | None


Plan = tuple[str, Params, "RowReader[Any] | None", Callable[[Any], T]]
"""What a read that is one query chosen by its arguments asks for (``reads_planned``): the query's name, its
parameters, its row reader (None: dicts by column name), and what makes the result of what it returns."""


class Operation(Generic[P, T]):
    """A store operation: its steps, and whether it writes (a write runs in ``BEGIN IMMEDIATE``).

    ``query`` is set on a read that is one fixed named query (``reads_one``, ``reads_all``), ``plan`` on a
    read that is one query its arguments choose (``reads_planned``): their steps are derived from them, and a
    driver may run them without a generator.
    """

    def __init__(
        self,
        steps: Callable[P, Steps[T]],
        *,
        writes: bool,
        query: Query | None = None,
        plan: Callable[P, Plan[T]] | None = None,
    ) -> None:
        self.steps = steps
        self.writes = writes
        self.query = query
        self.plan = plan
        self.__name__ = steps.__name__
        self.__doc__ = steps.__doc__


def writer(steps: Callable[P, Steps[T]]) -> Operation[P, T]:
    """Make a generator function a writing operation (run in a write transaction)."""
    return Operation(steps, writes=True)


def reader(steps: Callable[P, Steps[T]]) -> Operation[P, T]:
    """Make a generator function a reading operation (autocommit, or in the caller's transaction)."""
    return Operation(steps, writes=False)


def _single(query: Query, params: Callable[P, Params]) -> Operation[P, Any]:
    name, rows, finish = query.name, query.rows, query.finish

    @functools.wraps(params)
    def steps(*args: P.args, **kwargs: P.kwargs) -> Steps[Any]:
        found = yield Call(name, params(*args, **kwargs), rows)
        return found if finish is None else finish(found)

    return Operation(steps, writes=False, query=query)


def reads_one(name: str, rows: RowReader[R]) -> Callable[[Callable[P, Params]], Operation[P, R | None]]:
    """Make a function of the arguments that returns the parameters a read of one row (a ``^`` query)."""
    return lambda params: _single(Query(name, rows, params, None), params)


@overload
def reads_all(name: str, rows: RowReader[R]) -> Callable[[Callable[P, Params]], Operation[P, list[R]]]: ...
@overload
def reads_all(
    name: str, rows: RowReader[R], finish: Callable[[list[R]], T]
) -> Callable[[Callable[P, Params]], Operation[P, T]]: ...
def reads_all(
    name: str, rows: RowReader[Any], finish: Callable[[list[Any]], Any] | None = None
) -> Callable[[Callable[P, Params]], Operation[P, Any]]:
    """Make a function of the arguments that returns the parameters a read of a query's rows, made into the
    operation's result by ``finish`` (default: the list of rows)."""
    return lambda params: _single(Query(name, rows, params, finish), params)


def reads_planned(plan: Callable[P, Plan[T]]) -> Operation[P, T]:
    """Make a function of the arguments that checks them and returns the one query to run (``Plan``) a
    reading operation."""

    @functools.wraps(plan)
    def steps(*args: P.args, **kwargs: P.kwargs) -> Steps[T]:
        name, params, rows, finish = plan(*args, **kwargs)
        found = yield Call(name, params, rows)
        return finish(found)

    return Operation(steps, writes=False, plan=plan)
