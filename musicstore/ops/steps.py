"""What an operation yields (``Call``, ``NOW``) and what makes a generator an ``Operation``."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Generic, NamedTuple, ParamSpec, TypeVar

from ..models import RowReader

P = ParamSpec("P")
T = TypeVar("T")


class Call(NamedTuple):
    """Run the named query from ``sql/`` with these parameters.

    The operation receives the row count (``!`` queries), or the rows (a list; one row or None for ``^``
    queries) built by ``rows``, a row reader from ``musicstore.models`` (default: dicts by column name).
    """

    name: str
    params: dict[str, Any]
    rows: RowReader | None = None


class _Now:
    __slots__ = ()


NOW = _Now()
"""Ask the runner for the current time (the store's clock, which tests may replace)."""

Step = Call | _Now
Steps = Generator[Step, Any, T]


class Operation(Generic[P, T]):
    """A store operation: its steps, and whether it writes (a write runs in ``BEGIN IMMEDIATE``)."""

    def __init__(self, steps: Callable[P, Steps[T]], *, writes: bool) -> None:
        self.steps = steps
        self.writes = writes
        self.__name__ = steps.__name__
        self.__doc__ = steps.__doc__


def writer(steps: Callable[P, Steps[T]]) -> Operation[P, T]:
    """Make a generator function a writing operation (run in a write transaction)."""
    return Operation(steps, writes=True)


def reader(steps: Callable[P, Steps[T]]) -> Operation[P, T]:
    """Make a generator function a reading operation (autocommit, or in the caller's transaction)."""
    return Operation(steps, writes=False)
