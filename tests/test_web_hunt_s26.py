"""The dashboard's recent failures after today's change (migration 0024, ``dashboard_recent_failures``): the
same list on both backends, whatever the failed rows hold."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("jinja2")

from starlette.testclient import TestClient

from musicstore import Store
from musicstore.ops import import_rows
from musicstore.testing import FakeClock
from musicstore.web import create_app
from musicstore.web.reads import recent_failures_op
from tests.conftest import new_job


def _fail(store: Store, message: str) -> str:
    job = store.claim_next("gpu-0")
    assert job is not None
    store.fail(job.id, message, retry=False)
    return job.id


def test_a_failure_without_completed_at_comes_last_on_both_backends(db_url: str, tmp_path: Path) -> None:
    """A failed row imported without a ``completed_at`` (an older store's, a hand-made backup's) was the first
    of the recent failures on PostgreSQL (its ``DESC`` puts NULL first) and the last on SQLite (NULL is the
    lowest): it is the last on both, after the failures known by time, newest first and ties by id."""
    clock = FakeClock()
    with Store(db_url, clock=clock) as store, TestClient(create_app(store, root=tmp_path)) as client:
        for i in range(3):
            new_job(store, f"<script>alert({i})</script>", owner_key=f"<b>owner {i}</b>")
        failed = [_fail(store, f"<img src=x onerror=alert({i})>") for i in range(3)]  # one moment: ties
        clock.advance(10.0)
        store.replay(failed[0])
        assert _fail(store, "failed again") == failed[0]
        with store.transaction(write=False) as tx:
            model = tx.get_generation(failed[1])
        assert model is not None
        undated = dataclasses.replace(
            model, id="01a249bf-0000-7000-8000-000000000000", completed_at=None, idempotency_key=None
        )
        with store.transaction() as tx:
            assert tx.run(import_rows, [], [undated]) == 1
        expected = [failed[0], *sorted(failed[1:], reverse=True), undated.id]
        with store.transaction(write=False) as tx:
            assert [g.id for g in tx.run(recent_failures_op, 10)] == expected
        assert [g["id"] for g in client.get("/api/overview").json()["failures"]] == expected
        page = client.get("/").text
        assert "<script>alert" not in page and "<img src=x" not in page and "&lt;img src=x" in page
