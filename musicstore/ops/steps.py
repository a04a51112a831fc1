"""What an operation yields (``Call``, ``NOW``) and what makes a generator an ``Operation``."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Generator
from typing import Any, Generic, NamedTuple, ParamSpec, TypeVar, overload

from ..models import RowReader

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])
Params = dict[str, Any]


class Call(NamedTuple):
    """Run the named query from ``sql/`` with these parameters.

    The operation receives the row count (``!`` queries), or the rows (a list; one row or None for ``^``
    queries) built by ``rows``, a row reader from ``musicstore.models`` (default: dicts by column name).
    ``params`` is not changed once yielded: a driver may run the same ``Call`` yielded again (a claim batch's
    claims) with the parameters it encoded the first time.
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


class Explain:
    """The type of ``EXPLAIN``."""

    __slots__ = ()


EXPLAIN = Explain()
"""What a ``Fixed`` write's ``finish`` returns when its queries did not do what was asked (an UPDATE that
matched no row): the driver then runs its ``explain`` steps for the error to raise."""


class More:
    """The type of ``MORE``."""

    __slots__ = ()


MORE = More()
"""What a ``Fixed`` write's ``finish`` returns when its queries did not settle the call (PostgreSQL's claim
that another claimer's locks left undecided): the driver then runs its ``more`` steps, in the same
transaction, for the result."""


def unchanged(moment: Any) -> Any:
    """The ``stamp`` of a driver that encodes a ``Fixed`` write's parameters itself: the value as it is."""
    return moment


Later = Callable[[list[Any]], Params | None]
"""A ``Fixed`` write's parameters of a later query made from what the queries before it returned (None: it
does not run)."""


class Fixed(NamedTuple):
    """A write that is a fixed list of named queries after its argument checks and the clock
    (``writes_fixed``): its steps are derived from it, and a driver may run it without a generator.

    ``check`` takes the operation's arguments and returns them checked (a tuple, before any connection is
    taken; ``params`` and ``finish`` take it as one argument: no star call in a direct write's path);
    ``params(now, stamp, checked)`` gives each query's parameters (one dict may serve several
    queries), each datetime among them as ``stamp`` gives it (the backend's encoding of a moment, or the
    datetime itself where the driver encodes the parameters: ``unchanged``); a later query's entry may be,
    instead of a dict, a function of what the queries before it returned (a list, in order) giving its
    parameters, or None: then it does not run, and the queries before it are all ``finish`` sees (a read
    then the write it decides: ``complete_generation``);
    ``finish(found, now, checked)`` makes the result of what the queries returned, in order (a query that
    returns None, a ``^`` query that found no row, is the last to run), or returns ``EXPLAIN``;
    ``explain(*checked)`` is then the steps whose result is the error to raise.
    ``more(now, *checked)``: the steps whose result is the operation's when ``finish`` returned ``MORE``.
    ``first(*checked)``, where given: None when the call is the fixed queries alone, else a function of the
    clock's moment giving the steps that run before them, whose result, unless None, is the operation's (the
    fixed queries are then not run); a driver runs such a call through the operation's steps.
    """

    queries: tuple[tuple[str, RowReader[Any] | None], ...]
    check: Callable[..., tuple[Any, ...]]
    params: Callable[..., tuple[Params | Later, ...]]
    finish: Callable[..., Any]
    explain: Callable[..., Generator[Step, Any, Exception]] | None
    first: Callable[..., Callable[[Any], Generator[Step, Any, Any]] | None] | None = None
    more: Callable[..., Generator[Step, Any, Any]] | None = None


Plan = tuple[str, Params, "RowReader[Any] | None", Callable[[Any], T]]
"""What a read that is one query chosen by its arguments asks for (``reads_planned``): the query's name, its
parameters, its row reader (None: dicts by column name), and what makes the result of what it returns."""


