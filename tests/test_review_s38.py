"""Session 38: ``session_replication_role`` set for a database or role; a ``pg_service.conf`` service's own
connection settings.

Left at ``replica`` on a database or role by a replication or DMS load (or in ``PGOPTIONS``), it fires no
trigger: the totals and owners' lanes the store's triggers keep went unkept, with no error (a count read 0
after three jobs, a job with an owner was never claimed). Each new connection sets it back to ``origin``
where it is not; a role that may not set it gets an error that says so, and nothing is written. libpq takes
a service's settings where the URL has none, so the store's defaults passed as arguments overrode them. An
idempotent retry of a completed request whose metadata has a name the export writes (``format``,
``duration_seconds``...) was a conflict: the export had written its figure over the value asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from musicstore import DatabaseError, IdempotencyConflict, MigrationError, Store
from musicstore.aio import AsyncStore
from musicstore.backends.postgres_settings import connect_settings
from musicstore.backends.sqlite import STORE_TABLES
from musicstore.migrate import migrate, shipped_migrations
from musicstore.models import EXPORT_METADATA
from musicstore.urls import resolve


def _database(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT current_database()").fetchone()
    assert row is not None
    return str(row[0])


def _replica_database(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} SET session_replication_role = replica").format(
                sql.Identifier(_database(url))
            )
        )
    with psycopg.connect(url) as conn:  # the setting is in force for a new session
        assert conn.execute("SHOW session_replication_role").fetchone() == ("replica",)


def test_a_replica_role_of_the_database_is_set_back_sync(postgres_url: str) -> None:
    _replica_database(postgres_url)
    store = Store(postgres_url)
    try:
        made = [
            store.create_generation("lofi", model_name="m", duration_seconds=5, owner_key="alice")
            for _ in range(3)
        ]
        assert store.count_generations() == 3
        assert store.get_database_stats().prompt_uses == 3
        claimed = store.claim_next("w1")
        assert claimed is not None and claimed.id == made[0].id
    finally:
        store.close()


def test_a_replica_role_of_the_database_is_set_back_async(postgres_url: str) -> None:
    _replica_database(postgres_url)

    async def main() -> None:
        async with AsyncStore(postgres_url) as store:
            made = await store.create_generation("lofi", model_name="m", duration_seconds=5, owner_key="bob")
            assert await store.count_generations() == 1
            claimed = await store.claim_next("w1")
            assert claimed is not None and claimed.id == made.id

    asyncio.run(main())


def test_migrate_sets_a_replica_role_back(postgres_url: str) -> None:
    """A migration's session gets the store's settings: its triggers are made, and fire afterwards."""
    _replica_database(postgres_url)
    assert migrate(postgres_url) == []  # nothing left to apply, and no error
    store = Store(postgres_url)
    try:
        store.create_generation("lofi", model_name="m", duration_seconds=5)
        assert store.count_generations() == 1
    finally:
        store.close()


@pytest.fixture
def replica_role_url(postgres_url: str) -> Iterator[str]:
    """A URL for a role that is not a superuser, with ``session_replication_role = replica`` set for it by a
    superuser (which PostgreSQL applies at its sessions' start, and the role may not change)."""
    name = f"app_{uuid.uuid4().hex[:12]}"
    role = sql.Identifier(name)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
        for grant in (
            "GRANT ALL ON ALL TABLES IN SCHEMA public TO {}",
            "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {}",
            "GRANT ALL ON SCHEMA public TO {}",
        ):
            admin.execute(sql.SQL(grant).format(role))
        admin.execute(sql.SQL("ALTER ROLE {} SET session_replication_role = replica").format(role))
    user = postgres_url.split("//", 1)[1].split("@", 1)[0].split(":", 1)[0]
    yield postgres_url.replace(f"//{user}@", f"//{name}@", 1)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(role))
        admin.execute(sql.SQL("DROP ROLE {}").format(role))


def _rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM generations").fetchone()
    assert row is not None
    return int(row[0])


def test_a_role_that_may_not_set_it_back_is_told_why_sync(postgres_url: str, replica_role_url: str) -> None:
    with psycopg.connect(replica_role_url) as conn:  # the role's own sessions run as replicas
        assert conn.execute("SHOW session_replication_role").fetchone() == ("replica",)
    with pytest.raises(DatabaseError, match="session_replication_role is not 'origin'") as raised:
        store = Store(replica_role_url, busy_timeout=1.0)
        try:
            store.create_generation("lofi", model_name="m", duration_seconds=5)
        finally:
            store.close()
    assert "pool_size" not in str(raised.value)
    assert _rows(postgres_url) == 0


