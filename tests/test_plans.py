"""Every read query in sql/ is served by an index, in its order, on both backends: no sort, no table scan.

The plans are asked of the databases themselves, for the very SQL text the library loads
(``musicstore.queries.load``), with EXPLAIN built here. No query scans: counts by model and storage figures by
model and by day read the running totals by (model, status) and by day that triggers keep (migration 0005),
in their primary key's order, and never touch ``generations`` or ``prompts``.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from typing import Any

import pytest

from musicstore.models import prompt_digest
from musicstore.queries import load
from musicstore.urls import resolve
from tests.test_progress import PROGRESS_INDEXED
from tests.test_queue_order import QUEUE_INDEXED, QUEUE_OTHER
from tests.test_queue_position_s28 import POSITION_INDEXED
from tests.test_web_plans import DASHBOARD_INDEXED, DASHBOARD_TIES_SORTED

WHEN = datetime.max.replace(tzinfo=UTC)  # first pages: the cursor starts after every row
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ID = "01a20180-5e48-7dc6-afbf-cdf54fb09fcb"

# A status list of a status most rows have may walk the time index instead, newest first, skipping the others.
EITHER_TIME_INDEX = "generations_status_created_at_id|generations_created_at"
# query name -> (parameters, the index that must serve it; None: reads only the few rows of the totals tables;
# "model totals" / "day totals": reads only the totals by (model, status) / by day, by their primary key)
INDEXED: dict[str, tuple[dict[str, Any], str | None]] = {
    "most_used_prompts": ({"limit": 10}, "prompts_used_count_id"),
    "get_prompt_by_text": ({"digest": prompt_digest("p"), "text": "p"}, "digest"),
    "prompts_after": ({"after_id": 0, "limit": 10}, "prompts pk"),
    "totals": ({}, None),
    "get_generation": ({"id": ID}, "generations pk"),
    "get_storage": ({"id": ID}, "generations pk"),  # where the file lives (migration 0006)
    "storage_between": ({"first_id": ID, "last_id": ID}, "generations pk"),
    "get_generation_for_update": ({"id": ID}, "generations pk"),
    "maintenance_generation_for_update": ({"id": ID}, "generations pk"),
    "generations_after": ({"after_id": ID, "limit": 10}, "generations pk"),
    # the queue: on PostgreSQL its own partial index of pending rows (migration 0005), SQLite has none
    "list_pending": ({"limit": 50}, "generations_pending|generations_status_created_at_id"),
    "list_generations": (
        {"before_created_at": WHEN, "before_id": ID, "limit": 50, "offset": 0},
        "generations_created_at",
    ),
    "list_generations_by_status": (
        {"status": "completed", "before_created_at": WHEN, "before_id": ID, "limit": 50, "offset": 0},
        EITHER_TIME_INDEX,
    ),
    "list_generations_by_model": (  # the time index filtered, or (0027) the model's rows: the planner's pick
        {"model_name": "m1", "before_created_at": WHEN, "before_id": ID, "limit": 50, "offset": 0},
        "generations_created_at|generations_model_created_at_id",
    ),
    "list_generations_by_status_and_model": (
        {
            "status": "failed",
            "model_name": "m1",
            "before_created_at": WHEN,
            "before_id": ID,
            "limit": 50,
            "offset": 0,
        },
        "generations_status_created_at_id|generations_model_created_at_id",  # either filter's (0027)
    ),
    "count_by_model": ({"model_name": "m1"}, "model totals"),
    "count_by_status_and_model": ({"status": "failed", "model_name": "m1"}, "model totals"),
    "maintenance_storage_by_status": ({}, None),
    "maintenance_storage_by_model": ({}, "model totals"),
    "maintenance_storage_by_day": ({}, "day totals"),
    "maintenance_storage_span": ({}, "generations_created_at"),
    "maintenance_completed_files_after": ({"after_id": ID, "limit": 100}, "generations pk"),
    "maintenance_cleanup_candidates": (
        {
            "status_1": "completed",
            "status_2": "failed",
            "status_3": None,
            "status_4": None,
            "model_name": None,
            "before": WHEN,
            "after_created_at": EPOCH,
            "after_id": "",
            "limit": 100,
        },
        "generations_created_at",
    ),
    "maintenance_generations_by_ids": ({"ids": f'["{ID}"]'}, "generations pk"),
    "maintenance_generations_by_file_paths": ({"paths": '["a.wav"]'}, "generations_file_path"),
    # renditions (0007): by id, by generation through UNIQUE (generation_id, format, settings), by file
    "get_rendition": ({"id": ID}, "renditions pk"),
    "get_rendition_by_settings": ({"generation_id": ID, "format": "mp3", "settings": "{}"}, "rendition key"),
    "list_renditions": ({"generation_id": ID}, "rendition key"),
    "maintenance_renditions_by_storage_keys": ({"paths": '["a.mp3"]'}, "rendition file"),
    "get_rendition_by_storage_key": ({"storage_key": "a.mp3"}, "rendition file"),
    "maintenance_renditions_of_generations": ({"ids": f'["{ID}"]'}, "rendition key"),
    "maintenance_renditions_after": ({"after_id": ID, "limit": 100}, "renditions pk"),
    "renditions_after": ({"after_id": ID, "limit": 100}, "renditions pk"),
    # copy_store's look-ups of what the target holds (tests/test_records_fixes_s25.py)
    "transfer_idempotency_keys_held": ({"keys": '["click"]'}, "generations_idempotency_key"),
    "transfer_renditions_held": ({"keys": '["a.mp3"]', "ids": f'["{ID}"]'}, "rendition file|rendition key"),
    # and of each lane's last service, in key order
    "lanes_served_after": (
        {"after_key": "", "never": EPOCH, "limit": 100},
        "owner_lanes_pkey|owner_lanes|sqlite_autoindex_owner_lanes_1",
    ),
    "rendition_totals": ({}, None),  # 0011's running totals: never the renditions themselves
    # object stores (musicstore.maintenance.bucket): rows of one storage URL in key order, and by keys
    "maintenance_stored_files_after": (
        {"storage_url": "s3://b/p/", "after_path": "", "limit": 100},
        "generations_file_path",
    ),
    "maintenance_stored_files_at": (
        {"storage_url": "s3://b/p/", "file_path": "a.wav"},
        "generations_file_path",
    ),
    "maintenance_stored_renditions_after": (
        {"storage_url": "s3://b/p/", "after_key": "", "limit": 100},
        "rendition file",
    ),
    "maintenance_local_renditions_after": ({"after_id": ID, "limit": 100}, "renditions pk"),
    "maintenance_files_to_copy": (
        {"target_url": "s3://b/p/", "after_id": ID, "limit": 100},
        "generations pk",
    ),
    "maintenance_stored_generations_by_keys": (
        {"storage_url": "s3://b/p/", "keys": '["a.wav"]'},
        "generations_file_path",
    ),
    "maintenance_stored_renditions_by_keys": (
        {"storage_url": "s3://b/p/", "keys": '["a.mp3"]'},
        "rendition file",
    ),
}
# Newest-first lists over the unfiltered time index sort only the rows that share one created_at, by id.
TIES_SORTED = {"list_generations", "list_generations_by_model", "maintenance_cleanup_candidates"}
INDEXED |= DASHBOARD_INDEXED  # the dashboard's and the metrics' reads (tests/test_web_plans.py)
TIES_SORTED |= DASHBOARD_TIES_SORTED
INDEXED |= PROGRESS_INDEXED  # queue position and throughput (tests/test_progress.py)
INDEXED |= POSITION_INDEXED  # the position's bounded throughput (tests/test_queue_position_s28.py)
# Queries that read nothing but running totals: their plans name no index or table of generations or prompts.
TOTALS_ONLY = {name for name, (_, index) in INDEXED.items() if index in {None, "model totals", "day totals"}}
READS_ROWS = re.compile(r"\b(?:on|SCAN|SEARCH)\s+(?:generations|prompts)\b")
OTHER = {"applied_migrations", "migration_lock_holder"}  # yoyo's own small tables
OTHER |= {"maintenance_idle_lanes"}  # cleanup's count of idle lanes: the whole (one row a key) lanes table
# a connection's settings and the server's clock, no table read (sql/postgres/session.sql, meta.sql); the
# catalogs migrate reads before it writes (sql/postgres/meta.sql, sql/sqlite/meta.sql)
SETTINGS: dict[str, set[str]] = {
    "postgres": {"set_lock_timeout", "lift_statement_timeouts", "server_clock", "migration_schemas"},
    "sqlite": {"table_names"},
}
# the poller's (SQLite only): its plan in tests/test_sqlite_poller_s25.py
SETTINGS["sqlite"] |= {"unfinished_among"}
INDEXED |= QUEUE_INDEXED  # idempotency keys and owner limits (tests/test_queue_order.py)
OTHER |= QUEUE_OTHER  # the lane ranking and the queue's depth: checked at a million rows there
INDEX_NAMES = {
    "sqlite": {
        "prompts pk": "INTEGER PRIMARY KEY",
        "generations pk": "sqlite_autoindex_generations_1",
        "digest": "sqlite_autoindex_prompts_1",
        # WITHOUT ROWID: the table is its primary key ("SEARCH … USING PRIMARY KEY", or a SCAN in its order)
        "model totals": "generation_model_totals",
        "day totals": "generation_day_totals",
        "renditions pk": "sqlite_autoindex_renditions_1",
        "rendition file": "sqlite_autoindex_renditions_2",
        "rendition key": "sqlite_autoindex_renditions_3",
    },
    "postgres": {
        "prompts pk": "prompts_pkey",
        "generations pk": "generations_pkey",
        "digest": "prompts_digest_key",
        "model totals": "generation_model_totals_pkey",
        "day totals": "generation_day_totals_pkey",
        "renditions pk": "renditions_pkey",
        "rendition file": "renditions_storage_key_key",
        "rendition key": "renditions_generation_id_format_settings_key",
    },
}


def _sqlite_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: int(v.timestamp() * 1_000_000) if isinstance(v, datetime) else v for k, v in params.items()}


def _is_write(sql: str) -> bool:
    """A statement that writes: INSERT/UPDATE/DELETE, or a WITH whose CTE does (PostgreSQL's claim_fast)."""
    return _WRITES.search(sql) is not None


_WRITES = re.compile(
    r"^\s*(INSERT|UPDATE|DELETE)\b|\b(INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b", re.I
)


@pytest.mark.parametrize("dialect,driver", [("sqlite", "sqlite3"), ("postgres", "psycopg")])
def test_every_read_query_is_classified(dialect: str, driver: str) -> None:
    """A new read query must be added above (and its plan checked) or named as a scan."""
    reads = {name for name, query in load(dialect, driver).items() if not _is_write(query.sql)}
    assert reads == set(INDEXED) | OTHER | SETTINGS[dialect]


def test_sqlite_plans_are_index_ordered(sqlite_url: str) -> None:
    queries = load("sqlite", "sqlite3")
    conn = sqlite3.connect(str(resolve(sqlite_url).path))
    try:
        for name, (params, index) in INDEXED.items():
            rows = conn.execute(f"EXPLAIN QUERY PLAN {queries[name].sql}", _sqlite_params(params)).fetchall()
            plan = "\n".join(row[3] for row in rows)
            assert "USE TEMP B-TREE FOR ORDER BY" not in plan, (name, plan)
            if name not in TIES_SORTED:
                assert "TEMP B-TREE" not in plan, (name, plan)
            # "SCAN t USING INDEX" walks an index in order (up to the LIMIT); a bare "SCAN t" reads the table
            assert not re.search(r"\bSCAN (generations|prompts|renditions)\b(?! USING)", plan), (name, plan)
            if index is not None:
                assert any(INDEX_NAMES["sqlite"].get(i, i) in plan for i in index.split("|")), (name, plan)
            if name in TOTALS_ONLY:
                assert not READS_ROWS.search(plan), (name, plan)
    finally:
        conn.close()


def in_chunks(statement: str, rows: int, size: int = 250) -> tuple[str, ...]:
    """``statement`` over ``generate_series(1, rows)`` as statements of ``size`` rows each (autocommit: a
    transaction each). Each row inserted updates the session's totals shard row (its trigger): within one
    transaction that row's versions pile up, and the inserts cost as n squared (20,000 in one: 7-13 s)."""
    whole = f"generate_series(1, {rows})"
    assert whole in statement
    return tuple(
        statement.replace(whole, f"generate_series({first}, {min(first + size - 1, rows)})")
        for first in range(1, rows + 1, size)
    )


# 20,000 prompts and generations (the newest 1 % pending, 10 % failed, the rest completed; three models; one a
# second), so that the planner's estimates are those of a store in use: on empty tables it sorts "the one row"
# it expects rather than walk an index.
LOAD_POSTGRES = (
    "INSERT INTO prompts (text, used_count, first_used_at, last_used_at, digest)"
    " SELECT 'p' || i, i % 50, now(), now(), sha256(convert_to('p' || i, 'UTF8'))"
    " FROM generate_series(1, 20000) AS i",
    *in_chunks(
        "INSERT INTO generations (id, prompt, prompt_digest, model_name, duration_seconds, sample_rate,"
        " channels, status, created_at, file_path, file_size_bytes)"
        " SELECT lpad(i::text, 36, '0'), 'p' || i, sha256(convert_to('p' || i, 'UTF8')), 'm' || (i % 3),"
        " 10, 32000, 2, CASE WHEN i <= 200 THEN 'pending' WHEN i % 10 = 1 THEN 'failed' ELSE 'completed' END,"
        " now() - i * interval '1 second', i || '.wav', 100"
        " FROM generate_series(1, 20000) AS i",
        20000,
    ),
    "ANALYZE",
)


def test_postgres_plans_are_index_ordered(postgres_url: str) -> None:
    import psycopg

    queries = load("postgres", "psycopg")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for statement in LOAD_POSTGRES:
            conn.execute(statement)
        # Forbid sequential and bitmap scans, then see what remains: an index path, or a scan that must be.
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_bitmapscan = off")
        for name, (params, index) in INDEXED.items():
            rows = conn.execute(f"EXPLAIN {queries[name].sql}", params).fetchall()
            plan = "\n".join(row[0] for row in rows)
            # An index walk in created_at order may sort the rows of one microsecond by id (Incremental
            # Sort, presorted by created_at); any other sort would sort a whole table or a whole tie group.
            sorts = re.findall(r"(?:^|->  )((?:Incremental )?Sort)  \(", plan, re.MULTILINE)
            assert set(sorts) <= {"Incremental Sort"}, (name, plan)
            presorted = re.findall(r"Presorted Key: (.*)", plan)
            assert len(presorted) == len(sorts) and set(presorted) <= {"created_at"}, (name, plan)
            assert not re.search(r"Seq Scan on (generations|prompts|renditions)\b", plan), (name, plan)
            if index is not None:
                assert any(INDEX_NAMES["postgres"].get(i, i) in plan for i in index.split("|")), (name, plan)
            if name in TOTALS_ONLY:
                assert not READS_ROWS.search(plan), (name, plan)


# 20,000 generations, the newest 10 % pending (a queue that has grown), the rest completed.
LOAD_QUEUE = (
    "INSERT INTO prompts (text, used_count, first_used_at, last_used_at, digest)"
    " VALUES ('p', 20000, now(), now(), sha256(convert_to('p', 'UTF8')))",
    *in_chunks(
        "INSERT INTO generations (id, prompt, prompt_digest, model_name, duration_seconds, sample_rate,"
        " channels, status, created_at, file_path, file_size_bytes)"
        " SELECT lpad(i::text, 36, '0'), 'p', sha256(convert_to('p', 'UTF8')), 'm', 10, 32000, 2,"
        " CASE WHEN i <= 2000 THEN 'pending' ELSE 'completed' END,"
        " now() - i * interval '1 second', i || '.wav', 100"
        " FROM generate_series(1, 20000) AS i",
        20000,
    ),
    "ANALYZE",
)
QUEUE: dict[str, dict[str, Any]] = {
    "list_pending": {"limit": 50},
    # the claim of a lane's head (migration 0008): the lane of jobs without an owner key, here every job
    "claim_lane_head": {
        "worker_id": "w",
        "now": WHEN,
        "lease_expires_at": WHEN,
        "owner_key": "",
        "max_running": None,
    },
}
# no key pending: the head of the lane without one (claim_fast, 0012)
QUEUE["claim_fast"] = {"worker_id": "w", "now": WHEN, "lease_expires_at": WHEN, "default_limit": 2}
QUEUE_INDEX = {"list_pending": "generations_pending", "claim_lane_head": "generations_lane_queue"}
QUEUE_INDEX["claim_fast"] = "generations_lane_queue"


def test_postgres_queue_reads_only_pending_rows_when_many_are_not(postgres_url: str) -> None:
    """With 10 % of rows pending, the queue's reads and claims walk the pending index and filter out no row.

    With the (status, created_at, id) index alone, the planner walked the time index instead and filtered out
    every row older than the queue's head (18,000 here) on each list and batch claim. Actually run (EXPLAIN
    ANALYZE, rolled back), default planner settings.
    """
    import psycopg

    queries = load("postgres", "psycopg")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for statement in LOAD_QUEUE:
            conn.execute(statement)
        for name, params in QUEUE.items():
            with pytest.raises(_RolledBack), conn.transaction():
                rows = conn.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {queries[name].sql}", params).fetchall()
                raise _RolledBack
            plan = "\n".join(row[0] for row in rows)
            assert QUEUE_INDEX[name] in plan, (name, plan)
            # no job is sorted; the owner keys' lanes may be (0012: a few rows, before the table is analysed)
            jobs_sorted = plan.count("Sort (") - len(re.findall(r"Sort Key: l(_\d+)?\.head_priority", plan))
            assert "Rows Removed by Filter" not in plan and jobs_sorted == 0, (name, plan)


class _RolledBack(Exception):
    """Leaves a transaction by rolling it back."""


# 100,000 generations of a common model, 50 of a rare one (its newest 2,000 s old): a model filter that walked
# the time index read about every row for one page.
LOAD_RARE_MODEL = (
    "SET session_replication_role = replica",  # no triggers: the totals do not matter to a plan (with them,
    # one statement's 100,000 rows each updated the session's one shard row: minutes, growing as n squared)
    "INSERT INTO prompts (text, used_count, first_used_at, last_used_at, digest)"
    " VALUES ('p', 100000, now(), now(), sha256(convert_to('p', 'UTF8')))",
    "INSERT INTO generations (id, prompt, prompt_digest, model_name, duration_seconds, sample_rate, channels,"
    " status, created_at, file_path, file_size_bytes)"
    " SELECT lpad(i::text, 36, '0'), 'p', sha256(convert_to('p', 'UTF8')),"
    " CASE WHEN i % 2000 = 0 THEN 'rare' ELSE 'common' END, 10, 32000, 2, 'completed',"
    " now() - i * interval '1 second', i || '.wav', 100"
    " FROM generate_series(1, 100000) AS i",
    "SET session_replication_role = origin",
    "ANALYZE",
)
MODEL_PAGES = ("dashboard_page_by_model", "list_generations_by_model")


def test_a_rare_models_page_reads_only_its_rows(db_url: str) -> None:
    """The dashboard's model filter (``dashboard_page_by_model``) and ``list_generations(model_name=...)``
    walked ``generations_created_at`` newest first and filtered out every row of another model: here all
    100,000 rows for a page of the rare model's 50 (at a million rows, a scan). Migration 0027's
    ``generations_model_created_at_id`` serves them: that model's rows only, in the page's order. PostgreSQL:
    run (EXPLAIN ANALYZE, rolled back) with default planner settings; SQLite: its plan."""
    queries = load(
        "postgres" if db_url.startswith("postgres") else "sqlite",
        "psycopg" if db_url.startswith("postgres") else "sqlite3",
    )
    params: dict[str, dict[str, Any]] = {
        name: dict(INDEXED[name][0], model_name="rare") for name in MODEL_PAGES
    }
    if not db_url.startswith("postgres"):
        conn = sqlite3.connect(str(resolve(db_url).path))
        try:
            for name in MODEL_PAGES:
                sql = f"EXPLAIN QUERY PLAN {queries[name].sql}"
                plan = " ".join(row[3] for row in conn.execute(sql, _sqlite_params(params[name])))
                assert "USING INDEX generations_model_created_at_id (model_name=?" in plan, (name, plan)
                assert "TEMP B-TREE" not in plan, (name, plan)
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as pg:
        for statement in LOAD_RARE_MODEL:
            pg.execute(statement)
        for name in MODEL_PAGES:
            with pytest.raises(_RolledBack), pg.transaction():
                rows = pg.execute(
                    f"EXPLAIN (ANALYZE, COSTS OFF) {queries[name].sql}", params[name]
                ).fetchall()
                raise _RolledBack
            plan = "\n".join(row[0] for row in rows)
            assert "generations_model_created_at_id" in plan, (name, plan)
            assert "Rows Removed by Filter" not in plan and "Sort (" not in plan, (name, plan)
