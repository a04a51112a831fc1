"""Regressions of the s23 hunt over the web side: ``musicstore serve`` and the dashboard app."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette")


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_serve_refuses_an_empty_token_variable_rather_than_serving_without_a_token(
    host: str, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `MUSICSTORE_WEB_TOKEN=$SECRET musicstore serve --host 0.0.0.0` with $SECRET unset served every
    # interface with no token at all (a warning on stderr), where "  " or an empty --token are refused
    from musicstore.cli import EXIT_OK, main

    monkeypatch.setenv("MUSICSTORE_WEB_TOKEN", "")
    assert main(["serve", "--database", sqlite_url, "--check", "--host", host]) != EXIT_OK
    captured = capsys.readouterr()
    assert "$MUSICSTORE_WEB_TOKEN is set but empty" in captured.err
    assert "ready" not in captured.out
