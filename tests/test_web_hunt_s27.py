"""The web side, session 27's hunt: the dashboard over a store closed under it, and Range requests whose
ranges are partly satisfiable."""

from __future__ import annotations

import collections
import logging
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("jinja2")

from starlette.testclient import TestClient

from musicstore import Store
from musicstore.web import create_app
from tests.conftest import new_job

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
    that the store is closed (503); none is a 400 (the request's fault) nor a bare 500."""
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
        time.sleep(0.5)
        stop.set()
        for reader in readers:
            reader.join()
    assert set(seen) <= {200, 503} and seen[503] > 0, seen
