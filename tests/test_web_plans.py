"""The dashboard's and the metrics' queries (sql/common/dashboard.sql, sql/*/metrics.sql) for the plan checks
of tests/test_plans.py, which adds them to its own table: each is served by an index in its order on both
backends, or reads only the running totals. Checked here too: their SQLite plans name the index."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

from musicstore.queries import load
from musicstore.urls import resolve
from tests.test_window_s29 import WINDOW_INDEXED, WINDOW_TIES_SORTED

WHEN = datetime.max.replace(tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ID = "01a20180-5e48-7dc6-afbf-cdf54fb09fcb"
EITHER_TIME_INDEX = "generations_status_created_at_id|generations_created_at"
_PAGE = {"after": EPOCH, "before_created_at": WHEN, "before_id": ID, "limit": 50}

DASHBOARD_INDEXED: dict[str, tuple[dict[str, Any], str | None]] = {
    "metrics_model_totals": ({}, "model totals"),
    # the queue's head: on PostgreSQL its partial index of pending rows (migration 0005)
    "metrics_oldest_pending": ({}, "generations_pending|generations_status_created_at_id"),
    # the longest ready wait: a bounded walk of the queue's head in creation order, on the same index
    "metrics_longest_ready": (
        {"now": EPOCH, "limit": 100},
        "generations_pending|generations_status_created_at_id",
    ),
    # the claims in flight: on PostgreSQL the lane index of processing rows (migration 0008)
    "metrics_processing": ({"limit": 100}, "generations_lane_running|generations_status_created_at_id"),
    # the queue by priority class: its lane index, which holds the priority (migration 0008)
    "metrics_pending_by_priority": (
        {"limit": 100},
        "generations_lane_queue|generations_pending|generations_status_created_at_id",
    ),
    "dashboard_days": ({"since": "2026-01-01"}, "day totals"),
    "dashboard_recent_prompts": ({"since": EPOCH, "limit": 100}, "generations_created_at"),
    # the overview's completions per hour: the partial index of completed rows (migration 0009)
    "dashboard_completions_by_hour": ({"since": EPOCH}, "generations_completed_at"),
    "dashboard_created_by_hour": ({"since": EPOCH}, "generations_created_at"),
    "metrics_recent": ({"since": EPOCH, "limit": 100}, "generations_created_at"),
    "dashboard_recent_failures": ({"limit": 10}, "generations_failed_at"),
    "metrics_window": (
        {"since": EPOCH, "lease_expired": "lease expired", "limit": 100},
        "generations_created_at",
    ),
    # a status most rows have may walk the time index instead, newest first, skipping the others
    "metrics_recent_completed": ({"limit": 100}, EITHER_TIME_INDEX),
    "dashboard_page": (_PAGE, "generations_created_at"),
    "dashboard_page_by_status": ({**_PAGE, "status": "completed"}, EITHER_TIME_INDEX),
    # the time index filtered by model, or (0027) that model's rows in the page's order: the planner's pick
    "dashboard_page_by_model": (
        {**_PAGE, "model_name": "m1"},
        "generations_created_at|generations_model_created_at_id",
    ),
    "dashboard_page_by_status_and_model": (  # either filter's index (0027), in the page's order
        {**_PAGE, "status": "failed", "model_name": "m1"},
        "generations_status_created_at_id|generations_model_created_at_id",
    ),
    "dashboard_scan_end": (
        {"after": EPOCH, "before_created_at": WHEN, "before_id": ID, "offset": 4999},
        "generations_created_at",
    ),
    "dashboard_search": (
        {
            "pattern": "%lofi%",
            "glob": "*[lL][oO][fF][iI]*",
            "regex": "[lL][oO][fF][iI]",
            "status": None,
            "model_name": None,
            "low_created_at": EPOCH,
            "low_id": "",
            "before_created_at": WHEN,
            "before_id": ID,
            "limit": 50,
        },
        "generations_created_at",
    ),
}
"""Query name -> (parameters, the index that serves it), in the form of tests/test_plans.py's INDEXED."""
DASHBOARD_INDEXED |= WINDOW_INDEXED  # the window's edge, its failures per hour (tests/test_window_s29.py)

DASHBOARD_TIES_SORTED = {
    "dashboard_page",
    "dashboard_page_by_model",
    "dashboard_recent_prompts",
    "dashboard_scan_end",
    "metrics_recent",
    "metrics_window",
    "dashboard_search",
}
"""Newest-first walks of the unfiltered time index: only rows that share one created_at are sorted, by id."""
DASHBOARD_TIES_SORTED |= WINDOW_TIES_SORTED

SQLITE_NAMES = {"model totals": "generation_model_totals", "day totals": "generation_day_totals"}


def test_every_dashboard_query_is_listed() -> None:
    for dialect, driver in (("sqlite", "sqlite3"), ("postgres", "psycopg")):
        names = {n for n in load(dialect, driver) if n.startswith(("metrics_", "dashboard_"))}
        assert names == set(DASHBOARD_INDEXED), dialect


def test_sqlite_plans_name_their_index(sqlite_url: str) -> None:
    queries = load("sqlite", "sqlite3")
    conn = sqlite3.connect(str(resolve(sqlite_url).path))
    try:
        for name, (params, index) in DASHBOARD_INDEXED.items():
            bound = {k: int(v.timestamp() * 1e6) if isinstance(v, datetime) else v for k, v in params.items()}
            plan = "\n".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {queries[name].sql}", bound))
            assert "USE TEMP B-TREE FOR ORDER BY" not in plan, (name, plan)
            if name not in DASHBOARD_TIES_SORTED:
                assert "TEMP B-TREE" not in plan, (name, plan)
            assert index is not None
            assert any(SQLITE_NAMES.get(i, i) in plan for i in index.split("|")), (name, plan)
    finally:
        conn.close()
