"""The queue's order (priority, then creation time, then id), run_after, owner keys' limits and fairness,
idempotency keys, retries with backoff, dead letters and replay: on both backends, sync and async.

The plans of the queue's queries are checked here too (and registered with tests/test_plans.py): the lane
probes walk ``generations_lane_queue`` in claim order, with no sort of jobs, at a million rows.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from musicstore import Status, Store
from musicstore.aio import AsyncStore
from musicstore.errors import IdempotencyConflict, InvalidInput, InvalidTransition, NotFound
from musicstore.models import Generation, RetryPolicy
from musicstore.queries import load
from musicstore.testing import FakeClock
from musicstore.urls import resolve

WHEN = datetime(2030, 1, 1, tzinfo=UTC)
ID = "01a20180-5e48-7dc6-afbf-cdf54fb09fcb"

# Read queries of the queue and where their plans are checked: registered with tests/test_plans.py (index
# strings as there: a name in the plan, "|" for either). queue_heads sorts the heads of the lanes, one row per
# owner key with pending jobs, never the jobs; queue_depth and queue_running (the CLI's `queue`) group the
# pending and the processing entries by key and priority, and PostgreSQL may sort the groups: their plans
# are checked at a million rows below (test_*_queue_plans_at_a_million_rows).
QUEUE_INDEXED: dict[str, tuple[dict[str, Any], str | None]] = {
    "get_by_idempotency_key": ({"idempotency_key": "k"}, "generations_idempotency_key"),
    "owner_limits_after": ({"after_key": "", "limit": 100}, "owner_limits_pkey|owner_limits"),
    "owner_limit": ({"owner_key": "k"}, "owner_limits_pkey|owner_limits"),  # queue_position: a paused key?
}
QUEUE_OTHER = {"queue_heads", "queue_depth", "queue_running"}
QUEUE_OTHER |= {"queue_decide"}  # the claim's fast path: the first lane of owner_lanes_order (0012)
# Locks, no table read: PostgreSQL's advisory locks of a lane and of an idempotency key (SQLite: nothing).
QUEUE_OTHER |= {"lock_lane", "try_lock_lane", "lock_idempotency_key"}


def _make(store: Store, prompt: str, **options: Any) -> Generation:
    return store.create_generation(prompt, model_name="m", duration_seconds=1, **options)


def _drain(store: Store, **options: Any) -> list[Generation]:
    taken = []
    while (job := store.claim_next("w", **options)) is not None:
        taken.append(job)
    return taken


# -- ordering ------------------------------------------------------------------------------------------------


def test_priority_then_age_then_id(db_url: str) -> None:
    clock = FakeClock()
    with Store(db_url, clock=clock) as store:
        low = _make(store, "low", priority=-5)
        old = _make(store, "old")
        clock.advance(1)
        high = _make(store, "high", priority=7)
        clock.advance(1)
        young = _make(store, "young")
        higher = _make(store, "higher", priority=32_767)
        assert [g.id for g in _drain(store)] == [higher.id, high.id, old.id, young.id, low.id]


def test_run_after_waits_and_then_goes_in_order(db_url: str) -> None:
    clock = FakeClock()
    with Store(db_url, clock=clock) as store:
        later = _make(store, "later", run_after=clock.now + timedelta(seconds=60), priority=9)
        now = _make(store, "now")
        assert [g.id for g in _drain(store)] == [now.id]
        clock.advance(60)
        claimed = store.claim_next("w")
        assert claimed is not None and claimed.id == later.id and claimed.run_after is not None


def test_claim_batch_takes_the_order_of_single_claims(db_url: str) -> None:
    clock = FakeClock()
    with Store(db_url, clock=clock) as store:
        for i in range(6):
            _make(store, f"a{i}", owner_key="a")
            clock.advance(0.001)
        b = _make(store, "b", owner_key="b")
        batch = store.claim_batch("w", 4, owner_limit=2)
        assert [g.owner_key for g in batch] == ["a", "b", "a"]  # then a is at its limit
        assert batch[1].id == b.id


@pytest.mark.parametrize(
    "options",
    [
        {"priority": 32_768},
        {"priority": -32_769},
        {"priority": 1.5},
        {"priority": True},
        {"owner_key": ""},
        {"owner_key": "x" * 201},
        {"owner_key": 5},
        {"idempotency_key": ""},
        {"idempotency_key": "k" * 201},
        {"run_after": datetime(2030, 1, 1)},  # naive
        {"run_after": "tomorrow"},
    ],
)
def test_bad_queue_arguments_are_typed_errors_and_write_nothing(sqlite_url: str, options: Any) -> None:
    with Store(sqlite_url) as store:
        with pytest.raises(InvalidInput):
            _make(store, "p", **options)
        assert store.count_generations() == 0
        with pytest.raises(InvalidInput):
            store.claim_next("w", owner_limit=-1)
        with pytest.raises(InvalidInput):
            store.set_owner_limit("", 3)
        with pytest.raises(InvalidInput):
            store.set_owner_limit("k", -1)


# -- owner keys: limits and fairness ---------------------------------------------------------------------


def test_a_key_with_a_backlog_does_not_starve_a_key_with_one_job(db_url: str) -> None:
    clock = FakeClock()
    with Store(db_url, clock=clock) as store, store.transaction():
        for i in range(300):
            _make(store, f"hog {i}", owner_key="hog")
        clock.advance(1)
        lone = _make(store, "lone", owner_key="lone")
    with Store(db_url, clock=clock) as store:
        first = store.claim_next("w1")
        second = store.claim_next("w2")
        assert first is not None and first.owner_key == "hog"  # the oldest head, both keys idle
        assert second is not None and second.id == lone.id  # hog has one running, lone none


def test_limits_per_key_and_default(db_url: str) -> None:
    with Store(db_url) as store:
        for i in range(5):
            _make(store, f"a{i}", owner_key="a")
            _make(store, f"b{i}", owner_key="b")
            _make(store, f"n{i}")
        store.set_owner_limit("b", 1)
        taken = _drain(store, owner_limit=2)
        assert Counter(g.owner_key for g in taken) == {"a": 2, "b": 1, None: 5}  # no key: never limited
        assert store.get_owner_limits() == {"b": 1}
        depth = store.queue_depth()
        assert depth.running == {"a": 2, "b": 1, None: 5} and depth.pending == 7
        done = next(g for g in taken if g.owner_key == "b")
        store.complete_generation(done.id, file_path="b.wav", file_size_bytes=1)
        again = store.claim_next("w", owner_limit=2)
        assert again is not None and again.owner_key == "b"
        store.set_owner_limit("a", 0)  # paused
        store.set_owner_limit("b", None)  # back to the default
        assert store.get_owner_limits() == {"a": 0}
        assert {g.owner_key for g in _drain(store, owner_limit=3)} == {"b"}


class _Counted(dict[str, Any]):
    """A store's named queries, recording the name of each one run (the drivers look each up by name)."""

    def __init__(self, queries: dict[str, Any]) -> None:
        super().__init__(queries)
        self.run: list[str] = []

    def __getitem__(self, name: str) -> Any:
        self.run.append(name)
        return super().__getitem__(name)


