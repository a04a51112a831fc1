"""Session 27's hunt of the CLI (docs/cli.md): what a command leaves behind on a database it refuses, and
what a table shows of stored text."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import sqlite3
from pathlib import Path

import pytest

from musicstore import AsyncStore, MigrationError, Store, cli
from musicstore.urls import URL_ENV


def _run(monkeypatch: pytest.MonkeyPatch, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.delenv(URL_ENV, raising=False)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _another_programs_database(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:  # a rollback journal: SQLite's default
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('keep me as I am')")
        conn.commit()


@pytest.mark.parametrize("kind", ["another program's database", "an empty file"])
@pytest.mark.parametrize("command", [["list"], ["stats"], ["queue", "--json"], ["cancel", "0" * 36]])
def test_a_command_on_a_sqlite_file_without_the_schema_leaves_it_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, command: list[str]
) -> None:
    """docs/cli.md: a database that lacks migrations is one error line, exit code 1. Opening it switched the
    file to WAL mode first (``PRAGMA journal_mode = WAL`` is kept in the file): a read-only ``list`` pointed
    at another program's SQLite database by mistake changed that program's journal mode for good, and turned
    an empty file (``touch``) into a 4 KiB database, before it said the schema was missing."""
    path = tmp_path / "app.db"
    if kind == "an empty file":
        path.touch()
    else:
        _another_programs_database(path)
    before = _files(tmp_path)
    code, out, err = _run(monkeypatch, *command, "--database", f"sqlite:///{path}")
    assert code == 1 and out == "", (code, out, err)
    assert err.startswith("musicstore: error: ") and err.count("\n") == 1, err
    assert "the schema is missing" in err and "Traceback" not in err, err
    assert _files(tmp_path) == before  # no byte changed, no -wal or -shm left beside it
    if kind != "an empty file":
        with contextlib.closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_the_store_refuses_a_sqlite_file_without_the_schema_before_changing_it(tmp_path: Path) -> None:
    """The same for the library: ``Store(url)`` and ``AsyncStore.open(url)`` raise MigrationError (as
    before) and the file is as it was."""
    path = tmp_path / "app.db"
    _another_programs_database(path)
    before = _files(tmp_path)
    with pytest.raises(MigrationError, match="the schema is missing"):
        Store(f"sqlite:///{path}")
    assert _files(tmp_path) == before

    async def main() -> None:
        async with AsyncStore.open(f"sqlite:///{path}"):
            pass

    with pytest.raises(MigrationError, match="the schema is missing"):
        asyncio.run(main())
    assert _files(tmp_path) == before
    Store(f"sqlite:///{path}", migrate=True).close()  # asked for: migrated, in WAL mode
    with Store(f"sqlite:///{path}") as store:
        assert store.count_generations() == 0


BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
"""Unicode's bidirectional controls: each reorders the text after it on a terminal that lays out bidi text
(the "Trojan Source" trick: a row reads in another order than it is stored)."""


def test_a_bidi_control_in_stored_text_is_shown_as_an_escape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/cli.md: control characters of stored text are shown as escapes, so each row stays one line and
    reads one way. A right-to-left override (U+202E) in a prompt, an isolate (U+2067) in a model name, was
    printed as is: on a bidi terminal the rest of the row read reordered; in an error line too. ``--json``
    keeps it verbatim."""
    from musicstore.cli.table import escape_controls, printable

    for ch in BIDI:
        assert printable(f"a{ch}b") == f"a\\u{ord(ch):04x}b"
        assert escape_controls(f"a{ch}b") == f"a\\u{ord(ch):04x}b"
    url = f"sqlite:///{tmp_path / 'g.db'}"
    with Store(url, migrate=True) as store:
        made = store.create_generation("evil\u202eprompt", model_name="m\u2067x", duration_seconds=1)
    for command in (["list"], ["prompts"], ["show", made.id], ["queue"]):
        code, out, err = _run(monkeypatch, *command, "--database", url)
        assert code == 0, err
        assert not set(BIDI) & set(out), (command, out)
    assert "evil\\u202eprompt" in _run(monkeypatch, "list", "--database", url)[1]
    code, out, _ = _run(monkeypatch, "show", made.id, "--json", "--database", url)
    assert code == 0 and '"evil\u202eprompt"' in out  # verbatim, as every other character


