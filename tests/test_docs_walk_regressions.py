"""What a new user following the docs literally, with only the wheel installed, ran into (the docs walk).

The docs' Python blocks run in tests/test_docs.py; these are the shell side: ``musicstore --help`` and the
console samples of docs/cli.md, against what the commands print.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path

import pytest

from musicstore import Generation, Store, cli
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


def _hide(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """Make ``module`` (and its submodules) unimportable, as in an install without its extra."""
    for name in [m for m in sys.modules if m == module or m.startswith(f"{module}.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)


def _cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, err.getvalue()


@pytest.mark.parametrize(("module", "fmt"), [("mutagen", "mp3"), ("soxr", "opus")])
def test_render_without_the_renditions_extra_is_one_error_line(
    module: str, fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``musicstore render`` (and ``demo --renditions``) where mutagen or soxr is not installed printed a
    traceback: the hint was an ImportError without a module name, which the CLI's check for a missing extra
    did not recognise. docs/cli.md promises one line and exit code 1 for a missing extra, every command."""
    monkeypatch.chdir(tmp_path)
    url, root = "sqlite:///jobs.db", "audio"
    assert _cli("demo", "--count", "1", "-d", url, "-o", root)[0] == 0
    (gid,) = [g.id for g in _completed(url)]
    _hide(monkeypatch, module)
    code, err = _cli("render", gid, "--format", fmt, "-d", url, "-o", root)
    assert code == 1, err
    assert err.count("\n") == 1 and err.startswith("musicstore: error: "), err
    assert "pip install 'musicstore[renditions]'" in err
    code, err = _cli("demo", "--count", "1", "--renditions", fmt, "-d", "sqlite:///other.db", "-o", root)
    assert code == 1, err
    assert err.count("\n") == 1 and "pip install 'musicstore[renditions]'" in err, err


def _completed(url: str) -> list[Generation]:
    with Store(url) as store:
        return store.list_generations(status="completed").items


@pytest.mark.parametrize("module", ["mutagen", "soxr"])
def test_demo_with_renditions_without_the_extra_stops_before_anything_is_written(
    module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``demo --renditions`` found the missing extra only at the first rendition: that job stayed completed
    without it and the others were cancelled. It is now refused before the database or a file is made, as an
    unknown format is."""
    monkeypatch.chdir(tmp_path)
    _hide(monkeypatch, module)
    code, err = _cli("demo", "--count", "2", "--renditions", "opus", "-d", "sqlite:///jobs.db", "-o", "audio")
    assert code == 1 and "pip install 'musicstore[renditions]'" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no database, no audio folder


def test_stats_disk_says_the_database_figure_is_the_masters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With renditions on disk the walk's total exceeds the rows' (masters only): the line said "the database
    records N bytes" beside the disk's larger total, which read as a mismatch."""
    monkeypatch.chdir(tmp_path)
    url = "sqlite:///jobs.db"
    assert main(["demo", "--count", "1", "--renditions", "mp3", "-d", url, "-o", "audio"]) == 0
    capsys.readouterr()
    assert main(["stats", "--disk", "-d", url, "-o", "audio"]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("disk under")]
    masters = sum(g.file_size_bytes or 0 for g in _completed(url))
    assert f"the database records {masters:,} bytes of masters" in line, line
    disk = int(line.split(" files, ")[1].split(" bytes")[0].replace(",", ""))
    assert disk > masters  # the rendition and the peaks file beside the master
