"""The signals of a worker loop (``musicstore.worker``): ``handle_signals``' block, in which SIGTERM and
SIGINT (or the signals given) call the worker's ``stop()``, the handler it installs and how a block left
takes it out again."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from ..errors import InvalidInput


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


class _Stopping:
    """``handle_signals``' handler: stops its worker, and the workers of the blocks it is nested in (the
    handler it replaced, when one of these), so that one SIGTERM stops every worker of the process."""

    def __init__(self, stop: Callable[[], None], replaced: Any) -> None:
        self.stop, self.replaced = stop, replaced

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.stop()
        if isinstance(self.replaced, _Stopping):
            self.replaced(signum, frame)


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
        raise InvalidInput(f"handle_signals takes signals such as signal.SIGTERM, got {sig!r}")
    if sig in _UNCATCHABLE:
        raise InvalidInput(f"handle_signals cannot catch {signal.Signals(sig).name}: no process can")
    return sig
