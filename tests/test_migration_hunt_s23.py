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
    }


_PG_CATALOG = {
    "column": """
        SELECT c.relname || '.' || a.attname,
               format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull
               || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
               || ' collation=' || coalesce(nullif(a.attcollation, 0)::regcollation::text, '')
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
        SELECT indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' AND tablename NOT LIKE '%yoyo%'""",
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
        time.sleep(3)  # it opens the database, finds migrations to apply and waits for the lock
        assert child.poll() is None
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
        assert "KeyboardInterrupt" in err, err
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert _sql(empty_url, "SELECT pid FROM yoyo_lock") == [(child.pid,)]
