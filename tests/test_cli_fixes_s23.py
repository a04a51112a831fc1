"""Regressions found by the command line's hunt (session 23): ``musicstore`` against docs/cli.md, and the
fixtures of ``musicstore.testing``."""

from __future__ import annotations

from pathlib import Path

import pytest

from musicstore.cli import EXIT_ERROR, EXIT_OK, main

# --- serve --check with an output root that is not there ---------------------------------------------------
# `serve --check` is a deployment's check, yet `-o /srv/audoi` (a typo, a mount not there) passed with exit
# code 0: the dashboard then answered 404 for every file under that root.


@pytest.mark.parametrize(
    ("how", "what"), [(h, w) for h in ("option", "variable") for w in ("missing", "a file")]
)
def test_serve_check_fails_on_a_named_output_root_that_is_no_folder(  # noqa: PLR0917 (parametrized)
    how: str,
    what: str,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("uvicorn")
    root = tmp_path / "audio"
    if what == "a file":
        root.write_bytes(b"")
    argv = ["serve", "--database", sqlite_url, "--check"]
    monkeypatch.delenv("MUSICSTORE_WEB_TOKEN", raising=False)
    if how == "option":
        monkeypatch.delenv("MUSICSTORE_OUTPUT_ROOT", raising=False)
        argv += ["-o", str(root)]
    else:
        monkeypatch.setenv("MUSICSTORE_OUTPUT_ROOT", str(root))
    assert main(argv) == EXIT_ERROR
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("musicstore: error: ") and err.count("\n") == 1, err
    assert str(root) in err and ("does not exist" if what == "missing" else "not a folder") in err, err
    root.unlink(missing_ok=True)
    root.mkdir()
    assert main(argv) == EXIT_OK
    assert "(--check: not started)" in capsys.readouterr().out


# --- an empty MUSICSTORE_* variable is no request for the default -------------------------------------------
# `MUSICSTORE_DATABASE_URL="$(cat /run/secrets/db-url)"` with the file missing, or a compose file's
# `${DB_URL}` unset, read as unset: every command ran on ./data/generations.db (a worker wrote its jobs to a
# local file), $MUSICSTORE_OUTPUT_ROOT="" on ./data/audio, and $MUSICSTORE_WEB_TOKEN="" served the dashboard
# with no token at all. `-d ""`, `-o ""` and `--token ""` were usage errors already; the variables are too.

_EMPTY = ["", " ", "\n"]


@pytest.mark.parametrize("value", _EMPTY)
@pytest.mark.parametrize("command", [["stats"], ["list", "--json"], ["migrate"], ["yoyo-url"], ["demo"]])
def test_an_empty_database_url_variable_is_a_usage_error_naming_it(
    command: list[str],
    value: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from musicstore.cli import EXIT_USAGE

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MUSICSTORE_DATABASE_URL", value)
    assert main(command) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == "" and "$MUSICSTORE_DATABASE_URL is set but empty" in err, err
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []  # no data/generations.db made


def test_an_empty_database_url_variable_is_ignored_when_the_option_names_the_database(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MUSICSTORE_DATABASE_URL", "")
    assert main(["stats", "--json", "-d", sqlite_url]) == EXIT_OK
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("value", _EMPTY)
def test_the_library_refuses_an_empty_database_url_variable(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from musicstore import InvalidInput, Store
    from musicstore.migrate import yoyo_url
    from musicstore.urls import resolve

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MUSICSTORE_DATABASE_URL", value)
    for call in (resolve, Store, yoyo_url):
        with pytest.raises(InvalidInput, match=r"\$MUSICSTORE_DATABASE_URL is set but empty"):
            call(None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", _EMPTY)
@pytest.mark.parametrize("command", [["reconcile"], ["stats", "--disk"], ["cleanup", "--older-than", "1d"]])
def test_an_empty_output_root_variable_is_a_usage_error_naming_it(
    command: list[str],
    value: str,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from musicstore.cli import EXIT_USAGE

    monkeypatch.setenv("MUSICSTORE_OUTPUT_ROOT", value)
    assert main([*command, "-d", sqlite_url]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == "" and "$MUSICSTORE_OUTPUT_ROOT is set but empty" in err, err
    assert main([*command, "-d", sqlite_url, "-o", str(Path(sqlite_url[len("sqlite:///") :]).parent)]) == 0


@pytest.mark.parametrize("value", _EMPTY)
def test_an_empty_web_token_variable_is_a_usage_error_not_a_dashboard_without_a_token(
    value: str, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from musicstore.cli import EXIT_USAGE

    pytest.importorskip("uvicorn")
    monkeypatch.setenv("MUSICSTORE_WEB_TOKEN", value)
    argv = ["serve", "--database", sqlite_url, "--check", "--host", "0.0.0.0"]
    assert main(argv) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == "" and "$MUSICSTORE_WEB_TOKEN is set but empty" in err, err
    assert main([*argv, "--token", "from-the-command-line"]) == EXIT_OK
