"""Migrations (``yoyo apply`` and ``migrate()``), WAL, constraints in SQL, indexes, and the built wheel."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from musicstore import Store, migrate
from musicstore.migrate import shipped_migrations
from musicstore.models import prompt_digest
from musicstore.urls import resolve

ROOT = Path(__file__).resolve().parent.parent
YOYO = Path(sys.executable).parent / "yoyo"


def _journal_mode(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


def test_yoyo_apply_alone_migrates_to_wal_with_the_shipped_ini(tmp_path: Path) -> None:
    """``yoyo apply`` from the repository root, as an operator runs it, on the default URL."""
    work = tmp_path / "checkout"
    work.mkdir()
    (work / "yoyo.ini").write_text((ROOT / "yoyo.ini").read_text())
    (work / "migrations").symlink_to(ROOT / "migrations")
    assert (ROOT / "data" / ".gitkeep").exists()  # a clone has an empty data/ for the default database
    (work / "data").mkdir()
    result = subprocess.run([str(YOYO), "apply"], cwd=work, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    database = work / "data" / "generations.db"
    assert _journal_mode(database) == "wal"
    with Store(f"sqlite:///{database}") as store:
        assert store.count_generations() == 0


def test_yoyo_apply_takes_the_url_from_the_environment(tmp_path: Path) -> None:
    database = tmp_path / "elsewhere.db"
    env = {**os.environ, "MUSICSTORE_DATABASE_URL": f"sqlite:///{database}"}
    result = subprocess.run(
        [str(YOYO), "apply", "--database", env["MUSICSTORE_DATABASE_URL"]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert _journal_mode(database) == "wal"


def test_migrate_is_idempotent_and_sets_wal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'dir' / 'x.db'}"
    assert migrate(url) == shipped_migrations()
    assert migrate(url) == []
    assert _journal_mode(tmp_path / "sub" / "dir" / "x.db") == "wal"


def _tables(db_url: str) -> set[str]:
    if db_url.startswith("sqlite"):
        with sqlite3.connect(str(resolve(db_url).path)) as conn:
            return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    import psycopg

    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def test_rollback_removes_the_schema_and_it_applies_again(db_url: str) -> None:
    from yoyo import get_backend, read_migrations

    backend = get_backend(resolve(db_url).yoyo_url)
    migrations = read_migrations(str(ROOT / "migrations"))
    with backend.lock():
        backend.rollback_migrations(backend.to_rollback(migrations))
    assert not _tables(db_url) & {"generations", "prompts", "generation_totals", "prompt_totals"}
    assert migrate(db_url) == shipped_migrations()
    with Store(db_url) as store:
        store.create_generation("after a full rollback", model_name="m", duration_seconds=1)
        assert store.count_generations() == 1


def _raw(db_url: str) -> sqlite3.Connection:
    conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(
        "INSERT INTO prompts (text, used_count, first_used_at, last_used_at, digest)"
        " VALUES ('p', 1, 0, 0, ?)",
        (prompt_digest("p"),),
    )
    return conn


GOOD_ROW = {
    "id": "01a20180-5e48-7dc6-afbf-cdf54fb09fcb",
    "prompt": "p",
    "model_name": "m",
    "duration_seconds": 30.0,
    "sample_rate": 32000,
    "channels": 2,
    "status": "pending",
    "created_at": 0,
    "metadata": "{}",
    "prompt_digest": prompt_digest("p"),
}


@pytest.mark.parametrize(
    "change",
    [
        {"status": "done"},
        {"sample_rate": 0},
        {"sample_rate": -1},
        {"duration_seconds": 0.0},
        {"duration_seconds": -3.0},
        {"channels": 0},
        {"channels": 9},
        {"metadata": "[1, 2]"},
        {"metadata": "not json"},
        {"prompt": "not a known prompt"},
        {"prompt_digest": prompt_digest("not a known prompt")},
        {"prompt": "not a known prompt", "prompt_digest": prompt_digest("not a known prompt")},
        {"prompt_digest": b"short"},
        {"id": "short"},
        {"status": "processing"},
        {"status": "completed"},
        {"sample_rate": "fast"},
    ],
)
def test_schema_constraints_hold_without_python(sqlite_url: str, change: dict[str, object]) -> None:
    conn = _raw(sqlite_url)
    row = {**GOOD_ROW, **change}
    columns = ", ".join(row)
    marks = ", ".join(f":{k}" for k in row)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(f"INSERT INTO generations ({columns}) VALUES ({marks})", row)
    conn.execute(f"INSERT INTO generations ({columns}) VALUES ({marks})", GOOD_ROW)  # the good row passes


INDEXES: dict[str, list[str | None]] = {
    "generations_status_created_at_id": ["status", "created_at", "id"],
    "generations_created_at": ["created_at"],
    "generations_file_path": ["file_path"],
    "prompts_used_count_id": ["used_count", "id"],
    "generations_completed_at": ["completed_at"],  # completions by time, for the ETA (0009)
    "generations_failed_at": ["completed_at", "id"],  # failures by time, the dashboard's (0024)
    "generations_model_created_at_id": ["model_name", "created_at", "id"],  # one model's rows by time (0027)
    # each owner key's lane in the claim's order of lanes (0012, which dropped 0010's generations_queue)
    # (0015: the lane served longest ago first among lanes equal on priority and running jobs)
    "owner_lanes_order": ["head_priority", "running", "served_at", "head_created_at", "head_id"],
    # the queue's lanes (0008): pending jobs by owner key in claim order, processing jobs by owner key; the
    # owner key is the expression coalesce(owner_key, ''), which index_info names None
    "generations_lane_queue": [None, "priority", "created_at", "id"],
    # the processing jobs without a key (0013 on SQLite; a keyed lane's are counted in owner_lanes)
    "generations_unkeyed_running": ["status"],
    # the latest start of a job without a key: when the lane without a key was last served (0015)
    "generations_unkeyed_served": ["started_at"],
    "generations_idempotency_key": ["idempotency_key"],
}
# PostgreSQL's planner needs the queue's pending rows in an index of their own (migration 0005); SQLite's not.
POSTGRES_INDEXES = {
    **{name: [c or "(expression)" for c in cols] for name, cols in INDEXES.items()},
    "generations_pending": ["created_at", "id"],
}
POSTGRES_INDEXES.pop("generations_idempotency_key")  # unique: listed with the constraints, not here
POSTGRES_INDEXES.pop("owner_lanes_order")  # the test lists the indexes of generations and prompts only
# PostgreSQL keeps every job's status and key in generations_lane_running (0013 changes SQLite only)
POSTGRES_INDEXES.pop("generations_unkeyed_running")
POSTGRES_INDEXES["generations_lane_running"] = ["status", "(expression)"]
# The statements behind claim_next, status lists, unfiltered lists and reconcile's lookups by file.
PLANS = {
    "SELECT id FROM generations WHERE status = 'pending' ORDER BY created_at, id LIMIT 1": (
        "status_created_at_id"
    ),
    "SELECT * FROM generations WHERE status = 'completed' AND (created_at, id) < (1, 'z')"
    " ORDER BY created_at DESC, id DESC LIMIT 50": "status_created_at_id",
    "SELECT * FROM generations WHERE (created_at, id) < (1, 'z')"
    " ORDER BY created_at DESC, id DESC LIMIT 50": "created_at",
    "SELECT id FROM generations WHERE file_path IN ('a.wav', 'b.wav')": "file_path",
}


def test_indexes_serve_the_real_queries_and_none_is_redundant(sqlite_url: str) -> None:
    conn = _raw(sqlite_url)
    indexes = {
        r[0]: r[1] for r in conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'")
    }
    named = {name for name in indexes if not name.startswith("sqlite_autoindex")}
    assert named == set(INDEXES)
    columns = {name: [r[2] for r in conn.execute(f"PRAGMA index_info({name})")] for name in indexes}
    assert {name: columns[name] for name in named} == INDEXES
    partial = {  # a partial index covers other rows than one with another WHERE: neither is redundant
        r[0]: (r[1] or "").partition(" WHERE ")[2]
        for r in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
    }
    for name, cols in columns.items():  # no index is a prefix of another on the same table
        for other, other_cols in columns.items():
            if name != other and indexes[name] == indexes[other] and partial[name] == partial[other]:
                assert other_cols[: len(cols)] != cols, f"{name} is redundant with {other}"
    for query, index in PLANS.items():
        plan = " ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {query}"))
        assert (
            f"USING INDEX generations_{index}" in plan or f"USING COVERING INDEX generations_{index}" in plan
        )
        # at most the ties of created_at are sorted by id, never the whole result
        assert "TEMP B-TREE FOR ORDER BY" not in plan, (query, plan)
        if index != "created_at":
            assert "TEMP B-TREE" not in plan, (query, plan)


def test_postgres_has_the_same_indexes_and_plans_sort_free(postgres_url: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT i.relname, array_agg(coalesce(a.attname::text, '(expression)') ORDER BY k.n)"
            " FROM pg_index x"
            " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
            " CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)"
            " LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum"
            " WHERE t.relname IN ('generations', 'prompts') AND NOT x.indisprimary AND NOT x.indisunique"
            " GROUP BY i.relname"
        ).fetchall()
        assert dict(rows) == POSTGRES_INDEXES
        # Empty tables: forbid the scans a planner prefers on tiny tables, then ask for the index path.
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_bitmapscan = off")
        # and a full sort: an empty table's row estimate comes from its row width (wider since 0006), and
        # at that guess a top-N sort can cost less than the index order; a plan that needs one still shows it
        conn.execute("SET enable_sort = off")
        for sqlite_query, index in PLANS.items():
            query = sqlite_query.replace("(1, 'z')", "(now(), 'z')")
            plan = " ".join(r[0] for r in conn.execute(f"EXPLAIN {query}"))
            # the queue: PostgreSQL's own partial index
            expected = "pending" if "status = 'pending'" in query else index
            assert f"generations_{expected}" in plan, (query, plan)
            assert not re.search(r"(?<!Incremental )Sort  \(", plan), (query, plan)  # ties only, if any
            if index != "created_at":
                assert "Sort" not in plan, (query, plan)


@pytest.mark.slow
def test_built_wheel_carries_sql_and_migrations_and_works_installed(tmp_path: Path) -> None:
    """Build the wheel, install it alone into a folder, and migrate + use a database from there."""
    dist = tmp_path / "dist"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if build.returncode != 0 and "hatchling" in build.stderr:
        build = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(ROOT)],
            capture_output=True,
            text=True,
            check=False,
        )
    assert build.returncode == 0, build.stderr
    (wheel,) = dist.glob("musicstore-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "musicstore/sql/common/generations.sql" in names
    assert "musicstore/migrations/0002.initial-schema.py" in names
    assert "musicstore/migrations/sqlite/0002.initial-schema.sql" in names
    assert "musicstore/migrations/postgres/0002.initial-schema.sql" in names
    assert "musicstore/py.typed" in names
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True,
        check=True,
    )
    script = (
        "import musicstore, sys\n"
        f"assert musicstore.__file__.startswith({str(site)!r}), musicstore.__file__\n"
        f"url = 'sqlite:///{tmp_path}/installed.db'\n"
        "print(musicstore.migrate(url))\n"
        "store = musicstore.Store(url)\n"
        "job = store.create_generation('from the wheel', model_name='m', duration_seconds=1)\n"
        "assert store.claim_next('w').id == job.id\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(shipped_migrations()), "ok"]


def test_migrate_on_a_database_that_cannot_be_opened_is_a_migration_error(
    tmp_path: Path, postgres_url: str
) -> None:
    from musicstore import MigrationError

    (tmp_path / "a-file").write_text("not a folder")
    bad_db = postgres_url.rsplit("/", 1)[0] + "/no_such_database"
    for url in (f"sqlite:///{tmp_path / 'a-file' / 'x.db'}", f"sqlite:///{tmp_path}", bad_db):
        with pytest.raises(MigrationError, match="migrate"):
            migrate(url)
        with pytest.raises(MigrationError):
            Store(url, migrate=True)


def _rollback(db_url: str, number: str) -> None:
    """Roll back migration ``number`` (e.g. "0005") and every later one, newest first."""
    from yoyo import get_backend, read_migrations

    backend = get_backend(resolve(db_url).yoyo_url)
    try:
        with backend.lock():
            applied = list(backend.to_rollback(read_migrations(str(ROOT / "migrations"))))
            newest = [m for m in applied if m.id >= number]
            assert newest and newest[-1].id.startswith(f"{number}."), [m.id for m in applied]
            backend.rollback_migrations(newest)
    finally:
        backend.connection.close()


def _from(number: str) -> list[str]:
    """The shipped migrations from ``number`` on: what ``migrate`` applies again after ``_rollback``."""
    return [m for m in shipped_migrations() if m >= number]


def _rollback_0004(db_url: str) -> None:
    _rollback(db_url, "0005")
    _rollback(db_url, "0004")


def _sql(db_url: str, statement: str) -> list[tuple[object, ...]]:
    """Run one statement outside the library (results, if any, as tuples)."""
    if db_url.startswith("sqlite"):
        with sqlite3.connect(str(resolve(db_url).path)) as conn:
            return list(conn.execute(statement).fetchall())
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        cursor = conn.execute(statement)
        return list(cursor.fetchall()) if cursor.description else []


def test_0004_migrates_data_up_and_back(db_url: str) -> None:
    """Rows, prompt counts and totals survive 0004's rollback and reapplication; drifted totals recounted."""
    from tests.test_totals import assert_totals_are_a_recount, every_generation

    texts = ["lofi", "雨の日の ピアノ 🎹", "x" * 500]
    with Store(db_url) as store:
        jobs = [
            store.create_generation(t, model_name="m", duration_seconds=1.1 + i)
            for i, t in enumerate(texts * 2)
        ]
        for i, seconds in enumerate([0.1, 0.2, 1 / 3]):
            store.claim_next("w")
            store.complete_generation(
                jobs[i].id, file_path=f"{i}.wav", file_size_bytes=10 + i, generation_time_seconds=seconds
            )
        store.claim_next("w")
        store.fail(jobs[3].id, "boom", retry=False)
        store.cancel(jobs[4].id)
        store.track_prompt_usage("lofi")
        rows, prompts = every_generation(store), store.get_most_used_prompts(100)
        stats = assert_totals_are_a_recount(store)

    _rollback_0004(db_url)
    assert sorted(_sql(db_url, "SELECT text, used_count FROM prompts")) == sorted(
        (p.text, p.used_count) for p in prompts
    )
    assert sorted(_sql(db_url, "SELECT id, prompt, status FROM generations")) == sorted(
        (g.id, g.prompt, g.status.value) for g in rows
    )
    counted = _sql(db_url, "SELECT status, sum(generations) FROM generation_totals GROUP BY status")
    assert {str(s): int(str(n)) for s, n in counted} == {s.value: n for s, n in stats.by_status.items()}
    # The state the issue reported: float totals that drifted away from the rows.
    _sql(db_url, "UPDATE generation_totals SET generation_seconds = generation_seconds + 2.8e-17")

    assert migrate(db_url) == _from("0004")
    with Store(db_url) as store:
        assert every_generation(store) == rows
        assert store.get_most_used_prompts(100) == prompts
        assert assert_totals_are_a_recount(store) == stats
        for text in texts:  # the digests the migration filled are the library's
            before = store.get_prompt_by_text(text)
            assert before is not None
            assert store.track_prompt_usage(text).used_count == before.used_count + 1
        assert store.get_database_stats().unique_prompts == len(texts)


