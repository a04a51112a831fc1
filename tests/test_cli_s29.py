"""The ``musicstore`` command line, session 29: its tables' alignment (docs/cli.md: numbers to the right in
a column of numbers, padded by the columns a terminal gives a cell)."""

from __future__ import annotations

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
