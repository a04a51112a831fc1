"""The window's figures and the overview's failures per hour are counted in the database (``metrics_window``,
``dashboard_failed_by_hour``), not from the rows read back: the same figures as counting the rows the way it
was done before (the newest ``limit`` rows created since the window's start, by created_at then id, newest
first; truncated when more exist), on both backends, whatever the history around the window's edge."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from musicstore import Store
from musicstore.metrics import LEASE_EXPIRED, Window, read_metrics, recent_op
from musicstore.metrics.reads import metrics_edge_op
from musicstore.models import Status
from musicstore.testing import FakeClock
from musicstore.web import create_app
from musicstore.web.reads import failed_after_edge_op
from tests.conftest import new_job

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EXAMPLES = itertools.count()
WINDOW_INDEXED: dict[str, tuple[dict[str, Any], str | None]] = {
    # the overview's failures per hour: the window's newest rows on the time index, as metrics_window
    # (or only the window's failed rows on the status index, or those failed since :hour0: as bounded)
    "dashboard_failed_by_hour": (
        {"since": EPOCH, "after_id": "", "hour0": EPOCH},
        "generations_created_at|generations_status_created_at_id|generations_failed_at",
    ),
    # the window's figures: one range of the time index from the window's edge, grouped by status
    "metrics_window": (
        {"since": EPOCH, "after_id": "", "lease_expired": "lease expired"},
        "generations_created_at",
    ),
    # the window's edge (and whether it is truncated): the time index alone (index-only), then the ids of
    # the rows of the edge's one created_at
    "metrics_window_edge": ({"since": EPOCH, "offset": 99}, "generations_created_at"),
    "metrics_window_ties": ({"edge": EPOCH}, "generations_created_at"),
    "metrics_window_edge_id": ({"edge": EPOCH, "offset": 0}, "generations_created_at"),
}
"""For tests/test_plans.py (through tests/test_web_plans.py): query name -> (parameters, its index)."""
WINDOW_TIES_SORTED = {"metrics_window_edge_id"}
"""A newest-first walk of the unfiltered time index: only rows of one created_at are sorted, by id."""

MESSAGES = ["lease expired by hand", "Lease expired", "oom", "", " lease expired", "lease expiré"]
ACTIONS = ["leave", "complete", "fail", "retry", "cancel", "expire", "expire_last"]
JOBS = st.lists(
    st.tuples(
        st.sampled_from([0, 0, 0, 1, 600, 3600, 3 * 3600]),  # the gap to the next creation (0: a tie)
        st.sampled_from(ACTIONS),
        st.sampled_from(MESSAGES),
        st.sampled_from([0, 0, 0, 1, 1800, 3600, 5 * 3600]),  # how long after its creation it is acted on
    ),
    min_size=0,
    max_size=25,
)


def _history(store: Store, clock: FakeClock, jobs: list[tuple[int, str, str, int]]) -> None:
    for i, (gap, action, message, delay) in enumerate(jobs):
        new_job(store, f"song {i}")
        clock.advance(delay)
        taken = None if action == "leave" else store.claim_next("gpu-0", lease_seconds=5)
        if taken is None:  # left pending (or none was ready)
            pass
        elif action == "complete":
            store.complete_generation(taken.id, file_path=f"{taken.id}.wav", file_size_bytes=1)
        elif action in ("fail", "retry"):
            store.fail(taken.id, message, retry=action == "retry", max_attempts=2)
        elif action == "cancel":
            store.cancel(taken.id)
        else:
            clock.advance(10.0)
            store.requeue_expired(max_attempts=1 if action == "expire_last" else 3)
        clock.advance(gap)


def _old_window(rows: list[dict[str, Any]], seconds: float, limit: int) -> Window:
    """The figures as they were counted from the window's rows (``limit + 1`` of them read)."""
    window = Window(seconds, {s.value: 0 for s in Status}, truncated=len(rows) > limit)
    for row in rows[:limit]:
        window.generations[row["status"]] += 1
        window.claims += row["attempts"]
        window.retries += max(row["attempts"] - 1, 0)
        window.lease_expiries += (row["error_message"] or "").startswith(LEASE_EXPIRED)
    return window