def test_0004_rollback_on_postgres_refuses_a_prompt_0003_cannot_hold(postgres_url: str) -> None:
    import psycopg

    long_prompt = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(1000))
    with Store(postgres_url) as store:
        store.create_generation(long_prompt, model_name="m", duration_seconds=1)
    _rollback(postgres_url, "0005")
    with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="index row"):
        _rollback(postgres_url, "0004")
    assert migrate(postgres_url) == _from("0005")
    with Store(postgres_url) as store:  # nothing changed: still at 0004, the row intact
        prompt = store.get_prompt_by_text(long_prompt)
        assert prompt is not None and prompt.used_count == 1


GROUPED_TOTALS = {"generation_model_totals", "generation_day_totals"}


def test_0005_fills_the_grouped_totals_from_the_rows_and_rolls_back(db_url: str) -> None:
    """0005's rollback drops the totals by model and by day; applied again, it recounts them from the rows,
    including rows changed while no trigger kept them."""
    from musicstore.testing import FakeClock
    from tests.test_totals import assert_totals_are_a_recount

    clock = FakeClock()
    with Store(db_url, clock=clock) as store:
        jobs = []
        for i in range(9):
            jobs.append(store.create_generation(f"p{i % 2}", model_name=f"m{i % 3}", duration_seconds=1))
            clock.advance(86_400 * (i % 2) + 0.5)
        for i in range(4):
            claimed = store.claim_next("w")
            assert claimed is not None
            store.complete_generation(claimed.id, file_path=f"{i}.wav", file_size_bytes=100 + i)
        store.cancel(jobs[5].id)
        assert_totals_are_a_recount(store)

    _rollback(db_url, "0005")
    assert not _tables(db_url) & GROUPED_TOTALS
    # Changed while no trigger keeps the totals by model and day: the reapplied migration must see it.
    _sql(db_url, f"DELETE FROM generations WHERE id = '{jobs[6].id}'")
    _sql(db_url, f"UPDATE generations SET model_name = 'm9' WHERE id = '{jobs[7].id}'")
    _sql(db_url, f"UPDATE generations SET file_size_bytes = 7 WHERE id = '{jobs[0].id}'")

    assert migrate(db_url) == _from("0005")
    assert _tables(db_url) >= GROUPED_TOTALS
    with Store(db_url, clock=clock) as store:
        assert_totals_are_a_recount(store)
        assert store.count_generations(model_name="m9") == 1
        store.create_generation("after 0005", model_name="m9", duration_seconds=1)
        assert_totals_are_a_recount(store)
