"""Migrations hunt (session 23): each migration's rollback restores the schema before it, on both backends;
rows made at old schemas read back right after migrating; concurrent and killed migrations."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from musicstore.migrate import shipped_migrations
from musicstore.urls import resolve

ROOT = Path(__file__).resolve().parent.parent
_counter = iter(range(10**6))


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no migration applied."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server = request.getfixturevalue("musicstore_postgres_server")
    name = f"musicstore_mig_s23_{os.getpid()}_{next(_counter)}"
    server.admin(f"CREATE DATABASE {name}")
    yield server.url(name)
    server.admin(f"DROP DATABASE {name} WITH (FORCE)")


def _backend(url: str) -> Any:
    from yoyo import get_backend

    return get_backend(resolve(url).yoyo_url)


def _migrations() -> Any:
    from yoyo import read_migrations

    return read_migrations(str(ROOT / "migrations"))


def _apply_one(url: str, migration_id: str) -> None:
    backend = _backend(url)
    try:
        with backend.lock():
            todo = backend.to_apply(_migrations())
            backend.apply_migrations(todo.filter(lambda m: m.id == migration_id))
    finally:
        backend.connection.close()


def _rollback_one(url: str, migration_id: str) -> None:
    backend = _backend(url)
    try:
        with backend.lock():
            applied = backend.to_rollback(_migrations())
            backend.rollback_migrations(applied.filter(lambda m: m.id == migration_id))
    finally:
        backend.connection.close()


def _sqlite_schema(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(path)
    try:
        pragmas = {
            f"pragma {name}": str(conn.execute(f"PRAGMA {name}").fetchone()[0])
            for name in ("user_version", "application_id", "auto_vacuum", "encoding", "journal_mode")
        }
        rows = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE '%yoyo%' "
            "AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    finally:
        conn.close()
    # A table renamed into place (ALTER TABLE ... RENAME) has its name quoted in sqlite_master: same table.
    return {
        f"{kind} {name}": re.sub(r'"(\w+)"', r"\1", re.sub(r"\s+", " ", sql or "")).strip()
        for kind, name, sql in rows
    } | pragmas


_PG_CATALOG = {
    "column": """
        SELECT c.relname || '.' || a.attname,
               format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull
               || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
               || ' collation=' || coalesce(nullif(a.attcollation, 0)::regcollation::text, '')
               || ' identity=' || a.attidentity::text || ' generated=' || a.attgenerated::text
               || ' statistics=' || coalesce(a.attstattarget::text, '')
               || ' position=' || row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum)
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
          AND c.relname NOT LIKE '%yoyo%'""",
    "relation": """
        SELECT c.relname, c.relkind::text || ' persistence=' || c.relpersistence::text
               || ' options=' || coalesce(array_to_string(c.reloptions, ','), '')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'S', 'p')
          AND c.relname NOT LIKE '%yoyo%'""",
    "index": """
        SELECT c.relname, pg_get_indexdef(i.indexrelid) || ' valid=' || i.indisvalid
               || ' clustered=' || i.indisclustered
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relname NOT LIKE '%yoyo%'""",
    "constraint": """
        SELECT cl.relname || '.' || co.conname, pg_get_constraintdef(co.oid)
        FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid
        JOIN pg_namespace n ON n.oid = cl.relnamespace
        WHERE n.nspname = 'public' AND cl.relname NOT LIKE '%yoyo%'""",
    "trigger": """
        SELECT tgname, pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND NOT t.tgisinternal""",
    "function": """
        SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public'""",
    "type": """
        SELECT t.typname, t.typtype::text FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'c')
          AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid)""",
    "extension": "SELECT extname, extversion FROM pg_extension",
    "sequence": """
        SELECT c.relname, s.seqtypid::regtype::text || ' ' || s.seqstart || ' ' || s.seqincrement
               || ' owned=' || coalesce((SELECT d.refobjid::regclass::text || '.' || d.refobjsubid
                                         FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')
                                         LIMIT 1), '')
        FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relname NOT LIKE '%yoyo%'""",
}


