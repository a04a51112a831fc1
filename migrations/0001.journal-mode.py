"""Put a SQLite database in WAL mode (persistent in the file). A no-op on other backends.

WAL cannot be switched on inside a transaction, hence a non-transactional Python step. The switch needs the
database to itself and SQLite answers "database is locked" at once, without its busy handler, while another
connection reads (a process waiting for yoyo's lock polls a table): so it is retried for up to 30 s.
"""

import sqlite3
import time
from typing import Any

from yoyo import step

__transactional__ = False


def _is_sqlite(conn: Any) -> bool:
    return type(conn).__module__.startswith("sqlite3")


def apply_step(conn: Any) -> None:
    if _is_sqlite(conn):
        deadline = time.monotonic() + 30.0
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        if mode != "wal":
            raise RuntimeError(f"could not switch the database to WAL (journal_mode is {mode!r})")


def rollback_step(conn: Any) -> None:
    if _is_sqlite(conn):
        conn.execute("PRAGMA journal_mode = DELETE")


steps = [step(apply_step, rollback_step)]
