"""How the commands print: aligned tables, titled sections, JSON documents and the short forms of values."""

from __future__ import annotations

import codecs
import dataclasses
import enum
import io
import json
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .table import table

SHOWN = 50
"""How many items of a report the tables list (``--json`` has them all, up to the report's own limit)."""


def print_table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> None:
    """The table, aligned as written: on a stdout that is not UTF-8, ``音`` is ``\\u97f3``, six columns."""
    encoding = None if utf8_stdout() else str(sys.stdout.encoding)
    print("\n".join(table(rows, headers, encoding=encoding)))


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


def utf8_stdout() -> bool:
    """Whether stdout takes any text: UTF-8, or a stream with no encoding of its own (``io.StringIO``)."""
    encoding = getattr(sys.stdout, "encoding", None)
    return not encoding or codecs.lookup(encoding).name == "utf-8"


def tolerate_stdout() -> None:
    """On a stdout that is not UTF-8 (``PYTHONIOENCODING=ascii``, a Latin-1 terminal), text it cannot
    encode is written as ``\\uXXXX`` escapes instead of ending the command with a UnicodeEncodeError; so too
    on a strict UTF-8 one (``LANG=en_US.UTF-8``), which cannot encode the lone surrogate of a file name's
    byte that is not UTF-8 (``\\udce9``: an orphan file named in Latin-1)."""
    if not isinstance(sys.stdout, io.TextIOWrapper):
        return
    if not utf8_stdout() or sys.stdout.errors == "strict":
        sys.stdout.reconfigure(errors="backslashreplace")


_SURROGATE = re.compile(r"[\ud800-\udfff]")
"""A lone surrogate: a byte of a file name that is not UTF-8 (``os.fsdecode``), only ever inside a string."""


def print_json(value: Any) -> None:
    """One JSON document; verbatim UTF-8 text, or ``\\u`` escapes (still valid JSON) on a stdout that is
    not UTF-8. A lone surrogate is always a ``\\u`` escape: a stdout that writes it back as its raw byte
    (``surrogateescape``, the C.UTF-8 locale's) made the document invalid UTF-8, no JSON at all."""
    text = json.dumps(value, indent=2, ensure_ascii=not utf8_stdout(), default=_json_default)
    print(_SURROGATE.sub(lambda match: f"\\u{ord(match[0]):04x}", text))


def moment_text(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment.year:04d}-{moment:%m-%d %H:%M:%S}"  # %Y: "999", not "0999"


def bytes_text(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def short_text(text: str, width: int = 48) -> str:
    """``text`` cut to ``width`` characters (ending ``...`` when cut). Its whitespace is kept as stored: the
    table shows a newline or a tab as an escape (``\\n``, ``\\t``), so a multi-line prompt stays one row
    and never reads as another prompt (joining the lines with a space did)."""
    return text if len(text) <= width else text[: width - 3] + "..."
