"""The ``musicstore`` command line, session 29: its tables' alignment (docs/cli.md: numbers to the right in
a column of numbers, padded by the columns a terminal gives a cell; on a stdout that is not UTF-8, what it
cannot encode written as Python's backslash escapes)."""

from __future__ import annotations

import os
import subprocess
import sys

from musicstore import Store
from tests.test_cli import run


def _rows(stdout: str) -> list[str]:
    """The table's lines: from its header (the line over the dashed rule) to the end."""
    lines = stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("--"))
    return lines[rule - 1 :]


def test_queue_running_column_stays_a_column_of_numbers_when_a_key_has_rows_at_two_priorities(
    sqlite_url: str,
) -> None:
    # a key's processing count is on its highest-priority row only, its other rows blank: that blank cell
    # made the whole column "not numbers", its counts aligned left under a header aligned left
    with Store(sqlite_url) as store:
        for priority, key in ((5, "user-1"), (1, "u2"), (0, "u2"), (0, "u2"), (0, "user-1")):
            store.create_generation("x", model_name="m", duration_seconds=1, owner_key=key, priority=priority)
        assert store.claim_next("w") is not None  # user-1's priority 5
        for _ in range(11):
            store.create_generation("x", model_name="m", duration_seconds=1, owner_key="u2", priority=1)
    result = run("queue", "--database", sqlite_url)
    assert result.returncode == 0, result.stderr
    header, rule, *rows = _rows(result.stdout)
    start = header.index("running")
    end = start + len("running")
    assert rule[start:end] == "-" * len("running")
    assert sum(not row[start:end].strip() for row in rows) == 1, result.stdout  # u2's second row
    numbers = [row[start:end] for row in rows if row[start:end].strip()]
    assert numbers and all(cell[-1].isdigit() and cell.startswith(" ") for cell in numbers), result.stdout


def test_tables_stay_aligned_on_a_stdout_that_is_not_utf8(sqlite_url: str) -> None:
    # ``ü音`` was measured as 3 columns but written as ``\xfc\u97f3`` (10): its row's next cells stood 7
    # columns to the right of their header
    with Store(sqlite_url) as store:
        store.set_owner_limit("ü音", 3)
        store.set_owner_limit("plain", 12)
        store.create_generation("x", model_name="m", duration_seconds=1, owner_key="ü音")
    for encoding in ("ascii", "latin-1"):
        for command in ("owner-limits", "queue"):
            result = subprocess.run(
                [sys.executable, "-m", "musicstore", command, "--database", sqlite_url],
                env={**os.environ, "PYTHONIOENCODING": encoding},
                capture_output=True, timeout=120, check=False,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            out = result.stdout.decode(encoding)
            header, rule, *rows = _rows(out)
            assert "\\u97f3" in out, out
            end = header.index("limit") + len("limit")  # a column of numbers: right-aligned to its header
            assert rule[end - 1] == "-" and rule[end : end + 1] in ("", " ")
            for row in rows:
                assert row[end - 1].isdigit() or row[end - 1] == "-", (encoding, command, out)
                assert row[end : end + 1] in ("", " "), (encoding, command, out)
