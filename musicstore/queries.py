"""The named queries under ``sql/``, loaded with aiosql for one dialect and one driver.

``sql/common/`` holds portable SQL; ``sql/<dialect>/`` holds a dialect's own version of a query under the
same name, and that version wins. An installed wheel carries both folders inside the package.
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


class Query:
    """One loaded query: its aiosql function and whether it returns a lazy list of rows."""

    __slots__ = ("fn", "returns_rows", "sql")

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.sql: str = fn.sql
        self.returns_rows: bool = fn.operation is SQLOperationType.SELECT


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
