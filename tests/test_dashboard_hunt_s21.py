"""The dashboard's and metrics' edges found by the s21 hunt (both backends): query values, the trailing
window's cut, the charts, the figures against a recount of the rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("jinja2")
pytest.importorskip("prometheus_client")

from starlette.testclient import TestClient

from musicstore import Store
from musicstore.testing import FakeClock
from musicstore.web import create_app

GEN: dict[str, Any] = {
    "model_name": "musicgen-small",
    "duration_seconds": 2,
    "sample_rate": 32_000,
    "channels": 2,
}


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


def test_a_window_holding_exactly_its_limit_is_not_cut(db_url: str) -> None:
    # musicstore_window_truncated is 1 "when the window held more than" its limit: a window of exactly its
    # limit (all of it read) said it was cut, so its figures read as a lower bound
    from musicstore.metrics import metrics_text, read_metrics

    with Store(db_url) as store:
        for i in range(3):
            store.create_generation(f"lofi {i}", **GEN)
        exact = read_metrics(store, window_limit=3)
        assert sum(exact.window.generations.values()) == 3 and len(exact.recent) == 3
        assert not exact.window.truncated
        cut = read_metrics(store, window_limit=2)
        assert sum(cut.window.generations.values()) == 2 and len(cut.recent) == 2 and cut.window.truncated
        assert b'musicstore_window_truncated{window="3600s"} 0.0' in metrics_text(store, window_limit=3)
        assert b'musicstore_window_truncated{window="3600s"} 1.0' in metrics_text(store, window_limit=2)
        assert read_metrics(store, window_limit=1_000_000).window.truncated is False


def test_the_days_chart_shows_every_one_of_its_30_days(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    # the chart had a bar per day with rows only: a day without any (an outage) vanished from the axis, its
    # neighbours' bars side by side, and the chart's 30 days were fewer, unlabelled gaps
    store.create_generation("lofi 0", **GEN)
    first = clock.now.strftime("%Y-%m-%d")
    clock.advance(3 * 86_400)
    store.create_generation("lofi 1", **GEN)
    store.create_generation("lofi 2", **GEN)
    today = clock.now.date()
    with TestClient(create_app(store, root=tmp_path)) as client:
        days = client.get("/api/overview").json()["charts"]["days"]
    expected = [(today - timedelta(days=29 - i)).isoformat() for i in range(30)]
    assert days["labels"] == expected
    created = dict(zip(days["labels"], dict(days["series"])["created"], strict=True))
    assert created[first] == 1 and created[today.isoformat()] == 2 and sum(created.values()) == 3
