"""The named queries under ``sql/``, loaded with aiosql for one dialect and one driver, and how to run one.

``sql/common/`` holds portable SQL; ``sql/<dialect>/`` holds a dialect's own version of a query under the
same name, and that version wins. An installed wheel carries both folders inside the package.

aiosql parses the files: each query's name, its SQL in the driver's parameter style, and what it returns
(its suffix: none for rows, ``^`` for one row or None, ``!`` for the row count). ``execute`` (also on an
aiosqlite connection's thread) and ``execute_async`` then run it on a connection as one ``execute`` and one
fetch, like the procrastinate connector: aiosql's own query functions yield rows one by one through a
generator, about 1 µs a row. Rows arrive as tuples and are built by position: a query keeps, per row reader,
the function built from its columns the first time it ran.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import aiosql
from aiosql.types import SQLOperationType

from .errors import MigrationError
from .models import RowReader, as_dict

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
    """One loaded query: its name, its SQL for the driver and what running it returns (ROWS, ONE, COUNT).

    ``builders``: per row reader (None: ``as_dict``), what builds one row, made from the query's columns the
    first time it runs. Columns are positions, and ``SELECT *`` lists them in the order of the database's own
    table (a migrated database may differ from a new one), so a ``Query`` serves one database: ``load``
    hands out fresh ones each call.
    """

    __slots__ = ("builders", "name", "returns", "sql")

    def __init__(self, name: str, sql: str, returns: str) -> None:
        self.name = name
        self.sql = sql
        self.returns = returns
        self.builders: dict[RowReader[Any] | None, Callable[[Sequence[Any]], Any]] = {}

    @classmethod
    def parsed(cls, fn: Any) -> Query:
        """The query aiosql parsed as ``fn``."""
        returns = _RETURNS.get(fn.operation)
        if returns is None:
            raise ValueError(f"query {fn.__name__}: use no suffix, ^ or ! (musicstore runs no other kind)")
        return cls(fn.__name__, fn.sql, returns)

    def builder(self, rows: RowReader[Any] | None, description: Sequence[Sequence[Any]]) -> Any:
        """What builds one row for ``rows`` from a cursor's ``description`` (made on the first run)."""
        build = self.builders.get(rows)
        if build is None:
            names = [column[0] for column in description]
            try:
                build = (rows or as_dict)(names)
            except ValueError as exc:  # a reader's column is not among the rows'
                raise MigrationError(
                    f"query {self.name} read rows without a column musicstore needs ({exc}): this database's "
                    "schema is not the one musicstore's migrations make (a later musicstore's, or changed "
                    "by hand)"
                ) from None
            self.builders[rows] = build
        return build


def execute(conn: Any, query: Query, params: dict[str, Any], rows: RowReader[Any] | None = None) -> Any:
    """Run ``query`` on a sqlite3 or psycopg connection: its rows built by ``rows`` (a list, or one or None
    for a ``^`` query), or the row count."""
    cursor = conn.execute(query.sql, params)
    returns = query.returns
    if returns is COUNT:
        return cursor.rowcount
    build = query.builders.get(rows) or query.builder(rows, cursor.description)
    if returns is ONE:
        row = cursor.fetchone()
        cursor.close()
        return None if row is None else build(row)
    return rows_of(cursor.fetchall(), build)


def rows_of(rows: list[Any], build: Callable[[Sequence[Any]], Any]) -> list[Any]:
    """The fetched ``rows`` built by ``build``: the fetched list itself when they are tuples already and
    ``build`` is ``tuple`` (``models.columns`` of every column, in order)."""
    if build is tuple and (not rows or rows[0].__class__ is tuple):
        return rows
    return list(map(build, rows))


async def execute_async(
    conn: Any, query: Query, params: dict[str, Any], rows: RowReader[Any] | None = None
) -> Any:
    """``execute`` on a psycopg async connection (``AsyncPostgresConnector.execute``; an aiosqlite connection
    runs ``execute`` itself on its thread, ``backends.sqlite_async.execute_on_thread``)."""
    cursor = await conn.execute(query.sql, params)
    try:
        returns = query.returns
        if returns is COUNT:
            return cursor.rowcount
        build = query.builders.get(rows) or query.builder(rows, cursor.description)
        if returns is ONE:
            row = await cursor.fetchone()
            return None if row is None else build(row)
        return rows_of(await cursor.fetchall(), build)
    finally:
        await cursor.close()


def load(dialect: str, driver: str) -> dict[str, Query]:
    """Every query name mapped to its query for ``dialect`` ("sqlite", "postgres") via aiosql ``driver``:
    fresh ``Query`` objects, for one database (the files are parsed once per process)."""
    return {name: Query(q.name, q.sql, q.returns) for name, q in _parsed(dialect, driver).items()}


@cache
def _parsed(dialect: str, driver: str) -> dict[str, Query]:
    root = data_dir("sql")
    found: dict[str, Query] = {}
    for folder in (root / "common", root / dialect):
        if not folder.is_dir():
            continue
        loaded = aiosql.from_path(folder, driver, encoding="utf-8")
        for name in loaded.available_queries:
            if not name.endswith("_cursor") and "." not in name:
                found[name] = Query.parsed(getattr(loaded, name))
    return found
