"""Regressions of the s23 hunt over the web side: ``musicstore serve`` and the dashboard app."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("starlette")

from starlette.testclient import TestClient

from musicstore import Store
from musicstore.testing._browser import console_errors
from musicstore.web import create_app
from tests.test_web import Data, populate


def _gone(store: Store, data: Data) -> str:
    """The id of a completed generation whose master was deleted from its folder."""
    generation = store.get_generation(data.completed[2])
    assert generation is not None and generation.file_path is not None
    (data.root / generation.file_path).unlink()
    return generation.id


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


def test_a_completed_generation_whose_file_is_gone_shows_why_not_a_broken_player(
    sqlite_url: str, tmp_path: Path
) -> None:
    # the page offered an <audio> player and a waveform for a file the app answers 404 for: a player that
    # never plays, a blank canvas, and two "Failed to load resource" errors in the browser's console
    with Store(sqlite_url) as store:
        data = populate(store, tmp_path / "audio", renditions=False)
        gone = _gone(store, data)
        with TestClient(create_app(store, root=data.root)) as client:
            page = client.get(f"/generations/{gone}")
            assert page.status_code == 200
            assert "<audio" not in page.text and 'id="waveform"' not in page.text
            assert 'id="no-audio"' in page.text and "its file is missing" in page.text
            present = client.get(f"/generations/{data.completed[1]}").text
            assert "<audio" in present and 'id="no-audio"' not in present


def test_a_generation_in_a_bucket_keeps_its_player(sqlite_url: str, musicstore_s3_url: str) -> None:
    from musicstore.filestore import open_filestore
    from musicstore.recording import export_generation
    from tests.test_web import _audio

    bucket = open_filestore(musicstore_s3_url)
    with Store(sqlite_url) as store:
        store.create_generation("lofi", model_name="m", duration_seconds=1, sample_rate=32_000, channels=1)
        claimed = store.claim_next("gpu-0", lease_seconds=300)
        assert claimed is not None
        export_generation(store, claimed, _audio(1.0, 0)[:1], root=bucket)
        with TestClient(create_app(store)) as client:
            page = client.get(f"/generations/{claimed.id}").text
            assert "<audio" in page and 'id="no-audio"' not in page
    bucket.close()


@pytest.mark.slow
def test_the_page_of_a_generation_whose_file_is_gone_logs_no_console_error(
    sqlite_url: str,
    tmp_path: Path,
    musicstore_live_server: Callable[[Any], Any],
    musicstore_browser: Any,
) -> None:
    with Store(sqlite_url) as store:
        data = populate(store, tmp_path / "audio", renditions=False)
        gone = _gone(store, data)
        server = musicstore_live_server(create_app(store, root=data.root))
        console_errors(musicstore_browser)  # drop what earlier tests left
        musicstore_browser.get(f"{server.url}/generations/{gone}")
        deadline = time.monotonic() + 30
        while musicstore_browser.execute_script("return document.readyState") != "complete":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)  # the requests the page makes once loaded
        assert console_errors(musicstore_browser) == []
        assert musicstore_browser.find_element("id", "no-audio").text


@pytest.mark.parametrize("token", ["abc/def+ghi=jk==", "+A+b/8==x", "tok en+plus"])
def test_login_takes_a_token_typed_in_the_address_bar_with_its_plus_signs(
    sqlite_url: str, tmp_path: Path, token: str
) -> None:
    # `openssl rand -base64 32` makes tokens with "+": typed in the address bar, /login?token=abc+def sends
    # the "+" as it is, which the query's form decoding read as a space: "wrong token" for the right one
    from urllib.parse import quote, urlencode

    with Store(sqlite_url) as store, TestClient(create_app(store, root=tmp_path, token=token)) as client:
        typed = quote(token, safe="/+=")  # what a browser sends for the typed token (a space as %20)
        for query in (f"token={typed}", urlencode({"token": token})):  # typed, and a form's encoding
            client.cookies.clear()
            login = client.get(f"/login?{query}", follow_redirects=False)
            assert login.status_code == 303, query
            assert client.get("/api/overview").status_code == 200, query
        client.cookies.clear()
        wrong = token.replace("+", "-") if "+" in token else token + "x"
        assert client.get("/login", params={"token": wrong}, follow_redirects=False).status_code == 401


@given(token=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40))
def test_the_login_query_matches_its_token_however_the_plus_is_sent(token: str) -> None:
    from urllib.parse import quote, urlencode

    from musicstore.web.access import login_token_matches

    for query in (
        urlencode({"token": token}),
        "token=" + quote(token, safe="/+="),
        "a=1&token=x&token=" + quote(token),
    ):
        assert login_token_matches(query.encode(), token), query
        assert not login_token_matches(query.encode(), token + "x"), query
    assert not login_token_matches(b"", token)
