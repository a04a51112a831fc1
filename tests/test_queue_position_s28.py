"""``queue_position``'s throughput is read in bounded time (session 28, issue 15): at most
``THROUGHPUT_SAMPLE`` + 1 entries of the completed index, however many jobs completed in the window; a window
that holds no more gives the same figures as before (its completions over its length). Both backends, sync and
async. And on PostgreSQL the count of the jobs ahead reads the lane between its head and the job, not every
older row."""

from __future__ import annotations

import asyncio
import math
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from musicstore import Status, Store
from musicstore.aio import AsyncStore
from musicstore.models import prompt_digest, to_micros
from musicstore.ops import progress
from musicstore.ops.progress import QueuePosition
from musicstore.queries import load
from musicstore.urls import resolve
from tests.conftest import FakeClock, new_job

POSITION_INDEXED: dict[str, tuple[dict[str, Any], str | None]] = {
    # the newest completions of the ETA's window, at most cap: a backward walk of the completed index (0009)
    "recent_completions": (
        {"since": datetime(2020, 1, 1, tzinfo=UTC), "cap": progress.THROUGHPUT_SAMPLE + 1},
        "generations_completed_at",
    ),
}
"""The plans of this module's read queries (checked with the others' by tests/test_plans.py)."""


def _complete(store: Store, clock: FakeClock, count: int, *, every: float = 20.0) -> list[datetime]:
    """``count`` jobs created, claimed and completed, one each ``every`` seconds; their completion times."""
    for i in range(count):
        new_job(store, f"done {i}")
    times = []
    for _ in range(count):
        claimed = store.claim_next("gpu-0")
        assert claimed is not None
        times.append(clock.advance(every))
        store.complete_generation(claimed.id, file_path=f"{claimed.id}.wav", file_size_bytes=10)
    return times


def _async_positions(db_url: str, clock: FakeClock, ids: list[str], window: float) -> list[QueuePosition]:
    async def read() -> list[QueuePosition]:
        async with AsyncStore.open(db_url, clock=clock) as store:
            return [await store.queue_position(gid, window_seconds=window) for gid in ids]

    return asyncio.run(read())


def test_a_window_of_few_completions_reads_as_before(db_url: str, clock: FakeClock) -> None:
    """No more than ``THROUGHPUT_SAMPLE`` completions in the window: the rate is their count over the window
    (the figures of before), positions exact in claim order across lanes, priorities and run_after."""
    with Store(db_url, clock=clock) as store:
        _complete(store, clock, 3)
        clock.advance(10)
        waiting = [new_job(store, f"waiting {i}").id for i in range(3)]
        urgent = new_job(store, "urgent", priority=5).id
        later = new_job(store, "later", run_after=clock.now + timedelta(hours=1)).id
        other = new_job(store, "alice's", owner_key="alice").id
        ids = [*waiting, urgent, later, other]
        got = [store.queue_position(gid, window_seconds=120) for gid in ids]
        assert [p.ahead for p in got] == [1, 2, 3, 0, 4, 0]
        assert {p.completed_per_minute for p in got} == {1.5}  # 3 in 120 s
        assert [p.eta_seconds for p in got[:4]] == [math.ceil(n / (3 / 120)) for n in (2, 3, 4, 1)]
        assert got[4].eta_seconds == 3600 + 40  # its run_after, then one job's time
        assert _async_positions(db_url, clock, ids, 120) == got
        assert store.queue_position(waiting[0]).completed_per_minute == 0.3  # 3 in the default 600 s


