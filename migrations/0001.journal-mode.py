"""Put a SQLite database in WAL mode (persistent in the file). A no-op on other backends.

WAL cannot be switched on inside a transaction, hence a non-transactional Python step.
"""

from typing import Any

from yoyo import step

__transactional__ = False


def _is_sqlite(conn: Any) -> bool:
    return type(conn).__module__.startswith("sqlite3")


def apply_step(conn: Any) -> None:
    if _is_sqlite(conn):
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise RuntimeError(f"could not switch the database to WAL (journal_mode is {mode!r})")


def rollback_step(conn: Any) -> None:
    if _is_sqlite(conn):
        conn.execute("PRAGMA journal_mode = DELETE")


steps = [step(apply_step, rollback_step)]
