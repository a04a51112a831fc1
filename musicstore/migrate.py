"""Schema migrations with yoyo: the same ``migrations/`` that ``yoyo apply`` runs, shipped in the wheel.

The migrations import this module (``dialect_sql_step``), so ``yoyo apply`` must run where musicstore is
installed. ``migrations_path`` and ``yoyo_url`` give ``yoyo apply`` its source folder and database.
"""

from __future__ import annotations

import functools
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from . import validate
from .backends.postgres_settings import session_refused, with_defaults
from .backends.sqlite import _check_sqlite_file, file_write_failure, switch_to_wal, unopened_why
from .errors import MigrationError
from .masking import is_secret_parameter
from .migrate_schema import check_schemas
from .processes import alive
from .queries import data_dir, execute, load
from .urls import resolve, without_password


def migrations_path() -> Path:
    """The folder of the migrations this musicstore ships: ``yoyo apply``'s source for a wheel's user."""
    return data_dir("migrations")


def yoyo_url(url: str | None = None) -> tuple[str, bool]:
    """``url`` (default ``$MUSICSTORE_DATABASE_URL``, else the SQLite default) spelled for ``yoyo apply``.

    PostgreSQL becomes ``postgresql+psycopg://`` (yoyo's name for psycopg 3) and a SQLite path absolute. A
    password (in the userinfo or a secret parameter such as ``password=``) is left out, so that printing the
    URL never shows it: yoyo's driver reads it from ``PGPASSWORD`` or ``~/.pgpass``, or ``yoyo apply
    --prompt-password`` asks for it. Returns the URL and whether a password was left out.
    """
    target = resolve(url)
    if target.path is not None:
        return target.yoyo_url, False
    scheme, netloc, path, query, _ = urlsplit(target.yoyo_url)
    userinfo, at, host = netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    parameters = [part for part in query.split("&") if part]
    kept = [part for part in parameters if not is_secret_parameter(unquote(part.partition("=")[0]))]
    removed = bool(password) or len(kept) < len(parameters)
    query = "&".join(kept)
    # by hand: urlunsplit drops an empty host's '//' for a scheme it does not know (postgresql+psycopg:/?...)
    return f"{scheme}://{user}{at}{host}{path}" + (f"?{query}" if query else ""), removed


def shipped_migrations() -> list[str]:
    """The ids of the migrations this version of musicstore ships, in order."""
    return sorted(
        path.stem
        for path in data_dir("migrations").iterdir()
        if path.suffix in {".sql", ".py"} and not path.name.endswith(".rollback.sql")
    )


def _dialect_of(conn: Any) -> str:
    return "sqlite" if type(conn).__module__.startswith("sqlite3") else "postgres"


def dialect_sql_step(migration_file: str) -> None:
    """In a Python migration: add a yoyo step that runs ``<dialect>/<id>.sql`` beside it (and its rollback).
    Where SQLite and PostgreSQL DDL differ (types, JSON checks, triggers), each dialect keeps a plain SQL
    file of its own; the migration picks by the connection it is given."""
    import sqlparse  # a dependency of musicstore (yoyo's SQL splitter too)
    from yoyo import step

    here = Path(migration_file)

    def runner(suffix: str) -> Callable[[Any], None]:
        def run(conn: Any) -> None:
            script = (here.parent / _dialect_of(conn) / f"{here.stem}{suffix}.sql").read_text("utf-8")
            cursor = conn.cursor()
            try:
                for statement in sqlparse.split(sqlparse.format(script, strip_comments=True)):
                    if statement.strip():
                        cursor.execute(statement)
            finally:
                cursor.close()

        return run

    step(runner(""), runner(".rollback"))


