"""The truth of the dashboard's and /metrics' numbers (s24 hunt, both backends): one consistent read per
page."""

from __future__ import annotations

import contextlib
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

GEN: dict[str, Any] = {
    "model_name": "musicgen-small",
    "duration_seconds": 2,
    "sample_rate": 32_000,
    "channels": 2,
}


def test_the_overview_reads_its_figures_in_one_transaction(db_url: str, tmp_path: Path) -> None:
    # the overview read its snapshot (counts by status, the window) in one read transaction and its hourly
    # bars, days and failures in a second: a job created between the two was in the bars and in no count,
    # so the page's figures did not add up (here: 1 generation by status, 2 in the hour's bar)
    with Store(db_url) as store, Store(db_url) as writer:
        store.create_generation("lofi", **GEN)
        opened = store.transaction

        @contextlib.contextmanager
        def then_a_writer(**options: Any) -> Iterator[Any]:
            with opened(**options) as tx:
                yield tx
            writer.create_generation("written between two reads", **GEN)  # another connection commits

        store.transaction = then_a_writer  # type: ignore[method-assign]
        with TestClient(create_app(store, root=tmp_path)) as client:
            overview = client.get("/api/overview").json()
    hours = dict(overview["charts"]["hours"]["series"])
    total = sum(overview["by_status"].values())
    assert sum(hours["created"]) == sum(overview["window"]["generations"].values()) == total
    days = overview["charts"]["days"]["series"][0][1]
    assert sum(days) == total