def test_a_role_that_may_not_set_it_back_is_told_why_async(postgres_url: str, replica_role_url: str) -> None:
    async def main() -> None:
        async with AsyncStore(replica_role_url, busy_timeout=1.0) as store:
            await store.create_generation("lofi", model_name="m", duration_seconds=5)

    with pytest.raises(DatabaseError, match="session_replication_role is not 'origin'"):
        asyncio.run(main())
    assert _rows(postgres_url) == 0


def test_migrate_as_a_role_that_may_not_set_it_back_says_why(replica_role_url: str) -> None:
    with pytest.raises(MigrationError, match="session_replication_role is not 'origin'") as raised:
        migrate(replica_role_url)
    assert "check the URL" not in str(raised.value)


def _service_file(path: Path, url: str, name: str, *extra: str) -> Path:
    """A ``pg_service.conf`` with service ``name`` for the database at ``url`` and the ``extra`` lines."""
    parts = psycopg.conninfo.conninfo_to_dict(url)
    lines = [f"# {name}", f"[{name}]", *(f"{key}={parts[key]}" for key in ("host", "port", "user", "dbname"))]
    path.write_text("\n".join([*lines, *extra, ""]), encoding="utf-8")
    return path


def _parameters(url: str) -> dict[str, str]:
    store = Store(url, busy_timeout=30.0)
    try:
        with store._connector.pool.connection() as conn:
            return dict(conn.info.get_parameters())
    finally:
        store.close()


@pytest.mark.parametrize("named", ["url", "PGSERVICE"])
def test_a_services_own_settings_are_kept(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, named: str
) -> None:
    """libpq takes a ``pg_service.conf`` service's settings where the URL has none: the store's defaults
    (connect timeout, keepalives, TCP user timeout) were passed over them, as over the URL's own."""
    extra = ("connect_timeout=17", "keepalives_idle=99", "tcp_user_timeout=12345")
    monkeypatch.setenv(
        "PGSERVICEFILE", str(_service_file(tmp_path / "services.conf", postgres_url, "ms", *extra))
    )
    if named == "PGSERVICE":
        monkeypatch.setenv("PGSERVICE", "ms")
    url = "postgresql:///?service=ms" if named == "url" else "postgresql:///"
    assert connect_settings(url, 30.0) == {
        "keepalives": "1",
        "keepalives_interval": "10",
        "keepalives_count": "3",
    }
    shown = _parameters(url)
    assert (shown["connect_timeout"], shown["keepalives_idle"], shown["tcp_user_timeout"]) == (
        "17",
        "99",
        "12345",
    )
    assert shown["keepalives_count"] == "3"  # the store's default, where the service sets none


