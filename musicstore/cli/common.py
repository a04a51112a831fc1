"""What every command shares: the exit codes, the output root and opening the store."""

from __future__ import annotations

import argparse
import os

from .. import interrupt
from ..store import Store, refuse_missing_file
from ..urls import URL_ENV, resolve

EXIT_OK = 0
EXIT_ERROR = 1
"""An error (bad value, database or file problem); one line on stderr says what."""
EXIT_USAGE = 2
"""Bad command-line arguments (argparse's usage error)."""
EXIT_NOT_FOUND = 3
"""``show``, ``render``, ``cancel``, ``replay``: no generation has that id."""
EXIT_INCONSISTENT = 4
"""``reconcile``: database and output root disagree (found, and with ``--repair`` repaired)."""
EXIT_INTERRUPTED = interrupt.EXIT_INTERRUPTED
"""Ctrl-C (SIGINT), from musicstore's first import on (``musicstore.interrupt``)."""
EXIT_TERMINATED = interrupt.EXIT_TERMINATED
"""SIGTERM during a command (``musicstore.interrupt.terminating``): unwound as after a Ctrl-C."""

ROOT_ENV = "MUSICSTORE_OUTPUT_ROOT"
TOKEN_ENV = "MUSICSTORE_WEB_TOKEN"
DEFAULT_ROOT = "data/audio"


def open_store(args: argparse.Namespace) -> Store:
    """The store at ``--database``; a SQLite file that does not exist is an error, not a new empty file."""
    target = resolve(args.database)
    refuse_missing_file(target, f"create it with `musicstore migrate --database {target.url}`")
    return Store(target.url)


def check_environment(args: argparse.Namespace) -> None:
    """A ``MUSICSTORE_*`` variable the command would read (its option not given) that is set but empty (or
    blank) is a usage error naming it, as ``-d ""`` is: never read as unset, which ran on the default
    database or root, or served the dashboard with no token."""
    read = []
    if getattr(args, "database", "") is None:
        read.append((URL_ENV, "--database URL"))
    if getattr(args, "output_root", "") is None:
        read.append((ROOT_ENV, "--output-root DIR"))
    if getattr(args, "command", None) == "serve" and args.token is None:
        read.append((TOKEN_ENV, "--token TOKEN"))
    for name, option in read:
        value = os.environ.get(name)
        if value is not None and not value.strip():
            args.parser.error(f"${name} is set but empty: set it, unset it for the default, or give {option}")


def output_root(args: argparse.Namespace) -> str:
    return str(args.output_root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT)
