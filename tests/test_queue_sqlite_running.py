"""SQLite's count of processing jobs after migration 0013: a keyed lane's from its ``owner_lanes`` row, the
jobs without a key from the partial index ``generations_unkeyed_running``, which replaced the full index
``generations_lane_running`` (every job's status and key) that each claim of a keyed job had to keep."""

from __future__ import annotations

import shutil
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore import Store, migrate
from musicstore.errors import InvalidTransition
from musicstore.models import to_micros
from musicstore.queries import load
from musicstore.testing import FakeClock
from musicstore.urls import resolve
from tests.test_schema import _from, _rollback

QUERIES = load("sqlite", "sqlite3")
KEYS = ["a", "b", None]
UNKEYED_INDEXED = (
    "SELECT count(*) FROM generations INDEXED BY generations_unkeyed_running"
    " WHERE status = 'processing' AND owner_key IS NULL"
)
RUNNING_RECOUNT = (
    "SELECT coalesce(owner_key, ''), count(*) FROM generations NOT INDEXED"
    " WHERE status = 'processing' GROUP BY coalesce(owner_key, '')"
)


def _indexes(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'generations'")
    return {name for (name,) in rows}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("running") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


# One operation on the queue: (what, owner key or job number, priority).
OPS = st.lists(
    st.tuples(
        st.sampled_from(["create", "claim", "complete", "retry", "cancel", "delete", "expire"]),
        st.integers(0, 20),
        st.integers(0, 2),
    ),
    max_size=40,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=OPS)
def test_running_counts_match_the_rows_after_any_operations(
    template: Path, tmp_path: Path, ops: list[tuple[str, int, int]]
) -> None:
    """After any sequence of creates, claims, completions, retries, cancels, deletes and expired leases, the
    processing jobs the claim counts (queue_heads' running per lane, the unkeyed index's entries) and
    queue_depth's running are those of a recount of the rows."""
    path = tmp_path / f"q{abs(hash(tuple(ops)))}.db"
    shutil.copyfile(template, path)
    url = f"sqlite:///{path}"
    clock = FakeClock()
    made: list[str] = []
    with Store(url, clock=clock) as store:
        for what, n, priority in ops:
            if what == "create":
                key = KEYS[n % len(KEYS)]
                job = store.create_generation(
                    f"p{len(made)}", model_name="m", duration_seconds=1, owner_key=key, priority=priority
                )
                made.append(job.id)
            elif what == "claim":
                store.claim_next(f"w{n}", lease_seconds=10, owner_limit=None if priority else 2)
            elif what == "expire":
                clock.advance(11)
                store.requeue_expired()
            elif made:
                job_id = made[n % len(made)]
                row = store.get_generation(job_id)
                if row is None:
                    continue
                if what == "delete" and row.status.value == "processing":
                    with pytest.raises(InvalidTransition):  # a running job is cancelled first, not deleted
                        store.delete_generation(job_id)
                elif what == "delete":
                    store.delete_generation(job_id)
                elif what == "cancel" and row.status.value in ("pending", "processing"):
                    store.cancel(job_id)
                elif row.status.value == "processing" and row.worker_id is not None:
                    if what == "complete":
                        store.complete_generation(
                            job_id, file_path=f"{job_id}.wav", file_size_bytes=1, worker_id=row.worker_id
                        )
                    elif what == "retry":
                        store.fail(job_id, "again", retry=True, max_attempts=5)
            clock.advance(1)
            _check(store, path, clock)


def _check(store: Store, path: Path, clock: FakeClock) -> None:
    with sqlite3.connect(path) as conn:
        recount = dict(conn.execute(RUNNING_RECOUNT).fetchall())
        assert conn.execute(UNKEYED_INDEXED).fetchone()[0] == recount.get("", 0)
        now = to_micros(clock.now)
        heads = conn.execute(
            QUERIES["queue_heads"].sql, {"now": now, "default_limit": None, "limit": 100}
        ).fetchall()
    for owner_key, _max_running, running, _id, _priority in heads:
        assert running == recount.get(owner_key, 0), (owner_key, running, recount)
    depth = store.queue_depth()
    assert Counter({key or "": n for key, n in depth.running.items()}) == Counter(recount)


def test_0013_swaps_the_running_index_and_rolls_back(sqlite_url: str) -> None:
    """0013 drops the full generations_lane_running for a partial index of the unkeyed processing jobs, with
    the existing rows' entries; rolled back, the full index is back; applied again, the claim still counts
    what the rows say."""
    path = str(resolve(sqlite_url).path)
    with Store(sqlite_url) as store:
        for i in range(9):
            store.create_generation(f"p{i}", model_name="m", duration_seconds=1, owner_key=KEYS[i % 3])
        for i in range(5):
            assert store.claim_next(f"w{i}") is not None
    with sqlite3.connect(path) as conn:
        assert "generations_unkeyed_running" in _indexes(conn)
        assert "generations_lane_running" not in _indexes(conn)
        unkeyed = conn.execute(UNKEYED_INDEXED).fetchone()[0]
        assert unkeyed == dict(conn.execute(RUNNING_RECOUNT).fetchall())[""] > 0
    _rollback(sqlite_url, "0013")
    with sqlite3.connect(path) as conn:
        assert "generations_lane_running" in _indexes(conn)
        assert "generations_unkeyed_running" not in _indexes(conn)
        conn.execute(  # a job without a key claimed while 0013 is not applied: its index must see it
            "UPDATE generations SET status = 'processing', worker_id = 'x', lease_expires_at = 0"
            " WHERE id = (SELECT id FROM generations WHERE owner_key IS NULL AND status = 'pending' LIMIT 1)"
        )
    assert migrate(sqlite_url) == _from("0013")
    with sqlite3.connect(path) as conn:
        assert conn.execute(UNKEYED_INDEXED).fetchone()[0] == unkeyed + 1
    with Store(sqlite_url) as store:  # fair: the 5 claims took 2, 2 and 1 of the lanes' jobs, then 1 more
        assert store.queue_depth().running == {None: unkeyed + 1, "a": 2, "b": 2} == {None: 2, "a": 2, "b": 2}
        claimed = store.claim_next("w", owner_limit=2)  # a and b at their limit: the unkeyed lane's job
        assert claimed is not None and claimed.owner_key is None


def _plan(sql: str, params: dict[str, Any], conn: sqlite3.Connection) -> str:
    return "\n".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


def test_claim_counts_read_the_lanes_and_the_unkeyed_index(sqlite_url: str) -> None:
    """The claim's counts of processing jobs are index probes: a keyed lane's owner_lanes row by key, the
    unkeyed jobs' partial index; the lanes are found in generations_lane_queue (not the status index, which
    would sort the pending jobs at each step of the loose scan)."""
    params = {"now": 0, "default_limit": 2, "limit": 8, "worker_id": "w", "lease_expires_at": 0}
    with sqlite3.connect(str(resolve(sqlite_url).path)) as conn:
        for name in ("queue_heads", "claim_fast", "queue_decide"):
            plan = _plan(QUERIES[name].sql, params, conn)
            assert "SEARCH p USING INDEX generations_unkeyed_running (status=?)" in plan, (name, plan)
            assert "generations_status_created_at_id" not in plan, (name, plan)
            if name != "queue_decide":
                assert "SEARCH r USING PRIMARY KEY (owner_key=?)" in plan, (name, plan)
                assert plan.count("TEMP B-TREE") == 1, (name, plan)  # the heads' sort, one row per lane
