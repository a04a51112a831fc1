"""The embedded SQLite backend: connections, their PRAGMAs, parameter encoding and error translation."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import DatabaseBusy, DatabaseError, MigrationError, MusicstoreError
from .models import to_micros

DIALECT = "sqlite"
DRIVER = "sqlite3"
BEGIN_WRITE = "BEGIN IMMEDIATE"
BEGIN_READ = "BEGIN"


def connect(path: Path, *, busy_timeout: float) -> sqlite3.Connection:
    """Open ``path`` in WAL mode with explicit transactions (``isolation_level=None``)."""
    if path.parent != Path() and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False, cached_statements=256
    )
    try:
        conn.row_factory = sqlite3.Row
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise DatabaseError(f"{path}: SQLite refused WAL mode (journal_mode is {mode!r})")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc, path) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def encode(params: dict[str, Any]) -> dict[str, Any]:
    """Bind datetimes as integer microseconds since the epoch, the schema's timestamp encoding."""
    return {k: to_micros(v) if isinstance(v, datetime) else v for k, v in params.items()}


def translate(exc: sqlite3.Error, where: object) -> MusicstoreError:
    """The musicstore error for a sqlite3 error."""
    message = str(exc)
    if isinstance(exc, sqlite3.OperationalError):
        if "locked" in message or "busy" in message:
            return DatabaseBusy(
                f"{where}: the database stayed locked by another writer past the busy timeout ({message}); "
                "retry, or raise busy_timeout"
            )
        if "no such table" in message:
            return MigrationError(
                f"{where}: {message}: the schema is missing; run `musicstore migrate` or musicstore.migrate()"
            )
    if isinstance(exc, sqlite3.IntegrityError):
        return DatabaseError(f"{where}: a schema constraint refused the change ({message})")
    return DatabaseError(f"{where}: {message}")


@contextmanager
def errors_translated(where: object) -> Iterator[None]:
    """Re-raise sqlite3 errors as musicstore errors."""
    try:
        yield
    except sqlite3.Error as exc:
        raise translate(exc, where) from exc
