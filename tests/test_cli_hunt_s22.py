"""Regressions found by the command line's hunt (session 22): ``musicstore`` against what the API and
docs/cli.md say, on both backends."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from musicstore import Status
from musicstore.cli import main


def _orphan(tmp_path: Path) -> Path:
    orphan = tmp_path / "audio" / "2026" / "01" / "01a24514-0000-7000-8000-000000000000.wav"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x")
    return orphan


@pytest.mark.parametrize("quarantine", ["s3://bucket/quarantine", "gs://bucket/quarantine"])
def test_a_quarantine_url_of_another_scheme_is_refused_not_made_a_local_folder(
    quarantine: str,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # --quarantine was read as a Path, which turned s3://bucket/quarantine into s3:/bucket/quarantine: the
    # repair moved the orphan into a local folder named "s3:", where reconcile(quarantine=...) refuses it
    monkeypatch.chdir(tmp_path)
    orphan = _orphan(tmp_path)
    argv = ["reconcile", "-d", sqlite_url, "-o", "audio", "--repair", "--quarantine", quarantine]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("musicstore: error: quarantine scheme") and err.count("\n") == 1, err
    assert orphan.exists()
    assert not list(tmp_path.glob("*:"))


def test_a_file_url_quarantine_is_the_local_folder_it_names(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    orphan = _orphan(tmp_path)
    folder = tmp_path / "held"
    argv = ["reconcile", "-d", sqlite_url, "-o", "audio", "--repair", "--quarantine", folder.as_uri()]
    assert main(argv) == 4, capsys.readouterr().err
    assert not orphan.exists() and len(list(folder.rglob("*.wav"))) == 1


@pytest.mark.parametrize("stop", [BrokenPipeError, KeyboardInterrupt])
def test_a_demo_stopped_while_it_enqueues_leaves_no_job_pending(
    stop: type[BaseException], db_url: str, tmp_path: Path
) -> None:
    # `musicstore demo | head -1`: the first "enqueued" line met the closed pipe after its job was committed
    # and before the demo counted it as its own, so the job stayed pending and every later demo on that
    # database refused it ("holds 1 pending job(s) the demo did not enqueue")
    from musicstore import Store
    from musicstore.cli.demo import run_demo

    def echo(line: str) -> None:
        if line.startswith("enqueued") and "vinyl" not in line:  # the second job's line
            raise stop

    with pytest.raises(stop):
        run_demo(db_url, count=3, seconds=1.0, output_root=tmp_path / "out", echo=echo)
    with Store(db_url) as store:
        assert store.count_generations(status="pending") == 0
        assert store.count_generations(status="processing") == 0
    again = run_demo(db_url, count=1, seconds=1.0, output_root=tmp_path / "out", echo=lambda _: None)
    assert again.by_status[Status.COMPLETED] == 1


@pytest.mark.parametrize("environment", [None, "from-the-environment"])
def test_an_empty_serve_token_is_a_usage_error_not_a_dashboard_without_one(
    environment: str | None,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `musicstore serve --host 0.0.0.0 --token "$UNSET"` served every interface with no token at all (a
    # warning on stderr), or with $MUSICSTORE_WEB_TOKEN's: an empty value is a usage error, as for -d and -o
    from musicstore.cli import EXIT_USAGE

    if environment is None:
        monkeypatch.delenv("MUSICSTORE_WEB_TOKEN", raising=False)
    else:
        monkeypatch.setenv("MUSICSTORE_WEB_TOKEN", environment)
    argv = ["serve", "--database", sqlite_url, "--check", "--host", "0.0.0.0", "--token", ""]
    assert main(argv) == EXIT_USAGE
    captured = capsys.readouterr()
    assert "--token: must not be empty" in captured.err and captured.out == ""


def test_cleanups_hint_for_a_row_of_another_root_names_an_option_the_command_has(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the skip reason said "clean it up with that root (--root file:///...)": no command has --root, and
    # following the hint was a usage error
    import json
    import shlex

    from musicstore.cli.demo import run_demo

    run_demo(db_url, count=1, seconds=1.0, output_root=tmp_path / "a", echo=lambda _: None)
    (tmp_path / "b").mkdir()
    argv = ["cleanup", "-d", db_url, "--status", "completed", "--json"]
    assert main([*argv, "-o", str(tmp_path / "b")]) == 0
    (skipped,) = json.loads(capsys.readouterr().out)["skipped"]
    hint = skipped["reason"].rpartition("(")[2].rstrip(")")
    assert main([*argv, *shlex.split(hint)]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["rows_deleted"] == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["requeue-expired", "--max-attempts", str(2**63)],
        ["demo", "--count", "99999999999999999999999"],
    ],
)
def test_a_count_beyond_any_the_library_takes_is_a_usage_error_like_zero(
    argv: list[str], sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --max-attempts 0 was a usage error (2) and --max-attempts 2**63 an error from the library (1), where
    # docs/cli.md calls a value out of range a usage error
    from musicstore.cli import EXIT_USAGE

    assert main([*argv, "-d", sqlite_url]) == EXIT_USAGE
    assert "is more than" in capsys.readouterr().err


@pytest.mark.parametrize("as_json", [False, True])
def test_a_file_name_that_is_not_utf8_is_escaped_on_a_strict_utf8_stdout_not_a_traceback(
    as_json: bool, sqlite_url: str, tmp_path: Path
) -> None:
    # LANG=en_US.UTF-8 gives Python a strict UTF-8 stdout: an orphan file named in Latin-1 (a lone surrogate
    # once decoded) made reconcile and stats --disk end in a UnicodeEncodeError traceback
    import json
    import os
    import subprocess
    import sys

    folder = tmp_path / "audio" / "2026" / "12"
    folder.mkdir(parents=True)
    (folder / os.fsdecode(b"caf\xe9.wav")).write_bytes(b"RIFF")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    for args, code in ((["reconcile"], 4), (["stats", "--disk"], 0)):
        result = subprocess.run(
            [sys.executable, "-m", "musicstore", *args, "-d", sqlite_url, "-o", str(tmp_path / "audio"),
             *(["--json"] if as_json else [])],
            capture_output=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == code and b"Traceback" not in result.stderr, (args, result.stderr)
        out = result.stdout.decode("utf-8")  # valid UTF-8, the name's byte written as an escape
        if as_json:
            found = json.loads(out)
            if args == ["reconcile"]:
                assert found["orphans"][0]["path"] == "2026/12/" + os.fsdecode(b"caf\xe9.wav")
        elif args == ["reconcile"]:
            assert "caf\\udce9.wav" in out, out


def test_json_is_valid_utf8_whatever_the_stdout_does_with_a_name_that_is_not(
    sqlite_url: str, tmp_path: Path
) -> None:
    # in the C.UTF-8 locale Python's stdout writes a lone surrogate back as its raw byte (surrogateescape):
    # reconcile --json printed the orphan's Latin-1 byte, and the document was not UTF-8 (not JSON)
    import json
    import os

    result = _reconcile_in_c_utf8(sqlite_url, tmp_path, b"caf\xe9.wav", "--json")
    found = json.loads(result.stdout.decode("utf-8"))
    assert found["orphans"][0]["path"] == "2026/12/" + os.fsdecode(b"caf\xe9.wav")


def _reconcile_in_c_utf8(sqlite_url: str, tmp_path: Path, orphan: bytes, *options: str) -> Any:
    """``musicstore reconcile`` of a root holding one orphan named ``orphan`` (bytes: maybe not UTF-8), its
    stdout as the C.UTF-8 locale makes it (surrogateescape); it exits 4 (the orphan found)."""
    import os
    import subprocess
    import sys

    folder = tmp_path / "audio" / "2026" / "12"
    folder.mkdir(parents=True)
    (folder / os.fsdecode(orphan)).write_bytes(b"RIFF")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:surrogateescape"}
    result = subprocess.run(
        [sys.executable, "-m", "musicstore", "reconcile", "-d", sqlite_url, "-o", str(tmp_path / "audio"),
         *options],
        capture_output=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 4, result.stderr
    return result


def _migrated_by_a_later_version(sqlite_url: str) -> None:
    """Record in the database a migration this version does not ship (as a later musicstore's would be)."""
    from musicstore.urls import resolve

    path = resolve(sqlite_url).path
    assert path is not None
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "INSERT INTO _yoyo_migration (migration_hash, migration_id, applied_at_utc) "
            "VALUES ('f' || hex(randomblob(31)), '9999.from-a-later-version', '2030-01-01 00:00:00')"
        )


