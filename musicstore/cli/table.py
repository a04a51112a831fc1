"""Aligned text tables for the CLI and the demo: headers over a dashed rule, numbers to the right."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_CONTROLS = "\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
"""Control characters and line separators: what would break a line or drive the terminal; lone surrogates
(a file name's byte that is not UTF-8, ``os.fsdecode``), which a stdout in the C.UTF-8 locale writes back
raw (``surrogateescape``), a C1 control byte such as 0x9b (the 8-bit CSI) among them; and the bidirectional
controls (U+202E, right-to-left override...), which make a bidi terminal show the rest of a line reordered."""
_CONTROL_ONLY = re.compile(f"[{_CONTROLS}]")
_CELL_ESCAPED = re.compile(f"[\\\\{_CONTROLS}]")  # a backslash too: a cell's escapes read one way


def _escaped(match: re.Match[str]) -> str:
    return repr(match[0])[1:-1]


def escape_controls(text: str) -> str:
    """``text`` with its control characters as escapes (``\\n``, ``\\x1b``) and nothing else changed: a
    line on stderr (an error naming a file) stays one line and sends no terminal escape sequence."""
    return _CONTROL_ONLY.sub(_escaped, text)


def printable(text: str) -> str:
    """``text`` with control characters shown as escapes (``\\n``, ``\\x1b``): a cell stays on its line and
    cannot send the terminal escape sequences (prompts, error messages and file names come from outside). A
    backslash is doubled (``\\\\``), so a stored backslash and ``n`` never read as an escaped newline."""
    return _CELL_ESCAPED.sub(_escaped, text)


def numeric(cell: str) -> bool:
    """``1,234``, ``-0.5``, ``-inf``: a cell to align right."""
    return cell.replace(",", "").replace("inf", "0").removeprefix("-").replace(".", "", 1).isdigit()


_NO_COLUMN = frozenset({"Mn", "Me", "Cf"})
"""Nonspacing and enclosing marks (whatever their combining class: a Thai or Devanagari vowel sign has 0) and
format characters (a zero width space or joiner): drawn on the character before them, or not at all."""


def width(text: str) -> int:
    """The columns ``text`` takes on a terminal: two for a wide (CJK, fullwidth) character, none for a
    combining mark or a format character (but the soft hyphen, shown as one), one for any other (control
    characters are escaped before this)."""
    if text.isascii():
        return len(text)
    return sum(
        0
        if unicodedata.combining(ch) or (unicodedata.category(ch) in _NO_COLUMN and ch != "\xad")
        else 2
        if unicodedata.east_asian_width(ch) in "WF"
        else 1
        for ch in text
    )


def _left(text: str, columns: int) -> str:
    return text + " " * (columns - width(text))


def _right(text: str, columns: int) -> str:
    return " " * (columns - width(text)) + text


def as_written(text: str, encoding: str) -> str:
    """``text`` as a stdout in ``encoding`` writes it (``tolerate_stdout``: what it cannot encode as a
    backslash escape, ``é`` as ``\\xe9`` in ASCII), so that a cell is padded by the columns it takes there."""
    return text.encode(encoding, "backslashreplace").decode(encoding)


def table(
    rows: Sequence[Sequence[object]], headers: Sequence[str], *, encoding: str | None = None
) -> list[str]:
    """The lines of the table. A column of numbers (``-`` for none, or a blank cell, among them: ``queue``'s
    ``running`` on a key's second row) has its numbers aligned right, and its header too when every cell is
    a number; in any other column (``show``'s values) every cell is aligned left, so a number never stands
    at the far end of a long text's width. ``encoding``: the stdout's, when it is not UTF-8: each cell
    measured as it is written there (``as_written``)."""
    cells = [[printable(str(c)) for c in row] for row in rows]
    if encoding is not None:  # a stdout that is not UTF-8 (``output.print_table``)
        cells = [[as_written(c, encoding) for c in row] for row in cells]
    columns = range(len(headers))
    widths = [max(width(row[i]) for row in [list(headers), *cells]) for i in columns]  # terminal columns
    right = [bool(cells) and all(numeric(row[i]) for row in cells) for i in columns]
    figures = [all(numeric(row[i]) or row[i] in ("-", "") for row in cells) for i in columns]
    head = "  ".join(
        _right(h, w) if r else _left(h, w) for h, w, r in zip(headers, widths, right, strict=True)
    )
    body = [
        "  ".join(
            _right(c, w) if f and numeric(c) else _left(c, w)
            for c, w, f in zip(row, widths, figures, strict=True)
        ).rstrip()
        for row in cells
    ]
    return [head.rstrip(), "  ".join("-" * w for w in widths), *body]