def dialect_queries(migration_file: str, conn: Any) -> dict[str, str]:
    """In a Python migration that moves data through Python: the named statements (``-- name: NAME``
    blocks, in the connection's parameter style) of ``<dialect>/<id>.sql`` beside it."""
    here = Path(migration_file)
    script = (here.parent / _dialect_of(conn) / f"{here.stem}.sql").read_text(encoding="utf-8")
    queries: dict[str, str] = {}
    name = None
    for line in script.splitlines():
        if line.startswith("-- name: "):
            name = line.removeprefix("-- name: ").strip()
            queries[name] = ""
        elif name is not None and not line.startswith("--"):
            queries[name] += line + "\n"
    return {name: text.strip().rstrip(";") for name, text in queries.items()}


CONNECT_SECONDS = 10
"""libpq's connect timeout of a migration's PostgreSQL connections where neither the URL nor
``PGCONNECT_TIMEOUT`` sets one (psycopg's default waited 130 s for a server that never answered)."""


def migrate(url: str | None = None, *, lock_timeout: float = 60.0) -> list[str]:
    """Apply every pending migration to the database at ``url``; returns the ids applied.

    Concurrent callers (several processes starting at once) are safe: yoyo's lock serialises them and the
    later ones find nothing left to apply. MigrationError if the lock is not had in ``lock_timeout``."""
    from yoyo import read_migrations
    from yoyo.exceptions import LockTimeout

    validate.database_url(url)
    lock_timeout = validate.number(
        lock_timeout, "lock_timeout", positive=False, high=validate.MAX_BUSY_TIMEOUT
    )
    deadline = time.monotonic() + lock_timeout if lock_timeout else None  # 0: wait for ever, as yoyo does
    target = resolve(url)
    where = without_password(target.url)
    failures = _database_errors(target.dialect)
    try:
        if target.path is not None:
            target.path.parent.mkdir(parents=True, exist_ok=True)
            _check_sqlite_file(target.path, lock_timeout or validate.MAX_BUSY_TIMEOUT)
        if target.dialect == "postgres":
            _libpq_reads(target.url)
        backend = _open_backend(target.yoyo_url, target.dialect, deadline, where)
    except ImportError as exc:
        raise MigrationError(
            f"{where}: {exc.name or 'a driver'} is not installed; PostgreSQL needs the postgres extra: "
            "pip install 'musicstore[postgres]'"
        ) from None
    except failures as exc:
        why = unopened_why(exc, target.path) if target.path is not None else session_refused(exc)
        raise MigrationError(
            f"{where}: cannot open the database to migrate it ({exc}){why or '; check the URL'}"
        ) from exc
    stops: tuple[type[BaseException], ...] = (*failures, KeyboardInterrupt, SystemExit)
    failed: BaseException | None = None
    applying: list[str] = []  # the id of the migration being applied, once one is
    held = [False]  # whether this process may hold yoyo's lock: from a try of its row that did not fail
    try:
        if _up_to_date(backend, target.dialect):  # no lock to take: a role that may only read can call this
            return []
        migrations = read_migrations(str(migrations_path()))
        if target.path is not None:
            _drop_dead_holders_lock(backend)
        with _migration_lock(backend, target.dialect, deadline, held):
            pending = backend.to_apply(migrations)
            _apply(backend, pending, applying)
    except LockTimeout as exc:
        raise MigrationError(_lock_held(backend, target.dialect, where, lock_timeout, exc)) from exc
    except stops as exc:
        failed = exc
    finally:
        backend.connection.close()
    if failed is None:
        return [migration.id for migration in pending]
    if held[0]:
        _release_own_lock(target.yoyo_url, target.dialect)
    if isinstance(failed, KeyboardInterrupt | SystemExit):
        raise failed
    stop = _interrupt_in(failed)
    if stop is not None:
        raise type(stop)() from failed  # Terminated (a SIGTERM) stays one
    failed_why = f"{failed}{file_write_failure(failed, target.path)}"  # a file size limit, a full disk
    if applying:  # each migration is one transaction: those before it stay applied, nothing of it does
        raise MigrationError(
            f"{where}: migration {applying[-1]} failed ({failed_why}); the migrations before it are applied"
        ) from failed
    missing = getattr(failed, "sqlstate", None) == "42P01" or "no such table" in str(failed)  # the lock table
    if missing and (refused := getattr(backend, "lock_table_refused", None)) is not None:
        why = f"cannot create the lock table yoyo_lock ({refused}); migrate needs a database not read-only"
        raise MigrationError(f"{where}: {why} (a replica) and a role that may create tables") from refused
    raise MigrationError(f"{where}: a migration failed ({failed_why})") from failed


