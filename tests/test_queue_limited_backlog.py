"""A key at its limit with a long backlog does not make the claim dearer: the claim steps over one
``owner_lanes_order`` entry for that lane, not over its pending jobs, on both backends. The property the
lanes were kept for (``benchmarks/queue_tag_order.py``: an order fixed at enqueue steps over every such job
whose tag the other keys passed). Counted in work, not time: the buffers ``claim_fast``'s plan reads on
PostgreSQL, the virtual machine steps it takes on SQLite."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from musicstore import Status, Store
from musicstore.models import to_micros
from musicstore.queries import load
from musicstore.urls import resolve


class _RolledBack(Exception):
    pass


def _claim_buffers(url: str) -> int:
    """Shared buffers ``claim_fast`` reads (hit or read) to claim a job, its claim rolled back."""
    import psycopg

    now = datetime.now(UTC)
    later = now + timedelta(minutes=5)
    params = {"worker_id": "w", "now": now, "lease_expires_at": later, "default_limit": 8}
    explain = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + load("postgres", "psycopg")["claim_fast"].sql
    with psycopg.connect(url, autocommit=True) as conn, pytest.raises(_RolledBack), conn.transaction():
        rows = conn.execute(explain, params).fetchall()
        raise _RolledBack
    plan = "\n".join(row[0] for row in rows)
    first = re.search(r"Buffers: shared( hit=(\d+))?( read=(\d+))?", plan)
    assert first is not None, plan
    return int(first.group(2) or 0) + int(first.group(4) or 0)


def _claim_steps(path: str) -> int:
    """SQLite virtual machine steps (in hundreds, ``set_progress_handler``) ``claim_fast`` takes to claim a
    job, its claim rolled back."""
    import sqlite3

    now = datetime.now(UTC)
    later = now + timedelta(minutes=5)
    params = {
        "worker_id": "w",
        "now": to_micros(now),
        "lease_expires_at": to_micros(later),
        "default_limit": 8,
    }
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0  # go on

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.set_progress_handler(count, 100)
        row = conn.execute(load("sqlite", "sqlite3")["claim_fast"].sql, params).fetchone()
        conn.set_progress_handler(None, 100)
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    assert row is not None
    return steps


def _work_before_and_after(store: Store, work: Callable[[], int]) -> tuple[int, int]:
    """``work()`` of a claim with a key at its limit 1 and 29 jobs waiting (20 other keys, 5 jobs each), then
    with 3,029 waiting; checks that the claim after takes another key's job."""

    def enqueue(key: str, count: int) -> None:
        with store.transaction():
            for i in range(count):
                store.create_generation(f"{key} {i}", model_name="m", duration_seconds=1, owner_key=key)

    enqueue("heavy", 30)
    for k in range(20):
        enqueue(f"user-{k}", 5)
    store.set_owner_limit("heavy", 1)
    first = store.claim_next("gpu-0")  # the oldest lane: heavy is now at its limit
    assert first is not None and first.owner_key == "heavy"
    short = work()
    enqueue("heavy", 3_000)  # the limited lane's backlog a hundred times longer
    long = work()
    taken = store.claim_next("gpu-1")
    assert taken is not None and taken.owner_key != "heavy"
    assert store.count_generations(status=Status.PROCESSING) == 2
    return short, long


def test_a_limited_keys_backlog_is_not_walked_by_the_claim(postgres_url: str) -> None:
    with Store(postgres_url) as store:
        short, long = _work_before_and_after(store, lambda: _claim_buffers(postgres_url))
    # a few more index levels at most; stepping over the backlog would read thousands of buffers
    assert long <= short + 20, (short, long)  # 94 and 89 here


def test_a_limited_keys_backlog_is_not_walked_by_the_claim_on_sqlite(sqlite_url: str) -> None:
    path = str(resolve(sqlite_url).path)
    with Store(sqlite_url) as store:
        short, long = _work_before_and_after(store, lambda: _claim_steps(path))
    assert long <= short + 5, (short, long)  # 9 and 9 here; a walk of 3,000 of its rows takes 180