class Operation(Generic[P, T]):
    """A store operation: its steps, and whether it writes (a write runs in ``BEGIN IMMEDIATE``).

    ``query`` is set on a read that is one fixed named query (``reads_one``, ``reads_all``), ``plan`` on a
    read that is one query its arguments choose (``reads_planned``), ``fixed`` on a write that is fixed
    queries after its checks (``writes_fixed``): their steps are derived from them, and a driver may run them
    without a generator. ``alone``: a write whose first statement may commit by itself, because it is the
    whole write or it changed nothing (``writer_alone``): on PostgreSQL that statement runs in autocommit and
    BEGIN goes out only before a second one (``backends.postgres.BEGIN_LATER``), two round trips less.
    """

    def __init__(
        self,
        steps: Callable[P, Steps[T]],
        *,
        writes: bool,
        query: Query | None = None,
        plan: Callable[P, Plan[T]] | None = None,
        fixed: Fixed | None = None,
        alone: bool = False,
    ) -> None:
        self.steps = steps
        self.writes = writes
        self.query = query
        self.plan = plan
        self.fixed = fixed
        self.alone = alone
        self.__name__ = steps.__name__
        self.__doc__ = steps.__doc__

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        """The parameters its callers pass (those of ``steps``), with no return annotation (``steps``'s is
        the driver's business, not the caller's)."""
        return inspect.signature(self.steps).replace(return_annotation=inspect.Signature.empty)

    def shown(self, function: F, *first: str) -> F:
        """``function``, which runs this operation (a driver's method, a 0.1 function taking the driver
        ``first``), given its parameters as its ``__signature__``: ``help()``, ``inspect.signature`` and
        the editors that read it showed ``(*args: P.args, **kwargs: P.kwargs) -> T``."""
        signature = self.signature  # computed once: a transaction binds its methods anew (one setattr each)
        if first:
            leading = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_ONLY) for name in first]
            signature = signature.replace(parameters=[*leading, *signature.parameters.values()])
        setattr(function, "__signature__", signature)  # noqa: B010
        return function


def writer(steps: Callable[P, Steps[T]]) -> Operation[P, T]:
    """Make a generator function a writing operation (run in a write transaction)."""
    return Operation(steps, writes=True)


def writer_alone(steps: Callable[P, Steps[T]]) -> Operation[P, T]:
    """``writer`` for a generator whose first statement is the whole write or changes nothing (a claim that
    took a job or found none, a retry that did not match): that statement may commit by itself."""
    return Operation(steps, writes=True, alone=True)


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


def writes_fixed(
    queries: tuple[tuple[str, RowReader[Any] | None], ...],
    params: Callable[..., tuple[Params | Later, ...]],
    finish: Callable[..., T | Explain | More],
    explain: Callable[..., Generator[Step, Any, Exception]] | None = None,
    *,
    alone: bool = False,
    first: Callable[..., Callable[[Any], Generator[Step, Any, T | None]] | None] | None = None,
    more: Callable[..., Generator[Step, Any, T]] | None = None,
) -> Callable[[Callable[P, tuple[Any, ...]]], Operation[P, T]]:
    """Make a function of the arguments that checks them and returns them checked a writing operation of
    fixed ``queries`` (``Fixed``; the function's name and docstring are the operation's). ``alone``: its first
    query is the whole write, or changes nothing (``Operation``). ``first``: what some calls run before the
    fixed queries, ``more``: what runs after them when they did not settle the call (``Fixed``)."""

    def make(check: Callable[P, tuple[Any, ...]]) -> Operation[P, T]:
        fixed = Fixed(queries, check, params, finish, explain, first, more)

        @functools.wraps(check)
        def steps(*args: P.args, **kwargs: P.kwargs) -> Steps[T]:
            checked = check(*args, **kwargs)
            now = yield NOW
            before = None if first is None else first(*checked)
            if before is not None:
                earlier = yield from before(now)
                if earlier is not None:
                    return earlier
            found: list[Any] = []
            for (name, rows), each in zip(queries, params(now, unchanged, checked), strict=True):
                given = each(found) if callable(each) else each  # a function of what the queries before gave
                if given is None:
                    break
                answer = yield Call(name, given, rows)
                found.append(answer)
                if answer is None:
                    break
            result = finish(found, now, checked)
            if result is EXPLAIN:
                assert explain is not None, f"{steps.__name__}: EXPLAIN without explain steps"
                raise (yield from explain(*checked))
            if result is MORE:
                assert more is not None, f"{steps.__name__}: MORE without more steps"
                return (yield from more(now, *checked))
            return result  # type: ignore[return-value]

        return Operation(steps, writes=True, fixed=fixed, alone=alone)

    return make