def test_the_system_service_file_is_read_when_the_users_lacks_the_service(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _service_file(tmp_path / "own.conf", postgres_url, "other")
    (tmp_path / "etc").mkdir()
    _service_file(tmp_path / "etc" / "pg_service.conf", postgres_url, "ms", "keepalives_idle=77")
    monkeypatch.setenv("PGSERVICEFILE", str(tmp_path / "own.conf"))
    monkeypatch.setenv("PGSYSCONFDIR", str(tmp_path / "etc"))
    assert "keepalives_idle" not in connect_settings("postgresql:///?service=ms", 30.0)
    assert _parameters("postgresql:///?service=ms")["keepalives_idle"] == "77"


def test_a_service_without_such_settings_gets_the_stores(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGSERVICEFILE", str(_service_file(tmp_path / "services.conf", postgres_url, "ms")))
    shown = _parameters("postgresql:///?service=ms")
    assert (shown["connect_timeout"], shown["keepalives_idle"]) == ("30", "30")


def test_migrate_keeps_a_services_settings(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from musicstore.migrate import _backend

    path = _service_file(tmp_path / "services.conf", postgres_url, "ms", "connect_timeout=23")
    monkeypatch.setenv("PGSERVICEFILE", str(path))
    backend = _backend(resolve("postgresql:///?service=ms").yoyo_url, "postgres")
    try:
        assert backend.connection.info.get_parameters()["connect_timeout"] == "23"
    finally:
        backend.connection.close()


def test_an_idempotent_retry_of_a_request_naming_an_export_figure_returns_the_completed_job(
    db_url: str, tmp_path: Path
) -> None:
    from musicstore.audio import synthesize_music
    from musicstore.recording import export_generation

    asked = {"format": "mp3", "duration_seconds": 30, "loudness_lufs": -9, "seed": 7}
    request: dict[str, Any] = {
        "model_name": "m",
        "duration_seconds": 1.0,
        "idempotency_key": "k1",
        "metadata": asked,
    }
    with Store(db_url) as store:
        made = store.create_generation("song", **request)
        job = store.claim_next("w")
        assert job is not None and job.id == made.id
        export_generation(store, job, synthesize_music(1.0, 32000, seed=1), root=tmp_path / "audio")
        done = store.get_generation(made.id)
        assert done is not None
        assert set(done.metadata) == EXPORT_METADATA | {"seed"}  # each name the export wrote is in the set
        assert done.metadata["format"] == "WAV"  # the export's figure, over the value asked
        again = store.create_generation("song", **request)
        assert again.id == made.id and again.status.value == "completed"
        for other in ({**asked, "seed": 8}, {**asked, "genre": "jazz"}):
            with pytest.raises(IdempotencyConflict):
                store.create_generation("song", **{**request, "metadata": other})
        assert store.count_generations() == 1


def _migrated_but_the_last(url: str) -> str:
    """The id of the last shipped migration, struck from the applied ones of the store at ``url`` (as a store
    of the version before it reads: an upgrade is pending)."""
    last = shipped_migrations()[-1]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM _yoyo_migration WHERE migration_id = %s", (last,))
    return last


def _tables(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_schema, count(*) FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') GROUP BY table_schema"
        ).fetchall()
    return {str(schema): int(count) for schema, count in rows}


def test_an_upgrade_with_a_schema_named_for_the_role_is_refused(postgres_url: str) -> None:
    """With the default search_path (``"$user", public``), a schema named for the role made after the first
    migration (PostgreSQL's secure schema usage pattern) is where yoyo looked for its table and created the
    tables: the upgrade applied every migration again there, a second, empty store that the store then read
    (its jobs in ``public`` no longer seen), with no error."""
    with Store(postgres_url) as store:
        made = store.create_generation("lofi", model_name="m", duration_seconds=5)
    before = _tables(postgres_url)
    _migrated_but_the_last(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("CREATE SCHEMA AUTHORIZATION CURRENT_USER")
    with pytest.raises(MigrationError, match=r"tables are in schema 'public'.*second, empty store"):
        migrate(postgres_url)
    assert _tables(postgres_url) == before  # nothing created in the role's schema
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        user = admin.execute("SELECT current_user").fetchone()
        assert user is not None
        admin.execute(sql.SQL("DROP SCHEMA {}").format(sql.Identifier(user[0])))  # public first again
    migrate(postgres_url)
    with Store(postgres_url) as store:
        assert store.get_generation(made.id) == made


@pytest.mark.parametrize("path", ["''", "pg_catalog", "nowhere"])
def test_a_search_path_with_no_schema_to_create_in_is_named(
    scratch_database: tuple[Any, str], path: str
) -> None:
    server, name = scratch_database
    server.admin(f"CREATE DATABASE {name}", f"ALTER DATABASE {name} SET search_path = {path}")
    with pytest.raises(MigrationError, match="no schema on search_path") as raised:
        migrate(server.url(name))
    assert "read-only" not in str(raised.value)


def test_a_new_store_in_a_latin1_database_is_refused(scratch_database: tuple[Any, str]) -> None:
    server, name = scratch_database
    server.admin(f"CREATE DATABASE {name} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    with pytest.raises(MigrationError, match="encoding is LATIN1"):
        migrate(server.url(name))
    assert _tables(server.url(name)) == {}


def test_migrate_with_exit_on_error_set_for_the_database(scratch_database: tuple[Any, str]) -> None:
    """Looking up what was applied read yoyo's table before it existed: with exit_on_error on, that error
    ended the session, and the migration failed ('the connection is closed')."""
    server, name = scratch_database
    server.admin(f"CREATE DATABASE {name}", f"ALTER DATABASE {name} SET exit_on_error = on")
    assert migrate(server.url(name)) == shipped_migrations()


def test_the_stores_sessions_compile_no_plan(postgres_url: str) -> None:
    """With a planner method turned off for the database, its penalty put a claim's plan past
    jit_above_cost: each claim was compiled, 1.7 s each, against 6 ms."""
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        database = sql.Identifier(_database(postgres_url))
        admin.execute(sql.SQL("ALTER DATABASE {} SET jit = on").format(database))
        admin.execute(sql.SQL("ALTER DATABASE {} SET jit_above_cost = 0").format(database))
    with Store(postgres_url) as store, store._connector.pool.connection() as conn:
        assert conn.execute("SHOW jit").fetchone() == ("off",)


def test_a_missing_schema_names_search_path(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("CREATE SCHEMA elsewhere")
        database = sql.Identifier(_database(postgres_url))
        admin.execute(sql.SQL("ALTER DATABASE {} SET search_path = elsewhere").format(database))
    with pytest.raises(MigrationError, match=r"the schema is missing \(from the schemas on search_path\)"):
        Store(postgres_url)


def test_a_missing_output_root_is_named_missing(sqlite_url: str, tmp_path: Path) -> None:
    """A deployment's reconcile or retention run before its first export said the root 'is not a directory'
    (a wrong path, it suggested); a file there still is not one."""
    from musicstore import InvalidInput
    from musicstore.maintenance.reconcile import reconcile

    with Store(sqlite_url) as store:
        with pytest.raises(InvalidInput, match=r"audio does not exist \(the first export makes it\)"):
            reconcile(store, tmp_path / "audio")
        (tmp_path / "file").write_bytes(b"")
        with pytest.raises(InvalidInput, match="file is not a directory"):
            reconcile(store, tmp_path / "file")


def _journal_mode(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


def test_migrate_refuses_another_programs_database_with_a_table_of_the_stores_names(tmp_path: Path) -> None:
    """It failed half-way: the file switched to WAL, yoyo's tables in it, 0001 recorded as applied."""
    path = tmp_path / "theirs.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
        conn.execute("CREATE TABLE generations (id INTEGER PRIMARY KEY, name TEXT)")
        conn.commit()
    before = path.read_bytes()
    with pytest.raises(
        MigrationError, match=r"tables of musicstore's names \(generations\).*nothing was written"
    ):
        migrate(f"sqlite:///{path}")
    assert path.read_bytes() == before and _journal_mode(path) == "delete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs.db"]


def test_store_tables_are_the_migrations_tables(sqlite_url: str) -> None:
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {name for name in names if "yoyo" not in name and not name.startswith("sqlite_")} == STORE_TABLES


def test_migrate_takes_a_file_yoyo_began_on(tmp_path: Path) -> None:
    """yoyo's lock table is made first: a migration cut short after it is no other program's database."""
    path = tmp_path / "begun.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "CREATE TABLE yoyo_lock (locked INTEGER DEFAULT 1, ctime TIMESTAMP, pid INTEGER NOT NULL)"
        )
    assert migrate(f"sqlite:///{path}") == shipped_migrations()


@pytest.mark.parametrize("encoding", ["UTF-16le", "UTF-16be"])
def test_migrate_refuses_a_utf16_file(tmp_path: Path, encoding: str) -> None:
    """SQLite compares text by its stored bytes: UTF-16's put owner keys and models out of the byte order of
    UTF-8 the store's lists promise (queue_depth, get_owner_limits, storage by model)."""
    path = tmp_path / "wide.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA encoding = '{encoding}'")
        conn.execute("CREATE TABLE scratch (x)")  # the encoding is written into the file's header
        conn.execute("DROP TABLE scratch")
    with pytest.raises(MigrationError, match=f"text encoding is {encoding}.*nothing was written"):
        migrate(f"sqlite:///{path}")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


def test_a_read_only_folder_is_named_from_its_sqlite_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's SQLITE_READONLY_DIRECTORY (WAL's -shm cannot be made) reads 'attempt to write a readonly
    database': ``Store()`` said only that (the file itself writable); ``migrate`` named the folder. (Seen as
    a user who may not write the folder; the tests may run as root, who may: ``os.access`` answers as for
    that user.)"""
    from musicstore.backends.sqlite import translate

    real = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: False if Path(path) == tmp_path else real(path, mode)
    )
    exc = sqlite3.OperationalError("attempt to write a readonly database")
    exc.sqlite_errorname = "SQLITE_READONLY_DIRECTORY"
    told = str(translate(exc, tmp_path / "x.db"))
    assert f"its folder {tmp_path} is not writable by this user" in told and "-shm" in told
    other = sqlite3.OperationalError("attempt to write a readonly database")  # the file's own mode
    other.sqlite_errorname = "SQLITE_READONLY"
    assert "its folder" not in str(translate(other, tmp_path / "x.db"))


def _db_descriptors(name: str) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if name in target:
            found.append(target)
    return found


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_wait_whose_thread_cannot_start_leaves_nothing_open(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """A host that lets no thread start (RLIMIT_NPROC, memory): the wait's RuntimeError left the poller (or
    the listening hub) holding a thread never started and its connection: ``close()`` raised 'cannot join
    thread before it is started' and left the connection open."""
    url = str(request.getfixturevalue(f"{backend}_url"))
    named = {"sqlite": "musicstore-poll", "postgres": "musicstore-listen"}[backend]
    real = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if thread.name == named:
            raise RuntimeError("can't start new thread")
        real(thread)

    store = Store(url)
    store.create_generation("lofi", model_name="m", duration_seconds=1)
    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        store.claim_next("w", wait=0.2)
    monkeypatch.setattr(threading.Thread, "start", real)
    job = store.claim_next("w", wait=0.2)  # the next wait starts it
    assert job is not None
    store.close()
    if backend == "sqlite":
        assert _db_descriptors(url.removeprefix("sqlite:///")) == []


@pytest.mark.parametrize(
    ("raised", "told"),
    [
        (
            MemoryError("Unable to allocate 220. MiB for an array"),
            "the host refused memory (Unable to allocate",
        ),
        (MemoryError(), "the host refused memory (MemoryError)"),
        (RuntimeError("can't start new thread"), "the host refused a thread (can't start new thread)"),
    ],
)
def test_the_cli_says_the_hosts_limits_in_one_line(
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    raised: Exception,
    told: str,
) -> None:
    """A render of a long master under ``ulimit -v`` printed numpy's and scipy's traceback."""
    from musicstore.cli import EXIT_ERROR, main

    def refuse(*args: object, **kwargs: object) -> None:
        raise raised

    monkeypatch.setattr(Store, "get_database_stats", refuse)  # where the host's limit hit, as a command ran
    assert main(["stats", "-d", sqlite_url]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"musicstore: error: {told}") and err.count("\n") == 1 and "Traceback" not in err


def test_the_cli_lets_another_runtime_error_through(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from musicstore.cli import main

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Store, "get_database_stats", fail)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["stats", "-d", sqlite_url])