@pytest.mark.parametrize("as_json", [False, True])
def test_migrate_warns_of_a_schema_a_later_musicstore_migrated_as_every_command_does(
    as_json: bool, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # `musicstore migrate` said "applied 0 migration(s)" and nothing else on a database holding a migration
    # this version does not ship, where stats, list... warn that this version's answers can be wrong there
    _migrated_by_a_later_version(sqlite_url)
    assert main(["migrate", "-d", sqlite_url, *(["--json"] if as_json else [])]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("musicstore: warning: ") and captured.err.count("\n") == 1, captured.err
    assert "9999.from-a-later-version" in captured.err
    if as_json:
        import json

        assert json.loads(captured.out)["applied"] == []


def test_a_file_names_byte_that_is_not_utf8_is_an_escape_in_tables_in_every_locale(
    sqlite_url: str, tmp_path: Path
) -> None:
    # in the C.UTF-8 locale (stdout's surrogateescape) a table wrote such a byte raw: a C1 control byte
    # (0x9b, the 8-bit CSI) reached the terminal, where control characters are otherwise shown as escapes
    result = _reconcile_in_c_utf8(sqlite_url, tmp_path, b"x\x9b2J\xe9.wav")
    assert b"\x9b" not in result.stdout and b"\xe9" not in result.stdout
    assert "2026/12/x\\udc9b2J\\udce9.wav" in result.stdout.decode("utf-8")


def _closing(fd: int) -> Any:
    import os

    return lambda: os.close(fd)


@pytest.mark.parametrize("args", [["stats"], ["stats", "--json"], ["requeue-expired"]])
def test_a_closed_stdout_is_no_traceback(args: list[str], sqlite_url: str) -> None:
    # `musicstore requeue-expired >&-` (a cron line, a daemon's closed descriptors): Python has no sys.stdout,
    # and the flush after the command raised AttributeError, a traceback and exit 1 after the work was done
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "musicstore", *args, "-d", sqlite_url],
        stderr=subprocess.PIPE, text=True, timeout=120, check=False, preexec_fn=_closing(1),
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")


def test_a_closed_stderr_is_no_traceback_and_errors_stay_off_stdout(sqlite_url: str, tmp_path: Path) -> None:
    # `musicstore reconcile 2>&-`: the progress bar asked None whether it is a terminal (AttributeError, exit
    # 1, nothing done); and an error line, printed to a stderr of None, went to stdout among the output
    import json
    import subprocess
    import sys

    (tmp_path / "audio").mkdir()
    command = [sys.executable, "-m", "musicstore"]
    done = subprocess.run(
        [*command, "reconcile", "-d", sqlite_url, "-o", str(tmp_path / "audio"), "--json"],
        stdout=subprocess.PIPE, text=True, timeout=120, check=False, preexec_fn=_closing(2),
    )  # fmt: skip
    assert done.returncode == 0 and json.loads(done.stdout)["consistent"] is True
    failed = subprocess.run(
        [*command, "show", "not-an-id", "-d", sqlite_url],
        stdout=subprocess.PIPE, text=True, timeout=120, check=False, preexec_fn=_closing(2),
    )  # fmt: skip
    assert (failed.returncode, failed.stdout) == (1, "")


def test_warnings_made_errors_fail_the_command_in_one_line(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # PYTHONWARNINGS=error (a CI job's setting): a schema a later musicstore migrated raised
    # NewerSchemaWarning out of main, a traceback
    import warnings

    _migrated_by_a_later_version(sqlite_url)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["stats", "-d", sqlite_url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("musicstore: error: ") and err.count("\n") == 1, err
    assert "9999.from-a-later-version" in err


@given(st.lists(st.text(st.characters() | st.integers(0xDC80, 0xDCFF).map(chr)), min_size=1, max_size=3))
def test_any_cell_text_makes_table_lines_of_valid_utf8_each_one_line(cells: list[str]) -> None:
    # a lone surrogate (a file name's byte that is not UTF-8) stayed in the cell: not encodable as UTF-8,
    # and written back raw by a surrogateescape stdout
    from musicstore.cli.table import table

    lines = table([cells], [f"h{i}" for i in range(len(cells))])
    assert len(lines) == 3
    for line in lines:
        line.encode("utf-8")  # strict: no lone surrogate
        assert len(line.splitlines()) <= 1


def test_version_prints_the_installed_distributions_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib import metadata

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"musicstore {metadata.version('musicstore')}\n"


def test_backup_of_a_folder_says_it_is_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "db").mkdir()
    code = main(["backup", str(tmp_path / "copy.db"), "-d", f"sqlite:///{tmp_path / 'db'}"])
    err = capsys.readouterr().err
    assert code == 1 and "is a folder, not a database file" in err and "does not exist" not in err, err
    assert not (tmp_path / "copy.db").exists()


def test_a_missing_schema_is_one_line_on_both_backends(
    tmp_path: Path, musicstore_postgres_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """PostgreSQL's error text carries the statement and a caret on lines of their own (LINE 1: ...);
    the message is its first line, as SQLite's is."""
    name = f"bare_{tmp_path.name.lower().replace('-', '_')}"[:60]
    musicstore_postgres_server.admin(f"CREATE DATABASE {name}")
    with contextlib.closing(sqlite3.connect(tmp_path / "empty.db")) as other:
        other.execute("CREATE TABLE notes (text)")  # a database, of another program
    try:
        for url in (f"sqlite:///{tmp_path / 'empty.db'}", musicstore_postgres_server.url(name)):
            assert main(["list", "-d", url]) == 1
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "musicstore migrate" in err and "LINE" not in err, err
    finally:
        musicstore_postgres_server.admin(f"DROP DATABASE {name} WITH (FORCE)")


def test_typed_paths_outside_tables_are_shown_with_escapes(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tables showed control characters as escapes, but the lines around them (reconcile's and cleanup's
    ``root:``, ``stats --disk``'s ``disk under``, backup's ``backed up ... to ...``) printed a typed path
    as it was: a newline split the line, an ESC reached the terminal."""
    root = tmp_path / "a\x1b[2Jb\nc"
    root.mkdir()
    for argv in (
        ["reconcile", "-d", sqlite_url, "-o", str(root)],
        ["stats", "--disk", "-d", sqlite_url, "-o", str(root)],
        ["backup", str(root / "copy.db"), "-d", sqlite_url],
    ):
        assert main(argv) in (0, 4)
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\\x1b[2Jb\\nc" in out, (argv, out)
