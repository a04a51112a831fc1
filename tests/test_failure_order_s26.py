"""The overview's recent failures are the newest by when they failed (migration 0024's index), whenever their
rows were created: a job created long ago that fails now comes first."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("jinja2")

from starlette.testclient import TestClient

from musicstore import Store, migrate
from musicstore.testing import FakeClock
from musicstore.web import create_app
from musicstore.web.reads import recent_failures_op
from tests.conftest import new_job
from tests.test_schema import _from, _rollback


def _fail_next(store: Store, message: str) -> str:
    job = store.claim_next("gpu-0")
    assert job is not None
    store.fail(job.id, message, retry=False)
    return job.id


def test_the_latest_failures_are_the_newest_by_failure(db_url: str, tmp_path: Path) -> None:
    """An old job that fails after twelve newer-created ones did (its first claim came last: a lower
    priority) is the first of the ten recent failures, on the overview and in ``/api/overview``; before, the
    ten newest failed rows by creation left it out."""
    clock = FakeClock()
    with Store(db_url, clock=clock) as store, TestClient(create_app(store, root=tmp_path)) as client:
        old = new_job(store, "made long ago", priority=-1)
        clock.advance(3600.0)
        failed = []
        for i in range(12):
            new_job(store, f"newer {i}")
            clock.advance(1.0)
            failed.append(_fail_next(store, f"error {i}"))
        clock.advance(60.0)
        assert _fail_next(store, "the old one failed last") == old.id
        with store.transaction(write=False) as tx:
            recent = tx.run(recent_failures_op, 10)
        assert [g.id for g in recent] == [old.id, *reversed(failed[-9:])]
        shown = client.get("/api/overview").json()["failures"]
        assert [g["id"] for g in shown] == [old.id, *reversed(failed[-9:])]
        assert "the old one failed last" in client.get("/").text


def test_0024_rolls_back_and_applies_again(db_url: str) -> None:
    with Store(db_url) as store:
        new_job(store, "a")
        failed = _fail_next(store, "boom")
    _rollback(db_url, "0024")
    assert migrate(db_url) == _from("0024")
    with Store(db_url) as store, store.transaction(write=False) as tx:
        assert [g.id for g in tx.run(recent_failures_op, 10)] == [failed]


def test_the_failures_list_shows_when_each_failed(db_url: str, tmp_path: Path) -> None:
    """Ordered by when they failed, the list's first column is that time (it was the creation time, under a
    "created" heading)."""
    clock = FakeClock()
    with Store(db_url, clock=clock) as store, TestClient(create_app(store, root=tmp_path)) as client:
        new_job(store, "made at noon")
        clock.advance(3 * 3600.0 + 7.0)
        failed = _fail_next(store, "boom")
        row = store.get_generation(failed)
        assert row is not None and row.completed_at is not None
        page = client.get("/").text
        table = page[page.index('id="failures"') :]
        assert "<th>failed</th>" in table
        assert row.completed_at.strftime("%Y-%m-%d %H:%M:%S") in table
        assert row.created_at.strftime("%Y-%m-%d %H:%M:%S") not in table


def test_a_master_reconcile_finds_lost_fails_now_and_leads_the_failures(db_url: str, tmp_path: Path) -> None:
    """reconcile's repair marks a completed generation whose file is gone failed: its ``completed_at`` is
    when it failed (now), as any failure's (docs/schema.md). It kept its completion time of months ago, so a
    master lost today was not among the newest failures."""
    from musicstore.maintenance.reconcile import reconcile

    clock = FakeClock()
    root = tmp_path / "audio"
    (root / "old").mkdir(parents=True)
    with Store(db_url, clock=clock) as store, TestClient(create_app(store, root=root)) as client:
        new_job(store)
        job = store.claim_next("gpu-0")
        assert job is not None
        (root / "old" / "a.wav").write_bytes(b"RIFF" * 10)
        store.complete_generation(job.id, file_path="old/a.wav", file_size_bytes=40)
        clock.advance(90 * 86_400.0)
        others = []
        for i in range(10):
            new_job(store, f"later {i}")
            clock.advance(1.0)
            others.append(_fail_next(store, f"error {i}"))
        clock.advance(3600.0)
        (root / "old" / "a.wav").unlink()
        report = reconcile(store, root, repair=True)
        assert report.dangling_count == 1
        lost = store.get_generation(job.id)
        assert lost is not None and lost.status.value == "failed" and lost.completed_at == clock.now
        shown = client.get("/api/overview").json()["failures"]
        assert [g["id"] for g in shown] == [job.id, *reversed(others[1:])]