_EXHAUSTED = """
import os, resource, sys
from musicstore import MusicstoreError, Store
Store(sys.argv[1]).close()  # its queries read from their files (cached): the store's own descriptors only
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
held = []
try:
    while True:
        held.append(open(os.devnull))
except OSError:
    pass
try:
    Store(sys.argv[1]).count_generations()
except MusicstoreError as exc:
    print(type(exc).__name__, exc)
"""


def test_sqlite_out_of_file_descriptors_says_so(sqlite_url: str) -> None:
    """SQLite says only 'unable to open database file' where the process may open no more (ulimit -n)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _EXHAUSTED, sqlite_url],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    told = done.stdout
    assert told.startswith("DatabaseError") and "unable to open database file" in told, done
    assert "file descriptors open: raise ulimit -n" in told


def test_reconcile_with_errors_says_its_check_is_incomplete(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Folders it could not list (ulimit -n reached) were reported, then 'found 0 orphans', as if it had
    looked everywhere."""
    from musicstore.cli import EXIT_INCONSISTENT, main, maintenance_commands
    from musicstore.maintenance.findings import ReconcileReport

    def listed_in_part(*args: object, **kwargs: object) -> ReconcileReport:
        report = ReconcileReport(root=str(tmp_path), repair=False, quarantine=None)
        report.errors.append("cannot list 2025/02: [Errno 24] Too many open files: '02'")
        return report

    monkeypatch.setattr(maintenance_commands, "reconcile", listed_in_part)
    assert main(["reconcile", "-d", sqlite_url, "-o", str(tmp_path)]) == EXIT_INCONSISTENT
    out = capsys.readouterr().out
    assert "found 0 orphans" in out and "the check is incomplete: 1 error(s) above" in out
