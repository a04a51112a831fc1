"""The bare floors' connection: opened as the library opens its own, rows as plain tuples, and what differs
between sqlite3 and psycopg (the SQL the library loads, a timestamp as it binds it, its write transaction).
The store benchmarks' floors (``store_ops``, ``checked_floors``), ``breakdown`` and ``claims`` run on it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from musicstore.models import to_micros
from musicstore.queries import load

from . import fair

FAR_FUTURE = datetime.max.replace(tzinfo=UTC)  # the library's "no cursor" bound
COMMAND_OK = 1  # libpq's PGRES_COMMAND_OK


@dataclass
class Bare:
    """A bare connection (tuple rows) and what differs between sqlite3 and psycopg."""

    conn: Any
    dialect: str
    generation: fair.Decode
    prompt: fair.Decode

    def sql(self, name: str) -> str:
        return load(self.dialect, "sqlite3" if self.dialect == "sqlite" else "psycopg")[name].sql

    def stamp(self, moment: datetime) -> Any:
        """A timestamp as the library binds it: integer µs on SQLite, the datetime on PostgreSQL."""
        return to_micros(moment) if self.dialect == "sqlite" else moment

    def writer(self, body: Callable[[Any], object], *, alone: bool = False) -> Callable[[Any], None]:
        """``body`` in the library's write transaction. ``alone``: a write whose first statement may commit
        by itself (``Operation.alone``): on PostgreSQL in autocommit, as the library runs it (its rare second
        statements too, where the library would send BEGIN first)."""
        if self.dialect == "sqlite":
            ex = self.conn.execute

            def run(x: Any) -> None:
                ex("BEGIN IMMEDIATE")
                body(x)
                ex("COMMIT")

            return run
        if alone:
            return body  # type: ignore[return-value]
        conn, command = self.conn, self.conn.pgconn.exec_

        def run_pg(x: Any) -> None:
            command(b"BEGIN")  # as the library's connection sends BEGIN and COMMIT (backends.postgres)
            try:
                body(x)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if command(b"COMMIT").status != COMMAND_OK:
                raise RuntimeError("the floor's COMMIT failed")

        return run_pg


def sqlite_bare(path: Path) -> Bare:
    """Opened as ``musicstore.backends.sqlite`` opens its connections, but rows are plain tuples."""
    conn = sqlite3.connect(
        path, timeout=5.0, isolation_level=None, check_same_thread=False, cached_statements=256
    )
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON"):
        conn.execute(f"PRAGMA {pragma}")
    return Bare(conn, "sqlite", fair.generation_sqlite, fair.prompt_sqlite)


def postgres_bare(url: str) -> Bare:
    """Opened as the library's pool opens its connections (autocommit), but rows are plain tuples."""
    import psycopg

    conn = psycopg.connect(url, autocommit=True)
    if conn.info.timezone is UTC:
        return Bare(conn, "postgres", fair.generation_postgres, fair.prompt_postgres)
    return Bare(conn, "postgres", fair.generation_postgres_zoned, fair.prompt_postgres_zoned)