def _statements(store: Store, claim: Any) -> tuple[Any, list[str]]:
    """What ``claim()`` returns, and the named queries it ran (BEGIN and COMMIT are not named queries)."""
    counted = _Counted(store._queries)
    store._queries = counted
    try:
        return claim(), counted.run
    finally:
        store._queries = dict(counted)


def test_an_idle_claim_is_one_statement(db_url: str) -> None:
    """Nothing ready (an empty queue, keys at their limits, jobs waiting for their run_after): claim_next
    returns None after one statement, claim_fast (before: claim_fast, then queue_decide to learn it)."""
    clock = FakeClock()
    with Store(db_url, clock=clock) as store:
        assert _statements(store, lambda: store.claim_next("w")) == (None, ["claim_fast"])
        _make(store, "a1", owner_key="a")
        _make(store, "a2", owner_key="a")
        _make(store, "later", run_after=clock.now + timedelta(seconds=30))
        assert store.claim_next("w", owner_limit=1) is not None
        claim = lambda: store.claim_next("w", owner_limit=1)  # noqa: E731
        assert _statements(store, claim) == (None, ["claim_fast"])  # a at its limit, the rest not yet due
        claim_batch = lambda: store.claim_batch("w", 5, owner_limit=1)  # noqa: E731
        assert _statements(store, claim_batch) == ([], ["claim_fast"])
        clock.advance(31)
        job, run = _statements(store, claim)
        assert job is not None and job.prompt == "later" and run == ["claim_fast"]


