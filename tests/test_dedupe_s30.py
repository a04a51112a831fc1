"""Session 30's clean-up of duplicated code, where behaviour could drift: the overview finds its window's edge
once (``metrics_edge_op``), its failures per hour counted from the edge the snapshot found, not from a second
search of it (three queries again, in the same read transaction)."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from musicstore import Store
from musicstore.web import create_app
from tests.conftest import new_job
from tests.test_queue_order import _statements


def test_the_overview_finds_its_window_edge_once(db_url: str, tmp_path: Path) -> None:
    with Store(db_url) as store:
        for i in range(3):
            new_job(store, f"song {i}")
        with TestClient(create_app(store, root=tmp_path)) as client:
            response, run = _statements(store, lambda: client.get("/api/overview"))
    assert response.status_code == 200
    assert run.count("metrics_window_edge") == 1, run
    assert run.count("dashboard_failed_by_hour") == 1, run
