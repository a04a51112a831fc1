"""What a new user following the docs literally, with only the wheel installed, ran into (the docs walk).

The docs' Python blocks run in tests/test_docs.py; these are the shell side: ``musicstore --help`` and the
console samples of docs/cli.md, against what the commands print.
"""

from __future__ import annotations

import contextlib
import io
import re

from musicstore import cli
from musicstore.cli import build_parser, main


def _help(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main([*argv, "--help"])
    return out.getvalue()


def test_help_lists_every_exit_code_the_command_can_end_with() -> None:
    """``musicstore --help`` (and each command's) named 0-4 and 130, not 143, which SIGTERM ends a command
    with (docs/cli.md's table has it): a service manager's stop read as an unexplained exit code."""
    codes = {value for name, value in vars(cli).items() if name.startswith("EXIT_")}
    assert 143 in codes
    for text in (build_parser().format_help(), _help("list"), _help("migrate")):
        _, _, listed = text.partition("exit codes:\n")
        found = {int(code) for code in re.findall(r"^  (\d+) ", listed, flags=re.MULTILINE)}
        assert found == codes, f"--help lists {sorted(found)}, the commands end with {sorted(codes)}"
