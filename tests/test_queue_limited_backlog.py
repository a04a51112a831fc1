"""A key at its limit with a long backlog does not make the claim dearer (PostgreSQL): the claim steps over
one ``owner_lanes_order`` entry for that lane, not over its pending jobs. The property the lanes were kept for
(``benchmarks/queue_tag_order.py``: an order fixed at enqueue steps over every such job whose tag the other
keys passed). Counted in buffers read by ``claim_fast``'s plan, not in time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from musicstore import Status, Store
from musicstore.queries import load


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


def test_a_limited_keys_backlog_is_not_walked_by_the_claim(postgres_url: str) -> None:
    with Store(postgres_url) as store:

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
        short = _claim_buffers(postgres_url)
        enqueue("heavy", 3_000)  # the limited lane's backlog a hundred times longer
        long = _claim_buffers(postgres_url)
        taken = store.claim_next("gpu-1")
        assert taken is not None and taken.owner_key != "heavy"
        assert store.count_generations(status=Status.PROCESSING) == 2
    # a few more index levels at most; stepping over the backlog would read thousands of buffers
    assert long <= short + 20, (short, long)