@pytest.mark.parametrize(
    ("text", "columns"),
    [
        ("หัวใจ", 4),  # Thai: the vowel sign U+0E31 is a nonspacing mark of combining class 0
        ("गुरु", 2),  # Devanagari: U+0941, the same
        ("a\u200bb", 2),  # a zero width space
        ("e\u0301", 1),  # a combining accent (class 230): none, as before
        ("曲", 2),  # wide: two, as before
    ],
)
def test_a_nonspacing_mark_takes_no_column_whatever_its_combining_class(text: str, columns: int) -> None:
    """docs/cli.md: cells are padded by the columns a terminal gives them, none for a combining accent. A
    mark was zero width only with a nonzero combining class: Thai and Devanagari vowel signs (nonspacing,
    class 0) and zero-width characters counted one column each, so every column after a Thai or Hindi
    prompt or model name stood one column out of line per mark."""
    from musicstore.cli.table import table, width

    assert width(text) == columns
    lines = table([(text, 1), ("x" * columns, 2)], ["p", "n"])
    assert lines[2] == f"{text}{' ' * (max(columns, 1) - columns)}  1", lines
    assert lines[3] == f"{'x' * columns}  2", lines


def test_serve_check_fails_on_a_bucket_it_cannot_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/cli.md: ``serve --check`` is a deployment's check, and a named output root it could not serve
    from fails it (exit code 1). A folder was looked at; an ``s3://`` root was not asked at all: with its
    endpoint out of reach (or its bucket missing, its credentials refused) the check passed with exit code 0,
    and the dashboard then answered 404 for every file. It now lists one key, as ``demo`` does; the
    endpoint's password stays masked. Serving without ``--check`` still only warns (not tested here)."""
    pytest.importorskip("uvicorn")
    pytest.importorskip("boto3")
    url = f"sqlite:///{tmp_path / 'g.db'}"
    Store(url, migrate=True).close()
    monkeypatch.delenv("MUSICSTORE_WEB_TOKEN", raising=False)
    monkeypatch.delenv("MUSICSTORE_OUTPUT_ROOT", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://user:endpoint-pw-42@127.0.0.1:1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-key-value-77")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    code, out, err = _run(monkeypatch, "serve", "--check", "-d", url, "-o", "s3://music/prefix")
    assert code == 1 and out == "", (code, out, err)
    assert err.startswith("musicstore: error: ") and err.count("\n") == 1, err
    assert "cannot reach" in err and "endpoint-pw-42" not in err and "secret-key-value-77" not in err, err


def test_serve_check_on_a_bucket_passes_when_it_is_there_and_fails_when_it_is_not(
    musicstore_s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("uvicorn")
    url = f"sqlite:///{tmp_path / 'g.db'}"
    Store(url, migrate=True).close()
    monkeypatch.delenv("MUSICSTORE_WEB_TOKEN", raising=False)
    monkeypatch.delenv("MUSICSTORE_OUTPUT_ROOT", raising=False)
    code, out, err = _run(monkeypatch, "serve", "--check", "-d", url, "-o", musicstore_s3_url)
    assert code == 0 and "(--check: not started)" in out, err
    code, out, err = _run(monkeypatch, "serve", "--check", "-d", url, "-o", "s3://no-such-bucket-s27/x")
    assert code == 1 and out == "" and "no-such-bucket-s27" in err and err.count("\n") == 1, err


def test_demo_shows_a_typed_database_path_with_its_controls_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/cli.md: a terminal escape in a path is shown as an escape. ``demo``'s ``database:`` line printed
    the typed URL as it is (its ``audio:`` line was escaped): a path holding ESC drove the terminal."""
    url = f"sqlite:///{tmp_path}/g\x1b[31m.db"
    code, out, err = _run(monkeypatch, "demo", "--count", "1", "-d", url, "-o", str(tmp_path / "a"))
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.startswith("database: ") and "g\\x1b[31m.db" in first, first
    assert "\x1b" not in out