def test_a_lane_whose_head_waits_is_ranked_in_the_claim(db_url: str) -> None:
    """A key's first job waits for its run_after and its second is ready: the second is claimed in its turn
    (on SQLite within claim_fast's one statement; PostgreSQL goes on to rank the lanes)."""
    clock = FakeClock()
    with Store(db_url, clock=clock) as store:
        waiting = _make(store, "a waits", owner_key="a", priority=1, run_after=clock.now + timedelta(hours=1))
        clock.advance(1)
        ready = _make(store, "a ready", owner_key="a", priority=1)
        clock.advance(1)
        older = _make(store, "b", owner_key="b")
        job, run = _statements(store, lambda: store.claim_next("w"))
        assert job is not None and job.id == ready.id  # priority 1 first, though its lane's head waits
        if db_url.startswith("sqlite"):
            assert run == ["claim_fast"]
        job = store.claim_next("w")
        assert job is not None and job.id == older.id
        assert store.claim_next("w") is None
        clock.advance(3600)
        job = store.claim_next("w")
        assert job is not None and job.id == waiting.id


# -- idempotency ---------------------------------------------------------------------------------------------


def test_same_idempotency_key_returns_the_first_generation(db_url: str) -> None:
    with Store(db_url) as store:
        first = _make(store, "song", idempotency_key="req-1", owner_key="u", priority=2)
        again = _make(store, "song", idempotency_key="req-1", owner_key="u", priority=2)
        assert again.id == first.id and again.idempotency_key == "req-1"
        assert store.count_generations() == 1
        assert store.get_prompt_by_text("song").used_count == 1  # type: ignore[union-attr]
        with pytest.raises(IdempotencyConflict) as raised:
            _make(store, "another song", idempotency_key="req-1", owner_key="u", priority=2)
        assert raised.value.existing_id == first.id and "prompt" in str(raised.value)
        with pytest.raises(IdempotencyConflict):
            _make(store, "song", idempotency_key="req-1", owner_key="v", priority=2)
        assert store.count_generations() == 1
        store.cancel(first.id)
        store.delete_generation(first.id)
        assert _make(store, "another song", idempotency_key="req-1").id != first.id  # the key is free


def _create_with_key(url: str, key: str, rounds: int) -> list[str]:
    ids = []
    with Store(url, busy_timeout=30) as store:
        for i in range(rounds):
            ids.append(_make(store, f"double click {i}", idempotency_key=f"{key}-{i}").id)
    return ids


@pytest.mark.slow
def test_idempotency_key_is_race_safe_across_processes(db_url: str) -> None:
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        results = pool.starmap(_create_with_key, [(db_url, "click", 25)] * 6)
    for i in range(25):
        assert len({ids[i] for ids in results}) == 1, "two generations for one key"
    with Store(db_url) as store:
        assert store.count_generations() == 25
        assert all(store.get_prompt_by_text(f"double click {i}").used_count == 1 for i in range(25))  # type: ignore[union-attr]


# -- retries, dead letters, replay -----------------------------------------------------------------------