def _pg_schema(url: str) -> dict[str, str]:
    import psycopg

    schema: dict[str, str] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for kind, query in _PG_CATALOG.items():
            for name, definition in conn.execute(query).fetchall():
                schema[f"{kind} {name}"] = str(definition)
    return schema


def schema_of(url: str) -> dict[str, str]:
    """Every table, column, index, constraint, trigger and function of the database (not yoyo's own)."""
    target = resolve(url)
    return _sqlite_schema(target.path) if target.path is not None else _pg_schema(url)


def _diff(before: dict[str, str], after: dict[str, str]) -> list[str]:
    lines = []
    for key in sorted(before.keys() | after.keys()):
        if before.get(key) != after.get(key):
            lines.append(f"{key}:\n  before: {before.get(key)}\n  after:  {after.get(key)}")
    return lines


def test_each_migration_rolls_back_to_the_schema_before_it_and_applies_again_alike(empty_url: str) -> None:
    """Apply one at a time; after each, roll it back (the schema must equal the one before it) and apply it
    again (the schema must equal its first apply)."""
    before = schema_of(empty_url)
    problems: list[str] = []
    for migration_id in shipped_migrations():
        _apply_one(empty_url, migration_id)
        applied = schema_of(empty_url)
        _rollback_one(empty_url, migration_id)
        rolled_back = schema_of(empty_url)
        problems += [f"{migration_id} rollback: {d}" for d in _diff(before, rolled_back)]
        _apply_one(empty_url, migration_id)
        again = schema_of(empty_url)
        problems += [f"{migration_id} re-apply: {d}" for d in _diff(applied, again)]
        before = again
    assert not problems, "\n".join(problems)


def _sql(url: str, statement: str, params: list[tuple[Any, ...]] | None = None) -> list[tuple[Any, ...]]:
    """Run a statement outside the library (``?`` placeholders), once per parameter tuple."""
    target = resolve(url)
    if target.path is not None:
        with sqlite3.connect(target.path) as conn:
            conn.execute("PRAGMA foreign_keys = ON")  # as every program's connection has it
            if params is None:
                return list(conn.execute(statement).fetchall())
            conn.executemany(statement, params)
            return []
    import psycopg

    statement = statement.replace("?", "%s")
    with psycopg.connect(url, autocommit=True) as conn:
        if params is None:
            cursor = conn.execute(statement)
            return list(cursor.fetchall()) if cursor.description else []
        with conn.cursor() as cur:
            cur.executemany(statement, params)
        return []


def _rollback_after(url: str, keep: str) -> None:
    """Roll back every applied migration after ``keep`` (its number), newest first."""
    backend = _backend(url)
    try:
        with backend.lock():
            applied = backend.to_rollback(_migrations())
            backend.rollback_migrations(applied.filter(lambda m: m.id[:4] > keep))
    finally:
        backend.connection.close()


def _fill(store: Any) -> dict[str, str]:
    """Jobs in every status with owner keys, priorities, renditions and shared prompts, through the library.
    Returns ids by role."""
    from tests.test_rendition_store import MP3, figures

    ids: dict[str, str] = {}
    for n in range(12):
        g = store.create_generation(
            f"prompt {n % 4} ünï 🎹",
            model_name=["musicgen-small", "Musicgen-large", "m_b"][n % 3],
            duration_seconds=1.5 + n / 7,
            priority=n % 3 - 1,
            owner_key=[None, "tenant-a", "Tenant_b"][n % 3],
            metadata={"n": n},
        )
        ids[f"job{n}"] = g.id
    store.set_owner_limit("tenant-a", 3)
    done = []
    for n in range(6):
        claimed = store.claim_next(f"w{n}")
        assert claimed is not None
        done.append(claimed.id)
    for n, gid in enumerate(done[:3]):
        store.complete_generation(
            gid, file_path=f"2026/{gid}.wav", file_size_bytes=1000 + n, worker_id=f"w{n}",
            generation_time_seconds=0.1 * (n + 1),
        )  # fmt: skip
        store.create_rendition(gid, **figures(f"r/{gid}.mp3", settings=MP3, file_size_bytes=50 + n))
    store.fail(done[3], "oom", retry=False)
    ids.update(done0=done[0], done1=done[1], done2=done[2], failed=done[3])
    ids.update(running4=done[4], running5=done[5])
    return ids


