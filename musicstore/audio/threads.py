"""A small pool of threads that run an export's independent numpy and scipy work beside the thread that
asked for it (both release the GIL: the K-weighting filters and the far part's transforms run on two cores
at once). Tasks are leaves: none waits for another task, so the pool cannot deadlock however many exports
share it."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, ParamSpec, TypeVar

_WORKERS = 4  # an export_batch's threads each hand over at most one task at a time
_P = ParamSpec("_P")
_T = TypeVar("_T")
_U = TypeVar("_U")


class _Shared:
    """The pool, made at first use; a forked child starts without it (the parent's threads, and whoever held
    the lock at the fork, are not in the child)."""

    lock = threading.Lock()
    pool: ThreadPoolExecutor | None = None

    own = threading.local()  # .alone: this thread runs its tasks itself (:func:`on_one_core`)

    @classmethod
    def forget(cls) -> None:
        cls.lock = threading.Lock()
        cls.pool = None


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_Shared.forget)


def beside(task: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
    """Start ``task(*args, **kwargs)`` on the pool; ``.result()`` waits for it and raises what it raised.
    Within :func:`on_one_core` the task runs at once on this thread (its error kept for ``.result()``)."""
    if alone():
        done: Future[_T] = Future()
        try:
            done.set_result(task(*args, **kwargs))
        except Exception as exc:
            done.set_exception(exc)
        return done
    with _Shared.lock:
        if _Shared.pool is None:
            _Shared.pool = ThreadPoolExecutor(_WORKERS, thread_name_prefix="musicstore-audio")
            # its first thread started now, idle: a task handed over later does not wait while its thread
            # starts (the caller would give up the GIL there, and the task run before the caller goes on)
            _Shared.pool.submit(int).result()
        pool = _Shared.pool
    return pool.submit(task, *args, **kwargs)


def on_one_core(task: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """``task(*args, **kwargs)`` with every :func:`beside` in it run on this thread: for an export_batch's
    items, which keep the cores busy themselves (a batch of 16 30 s stereo clips on 2 cores took 941 ms with
    each item's helper tasks on the pool, 813 ms before there were any: more threads than cores contend for
    the GIL)."""
    before, _Shared.own.alone = alone(), True
    try:
        return task(*args, **kwargs)
    finally:
        _Shared.own.alone = before


def alone() -> bool:
    """Whether this thread runs within :func:`on_one_core`."""
    return bool(getattr(_Shared.own, "alone", False))


def wound_up(pool: ThreadPoolExecutor, futures: Sequence[Future[Any]]) -> None:
    """``pool`` shut down once every one of ``futures`` (not cancelled) is done, however many interrupts come
    meanwhile (Ctrl-C, a SIGTERM raised as one): a batch's cleanup after a first one, whose running items
    still use what the caller closes or removes as soon as this returns (its store, a file store, their temp
    files). Those later interrupts are dropped: the first is on its way already (a second Ctrl-C closed the
    store under the items, or left their temp files, ``tests/test_worker_s29.py``)."""
    while True:
        try:
            wait(futures)
            pool.shutdown(wait=True)
            return
        except KeyboardInterrupt:
            continue


def joined(here: Callable[[], _U], aside: Future[_T]) -> tuple[_U, _T]:
    """``here()`` run on this thread while ``aside`` runs on the pool, and both results. ``aside`` is waited
    for whatever ``here`` raised, and its own error is not raised over ``here``'s (a Ctrl-C stays one)."""
    try:
        mine = here()
    except BaseException:
        wait([aside])
        raise
    return mine, aside.result()