def _for_good(timeout: BaseException) -> bool:
    """Whether the lock row was refused for good (``timeout``'s cause): a read-only database, a role."""
    return getattr(timeout.__context__, "sqlstate", None) in ("25006", "42501")


YOYO_BUSY_MS = 5000
"""The busy timeout of yoyo's SQLite connection (sqlite3's default): what its migration statements wait for
another writer, once the lock is had."""


def _libpq_reads(url: str) -> None:
    """Raise psycopg's error if libpq cannot read ``url`` (a password percent-encoding a NUL, a bad escape),
    as the store's connections fail on it: yoyo, which reads a URL otherwise, connected with it anyway (to the
    local server's socket, with %00: its connection string ended at the NUL, before the host and port)."""
    from psycopg.conninfo import conninfo_to_dict

    conninfo_to_dict(url)


def _open_backend(yoyo_url: str, dialect: str, deadline: float | None, where: str) -> Any:
    """yoyo's backend for ``yoyo_url`` (``yoyo.get_backend``), its SQLite busy timeout bounded by ``deadline``
    before yoyo's first writes (its lock table, its DDL check; PostgreSQL: ``check_schemas`` first)."""
    backend = _backend(yoyo_url, dialect)
    try:
        _wait_until(backend, dialect, deadline)
        backend.applied_found = dialect == "postgres" and check_schemas(backend.connection, where)
        backend.init_database()
        if dialect == "sqlite":
            # WAL whether or not a migration is left: a migrated file in a rollback journal (a restored
            # backup, a copy made by another tool) is switched too (0001 switches only the files it migrates).
            # A file that cannot be switched (read-only) keeps its mode; Store() names that.
            switch_to_wal(backend.connection, deadline)
    except BaseException:
        backend.connection.close()
        raise
    return backend


def _backend(yoyo_url: str, dialect: str) -> Any:
    """yoyo's backend for ``yoyo_url`` (``yoyo.get_backend``); on PostgreSQL each of its connections (its
    copies' too, and again after a rollback: yoyo's ``init_connection``) gets the store's session settings,
    ``set_lock_timeout`` (``sql/postgres/session.sql``): client_encoding UTF8, DateStyle ISO and the rest,
    whatever the database's or role's (yoyo's own kept them: in a SQL_ASCII database psycopg sent text as
    bytea and the first migration failed), with lock_timeout 0 (DDL waits for its tables' locks) and no
    statement_timeout (``lift_statement_timeouts``). yoyo's probe of transactional DDL (which wrote) is
    skipped: both dialects have it."""
    from yoyo.connections import get_backend_class, parse_uri
    from yoyo.migrations import default_migration_table

    parsed = parse_uri(yoyo_url)
    base: Any = get_backend_class(parsed.scheme.lower())
    names = ("set_lock_timeout", "lift_statement_timeouts") if dialect == "postgres" else ()
    setting, unlimited = [_queries(dialect)[name].sql for name in names] or (None, None)

    class Backend(base):  # type: ignore[misc]
        def connect(self, dburi: Any) -> Any:
            if setting is None:
                return super().connect(dburi)
            # the store's connect timeout and keepalives; no dbname is None (dbname='' hid a service's)
            args = with_defaults(dburi.args, CONNECT_SECONDS)
            return super().connect(dburi._replace(database=dburi.database or None, args=args))

        def init_connection(self, connection: Any) -> None:
            super().init_connection(connection)
            if setting is not None:
                connection.execute(unlimited)  # first: a short statement_timeout cancelled the settings
                connection.execute(setting, {"lock_timeout": "0"})

        lock_table_refused: BaseException | None = None

        def create_lock_table(self) -> None:
            # yoyo's, keeping the refusal it ignores (a read-only database, a role: ``migrate`` says it)
            try:
                with self.transaction():
                    self.execute(self.format_sql(self.create_lock_table_sql))
            except self.DatabaseError as exc:
                self.lock_table_refused = exc

        def _check_transactional_ddl(self) -> bool:
            # Both dialects roll DDL back (_apply relies on it). yoyo's probe, a CREATE TABLE rolled back on
            # every open, waited for another SQLite writer up to lock_timeout even with nothing to apply,
            # and read a lock, or a role that may only read, as 'no'.
            return True

    return Backend(parsed, default_migration_table)


