"""The dashboard's and metrics' edges found by the s21 hunt (both backends): query values, the trailing
window's cut, the charts, the figures against a recount of the rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("jinja2")
pytest.importorskip("prometheus_client")

from starlette.testclient import TestClient

from musicstore import Store
from musicstore.web import create_app

GEN: dict[str, Any] = {"model_name": "musicgen-small", "duration_seconds": 2, "sample_rate": 32_000, "channels": 2}


@pytest.fixture
def web_store(db_url: str) -> Iterator[Store]:
    with Store(db_url) as store:
        store.create_generation("lofi hip hop at 90 BPM", **GEN)
        yield store


@pytest.mark.parametrize("limit", ["9" * 5000, "1" + "0" * 4400, "0" * 5000 + "5"])
def test_a_limit_of_thousands_of_digits_is_a_bad_request(
    web_store: Store, tmp_path: Path, limit: str
) -> None:
    # int() refuses a str of more than 4,300 digits with a ValueError: the page was a 500 "internal error"
    with TestClient(create_app(web_store, root=tmp_path), raise_server_exceptions=False) as client:
        for path in ("/api/generations", "/generations"):
            response = client.get(path, params={"limit": limit})
            if limit.lstrip("0") == "5":  # leading zeros were read as the number, as before
                assert response.status_code == 200, (path, response.text)
            else:
                assert response.status_code == 400, (path, response.text)
                assert "limit must be a whole number from 1 to 500" in response.text