def _totals_at(url: str, keep: str) -> None:
    """The running totals of ``keep``'s schema (its triggers') against a recount of the rows, by SQL."""
    from tests.test_queue_fairness import lanes_and_recount

    pairs = [
        (
            "SELECT status, sum(generations), sum(file_bytes) FROM generation_totals"
            " GROUP BY status HAVING sum(generations) <> 0 ORDER BY status",
            "SELECT status, count(*), coalesce(sum(file_size_bytes), 0) FROM generations"
            " GROUP BY status ORDER BY status",
        ),
        (
            "SELECT sum(prompts), sum(uses) FROM prompt_totals",
            "SELECT count(*), coalesce(sum(used_count), 0) FROM prompts",
        ),
        (
            "SELECT model_name, status, sum(generations), sum(file_bytes) FROM generation_model_totals"
            " GROUP BY model_name, status HAVING sum(generations) <> 0 ORDER BY model_name, status",
            "SELECT model_name, status, count(*), coalesce(sum(file_size_bytes), 0) FROM generations"
            " GROUP BY model_name, status ORDER BY model_name, status",
        ),
        (
            "SELECT sum(generations), sum(file_bytes) FROM generation_day_totals",
            "SELECT count(*), coalesce(sum(file_size_bytes), 0) FROM generations",
        ),
    ]
    if keep >= "0011":
        pairs.append(
            (
                "SELECT sum(renditions), sum(file_bytes) FROM rendition_totals",
                "SELECT count(*), coalesce(sum(file_size_bytes), 0) FROM renditions",
            )
        )
    for kept, recount in pairs:
        assert [tuple(map(str, r)) for r in _sql(url, kept)] == [
            tuple(map(str, r)) for r in _sql(url, recount)
        ], (keep, kept)
    if keep >= "0012":
        lanes, recounted = lanes_and_recount(url)
        assert lanes == recounted, keep


def _pending(url: str) -> list[str]:
    return [str(r[0]) for r in _sql(url, "SELECT id FROM generations WHERE status = 'pending' ORDER BY id")]


KEEPS = sorted({m[:4] for m in shipped_migrations() if "0007" <= m[:4] < max(shipped_migrations())[:4]})


@pytest.mark.parametrize("keep", KEEPS)
def test_rows_written_at_an_older_schema_read_back_and_recount_after_migrating_up(
    empty_url: str, keep: str
) -> None:
    """The newest version writes; rolled back to ``keep``'s schema, a program of that version (SQL through
    that schema's triggers) deletes a job, cancels one, finishes a running one and deletes a rendition; then
    migrated up: every total (stats, grouped, renditions, lanes) equals a recount of the rows."""
    from musicstore import Store, migrate
    from tests.test_queue_fairness import lanes_and_recount
    from tests.test_rendition_totals import recount as renditions_recount
    from tests.test_rendition_totals import totals as rendition_totals
    from tests.test_totals import assert_totals_are_a_recount

    url = empty_url
    migrate(url)
    with Store(url) as store:
        ids = _fill(store)
        assert_totals_are_a_recount(store)
    _rollback_after(url, keep)
    _totals_at(url, keep)
    pending = _pending(url)
    now = "'2026-01-02 03:04:05+00'" if resolve(url).path is None else "1767323045000000"
    _sql(url, "DELETE FROM generations WHERE id = ?", [(pending[0],)])
    _sql(
        url,
        f"UPDATE generations SET status = 'cancelled', completed_at = {now} WHERE id = ?",
        [(pending[1],)],
    )
    _sql(
        url,
        "UPDATE generations SET status = 'completed', file_path = ?, file_size_bytes = 77,"
        f" generation_time_seconds = 0.25, completed_at = {now}, lease_expires_at = NULL WHERE id = ?",
        [(f"2026/{ids['running4']}.wav", ids["running4"])],
    )
    _sql(url, "DELETE FROM renditions WHERE generation_id = ?", [(ids["done1"],)])
    _sql(url, "DELETE FROM generations WHERE id = ?", [(ids["done2"],)])  # its rendition goes with it
    _totals_at(url, keep)
    migrate(url)
    with Store(url) as store:
        assert_totals_are_a_recount(store)
        assert rendition_totals(store) == renditions_recount(url) == (1, 50)
        lanes, recounted = lanes_and_recount(url)
        assert lanes == recounted
        depth = store.queue_depth()
        assert sum(level.pending for level in depth.levels) == len(_pending(url))
        running = _sql(
            url,
            "SELECT owner_key, count(*) FROM generations WHERE status = 'processing' GROUP BY owner_key",
        )
        assert depth.running == {k: int(c) for k, c in running}
        assert store.get_owner_limits() == ({"tenant-a": 3} if keep >= "0008" else {})
        finished = store.get_generation(ids["running4"])
        assert finished is not None and finished.status.value == "completed"


