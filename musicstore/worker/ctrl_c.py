"""Ctrl-C of an ``AsyncWorker`` run without ``handle_signals``: under ``asyncio.run`` SIGINT's handler cancels
the main task, so the worker's task ends with a ``CancelledError`` like any other cancel, which writes
nothing more (its job left to its lease). ``sigint_noted`` tells the run that a SIGINT came meanwhile, so
that it puts its job back as ``Worker`` does on a Ctrl-C (``put_back_interrupted``)."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from ..models import Generation
from .signals import _Stopping, put_back_async


class _Noting:
    """SIGINT's handler while ``AsyncWorker`` runs are in (one for them all): counts the signal, then does
    what the handler it replaced does (``asyncio.run``'s cancels the main task; Python's raises
    ``KeyboardInterrupt``)."""

    def __init__(self, replaced: Callable[[int, FrameType | None], Any]) -> None:
        self.replaced, self.count, self.runs = replaced, 0, 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self.replaced(signum, frame)


@contextmanager
def sigint_noted() -> Iterator[Callable[[], bool]]:
    """Whether a SIGINT came since the block began (a function asked when the run's task was cancelled).
    Only in the main thread, where SIGINT has a Python handler that is not ``handle_signals``' (which stops
    the worker, no cancel); elsewhere it says False. The handler found is put back as the last block ends,
    unless it was changed since."""
    found = signal.getsignal(signal.SIGINT)
    if (
        threading.current_thread() is not threading.main_thread()
        or not callable(found)
        or isinstance(found, _Stopping)
    ):
        yield lambda: False
        return
    noting = found if isinstance(found, _Noting) else _Noting(found)
    if noting is not found:
        signal.signal(signal.SIGINT, noting)
    noting.runs += 1
    before = noting.count
    try:
        yield lambda: noting.count > before
    finally:
        noting.runs -= 1
        last, replaced = not noting.runs, noting.replaced
        if last and signal.getsignal(signal.SIGINT) is noting:
            signal.signal(signal.SIGINT, replaced)


async def put_back_interrupted(store: Any, job: Generation, worker_id: str) -> None:
    """``put_back_async`` for a Ctrl-C, which the store's ``close()`` waits for as for a claim in flight
    (``AsyncStore._claims``): the first of gathered workers to end ends ``asyncio.gather`` at once, and an
    ``async with`` store around it closed the store before the others' put-backs were written."""
    over = asyncio.get_running_loop().create_future()
    in_flight: set[Any] = getattr(store, "_claims", set())
    in_flight.add(over)
    try:
        await put_back_async(store, job, worker_id, KeyboardInterrupt())
    finally:
        in_flight.discard(over)
        over.set_result(None)
