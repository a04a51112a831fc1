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
