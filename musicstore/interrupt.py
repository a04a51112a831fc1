"""Ctrl-C while the ``musicstore`` command starts: one line on stderr and exit code 130, never a traceback.

The package imports this module before anything else. Only when this process is the command (``python -m
musicstore``, or the ``musicstore`` console script) does it install a SIGINT handler that ends the process at
once; ``musicstore.cli.main`` gives SIGINT back to Python (``KeyboardInterrupt``, which it handles) as soon as
the imports are done, and ``finish`` ignores it once the command's work is done (its exit code stands; a
Ctrl-C while the interpreter shuts down would otherwise kill it by the signal, exit status -2). Importing
musicstore as a library changes nothing. A SIGINT ignored by the parent
(``nohup``, a background job) stays ignored.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
"""128 + SIGTERM: a command stopped by SIGTERM inside ``terminating``."""
COMMAND = "musicstore"


class Terminated(KeyboardInterrupt):
    """SIGTERM inside ``terminating``: a KeyboardInterrupt, so that what a Ctrl-C undoes (a migration's lock,
    psycopg's query, which it cancels) a SIGTERM undoes too."""


def message(stop: BaseException | None = None) -> str:
    """The line an interrupted (or, for ``Terminated``, terminated) command prints (after a newline on a
    terminal, where ``^C`` was echoed)."""
    what = "terminated" if isinstance(stop, Terminated) else "interrupted"
    return ("\n" if os.isatty(2) else "") + f"{COMMAND}: {what}\n"


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextmanager
def terminating() -> Iterator[None]:
    """In the block, SIGTERM raises ``Terminated`` (its default ends the process at once, and a migration
    killed so left its lock row); the handler before is put back. Only in the main thread of a process whose
    SIGTERM has its default handler; elsewhere nothing changes."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return
    signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


HELD = (signal.SIGINT, signal.SIGTERM)
"""The signals ``held`` holds: Ctrl-C, and a SIGTERM a handler raises on (``terminating``, a worker's)."""


class Held:
    """The signals that landed in a ``held`` block, with the handlers they found, not yet run."""

    def __init__(self) -> None:
        self.noted: list[tuple[int, Callable[[int, FrameType | None], object], FrameType | None]] = []
        self.dropping = False

    def take(self) -> None:
        """Run the handlers of the signals noted so far, here (Python's raises KeyboardInterrupt)."""
        while self.noted:
            signum, handler, frame = self.noted.pop(0)
            handler(signum, frame)

    def drop(self) -> None:
        """Forget the signals noted so far and those noted from now on (the interrupt is on its way)."""
        self.dropping = True
        self.noted.clear()


@contextmanager
def held() -> Iterator[Held]:
    """Hold SIGINT and SIGTERM for the block: a signal that lands in it is noted with the handler it found
    (a Python handler: Python's raises ``KeyboardInterrupt``), and run at ``Held.take`` or as the block ends
    (an error of the block is then the interrupt's context), unless dropped (``Held.drop``).

    For waits on other threads: a ``KeyboardInterrupt`` raised where it lands can land inside threading's
    own code, between a lock's acquire and the ``with`` block that releases it (``Condition.__enter__`` is
    Python): a batch export's Ctrl-C left a future's lock held, its thread waited on it forever in
    ``set_result``, and the pool's shutdown on that thread (``tests/test_worker_s29.py``, under load). Only
    in the main thread; a signal without a Python handler (ignored, or at its default action) is not held.
    Costs four ``sigaction`` calls a block."""
    holding = Held()
    if threading.current_thread() is not threading.main_thread():
        yield holding
        return
    handlers: dict[int, Callable[[int, FrameType | None], object]] = {}
    for held_signal in HELD:
        found = signal.getsignal(held_signal)
        if callable(found):
            handlers[held_signal] = found

    def note(signum: int, frame: FrameType | None) -> None:
        if not holding.dropping:
            holding.noted.append((signum, handlers[signum], frame))

    for signum in handlers:
        signal.signal(signum, note)
    try:
        yield holding
    finally:
        for signum, handler in handlers.items():
            if signal.getsignal(signum) is note:  # as it was, unless changed in the block
                signal.signal(signum, handler)
        holding.take()


@contextmanager
def deferred() -> Iterator[None]:
    """Hold a Ctrl-C (and a SIGTERM a handler raises on) for the block, as ``held`` does, and do what it
    would have done as the block ends, its steps done. For the few steps that make or move a file and note
    that they did (``audio.files``, a folder's put): a ``KeyboardInterrupt`` between the two left a file no
    cleanup knew of."""
    with held():
        yield


def _interrupted(signum: int, frame: FrameType | None) -> None:
    os.write(2, message().encode())
    os._exit(EXIT_INTERRUPTED)  # nothing to clean up yet: only imports have run


def _is_command() -> bool:
    """Whether this process is the command (checked while the package is being imported)."""
    first = sys.argv[0] if sys.argv else ""
    if first == "-m":  # ``python -m NAME``: runpy is importing NAME's package; find NAME
        for i, arg in enumerate(sys.orig_argv[1:], start=1):
            if arg.startswith("-m"):
                return (arg[2:] or "".join(sys.orig_argv[i + 1 : i + 2])) == COMMAND
        return False
    return os.path.basename(first) in {COMMAND, f"{COMMAND}.exe"}


def install() -> bool:
    """In the command's process, end it quietly on SIGINT until ``restore``; whether it did."""
    if _is_command() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupted)
        return True
    return False


def restore() -> None:
    """Give SIGINT back to Python (``KeyboardInterrupt``) if ``install`` took it."""
    if signal.getsignal(signal.SIGINT) is _interrupted:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def finish() -> None:
    """The command's work is done: ignore SIGINT from here to the exit (only in the command's process).

    A Ctrl-C that lands while this runs (before SIGINT is ignored) raises KeyboardInterrupt in here; it is
    dropped and the step taken again, so it changes nothing either."""
    if not INSTALLED:
        return
    while True:
        try:
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            return
        except KeyboardInterrupt:
            continue


INSTALLED = install()
"""Whether this process is the command and ``install`` took SIGINT."""
