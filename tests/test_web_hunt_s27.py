"""The web side, session 27's hunt: the dashboard over a store closed under it, and Range requests whose
ranges are partly satisfiable."""

from __future__ import annotations

import collections
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("jinja2")

from starlette.testclient import TestClient

from musicstore import Store
from musicstore.web import create_app
from tests.conftest import new_job
from tests.test_web_fixes_s23 import audio_site  # noqa: F401  the fixture: one file of 1,000 bytes

PATHS = ["/", "/generations", "/prompts", "/workers", "/metrics", "/api/overview", "/api/generations"]


def test_a_store_closed_under_the_dashboard_is_503_and_logged(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A ``Store`` the caller closed (``create_app(store)``: the caller owns it) made every page a ``400``
    "the store is closed" (its ``InvalidInput`` read as the request's fault) and logged nothing, so the
    operator's log showed no reason for a dashboard that answered nothing; a request in flight as it
    closed was a ``500`` instead. Every page is a ``503`` "the store is closed", logged as an error."""
    store = Store(db_url)
    new_job(store)
    with TestClient(create_app(store, root=tmp_path), raise_server_exceptions=False) as client:
        assert all(client.get(path).status_code == 200 for path in PATHS)
        store.close()
        caplog.set_level(logging.ERROR, logger="musicstore.web")
        for path in PATHS:
            response = client.get(path)
            assert response.status_code == 503, (path, response.text)
            assert "the store is closed" in response.text
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("musicstore.web")]
    assert len(logged) == len(PATHS) and all("closed" in line for line in logged), logged


def test_requests_in_flight_as_the_store_closes_are_answered_or_503(db_url: str, tmp_path: Path) -> None:
    """Readers hammering the dashboard while its store is closed: each request is answered (200) or told
    that the store is closed (503); none is a 400 (the request's fault) nor a bare 500. (On SQLite the
    process died of a segfault here: connections closed under running statements, tests/test_close_s27.py.)"""
    store = Store(db_url)
    new_job(store)
    seen: collections.Counter[int] = collections.Counter()
    stop = threading.Event()
    with TestClient(create_app(store, root=tmp_path), raise_server_exceptions=False) as client:

        def read() -> None:
            n = 0
            while not stop.is_set():
                seen[client.get(PATHS[n % len(PATHS)]).status_code] += 1
                n += 1

        readers = [threading.Thread(target=read) for _ in range(4)]
        for reader in readers:
            reader.start()
        time.sleep(0.5)
        store.close()
        deadline = time.monotonic() + 30  # a request after the close, however loaded the machine
        while not seen[503] and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # more of them
        stop.set()
        for reader in readers:
            reader.join()
    assert set(seen) <= {200, 503} and seen[503] > 0, seen


def _parts(response: Any) -> list[tuple[str, bytes]]:
    """The ``(Content-Range, bytes)`` of each part of a ``multipart/byteranges`` body."""
    boundary = response.headers["content-type"].split("boundary=")[1].encode()
    body: bytes = response.content
    found = []
    for chunk in body.split(b"--" + boundary)[1:-1]:
        head, _, data = chunk.partition(b"\r\n\r\n")
        ranges = [line for line in head.decode().split("\r\n") if line.lower().startswith("content-range:")]
        found.append((ranges[0].split(":", 1)[1].strip(), data.removesuffix(b"\r\n")))
    return found


@pytest.mark.parametrize(
    ("header", "parts"),
    [
        ("bytes=0-9,1000-", [(0, 10)]),
        ("bytes=1000-, 990-", [(990, 1000)]),
        ("bytes=-0,0-9", [(0, 10)]),
        ("bytes=0-9,5000-5009,20-29", [(0, 10), (20, 30)]),
        ("bytes=2000-2999,-10,0-0", [(0, 1), (990, 1000)]),
    ],
)
def test_a_range_set_with_one_satisfiable_range_is_206_of_those(
    audio_site: tuple[TestClient, str, bytes],  # noqa: F811
    header: str,
    parts: list[tuple[int, int]],
) -> None:
    """RFC 9110 (14.1.1, 15.5.17): a ranges-specifier is satisfiable when any of its ranges is, and a server
    answers ``416`` only when none is. A set mixing a range past the file's end (or a zero suffix, ``-0``)
    with one inside it was ``416`` (Starlette refuses the whole set for one range it cannot serve): it is a
    ``206`` of the ranges inside the file, the others left out."""
    client, gid, body = audio_site
    for method in ("GET", "HEAD"):
        response = client.request(method, f"/audio/{gid}", headers={"Range": header})
        assert response.status_code == 206, (method, response.status_code, response.text)
    response = client.get(f"/audio/{gid}", headers={"Range": header})
    if len(parts) == 1:
        ((start, end),) = parts
        assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{len(body)}"
        assert response.content == body[start:end]
    else:
        expected = [(f"bytes {start}-{end - 1}/{len(body)}", body[start:end]) for start, end in parts]
        assert _parts(response) == expected


@pytest.mark.parametrize("header", ["bytes=1000-,2000-", "bytes=-0,1000-1009", "bytes=-0,-0"])
def test_a_range_set_without_any_satisfiable_range_is_still_416(
    audio_site: tuple[TestClient, str, bytes],  # noqa: F811
    header: str,
) -> None:
    client, gid, body = audio_site
    response = client.get(f"/audio/{gid}", headers={"Range": header})
    assert response.status_code == 416, response.text
    assert response.headers["content-range"] == f"bytes */{len(body)}"


def test_a_conditional_request_for_the_audio_is_304_when_its_etag_or_date_match(
    audio_site: tuple[TestClient, str, bytes],  # noqa: F811
) -> None:
    """The audio carries an ``ETag`` and a ``Last-Modified``, and a request whose ``If-None-Match`` named that
    ETag got the whole file again (200): RFC 9110 (13.1.2) says an origin server MUST answer it ``304``
    (Starlette's ``FileResponse`` reads no precondition). ``If-None-Match`` is weighed before
    ``If-Modified-Since`` (which counts only without it) and before a Range."""
    client, gid, body = audio_site
    first = client.get(f"/audio/{gid}")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    earlier = "Mon, 01 Jan 2001 00:00:00 GMT"
    for headers in (
        {"If-None-Match": etag},
        {"If-None-Match": f'W/{etag}, "other"'},
        {"If-None-Match": "*"},
        {"If-None-Match": etag, "Range": "bytes=0-9"},
        {"If-Modified-Since": modified},
    ):
        for method in ("GET", "HEAD"):
            response = client.request(method, f"/audio/{gid}", headers=headers)
            assert response.status_code == 304, (headers, method, response.status_code)
            assert response.content == b"" and response.headers["etag"] == etag
    for headers in (
        {"If-None-Match": '"other"'},
        {"If-None-Match": '"other"', "If-Modified-Since": modified},  # If-None-Match decides
        {"If-Modified-Since": earlier},
        {"If-Modified-Since": "not a date"},
    ):
        response = client.get(f"/audio/{gid}", headers=headers)
        assert response.status_code == 200, (headers, response.status_code)
        assert response.content == body
    response = client.get(f"/audio/{gid}", headers={"If-None-Match": '"other"', "Range": "bytes=0-9"})
    assert response.status_code == 206 and response.content == body[:10]


def test_an_app_made_from_a_url_serves_each_time_its_lifespan_runs(db_url: str, tmp_path: Path) -> None:
    """``create_app(url)`` opens its store and closes it at shutdown; an app whose lifespan ran again (an app
    made once, as a module's, and a ``with TestClient(app)`` per test: Starlette's own pattern) answered
    every request of the second run as a closed store's ("the store is closed"). Each run serves; each
    shutdown closes the store it used."""
    with Store(db_url) as store:
        new_job(store)
    app = create_app(db_url, root=tmp_path)
    used = []
    for _ in range(3):
        with TestClient(app) as client:
            for path in PATHS:
                response = client.get(path)
                assert response.status_code == 200, (path, response.text)
            used.append(app.dashboard.store)
        assert app.dashboard.store._connector.closed
    assert all(each._connector.closed for each in used)


def test_mounted_the_app_from_a_url_is_closed_by_the_outer_apps_shutdown(sqlite_url: str) -> None:
    """Starlette runs a mounted app's lifespan never: ``create_app(url)`` mounted keeps its store open past
    the outer app's shutdown, as docs/dashboard.md now says; ``app.dashboard.close()`` closes it."""
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.routing import Mount

    inner = create_app(sqlite_url)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield
        inner.dashboard.close()

    outer = Starlette(routes=[Mount("/ops", app=inner)], lifespan=lifespan)
    with TestClient(outer) as client:
        assert client.get("/ops/api/overview").status_code == 200
    assert inner.dashboard.store._connector.closed
