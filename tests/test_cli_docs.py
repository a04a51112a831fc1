"""docs/cli.md documents the whole command line: every subcommand has its section, and every option and
argument of each appears in that section (the options all commands share, in the page's opening part)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from musicstore import cli
from musicstore.cli import build_parser

PAGE = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
SHARED = {"--database", "-d", "--output-root", "-o", "--json"}
"""Options several commands take from one parent parser: documented once, before "## Commands"."""


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(commands.choices)


def words(sub: argparse.ArgumentParser) -> set[str]:
    """The option strings (but ``-h``/``--help``) and the positional arguments' metavars of ``sub``."""
    found: set[str] = set()
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings:
            found.update(action.option_strings)
        else:
            found.add(str(action.metavar or action.dest).upper())
    return found


def sections() -> tuple[str, dict[str, str]]:
    """The page before "## Commands", and each command's ``### name[, name2] ARGS`` section by name."""
    text = PAGE.read_text()
    opening, _, rest = text.partition("\n## Commands\n")
    by_name: dict[str, str] = {}
    for part in re.split(r"^### ", rest, flags=re.MULTILINE)[1:]:
        heading, _, body = part.partition("\n")
        for name in re.findall(r"[a-z][a-z-]*", heading):
            by_name[name] = heading + "\n" + body
    return opening, by_name


COMMANDS = subcommands()


def test_the_page_has_a_section_and_a_table_row_per_command() -> None:
    opening, by_name = sections()
    assert set(COMMANDS) <= set(by_name), (
        f"no section in docs/cli.md for {sorted(set(COMMANDS) - set(by_name))}"
    )
    in_table = set(re.findall(r"^\| `([a-z][a-z-]*)[^`]*` \|", opening, flags=re.MULTILINE))
    assert set(COMMANDS) <= in_table, f"not in docs/cli.md's table: {sorted(set(COMMANDS) - in_table)}"


def test_every_exit_code_is_documented() -> None:
    opening, _ = sections()
    codes = {name: value for name, value in vars(cli).items() if name.startswith("EXIT_")}
    assert len(codes) >= 6
    for name, value in codes.items():
        assert re.search(rf"^\| {value} \|", opening, flags=re.MULTILINE), f"exit code {value} ({name})"
        assert f"`{name}`" in opening or f"`musicstore.cli.{name}`" in opening, name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_and_argument_of_a_command_is_documented(name: str) -> None:
    opening, by_name = sections()
    section = by_name.get(name, "")
    missing = {
        word
        for word in words(COMMANDS[name])
        if not re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", opening if word in SHARED else section)
    }
    assert not missing, f"docs/cli.md does not mention {sorted(missing)} for `musicstore {name}`"


def test_the_checks_see_what_is_missing() -> None:
    """The checker itself: a command with an undocumented option is caught."""
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--never-documented-anywhere")
    probe.add_argument("item", metavar="THING")
    assert words(probe) == {"--never-documented-anywhere", "THING"}
    assert "--never-documented-anywhere" not in PAGE.read_text()