def test_a_busy_window_reads_only_the_latest_completions(
    db_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More than ``THROUGHPUT_SAMPLE`` completions in the window: the rate is the latest ``THROUGHPUT_SAMPLE``
    over the time from the completion before them to now. Before, every completion of the window was
    counted: a service completing 10,000 jobs in 10 minutes read 10,000 index entries per position."""
    monkeypatch.setattr(progress, "THROUGHPUT_SAMPLE", 3)
    with Store(db_url, clock=clock) as store:
        done = _complete(store, clock, 5)  # 20 s apart
        clock.advance(10)
        ids = [new_job(store, f"waiting {i}").id for i in range(2)]
        rate = 3 / (clock.now - done[-4]).total_seconds()  # 3 completions in the 70 s since the 4th latest
        want = QueuePosition(
            ids[1], Status.PENDING, 1, False, round(rate * 60, 6), 120.0, math.ceil(2 / rate)
        )
        assert store.queue_position(ids[1], window_seconds=120) == want  # before: 5 in 120 s, an ETA of 48 s
        assert want.eta_seconds == 47
        assert _async_positions(db_url, clock, [ids[1]], 120) == [want]
        # exactly THROUGHPUT_SAMPLE in the window (the 4th latest left it): the window's count again
        assert store.queue_position(ids[1], window_seconds=65).completed_per_minute == round(3 / 65 * 60, 6)


def test_completions_stamped_after_the_clock_fall_back_to_the_window(
    db_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Completion times ahead of the reader's clock (another host's clock, a clock set back): the time since
    the latest completions is not positive, and the rate is what was read over the window, not a division by
    zero or a negative rate."""
    monkeypatch.setattr(progress, "THROUGHPUT_SAMPLE", 3)
    with Store(db_url, clock=clock) as store:
        done = _complete(store, clock, 5)
        job = new_job(store, "waiting").id
        clock.now = done[0] - timedelta(seconds=1)
        position = store.queue_position(job, window_seconds=60)
        assert position.completed_per_minute == 4.0  # the 4 read, over 60 s
        assert position.eta_seconds == 15
        assert _async_positions(db_url, clock, [job], 60) == [position]


def _steps(conn: sqlite3.Connection, sql: str, params: dict[str, Any]) -> int:
    """How many virtual machine instructions SQLite runs for ``sql``: its work, whatever the machine."""
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn.set_progress_handler(step, 1)
    try:
        conn.execute(sql, params).fetchall()
    finally:
        conn.set_progress_handler(None, 1)
    return steps


def test_the_throughput_read_is_a_bounded_backward_index_walk(sqlite_url: str, postgres_url: str) -> None:
    """``recent_completions`` walks the completed index alone, from its newest entry, and stops at the cap,
    with no sort: over 2,000 (SQLite) or 20,000 (PostgreSQL, run with EXPLAIN ANALYZE) completions of the
    window it reads cap entries, where ``count_completed_since`` (the read of before) reads them all."""
    import psycopg

    since, cap = datetime(2020, 1, 1, tzinfo=UTC), 11
    queries = load("sqlite", "sqlite3")
    sql = queries["recent_completions"].sql
    conn = sqlite3.connect(str(resolve(sqlite_url).path), isolation_level=None)
    try:
        plan = "\n".join(
            row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", {"since": 0, "cap": cap})
        )
        assert "SEARCH generations USING INDEX generations_completed_at (completed_at>?)" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
        conn.execute(
            "INSERT INTO prompts (text, used_count, first_used_at, last_used_at, digest)"
            " VALUES ('p', 2000, 0, 0, ?)",
            (prompt_digest("p"),),
        )
        done = int(datetime.now(UTC).timestamp() * 1e6)
        conn.executemany(
            "INSERT INTO generations (id, prompt, prompt_digest, model_name, duration_seconds, sample_rate,"
            " channels, status, created_at, completed_at, file_path, file_size_bytes)"
            " VALUES (?, 'p', ?, 'm', 10, 32000, 2, 'completed', ?, ?, ?, 100)",
            [(f"{i:036d}", prompt_digest("p"), done - i, done - i, f"{i}.wav") for i in range(2000)],
        )
        params = {"since": to_micros(since), "cap": cap}
        assert conn.execute(sql, params).fetchone()[0] == cap
        bounded = _steps(conn, sql, params)
        assert _steps(conn, sql, {**params, "cap": 2 * cap}) - bounded < 20 * cap  # a few steps per entry
        assert 10 * bounded < _steps(conn, queries["count_completed_since"].sql, {"since": params["since"]})
    finally:
        conn.close()
    sql = load("postgres", "psycopg")["recent_completions"].sql
    with psycopg.connect(postgres_url, autocommit=True) as pg:
        pg.execute("SET session_replication_role = replica")  # no triggers, as LOAD_BACKLOG
        pg.execute(
            "INSERT INTO prompts (text, used_count, first_used_at, last_used_at, digest)"
            " VALUES ('p', 20000, now(), now(), sha256(convert_to('p', 'UTF8')))"
        )
        pg.execute(
            "INSERT INTO generations (id, prompt, prompt_digest, model_name, duration_seconds, sample_rate,"
            " channels, status, created_at, completed_at, file_path, file_size_bytes)"
            " SELECT lpad(i::text, 36, '0'), 'p', sha256(convert_to('p', 'UTF8')), 'm', 10, 32000, 2,"
            " 'completed', now() - i * interval '180 ms', now() - i * interval '180 ms', i || '.wav', 100"
            " FROM generate_series(1, 20000) AS i"
        )
        pg.execute("SET session_replication_role = origin")
        pg.execute("VACUUM (ANALYZE) generations")
        found = pg.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}", {"since": since, "cap": cap}).fetchall()
        plan = "\n".join(row[0] for row in found)
        assert "Index Only Scan Backward using generations_completed_at" in plan, plan
        assert "Sort" not in plan, plan
        walked = re.search(r"Index Only Scan Backward.*rows=(\d+)", plan)
        assert walked is not None and int(walked.group(1)) == cap, plan
        assert pg.execute(sql, {"since": since, "cap": cap}).fetchone()[0] == cap  # type: ignore[index]


