"""PostgreSQL: the claim's lock of its session's totals shard (fd7a72f) is the function
``musicstore_lock_shard()`` (migration 0026), not locking sub-selects in the claim's statements.

The lock (the shard's ``processing`` row, then its ``pending`` row, FOR NO KEY UPDATE, before any lane's row:
``tests/test_pg_deadlock_s28.py``) was two locking sub-selects in ``claim_fast`` and ``queue_decide``: in
their plans at each run, about 20-60 µs of CPU a claim (up to ~10 %), also when the claim locked no lane
(``benchmarks.queue_claims --cpu``). The function's statements keep their plans in the session; the claims
call it once a statement (an uncorrelated sub-select), so their plans lock nothing in ``generation_totals``
themselves.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from musicstore import Store, migrate
from musicstore.queries import load
from tests.test_schema import _from, _rollback
from tests.test_upload_order_regressions import SHARDS

WHEN = datetime(2030, 1, 1, tzinfo=UTC)
DECIDE = {"now": WHEN, "default_limit": 2}
CLAIM = {**DECIDE, "worker_id": "w", "lease_expires_at": WHEN}


class _RolledBack(Exception):
    pass


def _locked(url: str, status: str, shard: int) -> bool:
    """Whether another transaction holds the totals row (status, shard) locked (a NOWAIT lock refused)."""
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            with conn.transaction():
                conn.execute(
                    "SELECT 1 FROM generation_totals WHERE status = %s AND shard = %s "
                    "FOR NO KEY UPDATE NOWAIT",
                    (status, shard),
                )
        except psycopg.errors.LockNotAvailable:
            return True
    return False


def _blocking(url: str, pid: int) -> list[int]:
    """The backends that the backend ``pid`` waits for."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_blocking_pids(%s)", (pid,)).fetchone()
    return list(row[0]) if row is not None else []


@pytest.mark.postgres
def test_the_claims_statements_lock_no_totals_row_themselves(postgres_url: str) -> None:
    """``claim_fast`` and ``queue_decide`` call ``musicstore_lock_shard()`` once (an InitPlan); their plans
    read nothing of ``generation_totals`` (before: two LockRows sub-plans over it in each)."""
    with Store(postgres_url) as store:
        store.create_generation("keyed", model_name="m", duration_seconds=1, owner_key=uuid.uuid4().hex)
    queries = load("postgres", "psycopg")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for name, params in (("claim_fast", CLAIM), ("queue_decide", DECIDE)):
            with pytest.raises(_RolledBack), conn.transaction():
                explain = f"EXPLAIN (ANALYZE, VERBOSE, COSTS OFF) {queries[name].sql}"
                rows = conn.execute(explain, params).fetchall()
                raise _RolledBack
            plan = "\n".join(row[0] for row in rows)
            assert "generation_totals" not in plan, (name, plan)
            assert plan.count("musicstore_lock_shard()") == 1, (name, plan)


@pytest.mark.postgres
def test_queue_decide_holds_the_sessions_processing_and_pending_totals(postgres_url: str) -> None:
    """After ``queue_decide`` chose a keyed lane, its transaction holds its shard's ``processing`` and
    ``pending`` totals rows (to its end), and no other: the lock ``claim_lane_head`` then relies on."""
    with Store(postgres_url) as store:
        store.create_generation("keyed", model_name="m", duration_seconds=1, owner_key=uuid.uuid4().hex)
    decide = load("postgres", "psycopg")["queue_decide"].sql
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        shard = conn.info.backend_pid % SHARDS
        other = (shard + 1) % SHARDS
        with conn.transaction():
            row = conn.execute(decide, DECIDE).fetchone()
            assert row is not None and row[2] is True, row  # a keyed lane, its claim lock taken
            assert _locked(postgres_url, "processing", shard)
            assert _locked(postgres_url, "pending", shard)
            assert not _locked(postgres_url, "completed", shard)
            assert not _locked(postgres_url, "pending", other)
        assert not _locked(postgres_url, "pending", shard)  # released at the commit


@pytest.mark.postgres
def test_the_shard_lock_takes_processing_then_pending(postgres_url: str) -> None:
    """The function locks the ``processing`` row first: while another transaction holds it, the call waits
    holding nothing (never ``pending`` while it waits for ``processing``: a requeue's trigger takes them in
    that order, old status then new), then takes both."""
    with psycopg.connect(postgres_url, autocommit=True) as caller:
        shard, pid = caller.info.backend_pid % SHARDS, caller.info.backend_pid
        done = threading.Event()

        def lock() -> None:
            with caller.transaction():
                caller.execute("SELECT musicstore_lock_shard()")
                done.wait(20)

        with psycopg.connect(postgres_url, autocommit=True) as holder:
            with holder.transaction():
                holder.execute(
                    "SELECT 1 FROM generation_totals WHERE status = 'processing' AND shard = %s "
                    "FOR NO KEY UPDATE",
                    (shard,),
                )
                thread = threading.Thread(target=lock)
                thread.start()
                deadline = time.monotonic() + 20
                while holder.info.backend_pid not in _blocking(postgres_url, pid):
                    assert time.monotonic() < deadline, "the call never waited for the processing row"
                    time.sleep(0.01)
                assert not _locked(postgres_url, "pending", shard)
            deadline = time.monotonic() + 20
            while not _locked(postgres_url, "pending", shard):
                assert time.monotonic() < deadline, "the call never took the pending row"
                time.sleep(0.01)
            assert _locked(postgres_url, "processing", shard)
            done.set()
            thread.join(20)
            assert not thread.is_alive()


def test_0026_rolls_back_and_applies_again(db_url: str) -> None:
    """Both backends: 0026 rolls back (the function dropped on PostgreSQL, nothing on SQLite) and applies
    again; a keyed claim works after it."""
    _rollback(db_url, "0026")
    assert migrate(db_url) == _from("0026")
    with Store(db_url) as store:
        job = store.create_generation("after 0026", model_name="m", duration_seconds=1, owner_key="k")
        claimed = store.claim_next("worker")
        assert claimed is not None and claimed.id == job.id
