"""The ``musicstore`` command (also ``python -m musicstore``): the Python API from a shell.

Human output is aligned tables on stdout; ``--json`` prints one JSON document instead. Progress lines go to
stderr, only when it is a terminal. Errors are one line on stderr, and the exit code says what happened
(``EXIT_*``; docs/cli.md). The grammar is in ``parser``, the commands in ``commands`` and
``maintenance_commands``, what they share in ``common``, ``output`` and ``arguments``; ``main`` is here.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from .. import interrupt
from ..errors import ClockSkewWarning, MusicstoreError, NewerSchemaWarning, NotFound
from ..masking import redact
from .arguments import not_empty, page_size, parse_duration, parse_size, positive_int
from .common import (
    DEFAULT_ROOT,
    EXIT_ERROR,
    EXIT_INCONSISTENT,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    ROOT_ENV,
    check_environment,
)
from .output import SHOWN, tolerate_stdout
from .parser import EPILOG, build_parser
from .table import escape_controls

__all__ = [
    "DEFAULT_ROOT",
    "EPILOG",
    "EXIT_ERROR",
    "EXIT_INCONSISTENT",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "OPTIONAL_MODULES",
    "ROOT_ENV",
    "SHOWN",
    "build_parser",
    "main",
    "not_empty",
    "page_size",
    "parse_duration",
    "parse_size",
    "positive_int",
]


def _error(exc: BaseException) -> None:
    message = escape_controls(" ".join(redact(str(exc)).split())) or type(exc).__name__
    notes = "".join(f" (warning: {note})" for note in _NOTES)  # perhaps why it failed: one line still
    _NOTES.clear()
    print(f"musicstore: error: {message}{notes}", file=sys.stderr)


OPTIONAL_MODULES = {
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
    "aiosqlite": "async",
    "torch": "torch",
    "mutagen": "renditions",
    "soxr": "renditions",
}
"""The modules of musicstore's extras: one missing is a hint to install the extra, not a traceback."""


def _missing_extra(exc: ImportError) -> str | None:
    """The hint for an optional module that is not installed, or None (an ImportError that is a bug).

    The import that failed may be the cause of the one raised: ``audio.tags`` and ``audio.codecs`` re-raise
    a missing mutagen or soxr as an ImportError of their own (with the hint, without a module name)."""
    cause: BaseException | None = exc
    while isinstance(cause, ImportError):
        module = (cause.name or "").partition(".")[0]
        extra = OPTIONAL_MODULES.get(module)
        if extra is not None:
            need = f"this needs the {extra} extra: pip install 'musicstore[{extra}]'"
            return f"{module} is not installed; {need}"
        cause = cause.__cause__
    return None


_NOTES: list[str] = []
"""musicstore's warnings to an operator (a host clock, a later schema) met by the command running now: said
after its output in one line each, or, where it fails, in its one error line."""


def _stand_in_for_closed_streams() -> None:
    """A stdout or stderr the caller closed (``>&-``, ``2>&-``: a cron line, a daemon's descriptors) is
    ``None`` to Python: the flush after the command, the progress bar's ``isatty`` raised AttributeError (a
    traceback, exit 1), and ``print(file=None)`` put error lines on stdout. Each becomes ``/dev/null`` (at
    its own descriptor, the lowest one free), so the command runs and its output goes nowhere, as asked."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115  kept for the process's life


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    _stand_in_for_closed_streams()
    with warnings.catch_warnings():  # this call's: Python's own showwarning again after it
        shown_before = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], *where: Any, **more: Any) -> None:
            if issubclass(category, (ClockSkewWarning, NewerSchemaWarning)):
                _NOTES.append(escape_controls(" ".join(redact(str(message)).split())))
            else:
                shown_before(message, category, *where, **more)

        warnings.showwarning = show
        _NOTES.clear()
        code = _run(argv)
        for note in _NOTES:  # a failed command said them in its error line
            print(f"musicstore: warning: {note}", file=sys.stderr)
        _NOTES.clear()
        return code


def _run(argv: Sequence[str] | None) -> int:
    # psycopg's pool logs each failed connection attempt as a warning; with no logging configured Python
    # would print them all on stderr, around the one-line error the command reports
    psycopg = logging.getLogger("psycopg")
    if not psycopg.handlers:
        psycopg.addHandler(logging.NullHandler())
    try:
        interrupt.restore()  # the imports are done: Ctrl-C is KeyboardInterrupt again, handled below
        tolerate_stdout()
        args = build_parser().parse_args(argv)
        check_environment(args)  # a MUSICSTORE_* variable set but empty: a usage error, as -d "" is
        with interrupt.terminating():  # a stop's SIGTERM unwinds as a Ctrl-C does: rollbacks, temp files
            code = int(args.func(args))
        sys.stdout.flush()  # a closed pipe (`| head`) raises here, not at exit
        return code
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except NotFound as exc:
        _error(exc)
        return EXIT_NOT_FOUND
    except (MusicstoreError, ClockSkewWarning, NewerSchemaWarning) as exc:  # warnings: by -W error
        _error(exc)
        return EXIT_ERROR
    except BrokenPipeError:  # `musicstore list | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except OSError as exc:
        _error(exc)
        return EXIT_ERROR
    except (MemoryError, RuntimeError) as exc:  # the host's limits: one line, not a traceback
        if isinstance(exc, RuntimeError) and "can't start new thread" not in str(exc):
            raise
        refused = "memory" if isinstance(exc, MemoryError) else "a thread"
        why = f"the host refused {refused} ({str(exc) or type(exc).__name__})"
        _error(RuntimeError(f"{why}: raise the process's limits (ulimit, the container's)"))
        return EXIT_ERROR
    except ImportError as exc:
        hint = _missing_extra(exc)
        if hint is None:
            raise
        print(f"musicstore: error: {hint}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:
        print(interrupt.message(exc), end="", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, interrupt.Terminated) else EXIT_INTERRUPTED
    finally:
        while True:  # done: a Ctrl-C from here to the exit changes nothing
            try:
                interrupt.finish()
            except KeyboardInterrupt:  # one that landed as finish was called, before its own try
                continue
            break
