"""The PostgreSQL backend (psycopg 3): pooled ``autocommit=True`` connections, work in ``conn.transaction()``.

For several GPU hosts sharing one job store. The same named queries as SQLite, with PostgreSQL's own versions
under ``sql/postgres/`` where it must differ (the claim's ``FOR UPDATE SKIP LOCKED``). Needs the ``postgres``
extra: ``pip install 'musicstore[postgres]'``.
"""

from __future__ import annotations

import functools
import os
import select
import threading
from os import getpid
from time import monotonic
from typing import Any

from ..errors import (
    CommitUnknown,
    DatabaseBusy,
    DatabaseError,
    InvalidInput,
    MigrationError,
    MusicstoreError,
    WriteConflict,
)
from ..queries import load
from ..urls import without_password
from . import closed_store, quiet_pool_failures
from .postgres_settings import _connect_timeout, connect_settings, pool_options, session_refused

quiet_pool_failures()  # the typed error says it once

DIALECT = "postgres"
# A read-only transaction is a snapshot: the connection setting, like SQLite's PRAGMAs.
READ_ONLY_SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"


class Command(str):
    """A transaction command (BEGIN, COMMIT) that a connection of this connector sends through libpq at once
    (``_command``) instead of psycopg's cursor: the same text, so any other connection runs it as usual."""

    __slots__ = ()