def _old_failed(rows: list[dict[str, Any]], hour0: datetime) -> list[int]:
    """The failures per hour as the overview counted them from its snapshot's rows."""
    failed = [0] * 24
    for row in rows:
        moment = row["completed_at"]
        if row["status"] == Status.FAILED and moment is not None and moment >= hour0:
            index = int((moment - hour0).total_seconds() // 3600)
            if 0 <= index < 24:
                failed[index] += 1
    return failed


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    jobs=JOBS,
    limit=st.integers(1, 12),
    seconds=st.sampled_from([3600.0, 86_400.0]),
    after=st.sampled_from([0, 1, 1800, 3600, 6 * 3600, 20 * 3600]),
)
def test_the_counted_figures_are_those_of_the_rows(
    db_url: str, jobs: list[tuple[int, str, str, int]], limit: int, seconds: float, after: int
) -> None:
    # one database for every example: each starts 10 days after the last (its rows out of this window)
    clock = FakeClock(datetime(2026, 1, 1, 12, 0, tzinfo=UTC) + timedelta(days=10 * next(EXAMPLES)))
    with Store(db_url, clock=clock) as store:
        for left in store.get_pending_generations(1000):  # an earlier example's: claims would take them
            store.cancel(left.id)
        _history(store, clock, jobs)
        clock.advance(after)  # the window's start falls among the rows, or before them all
        now = clock.now
        since = now - timedelta(seconds=seconds)
        with store.transaction(write=False) as tx:
            rows = tx.run(recent_op, since, limit + 1)
            day = tx.run(recent_op, now - timedelta(days=1), limit)
            hour0 = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
            _, edge = tx.run(metrics_edge_op, window=86_400, window_limit=limit)
            failed = tx.run(failed_after_edge_op, edge, hour0)
        lean = read_metrics(store, window=seconds, window_limit=limit, rows=False)
        whole = read_metrics(store, window=seconds, window_limit=limit)
    expected = _old_window(rows, seconds, limit)
    expected.completions = lean.window.completions
    assert lean.window == expected == whole.window
    assert lean.recent == [] and len(whole.recent) == min(limit, len(rows))
    assert failed == _old_failed(day, hour0)


def test_the_overview_counts_its_failures_and_window_in_the_database(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/api/overview's window and failures per hour, with the day's row limit made 6 (of 14 rows created
    over the day, failing in different hours): those of the newest 6 rows, as counted from them before."""
    from musicstore.web import dashboard

    clock = FakeClock(datetime(2026, 3, 1, 0, 30, tzinfo=UTC))
    jobs = [(3600, "fail" if i % 3 else "retry", MESSAGES[i % 6], 1800 * (i % 2)) for i in range(14)]
    with Store(db_url, clock=clock) as store:
        _history(store, clock, jobs)
        now = clock.now
        with store.transaction(write=False) as tx:
            rows = tx.run(recent_op, now - timedelta(days=1), 7)
        monkeypatch.setattr(dashboard, "OVERVIEW_ROWS", 6)
        with TestClient(create_app(store, root=tmp_path)) as client:
            api = client.get("/api/overview").json()
            page = client.get("/").text
    hour0 = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    failed = dict(api["charts"]["hours"]["series"])["failed"]
    assert failed == _old_failed(rows[:6], hour0) and sum(failed) > 0
    expected = _old_window(rows, 86_400.0, 6)
    window = api["window"]
    assert window["truncated"] is True and window["generations"] == expected.generations
    assert (window["claims"], window["retries"]) == (expected.claims, expected.retries)
    assert window["lease_expiries"] == expected.lease_expiries
    assert "the newest 6 read" in page