def _wait_until(backend: Any, dialect: str, deadline: float | None, ms: int | None = None) -> float | None:
    """SQLite: a write on yoyo's connection waits for another writer no later than ``deadline`` (or ``ms``
    when given). Returns the seconds left to ``deadline`` (None: no deadline)."""
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    if dialect == "sqlite" and (left is not None or ms is not None):
        wait = ms if ms is not None else math.ceil((left or 0.0) * 1000)
        backend.connection.execute(f"PRAGMA busy_timeout = {int(wait)}")
    return left


@contextmanager
def _migration_lock(backend: Any, dialect: str, deadline: float | None, held: list[bool]) -> Iterator[None]:
    """yoyo's migration lock (``backend.lock``), had by ``deadline`` or LockTimeout: each try to insert its
    row waits for SQLite's writer lock only as long as is left (yoyo's tries waited the connection's busy
    timeout, 5 s, each: lock_timeout=0.5 failed after 10 s), and the pause between tries ends there too.

    ``held[0]`` is True from each try on (a Ctrl-C in it may leave the row written) until the try fails:
    interrupted while waiting between tries, this process holds no lock, and the row of its pid is another
    host's (PostgreSQL is shared by hosts, whose processes, in containers, often have the same pid)."""
    from yoyo.exceptions import LockTimeout

    insert_once = functools.partial(type(backend)._insert_lock_row, backend, timeout=1e-9)  # one try

    def insert(pid: int, timeout: float, poll_interval: float = 0.5) -> None:
        while True:
            _wait_until(backend, dialect, deadline)
            held[0] = True
            try:
                return insert_once(pid)  # type: ignore[no-any-return]
            except LockTimeout as exc:
                held[0] = False  # its row is another process's
                left = _wait_until(backend, dialect, deadline)
                if (left is not None and left <= 0) or _for_good(exc):
                    raise
                time.sleep(poll_interval if left is None else min(poll_interval, left))

    backend._insert_lock_row = insert
    try:
        with backend.lock():
            _wait_until(backend, dialect, None, YOYO_BUSY_MS)
            yield
    finally:
        del backend._insert_lock_row


def _apply(backend: Any, pending: Any, applying: list[str]) -> None:
    """Apply ``pending`` in order: each migration's steps and its record in one transaction, on the lock's
    connection. yoyo's ``apply_one`` commits the steps (on a second connection), then records the migration
    in a transaction of its own, so a migration stopped between the two (Ctrl-C, SIGKILL, a lost connection)
    stayed applied but unrecorded, and every later migrate failed applying it again ('duplicate column').
    A migration that cannot run in a transaction (0001, SQLite's journal mode; idempotent) is yoyo's to run.
    ``applying`` gets each migration's id as it starts, so a failure can name it.
    """
    backend.ensure_internal_schema_updated()
    for migration in pending:
        applying.append(migration.id)
        migration.load()
        if not migration.use_transactions:
            backend.apply_one(migration)
            continue
        with backend.transaction():
            migration.process_steps(backend, "apply")
            backend.log_migration(migration, "apply")
            backend.mark_one(migration, log=False)
    applying.clear()  # every one applied: what may fail now is no migration's
    backend.run_post_apply(pending)


