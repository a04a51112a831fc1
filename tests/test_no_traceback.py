"""No command prints a traceback for a condition the user caused: one line on stderr says what, and the exit
code says what happened (docs/cli.md). Each case runs the real entry point, ``python -m musicstore``."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from musicstore import Store, cli
from musicstore.cli import EXIT_INTERRUPTED
from musicstore.urls import URL_ENV

ROOT_ENV = "MUSICSTORE_OUTPUT_ROOT"
SHOW_ID = "01a2285d-0000-7000-8000-000000000000"

# Runs each command line given (JSON) through ``musicstore.cli.main`` in one process where the modules named
# in argv[1] are missing, as if the extra that brings them were not installed; prints what each showed.
WITHOUT = """\
import contextlib, io, json, sys, traceback
missing = set(sys.argv[1].split(","))
class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in missing:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NotInstalled())
from musicstore import cli
shown = []
for argv in json.loads(sys.argv[2]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except BaseException:
            code = None
            err.write(traceback.format_exc())
    shown.append({"argv": argv, "code": code, "stderr": err.getvalue()})
print(json.dumps(shown))
"""


def _env(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in (URL_ENV, ROOT_ENV)}
    return {**clean, **extra}


def musicstore(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "musicstore", *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=cwd,
        timeout=300,
        check=False,
    )


def without(missing: str, lines: list[list[str]], cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    """Run each command line in one fresh process that lacks the ``missing`` modules."""
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT, missing, json.dumps(lines)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=cwd,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return [
        subprocess.CompletedProcess(item["argv"], item["code"], "", item["stderr"])
        for item in json.loads(result.stdout.splitlines()[-1])
    ]


def in_process(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> subprocess.CompletedProcess[str]:
    """``musicstore ARGS`` through ``cli.main`` in this process: what a traceback would be is an exception
    that leaves ``main``."""
    capsys.readouterr()
    with monkeypatch.context() as patch:
        patch.delenv(URL_ENV, raising=False)
        patch.delenv(ROOT_ENV, raising=False)
        code = cli.main(args)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def assert_told(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit code 1 and one line on stderr, with the given words (the hint), never a traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert result.stderr.startswith("musicstore: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert all(word in result.stderr for word in words), result.stderr


def command_lines(tmp: Path) -> dict[str, list[str]]:
    """One line of each command of the CLI (a command added later runs with no arguments)."""
    root = tmp / "audio"
    root.mkdir(exist_ok=True)
    lines = {
        "stats": ["stats", "--storage", "--disk", "-o", str(root)],
        "show": ["show", SHOW_ID],
        "render": ["render", SHOW_ID, "--format", "mp3", "-o", str(root)],
        "reconcile": ["reconcile", "-o", str(root)],
        "cleanup": ["cleanup", "--status", "failed", "-o", str(root)],
        "copy-files": ["copy-files", "--to", str(tmp / "elsewhere")],
        "backup": ["backup", str(tmp / "copy.db"), "--overwrite"],
        "restore": ["restore", str(tmp / "copy.db"), "--overwrite"],
        "demo": ["demo", "--count", "1", "-o", str(root)],
        "cancel": ["cancel", SHOW_ID],
        "replay": ["replay", "--all"],
        "queue-position": ["queue-position", SHOW_ID],
        "set-owner-limit": ["set-owner-limit", "user-42", "1"],
        "serve": ["serve", "--check", "-o", str(root)],
    }
    parser = cli.build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    names = sorted(action.choices or {})
    return {name: lines.get(name, [name]) for name in names}


def _with_database(name: str, line: list[str], url: str) -> list[str]:
    """``line`` with ``--database URL`` if the command takes one."""
    parser = cli.build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    choices: dict[str, argparse.ArgumentParser] = dict(action.choices or {})
    return [*line, "--database", url] if "--database" in choices[name]._option_string_actions else line


def test_every_command_without_the_postgres_extra_gives_the_hint(tmp_path: Path) -> None:
    """``migrate`` (and ``demo``, which migrates) printed yoyo's ModuleNotFoundError traceback."""
    url = "postgresql://musicstore@127.0.0.1:1/musicstore"
    lines = {name: _with_database(name, line, url) for name, line in command_lines(tmp_path).items()}
    for name, result in zip(
        lines, without("psycopg,psycopg_pool", list(lines.values()), tmp_path), strict=True
    ):
        if result.returncode == 0:  # a command that needs no driver (yoyo-url, migrations-path)
            assert "Traceback" not in result.stderr, (name, result.stderr)
            continue
        hint = "pg_dump" if name in {"backup", "restore"} else "pip install 'musicstore[postgres]'"
        assert_told(result, hint)


def test_every_command_on_sqlite_needs_no_optional_extra(tmp_path: Path) -> None:
    """Without torch, aiosqlite, psycopg and psycopg_pool, every command works on SQLite."""
    url = f"sqlite:///{tmp_path}/store.db"
    Store(url, migrate=True).close()
    lines = {name: _with_database(name, line, url) for name, line in command_lines(tmp_path).items()}
    shown = without("torch,aiosqlite,psycopg,psycopg_pool", list(lines.values()), tmp_path)
    for name, result in zip(lines, shown, strict=True):
        assert "Traceback" not in result.stderr, (name, result.stderr)
        assert result.returncode in {0, 3}, (name, result.returncode, result.stderr)  # show: no such id


def test_a_missing_module_that_is_not_an_extra_is_a_bug_not_a_hint() -> None:
    assert cli._missing_extra(ModuleNotFoundError("x", name="psycopg.rows")) is not None
    assert cli._missing_extra(ModuleNotFoundError("x", name="numpy")) is None
    assert cli._missing_extra(ImportError("cannot import name 'x' from 'musicstore.ops'")) is None


def _interrupt(args: list[str], cwd: Path, *, after: float, ready: str) -> subprocess.CompletedProcess[str]:
    """Start ``python -X importtime -m musicstore ARGS``; SIGINT ``after`` seconds past the first stderr
    line containing ``ready``. The importtime lines (one per finished import) are left out of stderr."""
    process = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "musicstore", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(PYTHONUNBUFFERED="1"),
        cwd=cwd,
    )
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if ready in line:
            break
    time.sleep(after)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=300)
    lines.append(err)
    stderr = "".join(line for line in "".join(lines).splitlines(True) if not line.startswith("import time:"))
    return subprocess.CompletedProcess(process.args, process.returncode, out, stderr)