_MIGRATE_WHEN_TOLD = """
import sys
import musicstore
print("ready", flush=True)
sys.stdin.readline()
musicstore.migrate(sys.argv[1], lock_timeout=120)
"""


@pytest.mark.parametrize("empty_url", ["postgres"], indirect=True)
def test_a_migrate_interrupted_waiting_for_the_lock_leaves_another_hosts_lock_of_the_same_pid(
    empty_url: str,
) -> None:
    """PostgreSQL is shared by hosts, and containers' processes often have the same pid (1, or the few after
    it). A migrate() interrupted (Ctrl-C, SIGTERM turned into an exception) while it waited for the lock that
    another host's migrate held deleted every lock row of its own pid: that host's lock, while its migration
    ran, so a third process took the lock and applied the same migrations at once. Only a lock this process
    may have written is released; one it never had stays."""
    import signal
    import subprocess
    import sys
    import time

    child = subprocess.Popen(
        [sys.executable, "-c", _MIGRATE_WHEN_TOLD, empty_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        _backend(empty_url).connection.close()  # makes yoyo's lock table
        # Another host's migration, its process of the same pid as the child, holds the lock.
        _sql(
            empty_url,
            "INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, '2026-01-02 03:04:05', ?)",
            [(child.pid,)],
        )
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
        deadline = time.monotonic() + 60
        while not _sql(  # until it has tried the lock's row (its last statement names yoyo_lock)
            empty_url,
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND query ILIKE '%yoyo_lock%'",
        ):
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.02)
        time.sleep(0.2)  # in its pause between two tries
        assert child.poll() is None
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
        assert "KeyboardInterrupt" in err, err
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert _sql(empty_url, "SELECT pid FROM yoyo_lock") == [(child.pid,)]


def _fill_first_schema(url: str, n: int) -> None:
    """``n`` generations in every status (a prompt each) at the first schema (0002), as 0.1 wrote them."""
    from datetime import UTC, datetime, timedelta

    from tests.test_upgrade_regressions import _ts

    t0 = datetime(2023, 3, 1, 12, 0, tzinfo=UTC)
    _sql(
        url,
        "INSERT INTO prompts (text, used_count, first_used_at, last_used_at) VALUES (?, ?, ?, ?)",
        [(f"prompt {i} ünï", 1, _ts(url, t0), _ts(url, t0 + timedelta(seconds=i))) for i in range(n)],
    )
    rows = []
    for i in range(n):
        status = ["pending", "completed", "failed", "cancelled"][i % 4]
        done = status == "completed"
        rows.append(
            (f"00000000-0000-4000-8000-{i:012d}", f"prompt {i} ünï", f"model-{i % 3}", 5.0 + i % 7,
             32000, 1, status, f"f/{i}.wav" if done else None, 10 + i if done else None,
             _ts(url, t0 + timedelta(seconds=i)), None if status == "pending" else _ts(url, t0), "{}")
        )  # fmt: skip
    _sql(
        url,
        "INSERT INTO generations (id, prompt, model_name, duration_seconds, sample_rate, channels, status,"
        " file_path, file_size_bytes, created_at, completed_at, metadata)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def _schemas_by_step(url: str) -> list[dict[str, str]]:
    """The schema after each number of shipped migrations applied one at a time (0: none), on ``url``."""
    schemas = [schema_of(url)]
    for migration_id in shipped_migrations():
        _apply_one(url, migration_id)
        schemas.append(schema_of(url))
    return schemas


@pytest.fixture(params=["sqlite", "postgres"])
def copier(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """``copy(source=None)``: a new empty database, or a copy of ``source``, on the backend."""
    server = request.getfixturevalue("musicstore_postgres_server") if request.param == "postgres" else None
    made: list[str] = []

    def copy(source: str | None = None) -> str:
        name = f"musicstore_kill_s23_{os.getpid()}_{next(_counter)}"
        if server is None:
            path = tmp_path / f"{name}.db"
            if source is not None:
                src, dst = sqlite3.connect(str(resolve(source).path)), sqlite3.connect(path)
                src.backup(dst)
                dst.close()
                src.close()
            return f"sqlite:///{path}"
        template = "" if source is None else f" TEMPLATE {source.rsplit('/', 1)[1]}"
        server.admin(f"CREATE DATABASE {name}{template}")
        made.append(name)
        return str(server.url(name))

    yield copy
    if server is not None:
        server.admin(*(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)" for name in made))


_MIGRATE = """
import sys
import musicstore
musicstore.migrate(sys.argv[1], lock_timeout=120)
"""


def _killed_migrating(url: str, after: float) -> None:
    """``migrate(url)`` in a process killed (SIGKILL) ``after`` seconds past taking the migration lock."""
    import subprocess
    import sys
    import time

    child = subprocess.Popen(
        [sys.executable, "-c", _MIGRATE, url], env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline and child.poll() is None
            try:
                if _sql(url, "SELECT pid FROM yoyo_lock"):
                    break
            except Exception:  # its lock table is not made yet
                pass
            time.sleep(0.01)
        time.sleep(after)
    finally:
        child.kill()
        child.wait()
    if resolve(url).path is None:  # the server rolls the killed session back once it sees it gone
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            while conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            ).fetchone() != (0,):
                assert time.monotonic() < deadline + 60
                time.sleep(0.05)


N_ROWS = 8_000  # the recount reads every prompt in one page (10,000 at most)


@pytest.mark.slow
def test_a_migrate_killed_at_any_point_leaves_a_schema_it_resumes_from(copier: Any) -> None:
    """``migrate()`` killed (SIGKILL: an OOM kill, a power cut) at several points of an upgrade from the
    first schema with rows: the migrations recorded are the first few shipped, the schema is exactly the one
    those give (nothing of the migration it was in), and migrate() goes on from there (on PostgreSQL after
    `yoyo break-lock`, as docs/migrations.md says), the totals a recount of the rows."""
    from musicstore import Store, migrate
    from tests.test_totals import assert_totals_are_a_recount

    shipped = shipped_migrations()
    source = copier()
    for migration_id in shipped[:2]:
        _apply_one(source, migration_id)
    _fill_first_schema(source, N_ROWS)
    reference = _schemas_by_step(copier())
    stopped_in = set()
    for after in (0.01, 0.1, 0.25, 0.45, 0.7, 1.0):
        url = copier(source)
        _killed_migrating(url, after)
        applied = sorted(str(r[0]) for r in _sql(url, "SELECT migration_id FROM _yoyo_migration"))
        assert applied == shipped[: len(applied)], after
        problems = _diff(reference[len(applied)], schema_of(url))
        assert not problems, (after, applied[-1], problems)
        stopped_in.add(len(applied))
        if resolve(url).path is None:
            _sql(url, "DELETE FROM yoyo_lock")  # yoyo break-lock: PostgreSQL keeps a killed process's lock
        assert migrate(url, lock_timeout=10) == shipped[len(applied) :]
        with Store(url) as store:
            assert assert_totals_are_a_recount(store).total == N_ROWS
    print("killed after", sorted(stopped_in), "of", len(shipped), "migrations")


def test_migrate_gives_the_schema_yoyo_apply_gives_and_again_after_rolling_back_all(copier: Any) -> None:
    """``migrate()`` (each migration and its record one transaction) makes the very schema yoyo's own
    apply makes, and after ``yoyo rollback --all`` (every migration undone) ``migrate()`` makes it again."""
    from musicstore import migrate

    by_yoyo = copier()
    for migration_id in shipped_migrations():
        _apply_one(by_yoyo, migration_id)
    url = copier()
    migrate(url)
    first = schema_of(url)
    assert not _diff(schema_of(by_yoyo), first)
    _rollback_after(url, "0000")
    assert _sql(url, "SELECT count(*) FROM _yoyo_migration") == [(0,)]
    assert not [key for key in schema_of(url) if not key.startswith(("pragma ", "extension plpgsql"))]
    assert migrate(url) == shipped_migrations()
    assert not _diff(first, schema_of(url))


def _open_at(url: str, kind: str, start: float) -> tuple[str, int]:
    """In a worker process: at ``start`` (this machine's clock), open ``url`` migrating, as ``kind`` does."""
    import asyncio
    import time

    from musicstore import AsyncStore, Store, migrate

    time.sleep(max(0.0, start - time.time()))
    if kind == "Store":
        with Store(url, migrate=True) as store:
            return kind, store.count_generations()
    if kind == "AsyncStore":

        async def count() -> int:
            async with AsyncStore.open(url, migrate=True) as store:
                return await store.count_generations()

        return kind, asyncio.run(count())
    return kind, len(migrate(url))


@pytest.mark.slow
def test_workers_starting_at_once_on_an_old_schema_with_rows_all_open_it(copier: Any) -> None:
    """Six processes (Store and AsyncStore with migrate=True, migrate()) start at the same moment on a
    database at the first schema holding rows: one applies the migrations, every store opens it and reads
    every row, the totals a recount."""
    import multiprocessing
    import time

    from musicstore import Store
    from tests.test_totals import assert_totals_are_a_recount

    url = copier()
    for migration_id in shipped_migrations()[:2]:
        _apply_one(url, migration_id)
    _fill_first_schema(url, 2000)
    start = time.time() + 3  # the spawned processes import musicstore meanwhile
    kinds = ["Store", "AsyncStore", "migrate"] * 2
    with multiprocessing.get_context("spawn").Pool(len(kinds)) as pool:
        opened = pool.starmap(_open_at, [(url, kind, start) for kind in kinds])
    stores = sorted(count for kind, count in opened if kind != "migrate")
    assert stores == [2000] * 4
    migrated = sorted(count for kind, count in opened if kind == "migrate")
    assert migrated in ([0, 0], [0, len(shipped_migrations()) - 2])  # a store may have applied them
    with Store(url) as store:
        assert_totals_are_a_recount(store)


_HOLD_THE_LOCK = """
import sys
from yoyo import get_backend
backend = get_backend(sys.argv[1])
with backend.lock():
    print("locked", flush=True)
    sys.stdin.read()  # until killed
"""


def test_a_sqlite_migration_lock_of_a_killed_process_not_yet_reaped_is_dropped(tmp_path: Path) -> None:
    """A process killed holding the migration lock stays a zombie until its parent reaps it (a supervisor, a
    program that runs `musicstore migrate` and has not waited for it yet): migrate() took a zombie for a live
    holder, waited lock_timeout and failed ('yoyo break-lock'). A zombie runs nothing: its lock is dropped,
    as a gone process's is."""
    import signal
    import subprocess
    import sys
    import time

    from musicstore import migrate

    url = f"sqlite:///{tmp_path / 'zombie.db'}"
    shipped = shipped_migrations()
    for migration_id in shipped[:3]:
        _apply_one(url, migration_id)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_THE_LOCK, resolve(url).yoyo_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        os.kill(holder.pid, signal.SIGKILL)  # not reaped: no wait() until the end
        deadline = time.monotonic() + 30
        while Path(f"/proc/{holder.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert migrate(url, lock_timeout=5) == shipped[3:]
    finally:
        holder.kill()
        holder.wait()