# 40,000 generations a second apart: the oldest 20,000 finished, the newest 20,000 pending in one lane (no
# owner key), as a store whose queue has grown; analysed, as autovacuum leaves a table in use.
LOAD_BACKLOG = (
    "SET session_replication_role = replica",  # no triggers: the totals do not matter to a plan (with them,
    # one statement's rows each updated the session's shard row: half a minute, growing as n squared)
    "INSERT INTO prompts (text, used_count, first_used_at, last_used_at, digest)"
    " VALUES ('p', 40000, now(), now(), sha256(convert_to('p', 'UTF8')))",
    "INSERT INTO generations (id, prompt, prompt_digest, model_name, duration_seconds, sample_rate, channels,"
    " status, created_at, completed_at, file_path, file_size_bytes)"
    " SELECT lpad(i::text, 36, '0'), 'p', sha256(convert_to('p', 'UTF8')), 'm', 10, 32000, 2,"
    " CASE WHEN i > 20000 THEN 'pending' ELSE 'completed' END, now() - (40000 - i) * interval '1 second',"
    " CASE WHEN i > 20000 THEN NULL ELSE now() END, i || '.wav', 100"
    " FROM generate_series(1, 40000) AS i",
    "SET session_replication_role = origin",
    "VACUUM (ANALYZE) generations",
)


def test_postgres_counts_a_jobs_lane_from_its_head_not_every_older_row(postgres_url: str) -> None:
    """On PostgreSQL, ``count_lane_before`` reads the lane between its head and the job, whatever the rows
    older than the head. Before, the planner estimated half the rows older than the job to be pending ahead of
    it (pending rows are the newest: its estimate cannot know) and walked the time index over every older row
    of any status: at the head of a 20,000-job backlog behind 20,000 finished rows it read and filtered out
    20,000 rows to count none (68 ms at 100,000 rows, docs/performance.md). Run with EXPLAIN ANALYZE."""
    import psycopg

    sql = load("postgres", "psycopg")["count_lane_before"].sql
    with psycopg.connect(postgres_url, autocommit=True) as pg:
        for statement in LOAD_BACKLOG:
            pg.execute(statement)
        pending = pg.execute(
            "SELECT id, created_at FROM generations WHERE status = 'pending' ORDER BY created_at, id"
        ).fetchall()
        for ahead in (0, 100, 5000):
            gid, created = pending[ahead]
            params = {"owner_key": "", "priority": 0, "created_at": created, "id": gid}
            params |= {"now": datetime.now(UTC), "cap": progress.MAX_AHEAD}
            assert pg.execute(sql, params).fetchone() == (ahead,)
            found = pg.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}", params).fetchall()
            plan = "\n".join(row[0] for row in found)
            read = sum(int(n) for n in re.findall(r"Scan .*on generations.* rows=(\d+) loops", plan))
            removed = sum(int(n) for n in re.findall(r"Rows Removed by \w+ ?\w*: (\d+)", plan))
            assert read <= ahead + 1 and removed <= 10, (ahead, plan)  # the head probe's row, the jobs ahead


TYPES = {"owner_key": "text", "priority": "smallint", "created_at": "timestamptz", "id": "text"}
TYPES |= {"now": "timestamptz", "cap": "bigint"}


def test_postgres_generic_plans_of_the_lane_counts_read_the_lane(postgres_url: str) -> None:
    """The plans PostgreSQL may keep for a statement psycopg prepared (its 5th run on a connection: a generic
    plan, for any parameters) read the lane, not the table: before, ``count_lane_higher``'s generic plan
    scanned the whole table (its range ``priority > $2`` taken to hold a third of the rows), as
    ``count_lane_before``'s did; PostgreSQL keeps a generic plan once the custom plans' estimates cost more
    (a lane with many jobs of higher priority)."""
    import psycopg

    queries = load("postgres", "psycopg")
    with psycopg.connect(postgres_url, autocommit=True) as pg:
        for statement in LOAD_BACKLOG:
            pg.execute(statement)
        gid, created = pg.execute(
            "SELECT id, created_at FROM generations WHERE status = 'pending' ORDER BY created_at, id LIMIT 1"
        ).fetchone()  # type: ignore[misc]
        pg.execute("SET plan_cache_mode = force_generic_plan")
        params = {"owner_key": "", "priority": 0, "created_at": created, "id": gid, "now": datetime.now(UTC)}
        for name in ("count_lane_higher", "count_lane_before"):
            order: list[str] = []

            def number(found: re.Match[str], order: list[str] = order) -> str:
                if found.group(1) not in order:
                    order.append(found.group(1))
                return f"${order.index(found.group(1)) + 1}"

            sql = re.sub(r"%\((\w+)\)s", number, queries[name].sql)
            types = ", ".join(TYPES[key] for key in order)
            pg.execute(f"PREPARE generic_{name} ({types}) AS {sql}")
            args = ", ".join(f"%({key})s::{TYPES[key]}" for key in order)
            explain = f"EXPLAIN (ANALYZE, COSTS OFF) EXECUTE generic_{name} ({args})"
            params["cap"] = progress.MAX_AHEAD
            found = psycopg.ClientCursor(pg).execute(explain, params).fetchall()
            plan = "\n".join(row[0] for row in found)
            assert "$1" in plan and "Seq Scan" not in plan, (name, plan)  # generic, and no scan of the table
            removed = sum(int(n) for n in re.findall(r"Rows Removed by \w+ ?\w*: (\d+)", plan))
            assert removed <= 10, (name, plan)
