"""The operations as methods of a driver (``Store``, ``Transaction``, their async twins), and as functions
taking the driver first: ``Bound``, made by ``method`` and ``coroutine_method`` (re-exported by
``musicstore.runner``); ``Operations`` and ``AsyncOperations``, the sync and the async drivers' lists of them
(re-exported by ``musicstore.store`` and ``musicstore.aio``)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from .. import ops
from ..errors import InvalidInput
from ..ops import Operation, progress

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
            return self.op.shown(functools.partial(_run_on, self.op), "runner")
        bound: Callable[..., R] = self.op.shown(obj.bound(self.op))
        obj.__dict__[self.name] = bound  # later look-ups skip this descriptor
        return bound


def _run_on(op: Operation[P, Any], runner: Any, /, *args: P.args, **kwargs: P.kwargs) -> Any:
    if not _is_vocabulary(runner):
        raise InvalidInput(
            f"{op.__name__} takes a session, Store or Transaction first (musicstore.get_session(url)), "
            f"got {type(runner).__name__}"
        )
    own = _own_method(type(runner), op.__name__)
    if own is not None:  # the driver's own (Store.claim_next: its wait; a transaction's refuses one)
        return own(runner, *args, **kwargs)
    return runner.run(op, *args, **kwargs)


def _own_method(driver: type, name: str) -> Callable[..., Any] | None:
    """The method ``name`` of ``driver`` (or a base) where one is written out, not a ``Bound`` operation."""
    for klass in driver.__mro__:
        if name in klass.__dict__:
            found = klass.__dict__[name]
            return None if isinstance(found, Bound) else found
    return None


def _is_vocabulary(runner: object) -> bool:
    return isinstance(runner, tuple(_VOCABULARIES))


def method(op: Operation[P, T]) -> Bound[P, T]:
    """``op`` as a method of a sync driver."""
    return Bound(op)


def coroutine_method(op: Operation[P, T]) -> Bound[P, Coroutine[Any, Any, T]]:
    """``op`` as a coroutine method of an async driver."""
    return Bound(op)


class AsyncOperations:
    """The store's vocabulary as coroutines; ``AsyncStore`` and ``AsyncTransaction`` provide ``run``.

    The same names as ``Operations`` below (a test keeps the two lists equal).
    """

    create_generation = coroutine_method(ops.create_generation)
    get_generation = coroutine_method(ops.get_generation)
    list_generations = coroutine_method(ops.list_generations)
    get_all_generations = coroutine_method(ops.get_all_generations)
    get_pending_generations = coroutine_method(ops.get_pending_generations)
    count_generations = coroutine_method(ops.count_generations)
    get_database_stats = coroutine_method(ops.get_database_stats)
    claim_next = coroutine_method(ops.claim_next)
    claim_batch = coroutine_method(ops.claim_batch)
    heartbeat = coroutine_method(ops.heartbeat)
    complete_generation = coroutine_method(ops.complete_generation)
    fail = coroutine_method(ops.fail)
    cancel = coroutine_method(ops.cancel)
    requeue_expired = coroutine_method(ops.requeue_expired)
    update_generation_status = coroutine_method(ops.update_generation_status)
    delete_generation = coroutine_method(ops.delete_generation)
    reset_database = coroutine_method(ops.reset_database)
    track_prompt_usage = coroutine_method(ops.track_prompt_usage)
    get_prompt_by_text = coroutine_method(ops.get_prompt_by_text)
    get_most_used_prompts = coroutine_method(ops.get_most_used_prompts)
    create_rendition = coroutine_method(ops.create_rendition)
    get_rendition = coroutine_method(ops.get_rendition)
    get_rendition_by_settings = coroutine_method(ops.get_rendition_by_settings)
    list_renditions = coroutine_method(ops.list_renditions)
    merge_metadata = coroutine_method(ops.merge_metadata)
    set_owner_limit = coroutine_method(ops.set_owner_limit)
    get_owner_limits = coroutine_method(ops.get_owner_limits)
    queue_depth = coroutine_method(ops.queue_depth)
    list_dead_letters = coroutine_method(ops.list_dead_letters)
    replay = coroutine_method(ops.replay)
    replay_all = coroutine_method(ops.replay_all)

    async def run(self, op: Operation[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``op`` with these arguments; each subclass decides where."""
        raise NotImplementedError

    def bound(self, op: Operation[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
        """``op`` as a coroutine method of this driver: ``run`` with ``op`` bound."""
        return functools.partial(self.run, op)

    async def queue_position(
        self, generation_id: str, *, window_seconds: float = progress.THROUGHPUT_WINDOW_SECONDS
    ) -> progress.QueuePosition:
        """As ``Store.queue_position``."""
        return await self.run(progress.queue_position, generation_id, window_seconds=window_seconds)


OPERATION_NAMES = frozenset(name for name, value in vars(AsyncOperations).items() if hasattr(value, "op"))
"""The names of the store's operations (the same on ``Store`` and ``AsyncStore``)."""


class Operations:
    """The store's vocabulary; ``Store`` and ``Transaction`` provide ``run``.

    ``AsyncOperations`` above lists the same operations as coroutines (a test keeps the two lists
    equal): each list types its methods for its driver, which one list cannot do.
    """

    create_generation = method(ops.create_generation)
    get_generation = method(ops.get_generation)
    list_generations = method(ops.list_generations)
    get_all_generations = method(ops.get_all_generations)
    get_pending_generations = method(ops.get_pending_generations)
    count_generations = method(ops.count_generations)
    get_database_stats = method(ops.get_database_stats)
    claim_next = method(ops.claim_next)
    claim_batch = method(ops.claim_batch)
    heartbeat = method(ops.heartbeat)
    complete_generation = method(ops.complete_generation)
    fail = method(ops.fail)
    cancel = method(ops.cancel)
    requeue_expired = method(ops.requeue_expired)
    update_generation_status = method(ops.update_generation_status)
    delete_generation = method(ops.delete_generation)
    reset_database = method(ops.reset_database)
    track_prompt_usage = method(ops.track_prompt_usage)
    get_prompt_by_text = method(ops.get_prompt_by_text)
    get_most_used_prompts = method(ops.get_most_used_prompts)
    create_rendition = method(ops.create_rendition)
    get_rendition = method(ops.get_rendition)
    get_rendition_by_settings = method(ops.get_rendition_by_settings)
    list_renditions = method(ops.list_renditions)
    merge_metadata = method(ops.merge_metadata)
    set_owner_limit = method(ops.set_owner_limit)
    get_owner_limits = method(ops.get_owner_limits)
    queue_depth = method(ops.queue_depth)
    list_dead_letters = method(ops.list_dead_letters)
    replay = method(ops.replay)
    replay_all = method(ops.replay_all)

    def run(self, op: Operation[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``op`` with these arguments; each subclass decides where."""
        raise NotImplementedError

    def bound(self, op: Operation[P, T]) -> Callable[P, T]:
        """``op`` as a method of this driver: ``run`` with ``op`` bound (a subclass may answer it faster)."""
        return functools.partial(self.run, op)

    def queue_position(
        self, generation_id: str, *, window_seconds: float = progress.THROUGHPUT_WINDOW_SECONDS
    ) -> progress.QueuePosition:
        """Pending generations ahead of this one in the claim's order, and its ETA at the recent throughput
        (``musicstore.ops.progress.queue_position``)."""
        return self.run(progress.queue_position, generation_id, window_seconds=window_seconds)