@pytest.mark.parametrize("after", [0.0, 0.05, 0.15, 0.4])
def test_ctrl_c_while_the_command_starts_is_one_line_and_exit_130(tmp_path: Path, after: float) -> None:
    """SIGINT at several points of the start-up, from musicstore's first import on (before it, while the
    interpreter itself starts, Python's own handling applies): it printed a KeyboardInterrupt traceback."""
    url = f"sqlite:///{tmp_path}/store.db"
    Store(url, migrate=True).close()
    result = _interrupt(["stats", "--database", url], tmp_path, after=after, ready="musicstore.errors")
    assert "Traceback" not in result.stderr, result.stderr
    if after == 0.0:  # the rest of the imports take longer than reading the line: always interrupted
        assert result.returncode == EXIT_INTERRUPTED
    assert result.returncode in {0, EXIT_INTERRUPTED}, result.stderr
    if result.returncode == EXIT_INTERRUPTED:
        assert result.stderr.strip() == "musicstore: interrupted", result.stderr


def test_ctrl_c_as_the_command_exits_changes_nothing(tmp_path: Path) -> None:
    """SIGINT once the command has printed its result, while the interpreter shuts down: the process was
    killed by the signal (exit status -2) in most tries, and printed a KeyboardInterrupt traceback in some."""
    url = f"sqlite:///{tmp_path}/store.db"
    Store(url, migrate=True).close()
    for _ in range(12):
        process = subprocess.Popen(
            [sys.executable, "-m", "musicstore", "stats", "--database", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(PYTHONUNBUFFERED="1"),
            cwd=tmp_path,
        )
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("files:"):  # the last line of the result
                break
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=300)
        assert "Traceback" not in err, err
        assert process.returncode in {0, EXIT_INTERRUPTED}, (process.returncode, err)


