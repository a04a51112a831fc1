"""Session 29's hunt of the dashboard (``musicstore.web``): its token cookie followed from another site."""

from __future__ import annotations

import http.server
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")

from starlette.testclient import TestClient

from musicstore import Store, migrate
from musicstore.web import create_app

TOKEN = "s29-dashboard-token"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    migrate(url)
    with Store(url) as opened:
        opened.create_generation("lofi at 90 BPM", model_name="m", duration_seconds=1)
        yield opened


def test_the_login_cookie_is_sent_on_a_link_from_another_site(store: Store, tmp_path: Path) -> None:
    # SameSite=Strict withheld the cookie from every navigation that came from another site: /login?token=
    # opened from a runbook or a chat set it, then its redirect to the overview (a chain begun on another
    # site) was refused, "a token is required ... open /login?token=<token>" (reloading it too). Lax sends it
    # on such a top-level GET, which changes nothing here (GET and HEAD only), and still withholds it from
    # other sites' requests for the audio, the waveform or the JSON
    with TestClient(create_app(store, root=tmp_path, token=TOKEN)) as client:
        login = client.get("/login", params={"token": TOKEN}, follow_redirects=False)
    attributes = [part.strip().lower() for part in login.headers["set-cookie"].split(";")]
    assert "samesite=lax" in attributes and "httponly" in attributes


class _OtherSite(http.server.BaseHTTPRequestHandler):
    """A page of another site (``localhost``, not the dashboard's ``127.0.0.1``) linking to the dashboard."""

    page = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.slow
def test_a_link_from_another_site_opens_the_dashboard_in_a_browser(
    store: Store, tmp_path: Path, musicstore_live_server: Callable[[Any], Any], musicstore_browser: Any
) -> None:
    pytest.importorskip("selenium")
    dashboard = musicstore_live_server(create_app(store, root=tmp_path, token=TOKEN))
    links = {"login": f"{dashboard.url}/login?token={TOKEN}", "deep": f"{dashboard.url}/generations"}
    _OtherSite.page = "".join(f'<a id="{k}" href="{v}">{k}</a> ' for k, v in links.items()).encode()
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtherSite)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    driver = musicstore_browser
    try:
        for link, heading in (("login", "Overview"), ("deep", "Generations")):
            driver.get(f"http://localhost:{other.server_address[1]}/")
            driver.find_element("id", link).click()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (
                driver.current_url.startswith("http://localhost")
                or driver.execute_script("return document.readyState") != "complete"
            ):
                time.sleep(0.05)
            text = driver.find_element("tag name", "body").text
            assert "a token is required" not in text, link
            assert driver.find_element("tag name", "h1").text == heading, link
    finally:
        driver.delete_all_cookies()
        other.shutdown()
        other.server_close()


def test_a_store_clock_that_fails_is_the_servers_error_not_the_requests(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a clock giving a naive moment (`clock=datetime.utcnow`) raised InvalidInput at every read, which the app
    # answered 400 "bad request", the request blamed and nothing logged; a bad query value is still 400
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    migrate(url)
    naive = [False]

    def clock() -> datetime:
        now = datetime.now(UTC)
        return now.replace(tzinfo=None) if naive[0] else now

    with Store(url, clock=clock) as store, TestClient(create_app(store, root=tmp_path)) as client:
        store.create_generation("lofi", model_name="m", duration_seconds=1)
        assert client.get("/generations", params={"limit": "0"}).status_code == 400
        assert client.get("/api/generations", params={"cursor": "nope"}).status_code == 400
        assert client.get("/api/generations", params={"day": "2024-02-30"}).status_code == 400
        naive[0] = True
        for path in ("/", "/api/overview", "/metrics", "/prompts", "/workers"):
            caplog.clear()
            with caplog.at_level(logging.ERROR, logger="musicstore.web.app"):
                answer = client.get(path)
            assert answer.status_code == 500, path
            assert "naive" in caplog.text, path
        assert client.get("/generations", params={"limit": "0"}).status_code == 400
