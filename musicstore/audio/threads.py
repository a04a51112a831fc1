"""A small pool of threads that run an export's independent numpy and scipy work beside the thread that
asked for it (both release the GIL: the K-weighting filters and the far part's transforms run on two cores
at once). Tasks are leaves: none waits for another task, so the pool cannot deadlock however many exports
share it."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import ParamSpec, TypeVar

from musicstore.interrupt import Held

_POLL_SECONDS = 0.02  # how often Batch.wind_up looks whether its items are over
_TAKE_SECONDS = 0.05  # how long a signal held in ``waited`` waits at most to be taken
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


class Batch:
    """A batch's items on a thread pool, each counted from the moment it starts (``begin``) to its end
    (``end``): ``wind_up`` starts no more and waits for every item that started, however many interrupts
    (Ctrl-C, a SIGTERM raised as one) come meanwhile, for the cleanup after a first one, whose running items
    still use what the caller closes or removes as soon as it returns (its store, a file store, their temp
    files). Not the pool's futures: a Ctrl-C inside ``submit`` (as it starts a thread) loses the future of an
    item it queued already, and a second one cut the pool's shutdown short (``tests/test_worker_s29.py``).
    Two lock holds an item; nothing else."""

    def __init__(self) -> None:
        self.stop = threading.Event()  # no item starts once it is set (an item failed, or an interrupt)
        self._lock = threading.Lock()
        self._running = 0

    def begin(self) -> bool:
        """Whether the item may start (not once stopped); if so, it counts as running until ``end``."""
        with self._lock:
            if self.stop.is_set():
                return False
            self._running += 1
            return True

    def end(self) -> None:
        with self._lock:
            self._running -= 1

    def wind_up(self) -> None:
        """Start no more items and return once none runs. Called inside ``interrupt.held`` once its signals
        are dropped (``Held.drop``): an interrupt meanwhile is forgotten (the first is on its way)."""
        self.stop.set()
        while True:
            with self._lock:
                if not self._running:
                    return
            time.sleep(_POLL_SECONDS)


def waited(futures: Sequence[Future[_T]], outcome: Callable[[Future[_T]], _U], signals: Held) -> list[_U]:
    """``outcome`` of each future, in order, once it is done; the signals held meanwhile are taken
    (``Held.take``: a Ctrl-C raised) between waits, never inside one (``interrupt.held``), within
    ``_TAKE_SECONDS`` of their landing."""
    results = []
    for future in futures:
        signals.take()
        while not wait([future], timeout=_TAKE_SECONDS).done:
            signals.take()
        results.append(outcome(future))
    return results


def joined(here: Callable[[], _U], aside: Future[_T]) -> tuple[_U, _T]:
    """``here()`` run on this thread while ``aside`` runs on the pool, and both results. ``aside`` is waited
    for whatever ``here`` raised, and its own error is not raised over ``here``'s (a Ctrl-C stays one)."""
    try:
        mine = here()
    except BaseException:
        wait([aside])
        raise
    return mine, aside.result()