def test_ctrl_c_during_a_command_is_one_line_and_exit_130(tmp_path: Path) -> None:
    """SIGINT while ``demo`` works (after its first line of output): KeyboardInterrupt, handled by main."""
    url = f"sqlite:///{tmp_path}/store.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "musicstore", "demo", "--count", "3", "-d", url, "-o", str(tmp_path / "a")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(PYTHONUNBUFFERED="1"),
        cwd=tmp_path,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first.startswith("database: "), first
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == EXIT_INTERRUPTED and "Traceback" not in err, err
    assert err.strip() == "musicstore: interrupted", err


@pytest.mark.parametrize("json_output", [False, True])
def test_a_closed_pipe_ends_quietly(tmp_path: Path, json_output: bool) -> None:
    """``musicstore list | head``: the reader went away before the output was written."""
    url = f"sqlite:///{tmp_path}/store.db"
    with Store(url, migrate=True) as store:
        for i in range(200):
            store.create_generation(f"prompt {i}", model_name="m", duration_seconds=1)
    args = ["list", "--limit", "200", "--database", url] + (["--json"] if json_output else [])
    process = subprocess.Popen(
        [sys.executable, "-m", "musicstore", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=tmp_path,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the command writes anything: its first write meets a closed pipe
    err = process.stderr.read()
    assert process.wait(timeout=300) == cli.EXIT_ERROR
    assert err == "", err


def _migrated(path: Path) -> str:
    url = f"sqlite:///{path}"
    Store(url, migrate=True).close()
    return url


def test_files_and_folders_the_user_got_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    folder = tmp_path / "folder.db"
    folder.mkdir()
    good = _migrated(tmp_path / "good.db")
    unwritable = Path("/proc/musicstore-test") if Path("/proc/self").exists() else tmp_path / "ro"
    if not str(unwritable).startswith("/proc"):
        unwritable.mkdir()
        unwritable.chmod(0o500)
    cases = [
        (["stats", "-d", f"sqlite:///{text}"], "not a database"),
        (["list", "-d", f"sqlite:///{folder}"], "unable to open"),
        (["migrate", "-d", f"sqlite:///{text}/sub/store.db"], "Not a directory"),
        (["migrate", "-d", f"sqlite:///{unwritable}/store.db"], str(unwritable)),
        (["restore", str(tmp_path / "missing.db"), "-d", f"sqlite:///{tmp_path}/r.db"], "does not exist"),
        (["restore", str(text), "-d", f"sqlite:///{tmp_path}/r.db"], "not a SQLite database"),
        (["backup", str(text / "copy.db"), "-d", good], str(text)),
        (["backup", str(unwritable / "copy.db"), "-d", good], str(unwritable)),
        (["reconcile", "-d", good, "-o", str(text)], "not a directory"),
        (["cleanup", "--status", "failed", "--apply", "-d", good, "-o", str(text)], str(text)),
        (["stats", "--disk", "-d", good, "-o", str(tmp_path / "missing")], "missing"),
        (["list", "-d", "sqlite:///"], "sqlite:///relative"),
    ]
    for args, words in cases:
        result = in_process(args, capsys, monkeypatch)
        if result.returncode != 1:
            pytest.fail(f"{args}: exit {result.returncode}, stderr {result.stderr!r}")
        assert_told(result, words)


def test_a_schema_newer_than_this_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database a later musicstore migrated: an applied migration this version does not ship."""
    url = _migrated(tmp_path / "newer.db")
    with sqlite3.connect(tmp_path / "newer.db") as conn:
        conn.execute(
            "INSERT INTO _yoyo_migration (migration_hash, migration_id, applied_at_utc) "
            "VALUES ('f' || hex(randomblob(31)), '9999.from-a-later-version', '2030-01-01 00:00:00')"
        )
        conn.execute("DROP TABLE prompts")  # and, say, a table that later version replaced
    monkeypatch.chdir(tmp_path)
    for name, line in command_lines(tmp_path).items():
        result = in_process(_with_database(name, line, url), capsys, monkeypatch)
        if result.returncode not in {0, 3, 4}:  # found nothing, or found the files and rows disagree
            assert_told(result)