def test_retry_backoff_grows_and_is_jittered_within_its_bounds(db_url: str) -> None:
    clock = FakeClock()
    policy = RetryPolicy(base_seconds=10, cap_seconds=25, jitter=0.5)
    with Store(db_url, clock=clock) as store:
        job = _make(store, "flaky")
        for attempt, (low, high) in enumerate([(5, 10), (10, 20), (12.5, 25)], start=1):
            claimed = store.claim_next("w")
            assert claimed is not None and claimed.attempts == attempt
            status = store.fail(job.id, "boom", max_attempts=5, backoff=policy)
            assert status is Status.PENDING
            row = store.get_generation(job.id)
            assert row is not None and row.run_after is not None
            delay = (row.run_after - clock.now).total_seconds()
            assert low <= delay <= high, (attempt, delay)
            assert policy.delay_range(attempt) == (low, high)
            assert store.claim_next("w") is None  # not before its backoff
            clock.advance(delay)


@given(
    attempts=st.integers(1, 200),
    base=st.floats(0, 30 * 86_400.0),
    cap=st.floats(0, 30 * 86_400.0),
    jitter=st.floats(0, 1),
)
def test_delay_range_is_the_documented_bounds(attempts: int, base: float, cap: float, jitter: float) -> None:
    policy = RetryPolicy(base_seconds=base, cap_seconds=cap, jitter=jitter)
    delay = min(cap, base * 2 ** min(attempts - 1, 40))
    assert policy.delay_range(attempts) == (delay * (1 - jitter), delay)
    assert policy.delay_range(np.int64(attempts)) == policy.delay_range(attempts)  # type: ignore[arg-type]


@pytest.mark.parametrize("attempts", [0, -5, True, 1.5, 2.0, "2", None])
def test_delay_range_takes_an_attempt_count_from_1(attempts: Any) -> None:
    """As every public callable: a typed error, not a bare TypeError nor a quiet answer for attempt 1."""
    with pytest.raises(InvalidInput, match="attempts must be an integer from 1"):
        RetryPolicy().delay_range(attempts)


def test_requeue_expired_backs_off_and_default_is_at_once(db_url: str) -> None:
    clock = FakeClock()
    with Store(db_url, clock=clock) as store:
        a, b = _make(store, "a"), _make(store, "b")
        store.claim_next("w", lease_seconds=1)
        store.claim_next("w", lease_seconds=1)
        clock.advance(2)
        store.requeue_expired(backoff=RetryPolicy(base_seconds=30, jitter=0))
        assert store.claim_next("w") is None
        clock.advance(30)
        claimed = store.claim_next("w", lease_seconds=1)
        assert claimed is not None and claimed.id == a.id
        clock.advance(2)
        store.requeue_expired()
        again = store.claim_next("w")  # no backoff given: at once
        assert again is not None and {again.id} <= {a.id, b.id}


def test_dead_letters_are_listed_and_replayed(db_url: str) -> None:
    clock = FakeClock()
    with Store(db_url, clock=clock) as store:
        jobs = []
        for i in range(5):
            jobs.append(_make(store, f"doomed {i}"))
            clock.advance(1)
        _make(store, "fine")
        for _ in jobs:
            claimed = store.claim_next("w")
            assert claimed is not None
            assert store.fail(claimed.id, "broken", max_attempts=1) is Status.FAILED
        first = store.list_dead_letters(limit=3)
        rest = store.list_dead_letters(limit=3, cursor=first.next_cursor)
        assert [g.id for g in first.items + rest.items] == [j.id for j in reversed(jobs)]
        assert rest.next_cursor is None
        replayed = store.replay(jobs[0].id)
        assert replayed.status is Status.PENDING and replayed.attempts == 0 and replayed.worker_id is None
        with pytest.raises(InvalidTransition):
            store.replay(jobs[0].id)  # pending now, not a dead letter
        with pytest.raises(NotFound):
            store.replay(ID)
        assert store.replay_all() == sorted(j.id for j in jobs[1:])
        assert store.list_dead_letters().items == []
        assert store.get_database_stats().by_status[Status.PENDING] == 6