def _interrupt_in(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C (or SIGTERM's ``Terminated``) that ``error`` was raised while unwinding, if any: psycopg's
    connection, interrupted in a query, fails yoyo's rollback (and its lock's release) with an
    OperationalError that hides it."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _release_own_lock(yoyo_url: str, dialect: str) -> None:
    """After a failed migration, take back this process's migration lock on a new connection: yoyo releases
    it on its own connection, which fails when that connection broke (a Ctrl-C in a PostgreSQL query, a
    server restart), and the row then stopped every later migration. Best effort: a database still out of
    reach keeps it, and the next migration's error says how to break it."""
    try:
        backend = _backend(yoyo_url, dialect)
    except _database_errors(dialect):
        return
    try:
        with backend.transaction():
            execute(backend.connection, _queries(dialect)["drop_migration_lock"], {"pid": os.getpid()})
    except _database_errors(dialect):
        pass
    finally:
        backend.connection.close()


def _queries(dialect: str) -> dict[str, Any]:
    """The named queries for yoyo's connection to a ``dialect`` database (sqlite3 or psycopg)."""
    return load(dialect, "sqlite3" if dialect == "sqlite" else "psycopg")


def _lock_holder(backend: Any, dialect: str) -> tuple[int, object] | None:
    """yoyo's migration lock row (the process id that took it, and when), or None."""
    holder = execute(backend.connection, _queries(dialect)["migration_lock_holder"], {})
    return None if holder is None else (int(holder["pid"]), holder["ctime"])


def _drop_dead_holders_lock(backend: Any) -> None:
    """SQLite: remove the migration lock of a process that died holding it (killed mid-migration).

    yoyo's lock is a row that its holder deletes when done, so a process killed while migrating (SIGKILL,
    SIGTERM, a crash) leaves it, and every later migration waited ``lock_timeout`` and failed. A SQLite file
    is one host's (WAL needs shared memory), so the row's pid says whether its holder lives; its migration
    was one transaction, rolled back. The delete names that pid: a lock taken since is kept.
    """
    holder = _lock_holder(backend, "sqlite")
    if holder is None or alive(holder[0]):
        return
    with backend.transaction():
        execute(backend.connection, _queries("sqlite")["drop_migration_lock"], {"pid": holder[0]})


def _up_to_date(backend: Any, dialect: str) -> bool:
    """Whether every shipped migration is recorded as applied (read only; False where yoyo's table is not)."""
    if dialect == "postgres" and not backend.applied_found:  # not read: an error ends exit_on_error's session
        return False
    try:
        with backend.transaction():
            applied = execute(backend.connection, _queries(dialect)["applied_migrations"], {})
    except _database_errors(dialect):
        return False
    return set(shipped_migrations()) <= {row["migration_id"] for row in applied}


def _lock_held(backend: Any, dialect: str, where: str, lock_timeout: float, timeout: BaseException) -> str:
    """The message of a migration lock not had in time: who holds it, since when, and how to break it; or,
    where nobody holds it, why its row could not be written (yoyo retried that error until the timeout)."""
    try:
        holder = _lock_holder(backend, dialect)
    except _database_errors(dialect):
        holder = None
    refused, spent = timeout.__context__, "" if _for_good(timeout) else f" for {lock_timeout}s"
    if holder is None and isinstance(refused, _database_errors(dialect)):
        why = f"no process holds it: the database refused its row{spent} ({refused})"
        return f"{where}: cannot take the migration lock, {why}"
    who = "another process" if holder is None else f"process {holder[0]} (since {holder[1]} UTC)"
    return (
        f"{where}: {who} held the migration lock for {lock_timeout}s; if no migration is running (one "
        "killed mid-way leaves its lock), remove the lock with "
        '`yoyo break-lock --database "$(musicstore yoyo-url)"` and migrate again'
    )


def _database_errors(dialect: str) -> tuple[type[BaseException], ...]:
    """What opening or migrating a database raises: OS errors and its driver's errors."""
    if dialect != "postgres":
        return (OSError, sqlite3.Error)
    try:
        import psycopg
    except ImportError:  # migrate() names the missing extra
        return (OSError,)
    return (OSError, psycopg.Error)


def init_db(url: str | None = None) -> list[str]:
    """The seed's name for ``migrate``: create or upgrade the schema."""
    return migrate(url)
