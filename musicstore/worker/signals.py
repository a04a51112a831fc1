"""The signals of a worker loop (``musicstore.worker``): ``handle_signals``' block, in which SIGTERM and
SIGINT (or the signals given) call the worker's ``stop()``, the handler it installs and how a block left
takes it out again; and Ctrl-C of a ``Worker`` run without that block (``CtrlC``, ``put_back``)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any

from ..errors import InvalidInput, shown
from ..models import Generation
from ..ops.attempts import put_back as _back_in_queue

PUT_BACK = "the worker was interrupted ({}) with the job in hand: put back in the queue"


@contextmanager
def stopping_on(stop: Callable[[], None], signals: tuple[signal.Signals, ...]) -> Iterator[None]:
    """``handle_signals``: ``signals`` (SIGTERM and SIGINT when none) call ``stop`` inside the block; the
    handlers before are put back after it (``_leave``). InvalidInput, every handler left as it was, for a
    signal no handler can catch or a thread other than the main one."""
    wanted = dict.fromkeys(_catchable(sig) for sig in signals or (signal.SIGTERM, signal.SIGINT))
    if threading.current_thread() is not threading.main_thread():
        raise InvalidInput(
            "handle_signals works in the main thread only (Python's rule for signal handlers); "
            "call worker.stop() from this thread instead"
        )

    mine: dict[int, _Stopping] = {}
    try:
        for sig in wanted:
            mine[sig] = _Stopping(stop, signal.getsignal(sig))
            signal.signal(sig, mine[sig])
        yield
    finally:
        for sig, handler in mine.items():
            _leave(sig, handler)


class CtrlC:
    """A ``Worker.run``'s SIGINT: ``KeyboardInterrupt`` at once, as Python's default handler raises it, except
    inside ``held`` (a claim's or a fail's write, a put-back), where it is noted and raised as the block
    ends, the write done: the loop then knows the job it claimed, to put back (``put_back``). Only where
    ``during_run`` could install it (the main thread, SIGINT at Python's default handler); elsewhere a
    ``KeyboardInterrupt`` can only come from the handler, and ``held`` holds nothing."""

    def __init__(self) -> None:
        self.holding = 0
        self.noted = False

    @classmethod
    @contextmanager
    def during_run(cls) -> Iterator[CtrlC]:
        ctrl_c = cls()
        if (
            threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        ):  # handle_signals' block (SIGINT stops the worker), another handler, or no signal reaches here
            yield ctrl_c
            return
        signal.signal(signal.SIGINT, ctrl_c._interrupted)
        try:
            yield ctrl_c
        finally:
            if signal.getsignal(signal.SIGINT) == ctrl_c._interrupted:  # as it was, unless changed since
                signal.signal(signal.SIGINT, signal.default_int_handler)

    def _interrupted(self, signum: int, frame: FrameType | None) -> None:
        if not self.holding:
            raise KeyboardInterrupt
        self.noted = True

    @contextmanager
    def held(self) -> Iterator[None]:
        self.holding += 1
        try:
            yield
        finally:
            self.holding -= 1
            if self.noted and not self.holding:
                self.noted = False
                raise KeyboardInterrupt  # the write is over (done, or raised: this replaces its error)


def put_back(store: Any, job: Generation, worker_id: str, why: BaseException) -> None:
    """Put ``job``, claimed by ``worker_id``, back in the queue, ``why`` (the interrupt) named in its error:
    pending at once, whatever attempts remain (its attempt counted, as for an expired lease), unless it is no
    longer processing for ``worker_id`` (the handler completed or failed it, or it was cancelled: nothing is
    written). A put-back that fails (busy, the connection lost) leaves the job to its lease."""
    with suppress(Exception):
        _back_in_queue(store, job, PUT_BACK.format(type(why).__name__), worker_id)


async def put_back_async(store: Any, job: Generation, worker_id: str, why: BaseException) -> None:
    """``put_back`` on an ``AsyncStore``, awaited."""
    with suppress(Exception):
        await _back_in_queue(store, job, PUT_BACK.format(type(why).__name__), worker_id)


class _Stopping:
    """``handle_signals``' handler: stops its worker, and the workers of the blocks it is nested in (the
    handler it replaced, when one of these), so that one SIGTERM stops every worker of the process. In a
    process forked inside the block (a handler's ``multiprocessing`` with the fork start method), which
    inherits it but runs no worker, the signal does what it did before the block (``_as_before``): else
    ``Process.terminate()`` would not end the child."""

    def __init__(self, stop: Callable[[], None], replaced: Any) -> None:
        self.stop, self.replaced, self.pid = stop, replaced, os.getpid()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self.pid:  # a forked child: not the worker's process
            _as_before(self.replaced, signum, frame)
            return
        self.stop()
        if isinstance(self.replaced, _Stopping):
            self.replaced(signum, frame)


def _as_before(handler: Any, signum: int, frame: FrameType | None) -> None:
    """What ``handler`` (the one a ``handle_signals`` block replaced) does with ``signum``, in a forked child:
    a Python handler is called (SIGINT's raises ``KeyboardInterrupt``), an ignored signal is ignored, and
    a signal at its default action (SIGTERM's: the end of the process) is sent again with that action."""
    if callable(handler):  # a Python handler, or an outer block's (checking its own process likewise)
        handler(signum, frame)
    elif handler != signal.SIG_IGN:  # SIG_DFL, or None (a handler not set from Python)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _leave(sig: int, handler: _Stopping) -> None:
    """Take ``handler`` (a ``handle_signals`` block's, left now) out of ``sig``'s handlers: when a later
    block's handler (still in) replaced it, splice it out of that chain, so that the later block still stops
    its worker and, when left, puts back what this one found; else put back the handler it replaced."""
    current = signal.getsignal(sig)
    while isinstance(current, _Stopping) and current is not handler:
        if current.replaced is handler:
            current.replaced = handler.replaced
            return
        current = current.replaced
    signal.signal(sig, handler.replaced)


_UNCATCHABLE = {getattr(signal, name) for name in ("SIGKILL", "SIGSTOP") if hasattr(signal, name)}


def _catchable(sig: object) -> int:
    """``sig`` if a handler can catch it (``handle_signals``), else InvalidInput."""
    if isinstance(sig, bool) or not isinstance(sig, int) or sig not in signal.valid_signals():
        raise InvalidInput(f"handle_signals takes signals such as signal.SIGTERM, got {shown(sig)}")
    if sig in _UNCATCHABLE:
        raise InvalidInput(f"handle_signals cannot catch {signal.Signals(sig).name}: no process can")
    return sig