def test_async_store_has_the_same_queue(db_url: str) -> None:
    async def run() -> None:
        async with AsyncStore(db_url) as store:
            job = await store.create_generation("a", model_name="m", duration_seconds=1, owner_key="k")
            same = await store.create_generation(
                "a", model_name="m", duration_seconds=1, owner_key="k", idempotency_key="x"
            )
            await store.set_owner_limit("k", 1)
            claimed = await store.claim_next("w")
            assert claimed is not None and claimed.id == job.id
            assert await store.claim_next("w") is None  # k is at its limit
            await store.fail(job.id, "no", retry=False)
            assert [g.id for g in (await store.list_dead_letters()).items] == [job.id]
            assert await store.replay_all() == [job.id]
            depth = await store.queue_depth()
            assert depth.pending == 2 and same.idempotency_key == "x"

    asyncio.run(run())


# -- migration 0012: the lanes' counts and heads -----------------------------------------------------------


def test_0012_takes_the_lanes_from_existing_rows_and_rolls_back(db_url: str) -> None:
    """Applied to a database with rows (and rows changed while no trigger ran), 0012 takes each key's
    running count and head from them; rolled back, its table and triggers are gone."""
    from musicstore import migrate
    from tests.test_queue_fairness import lanes_and_recount
    from tests.test_schema import _from, _rollback, _sql, _tables

    clock = FakeClock()
    with Store(db_url, clock=clock) as store:
        made = []
        for i in range(12):
            key = ["a", "b", None][i % 3]
            made.append(_make(store, f"p{i}", owner_key=key, priority=i % 2))
            clock.advance(1)
        for _ in range(4):
            assert store.claim_next("w") is not None
        store.cancel(made[10].id)
    kept, recount = lanes_and_recount(db_url)
    assert kept == recount and len(kept) == 2

    _rollback(db_url, "0012")
    assert "owner_lanes" not in _tables(db_url)
    # changed while no trigger keeps the lanes: the migration must see it
    _sql(db_url, f"UPDATE generations SET status = 'processing', worker_id = 'x' WHERE id = '{made[7].id}'")
    _sql(db_url, f"DELETE FROM generations WHERE id = '{made[4].id}'")
    assert migrate(db_url) == _from("0012")
    kept, recount = lanes_and_recount(db_url)
    assert kept == recount and len(kept) == 2
    with Store(db_url, clock=clock) as store:
        pending = store.queue_depth().pending
        assert pending >= 5 and len(_drain(store)) == pending
    kept, recount = lanes_and_recount(db_url)
    assert kept == recount


# -- plans ---------------------------------------------------------------------------------------------------


def _sqlite_plan(conn: sqlite3.Connection, sql: str, params: dict[str, Any]) -> str:
    rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return "\n".join(row[3] for row in rows)


MILLION_SQLITE = (
    "INSERT INTO prompts (text, used_count, first_used_at, last_used_at, digest)"
    " VALUES ('p', 1, 0, 0, :digest)",
    # a million generations: 10 % pending over 1,000 owner keys and 5 priorities, the rest completed
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)"
    " INSERT INTO generations (id, prompt, prompt_digest, model_name, duration_seconds, sample_rate,"
    " channels, status, created_at, file_path, file_size_bytes, priority, owner_key)"
    " SELECT printf('%036d', i), 'p', :digest, 'm', 1, 32000, 2,"
    " CASE WHEN i % 10 = 0 THEN 'pending' ELSE 'completed' END, i, i || '.wav', 1, (i / 10) % 5,"
    " 'k' || ((i / 10) % 1000)"
    " FROM n",
    "ANALYZE",
)


