"""The docs' concrete claims that no example runs (console transcripts of docs/cli.md, prose), checked
against what the code does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from musicstore.cli import main
from musicstore.urls import sqlite_url

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_cli_transcripts_name_as_many_migrations_as_a_fresh_database_gets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``migrate``'s and ``demo``'s transcripts in docs/cli.md say how many migrations a fresh database gets
    (and ``migrate``'s names the last one): the demo's said 23 after migration 0024 shipped."""
    page = (DOCS / "cli.md").read_text()
    assert main(["migrate", "--database", sqlite_url(tmp_path / "fresh.db")]) == 0
    applied = capsys.readouterr().out.strip()
    found = re.fullmatch(r"applied (\d+) migration\(s\): (.*)", applied)
    assert found is not None, applied
    count, names = found.groups()
    last = names.split(", ")[-1]
    documented = re.search(r"^applied (\d+) migration\(s\): .*, (\S+)$", page, flags=re.MULTILINE)
    assert documented is not None and documented.groups() == (count, last)
    demo = ["demo", "--count", "1", "--database", sqlite_url(tmp_path / "demo.db")]
    assert main([*demo, "-o", str(tmp_path / "audio")]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.endswith(f"({count} migration(s) applied)")
    in_page = re.findall(r"^database: \S+ \((\d+) migration\(s\) applied\)$", page, flags=re.MULTILINE)
    assert in_page == [count]
