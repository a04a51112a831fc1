"""The operations as methods of a driver (``Store``, ``Transaction``, their async twins), and as functions
taking the driver first: ``Bound``, made by ``method`` and ``coroutine_method`` (re-exported by
``musicstore.runner``)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from ..errors import InvalidInput
from ..ops import Operation

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")

_VOCABULARIES: set[type] = set()
"""The classes whose methods are operations (``Operations``, ``AsyncOperations``): the function form of an
operation (``musicstore.get_generation(session, id)``) takes an instance of one first."""


class Bound(Generic[P, R]):
    """An operation as a method of a driver (``Store``, ``Transaction``, their async twins), and as a function
    taking the driver first. The method is the driver's ``run`` with the operation bound."""

    def __init__(self, op: Operation[P, Any]) -> None:
        self.op = op
        self.__doc__ = op.__doc__
        self.name = op.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        _VOCABULARIES.add(owner)

    @overload
    def __get__(self, obj: None, owner: type) -> Callable[Concatenate[Any, P], R]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> Callable[P, R]: ...
    def __get__(self, obj: Any, owner: type) -> Callable[..., R]:
        if obj is None:
            return functools.partial(_run_on, self.op)
        bound: Callable[..., R] = obj.bound(self.op)
        obj.__dict__[self.name] = bound  # later look-ups skip this descriptor
        return bound


def _run_on(op: Operation[P, Any], runner: Any, /, *args: P.args, **kwargs: P.kwargs) -> Any:
    if not _is_vocabulary(runner):
        raise InvalidInput(
            f"{op.__name__} takes a session, Store or Transaction first (musicstore.get_session(url)), "
            f"got {type(runner).__name__}"
        )
    return runner.run(op, *args, **kwargs)


def _is_vocabulary(runner: object) -> bool:
    return isinstance(runner, tuple(_VOCABULARIES))


def method(op: Operation[P, T]) -> Bound[P, T]:
    """``op`` as a method of a sync driver."""
    return Bound(op)


def coroutine_method(op: Operation[P, T]) -> Bound[P, Coroutine[Any, Any, T]]:
    """``op`` as a coroutine method of an async driver."""
    return Bound(op)