@pytest.mark.slow
def test_sqlite_queue_plans_at_a_million_rows(sqlite_url: str) -> None:
    from musicstore.models import prompt_digest

    queries = load("sqlite", "sqlite3")
    conn = sqlite3.connect(str(resolve(sqlite_url).path), isolation_level=None)
    try:
        for statement in MILLION_SQLITE:
            conn.execute(statement, {"digest": prompt_digest("p")} if ":digest" in statement else {})
        now = int(WHEN.timestamp() * 1_000_000)
        head = _sqlite_plan(
            conn,
            queries["claim_lane_head"].sql,
            {"worker_id": "w", "now": now, "lease_expires_at": now, "owner_key": "k7", "max_running": 2},
        )
        assert "generations_lane_queue" in head and "TEMP B-TREE" not in head, head
        heads = _sqlite_plan(conn, queries["queue_heads"].sql, {"now": now, "default_limit": 2, "limit": 8})
        # running jobs: a keyed lane's owner_lanes row, those without a key generations_unkeyed_running (0013)
        assert "generations_lane_queue" in heads and "generations_unkeyed_running" in heads, heads
        assert "SEARCH r USING PRIMARY KEY" in heads, heads
        assert not re.search(r"\bSCAN (g|p|s|generations)\b(?! USING)", heads), heads
        # one sort: the heads' (one row per lane), after the lanes are read; jobs are read in index order
        assert heads.count("TEMP B-TREE") == 1 and "USE TEMP B-TREE FOR ORDER BY" in heads, heads
        rows = conn.execute(
            queries["queue_heads"].sql, {"now": now, "default_limit": 2, "limit": 8}
        ).fetchall()
        assert len(rows) == 8 and {row[4] for row in rows} == {4}  # the highest priority first
        depth = _sqlite_plan(conn, queries["queue_depth"].sql, {"now": now})
        assert "generations_lane_queue" in depth and "TEMP B-TREE" not in depth, depth
        # the claim's fast path (0012): the first lane of owner_lanes_order with room, against the first ready
        # job without a key; nothing is sorted
        decide = {"now": now, "default_limit": 2}
        for name in ("queue_decide", "claim_fast"):
            params = {**decide, "worker_id": "w", "lease_expires_at": now} if name == "claim_fast" else decide
            plan = _sqlite_plan(conn, queries[name].sql, params)
            assert re.search(r"SCAN l USING (COVERING )?INDEX owner_lanes_order", plan), plan
            assert "generations_lane_queue" in plan, plan
            assert not re.search(r"\bSCAN (g|p|h|o|s|head|generations)\b(?! USING)", plan), plan
            if name == "queue_decide":
                assert "TEMP B-TREE" not in plan, plan  # nothing sorted: the two heads are compared
            else:  # the same, and the branch run only when the best lane's head waits (queue_heads) sorts
                # the lanes' heads, one row per lane
                assert plan.count("TEMP B-TREE") == 1 and "USE TEMP B-TREE FOR ORDER BY" in plan, plan
                assert not re.search(r"MATERIALIZE (keyed|unkeyed|decided)", plan), plan
        assert conn.execute(queries["queue_decide"].sql, decide).fetchone() == (rows[0][0], 2, 1)
    finally:
        conn.close()


MILLION_POSTGRES = (
    "SET session_replication_role = replica",  # no triggers: the totals do not matter to a plan
    "INSERT INTO prompts (text, used_count, first_used_at, last_used_at, digest)"
    " VALUES ('p', 1, now(), now(), sha256(convert_to('p', 'UTF8')))",
    "INSERT INTO generations (id, prompt, prompt_digest, model_name, duration_seconds, sample_rate, channels,"
    " status, created_at, file_path, file_size_bytes, priority, owner_key)"
    " SELECT lpad(i::text, 36, '0'), 'p', sha256(convert_to('p', 'UTF8')), 'm', 1, 32000, 2,"
    " CASE WHEN i % 10 = 0 THEN 'pending' ELSE 'completed' END, now() - i * interval '1 millisecond',"
    " i || '.wav', 1, (i / 10) % 5, 'k' || ((i / 10) % 1000)"
    " FROM generate_series(1, 1000000) AS i",
    "SET session_replication_role = origin",
    # the lanes' counts and heads, as migration 0012 takes them from existing rows (no trigger ran above)
    "INSERT INTO owner_lanes (owner_key, running) SELECT owner_key, 0 FROM generations"
    " WHERE status = 'pending' GROUP BY owner_key",
    "UPDATE owner_lanes AS l SET (head_priority, head_created_at, head_id) = (SELECT g.priority,"
    " g.created_at, g.id FROM generations AS g"
    " WHERE coalesce(g.owner_key, '') = l.owner_key AND g.status = 'pending'"
    " ORDER BY g.priority DESC, g.created_at, g.id LIMIT 1)",
    "ANALYZE",
)