BEGIN_WRITE = Command("BEGIN")
BEGIN_READ_ONLY_SNAPSHOT = Command("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
COMMIT = Command("COMMIT")
BEGIN_LATER = Command("BEGIN")
"""Begins a write whose first statement may commit by itself (a write that is one statement, or whose
first statement leaves a consistent state whatever follows: a claim that took a job or found none): that
statement runs in autocommit, and BEGIN goes out only before a second one; a COMMIT with no BEGIN sent is
not sent either. Two round trips less for a one-statement write. Not for a write whose statements must
commit together: ``Operation.alone`` says which may (``store._direct_write``)."""
_OPEN = (2, 3)  # libpq's PQTRANS_INTRANS and PQTRANS_INERROR: a transaction to roll back
_IDLE = 0  # libpq's PQTRANS_IDLE: no transaction open, no command running
_FAILED = 3
"""libpq's PQTRANS_INERROR: a statement of the open transaction failed; PostgreSQL ignores what follows, and
answers COMMIT by rolling it back."""
_COMMAND_OK = 1  # libpq's PGRES_COMMAND_OK: a command that returns no rows succeeded
SPARE_SECONDS = 30.0
"""How long a connection stays the spare (``PostgresConnector.acquire``) before it goes back to the pool."""
_IDLE_EVENTS = select.POLLIN | select.POLLPRI
"""What ``_lost`` polls an idle connection's socket for (``poll`` adds its end, an error, a closed fd)."""


def _modules() -> tuple[Any, Any]:
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise InvalidInput(
            f"PostgreSQL URLs need psycopg 3 and psycopg_pool: pip install 'musicstore[postgres]' ({exc})"
        ) from None
    return psycopg, psycopg_pool


def _command(conn: Any, command: Command) -> None:
    """Run BEGIN or COMMIT on ``conn`` as libpq's ``PQexec`` (one simple-protocol message, the GIL released
    while it waits), without psycopg's cursor and execute loop: measured, 55 µs less client CPU and 10 µs
    less server CPU for a BEGIN and a COMMIT. Only these: psycopg must see a ROLLBACK (it forgets its
    prepared statements there), and a statement's parameters and rows need its cursor."""
    try:
        result = conn.pgconn.exec_(command.encode())
        if result.status != _COMMAND_OK:
            raise _modules()[0].errors.error_from_result(result, encoding=conn.info.encoding)
    except Exception as exc:
        if command is COMMIT:
            commit_failed(conn, exc)
        raise


_OUTCOME_UNKNOWN = "musicstore_commit_unknown"
"""The attribute ``commit_failed`` sets on a COMMIT's error whose connection ended, read by ``translate``."""
_CONNECTION_OK = 0  # libpq's CONNECTION_OK


def commit_failed(conn: Any, exc: BaseException) -> None:
    """Mark ``exc``, raised by a COMMIT sent on ``conn`` (sync or async), or by a statement that commits
    itself (a write's first, in autocommit: ``BEGIN_LATER``), as a COMMIT whose outcome is unknown where the
    connection ended with it (a restart, ``pg_terminate_backend``, a network cut): the
    server may have committed before its answer was lost; ``translate`` makes it ``CommitUnknown``. An
    error the server answered on a live connection (a deferred constraint) rolled the transaction back."""
    if conn.pgconn.status != _CONNECTION_OK:
        setattr(exc, _OUTCOME_UNKNOWN, True)


def _due(conn: Any, query: Any) -> Command | None:
    """The command to send before ``query`` on ``conn`` (``query`` itself for a ``Command``), keeping
    ``BEGIN_LATER``'s state in ``conn.later``: the one place the sync and async connections decide it."""
    if query.__class__ is Command:
        if query is BEGIN_LATER:
            conn.later = 1
            return None
        if conn.later:  # no BEGIN sent (yet): nothing to commit
            conn.later = 0
            return None if query is COMMIT else query
        return query
    if conn.later == 1:
        conn.later = 2  # the first statement: in autocommit
    elif conn.later:
        conn.later = 0
        return BEGIN_WRITE
    return None


@functools.cache
def connection_class() -> type[Any]:
    """The pool's connection class: a psycopg ``Connection`` that runs a ``Command`` (what ``store.py``
    passes to ``execute`` to begin and commit a write) through ``_command``, anything else as psycopg does."""
    import psycopg

    execute = psycopg.Connection.execute

    class Connection(psycopg.Connection[Any]):
        later = 0
        """``BEGIN_LATER``'s state: 1 before the first statement, 2 before the second, else 0."""
        idle: Any = None
        """A ``select.poll`` of its socket, for ``_lost`` (made by the pool's ``configure``)."""

        def execute(
            self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool = False
        ) -> Any:
            due = _due(self, query)
            if due is not None:
                _command(self, due)
            if query.__class__ is Command:
                return None
            try:
                return execute(self, query, params, prepare=prepare, binary=binary)
            except Exception as exc:
                if self.later == 2:  # a write's first statement, in autocommit: it commits itself
                    commit_failed(self, exc)
                raise

    return Connection


def encode(params: dict[str, Any]) -> dict[str, Any]:
    return params  # psycopg binds aware datetimes as timestamptz: nothing to convert


def translate(exc: BaseException, where: object) -> MusicstoreError | None:
    """The musicstore error for a psycopg or pool error (None for anything else)."""
    psycopg, psycopg_pool = _modules()
    errors = psycopg.errors
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return DatabaseBusy(f"{where}: no pooled connection came free in time ({exc}); raise pool_size")
    if isinstance(exc, psycopg_pool.PoolClosed):  # only close() closes the store's pool: a wait it cut short
        return closed_store()
    if not isinstance(exc, psycopg.Error):
        return None
    if getattr(exc, _OUTCOME_UNKNOWN, False):
        return CommitUnknown(
            f"{where}: the connection was lost while its COMMIT (or a write committing itself) was in flight"
            f" ({exc}); the transaction may or may not have been committed: read back what it wrote before"
            " running it again"
        )
    if isinstance(exc, errors.UndefinedTable):
        primary = exc.diag.message_primary or str(exc)  # not the statement and its caret (LINE 1: ...)
        why = "the schema is missing (from the schemas on search_path)"
        return MigrationError(f"{where}: {primary}: {why}; run `musicstore migrate`")
    if isinstance(exc, errors.DeadlockDetected | errors.SerializationFailure):
        return WriteConflict(f"{where}: concurrent writers conflicted ({exc}); retry")
    if isinstance(exc, errors.LockNotAvailable):
        return DatabaseBusy(f"{where}: another transaction held a row lock past the busy timeout ({exc})")
    if isinstance(exc, errors.QueryCanceled):  # as a lock wait past lock_timeout: transient, nothing written
        why = "past its statement_timeout (the URL's, the role's or the database's) or on request"
        return DatabaseBusy(f"{where}: the server cancelled a statement {why} ({exc})")
    if isinstance(exc, psycopg.IntegrityError):
        return DatabaseError(f"{where}: a schema constraint refused the change ({exc})")
    return DatabaseError(f"{where}: {exc}")


def _aborted(where: str, ended: bool = False) -> DatabaseError:
    """A transaction's end where a statement failed, or (``ended``) the server ended its connection."""
    ending = "the server ended its connection (a restart, idle_in_transaction_session_timeout...)"
    why = f"{ending} before its COMMIT" if ended else "a statement in this transaction failed"
    return DatabaseError(f"{where}: {why}, so PostgreSQL rolled it all back; nothing of it was committed")


def _unreachable(where: str, exc: BaseException) -> DatabaseError:
    why = "check the URL, the credentials and that the server is running"
    return DatabaseError(f"{where}: cannot connect to the database ({exc}); {why}")


def _unsettable(where: str, exc: BaseException) -> DatabaseError:
    """A connection whose session settings (``set_lock_timeout``) were refused: the pool makes none."""
    why = session_refused(exc)
    return DatabaseError(f"{where}: the server refused a new connection's session settings ({exc}){why}")


def _lock_timeout(timeout: float) -> str:
    """``busy_timeout`` as PostgreSQL's lock_timeout: whole milliseconds, at least 1 (0: wait forever)."""
    return f"{max(1, round(timeout * 1000))}ms"


def _lock_setting(timeout: float, driver: str) -> tuple[str, dict[str, str]]:
    """The ``set_lock_timeout`` query (``sql/postgres/session.sql``) and its parameters for ``timeout``."""
    return load(DIALECT, driver)["set_lock_timeout"].sql, {"lock_timeout": _lock_timeout(timeout)}


def _configure(timeout: float) -> Any:
    """The pool's ``configure`` callback: each new connection waits for a row lock as long as for SQLite's
    writer lock, ``busy_timeout``, then ``DatabaseBusy`` (without it, a write behind another transaction's
    row lock waited for as long as that transaction stayed open); and gets the poll ``_lost`` asks."""
    sql, params = _lock_setting(timeout, "psycopg")

    def configure(conn: Any) -> None:
        conn.execute(sql, params)
        _watch(conn)

    return configure


def _watch(conn: Any) -> None:
    """Give a new connection of the pool the ``poll`` of its socket that ``_lost`` asks."""
    conn.idle = select.poll()
    conn.idle.register(conn.pgconn.socket, _IDLE_EVENTS)


def _lost(conn: Any) -> bool:
    """Whether ``conn``, idle since it was given back (in the pool, or the spare), must not be used: the
    server ended it meanwhile (``pg_terminate_backend``, ``idle_session_timeout``, a restart, a failover), so
    its first statement would fail with 'terminating connection' or 'server closed the connection'.

    Nothing is sent: a server that ends a session sends its reason and closes the socket, and a connection
    that waits for no answer is sent nothing else (the store's connections LISTEN to nothing; a setting's
    new value comes with a query's answer). So a socket with anything to read, its end, or an error says the
    connection is gone, and ``poll`` asks without waiting: measured, 0.4 µs, where a query to check it
    (psycopg_pool's ``check``) is a round trip. A connection the pool did not make (no ``idle``) is
    taken as live. Then no write is sent twice: what ``acquire`` hands out instead has had nothing sent."""
    idle = conn.idle
    return idle is not None and bool(idle.poll(0))


class PostgresConnector:
    """A psycopg_pool ``ConnectionPool`` (per process: a forked child opens its own)."""

    dialect = DIALECT
    driver = "psycopg"
    encode = staticmethod(encode)
    closed = False
    """Set by ``close``: no pool is opened again."""
    BEGIN_WRITE = BEGIN_WRITE
    """What starts a write transaction (``store._direct_write``: ``conn.execute(BEGIN_WRITE)``)."""
    BEGIN_LATER = BEGIN_LATER
    """What starts a write whose first statement may commit by itself (``Operation.alone``)."""
    COMMIT = COMMIT

    def __init__(self, url: str, *, pool_size: int, timeout: float) -> None:
        psycopg, _ = _modules()
        self.url = url
        self.where = without_password(url)
        self.pool_size = pool_size
        self.timeout = timeout
        self.errors: tuple[type[BaseException], ...] = (psycopg.Error, _modules()[1].PoolTimeout)
        self._pid = -1
        self._pool: Any = None
        self._owners: dict[int, Any] = {}  # id(connection) -> the pool it came from, while it is lent out
        self._owners_pid = os.getpid()
        self._owners_lock = threading.Lock()
        self._spare: list[Any] = []  # at most one idle connection kept out of the pool (see ``acquire``)
        self._spare_until = 0.0  # when the spare goes back through the pool (its checks and expiry)

    def translate(self, exc: BaseException) -> MusicstoreError | None:
        return translate(exc, self.where)

    @property
    def pool(self) -> Any:
        if self._pid != os.getpid():
            if self.closed:
                raise closed_store()
            _, psycopg_pool = _modules()
            self._pool = psycopg_pool.ConnectionPool(
                self.url,
                **pool_options(self.url, self.pool_size, self.timeout),
                connection_class=connection_class(),
                configure=_configure(self.timeout),
                open=True,
            )
            self._pid = os.getpid()
            if self._owners_pid != self._pid:  # a forked child: its parent's connections are not its own
                self._owners, self._owners_pid = {}, self._pid
            self._spare = []
        return self._pool

    def acquire(self) -> Any:
        """A connection: the spare one if it is free, else one from the pool.

        Measured: the pool's ``getconn`` and ``putconn`` with this class's bookkeeping cost 7-10 µs of CPU a
        pair (a lock, the pool's statistics, its expiry and state checks), most of the library's own work in a
        read on PostgreSQL; with the spare, 1.2 µs. The last connection given back clean (idle, no open
        transaction) is kept aside as the spare, still lent out in the pool's books, and the next ``acquire``
        of any thread takes it (``list.pop``: atomic). It holds no more connections open than the pool's
        ``min_size`` of 1 does, and goes back through the pool at least every ``SPARE_SECONDS`` (the pool's
        health and lifetime checks, its ``max_lifetime``).

        A connection the server ended while it sat idle (``_lost``: nothing sent to find out) is not handed
        out: it is closed, the pool tests its other idle ones (``release``), and another is taken."""
        if self._pid == getpid():
            try:
                conn = self._spare.pop()
            except IndexError:
                pass
            else:
                if not _lost(conn):
                    return conn
                self._discard(conn)
        conn = self._getconn()
        for _ in range(self.pool_size):  # each idle connection at most (the pool's check replaced them)
            if not _lost(conn):
                break
            self._discard(conn)
            conn = self._getconn()
        return conn

    def _getconn(self) -> Any:
        """A connection from the pool, lent out in this connector's books."""
        pool = self.pool
        try:
            conn = pool.getconn()
        except _modules()[1].PoolTimeout:
            if len(self._owners) >= self.pool_size:  # every connection lent out: busy
                raise
            # not all lent out: the pool could not connect within busy_timeout. An unreachable server says
            # why; a reachable one slower to connect than that (remote, TLS) gets libpq's connect timeout
            self._check_reachable()
            conn = pool.getconn(timeout=_connect_timeout(self.timeout))
        with self._owners_lock:
            self._owners[id(conn)] = pool  # returned to this pool even if the store is closed meanwhile
        return conn

    def _discard(self, conn: Any) -> None:
        """Close ``conn`` (``_lost``) and give it back, which the pool replaces; the pool's idle connections
        are likely gone too: the pool tests them now (as ``release`` does after a broken one), so that one
        lost connection replaces them all, not one each."""
        conn.close()
        with self._owners_lock:
            pool = self._owners.pop(id(conn))
        pool.putconn(conn)
        if not pool.closed:
            pool.check()

    def _check_reachable(self) -> None:
        """Raise DatabaseError with the reason if a fresh connection to the database fails, or its session
        settings (the pool's ``configure``) are refused."""
        psycopg = _modules()[0]
        try:
            conn = psycopg.connect(self.url, **connect_settings(self.url, self.timeout))
        except psycopg.Error as exc:
            raise _unreachable(self.where, exc) from exc
        with conn:
            try:
                conn.execute(*_lock_setting(self.timeout, "psycopg"))
            except psycopg.Error as exc:
                raise _unsettable(self.where, exc) from exc

    def release(self, conn: Any) -> None:
        """Keep ``conn`` as the spare if none is kept and it is clean (see ``acquire``), else give it back to
        the pool it came from (a closed pool closes it)."""
        conn.later = 0  # a BEGIN_LATER never ended (a caller that neither committed nor rolled back)
        if not self._spare and conn.pgconn.transaction_status == _IDLE:
            with self._owners_lock:
                pool = self._owners.get(id(conn))
                if pool is not None and pool is self._pool and not self._spare:
                    now = monotonic()
                    if now < self._spare_until:
                        self._spare.append(conn)
                        return
                    self._spare_until = now + SPARE_SECONDS  # this one goes back; the next may stay
        with self._owners_lock:
            pool = self._owners.pop(id(conn))
        pool.putconn(conn)  # a closed pool closes the connection
        if conn.broken and not pool.closed:
            # the server ended it (restarted, or the backend was terminated): the pool's idle connections are
            # likely dead too; test them now, so that one failure replaces them all, not one each
            pool.check()

    @staticmethod
    def begin(conn: Any, *, write: bool) -> None:
        """BEGIN, or a read-only snapshot (one command either way, on the ``autocommit`` connection)."""
        _command(conn, BEGIN_WRITE if write else BEGIN_READ_ONLY_SNAPSHOT)

    def commit(self, conn: Any) -> None:
        """COMMIT; ``_aborted`` instead where a statement failed (its error caught: COMMIT would roll back,
        silently) or the server ended the connection meanwhile (``_lost``: COMMIT would fail as if lost)."""
        if conn.pgconn.transaction_status == _FAILED or _lost(conn):  # the COMMIT would fail or roll back
            raise _aborted(self.where, ended=_lost(conn))
        _command(conn, COMMIT)

    @staticmethod
    def rollback(conn: Any) -> None:
        """ROLLBACK, if a transaction is open (or failed) on a connection that still works. One the server
        ended (a restart, ``pg_terminate_backend``) ended its transaction: the ROLLBACK's failure does not
        replace the error being handled (the block's own, a Ctrl-C), as psycopg's ``transaction`` does not."""
        conn.later = 0  # a BEGIN_LATER not yet sent ends here too
        if conn.pgconn.transaction_status in _OPEN:
            try:
                conn.execute("ROLLBACK")
            except _modules()[0].Error:
                if not conn.broken:
                    raise

    def close(self) -> None:
        """Close the pool (a connection lent out goes back to it and is closed then); none is opened again."""
        self.closed = True
        with self._owners_lock:
            spare, self._spare = self._spare, []
            pool, mine = self._pool, self._pid == os.getpid()
            self._pool, self._pid = None, -1
            if mine:
                for conn in spare:
                    self._owners.pop(id(conn), None)
        if pool is not None and mine:
            for conn in spare:
                pool.putconn(conn)
            pool.close()
