"""Regressions found by the CLI/async/recording hunt: what ``musicstore`` prints against what the API holds,
``AsyncStore`` against ``Store``, and recording's failure paths."""

from __future__ import annotations

import json

import pytest

from musicstore import Store
from musicstore.cli import main
from tests.conftest import new_job


def _out(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_tables_show_a_multi_line_prompt_as_one_unambiguous_row(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # short_text joined a prompt's lines with a space: "verse\nchorus" read as "verse chorus", another prompt
    prompts = ["verse\nchorus", "verse chorus", "verse\\nchorus", "tab\there"]
    with Store(sqlite_url) as store:
        for prompt in prompts:
            new_job(store, prompt)
    for command in ("list", "prompts"):
        lines = _out(capsys, command, "--database", sqlite_url).splitlines()
        assert len(lines) == 2 + len(prompts), lines  # header, rule, one line per row
        for shown in ("verse\\nchorus", "verse chorus", "verse\\\\nchorus", "tab\\there"):
            assert sum(line.rstrip().endswith(shown) for line in lines[2:]) == 1, (shown, lines)
    listed = json.loads(_out(capsys, "list", "--json", "--database", sqlite_url))
    assert sorted(item["prompt"] for item in listed["items"]) == sorted(prompts)  # verbatim