@pytest.mark.slow
def test_postgres_queue_plans_at_a_million_rows(postgres_url: str) -> None:
    """Actually run (EXPLAIN ANALYZE, rolled back), default planner settings: the lane head is the first
    entry of its lane in generations_lane_queue, no job is sorted or filtered out; queue_heads sorts only
    the heads, one per lane."""
    import psycopg

    queries = load("postgres", "psycopg")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for statement in MILLION_POSTGRES:
            conn.execute(statement)
        claim = {"worker_id": "w", "now": WHEN, "lease_expires_at": WHEN, "owner_key": "k7", "max_running": 2}
        for name, params in (
            ("claim_lane_head", claim),
            ("queue_heads", {"now": WHEN, "default_limit": 2, "limit": 8}),
            ("queue_depth", {"now": WHEN}),
            ("queue_running", {}),
        ):
            with pytest.raises(_RolledBack), conn.transaction():
                rows = conn.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {queries[name].sql}", params).fetchall()
                raise _RolledBack
            plan = "\n".join(row[0] for row in rows)
            # queue_depth reads the pending entries of either lane index (both lead with the pending rows'
            # owner key under status = 'pending'); the others need their own
            expected = {"queue_running": ("running",), "queue_depth": ("queue", "running")}.get(
                name, ("queue",)
            )
            assert any(f"generations_lane_{index}" in plan for index in expected), (name, plan)
            assert "Seq Scan on generations" not in plan, (name, plan)
            sorts = re.findall(r"Sort Key: (.*)", plan)
            if name == "queue_heads":  # the heads of 1,000 lanes, not 100,000 pending jobs
                assert len(sorts) == 1 and "priority" in sorts[0], plan
                below = re.search(
                    r"Sort \(actual .*\n.*\n.*\n\s*->  \w[\w ]* \(actual time=\S+ rows=(\d+)", plan
                )
                assert below is not None and int(below.group(1)) <= 1000, plan
            elif name == "queue_depth":  # at most the 1,000 groups (key, priority) are sorted, not the jobs
                out = re.search(r"Sort \(actual time=\S+ rows=(\d+)", plan)
                assert out is None or int(out.group(1)) <= 1000, plan
            else:
                assert not sorts and "Rows Removed by Filter" not in plan, (name, plan)
        # the claim's fast path (0012): the first lane of owner_lanes_order with room, against the first ready
        # job without a key; nothing is sorted
        decide = {"now": WHEN, "default_limit": 2}
        claim = {**decide, "worker_id": "w", "lease_expires_at": WHEN}
        for name in ("queue_decide", "claim_fast"):
            params = claim if name == "claim_fast" else decide
            with pytest.raises(_RolledBack), conn.transaction():
                rows = conn.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {queries[name].sql}", params).fetchall()
                raise _RolledBack
            plan = "\n".join(row[0] for row in rows)
            assert "Seq Scan on generations" not in plan, (name, plan)
            assert "owner_lanes_order" in plan and "Seq Scan on owner_lanes" not in plan, plan
            assert "generations_lane_queue" in plan and "Sort" not in plan, plan
        best = conn.execute(queries["queue_heads"].sql, {"now": WHEN, "default_limit": 2, "limit": 1})
        lane = best.fetchall()[0][0]  # queue_heads' best: no key runs, so the oldest head of priority 4
        with conn.transaction():  # the lane's claim lock is taken with it, held to the end
            assert conn.execute(queries["queue_decide"].sql, decide).fetchall() == [(lane, 2, True)]


class _RolledBack(Exception):
    """Leaves a transaction by rolling it back."""
