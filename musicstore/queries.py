"""The named queries under ``sql/``, loaded with aiosql for one dialect and one driver, and how to run one.

``sql/common/`` holds portable SQL; ``sql/<dialect>/`` holds a dialect's own version of a query under the
same name, and that version wins. An installed wheel carries both folders inside the package.

aiosql parses the files: each query's name, its SQL in the driver's parameter style, and what it returns
(its suffix: none for rows, ``^`` for one row or None, ``!`` for the row count). ``execute`` and
``execute_async`` then run it on a connection as one ``execute`` and one fetch, like the procrastinate
connector: aiosql's own query functions yield rows one by one through a generator, about 1 µs a row.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import aiosql
from aiosql.types import SQLOperationType

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """``sql`` or ``migrations``: inside the installed package, else at the top of the source tree."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"musicstore's {name}/ folder is missing from {_PACKAGE}: reinstall musicstore")


ROWS, ONE, COUNT = "rows", "one", "count"
_RETURNS = {
    SQLOperationType.SELECT: ROWS,
    SQLOperationType.SELECT_ONE: ONE,
    SQLOperationType.INSERT_UPDATE_DELETE: COUNT,
}


class Query:
    """One loaded query: its name, its SQL for the driver and what running it returns (ROWS, ONE, COUNT)."""

    __slots__ = ("name", "returns", "sql")

    def __init__(self, fn: Any) -> None:
        self.name: str = fn.__name__
        self.sql: str = fn.sql
        returns = _RETURNS.get(fn.operation)
        if returns is None:
            raise ValueError(f"query {self.name}: use no suffix, ^ or ! (musicstore runs no other kind)")
        self.returns: str = returns


def execute(conn: Any, query: Query, params: dict[str, Any]) -> Any:
    """Run ``query`` on a sqlite3 or psycopg connection: its rows, one row or None, or the row count."""
    cursor = conn.execute(query.sql, params)
    try:
        if query.returns is ROWS:
            return cursor.fetchall()
        if query.returns is ONE:
            return cursor.fetchone()
        return cursor.rowcount
    finally:
        cursor.close()


async def execute_async(conn: Any, query: Query, params: dict[str, Any]) -> Any:
    """``execute`` on an aiosqlite or psycopg async connection."""
    cursor = await conn.execute(query.sql, params)
    try:
        if query.returns is ROWS:
            return await cursor.fetchall()
        if query.returns is ONE:
            return await cursor.fetchone()
        return cursor.rowcount
    finally:
        await cursor.close()


@cache
def load(dialect: str, driver: str) -> dict[str, Query]:
    """Every query name mapped to its query for ``dialect`` ("sqlite", "postgres") via aiosql ``driver``."""
    root = data_dir("sql")
    found: dict[str, Query] = {}
    for folder in (root / "common", root / dialect):
        if not folder.is_dir():
            continue
        loaded = aiosql.from_path(folder, driver)
        for name in loaded.available_queries:
            if not name.endswith("_cursor") and "." not in name:
                found[name] = Query(getattr(loaded, name))
    return found
