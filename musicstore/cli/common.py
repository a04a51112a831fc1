"""What every command shares: the exit codes, the output root and opening the store."""

from __future__ import annotations

import argparse
import os

from .. import interrupt
from ..store import Store, refuse_missing_file
from ..urls import resolve

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
DEFAULT_ROOT = "data/audio"


def open_store(args: argparse.Namespace) -> Store:
    """The store at ``--database``; a SQLite file that does not exist is an error, not a new empty file."""
    target = resolve(args.database)
    refuse_missing_file(target, f"create it with `musicstore migrate --database {target.url}`")
    return Store(target.url)


def output_root(args: argparse.Namespace) -> str:
    return str(args.output_root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT)
