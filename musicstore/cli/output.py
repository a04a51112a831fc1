"""How the commands print: aligned tables, titled sections, JSON documents and the short forms of values."""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .table import table

SHOWN = 50
"""How many items of a report the tables list (``--json`` has them all, up to the report's own limit)."""


def print_table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> None:
    print("\n".join(table(rows, headers)))


def print_section(title: str, rows: Sequence[Sequence[object]], headers: Sequence[str], count: int) -> None:
    """A titled table of at most SHOWN rows, saying how many more ``--json`` holds."""
    if not count:
        return
    print(f"\n{title} ({count:,}):")
    print_table(rows[:SHOWN], headers)
    if count > SHOWN:
        print(f"... and {count - SHOWN:,} more (--json lists them)")


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=_json_default))


def moment_text(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def bytes_text(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def short_text(text: str, width: int = 48) -> str:
    """``text`` cut to ``width`` characters (ending ``...`` when cut). Its whitespace is kept as stored: the
    table shows a newline or a tab as an escape (``\\n``, ``\\t``), so a multi-line prompt stays one row
    and never reads as another prompt (joining the lines with a space did)."""
    return text if len(text) <= width else text[: width - 3] + "..."
