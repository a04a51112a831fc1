"""PostgreSQL under real-world failures (session 29): a database that may only be read, a role that may not
create tables, and more found hunting."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import psycopg
import pytest

from musicstore import AsyncStore, DatabaseBusy, DatabaseError, MigrationError, Store, migrate
from musicstore.migrate import shipped_migrations


def test_migrating_a_database_that_may_only_be_read_says_so(scratch_database: tuple[Any, str]) -> None:
    """A fresh database set read-only (``default_transaction_read_only``: a replica, a database an operator
    froze): yoyo's creation of its lock table failed and yoyo ignored it, so ``migrate`` raised
    'relation "yoyo_lock" does not exist', which names no cause. The error now says why the table is not
    there: the database refused to create it, read-only."""
    server, name = scratch_database
    server.admin(f"CREATE DATABASE {name}", f"ALTER DATABASE {name} SET default_transaction_read_only = on")
    with pytest.raises(MigrationError) as refused:
        migrate(server.url(name))
    message = str(refused.value)
    assert "read-only transaction" in message and "yoyo_lock" in message
    assert "does not exist" not in message


def test_migrating_as_a_role_that_may_not_create_tables_says_so(scratch_database: tuple[Any, str]) -> None:
    """The same for a role without CREATE on the schema (PostgreSQL 15's default for a role that does not own
    the database): 'permission denied for schema public', not 'relation "yoyo_lock" does not exist'."""
    server, name = scratch_database
    role = f"reader_{name}"
    server.admin(f"CREATE DATABASE {name}", f"CREATE ROLE {role} LOGIN")
    try:
        with psycopg.connect(server.url(name), autocommit=True) as conn:
            conn.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {role}")
        url = server.url(name).replace("musicstore@", f"{role}@")
        with pytest.raises(MigrationError) as refused:
            migrate(url)
        message = str(refused.value)
        assert "permission denied for schema public" in message and "yoyo_lock" in message
        assert "does not exist" not in message
    finally:
        server.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"DROP ROLE IF EXISTS {role}")


def _end_sessions_of(url: str) -> None:
    """End every other session on ``url``'s database (``pg_terminate_backend``: a restart, a failover), and
    wait (up to 60 s) until each has exited: the server has sent its 'terminating connection' and closed the
    socket. Without the wait, pg_terminate_backend returns once it has signalled the session, and a stall of
    the session's process let the store send its next statement (a COMMIT) first."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid, 60000) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def _until_no_session_idle_in_transaction(url: str) -> None:
    """Wait (up to 60 s) until no session on ``url``'s database is idle in a transaction: the server's
    ``idle_in_transaction_session_timeout`` has ended each (a fixed sleep did not leave room for a stall)."""
    deadline = time.monotonic() + 60
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND state LIKE 'idle in transaction%'"
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            time.sleep(0.05)
    raise AssertionError("a session stayed idle in its transaction for 60 s")


class _Mine(Exception):
    """The block's own error."""


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("raised", [_Mine, KeyboardInterrupt])
def test_a_transaction_whose_connection_died_ends_with_the_blocks_own_error(
    postgres_url: str, kind: str, raised: type[BaseException]
) -> None:
    """A ``store.transaction()`` block that raised (its own error, a Ctrl-C) after the server ended its
    connection (a restart, a failover, ``pg_terminate_backend``): ``Store`` sent ROLLBACK on the dead
    connection and raised that failure, a DatabaseError 'terminating connection due to administrator
    command', in place of the block's error (a KeyboardInterrupt too), where ``AsyncStore`` raised the
    block's own. Nothing was committed either way (the server rolls back a transaction whose connection
    ends); the block's error is raised now, and the store works on."""
    job = None

    def block(tx: Any) -> None:
        _end_sessions_of(postgres_url)
        raise raised("mine")

    if kind == "sync":
        with Store(postgres_url) as store:
            with pytest.raises(raised), store.transaction() as tx:
                job = tx.create_generation("never stored", model_name="m", duration_seconds=1)
                block(tx)
            assert store.count_generations() == 0
    else:

        async def main() -> None:
            nonlocal job
            async with AsyncStore(postgres_url) as store:
                with pytest.raises(raised):
                    async with store.transaction() as tx:
                        job = await tx.create_generation("never stored", model_name="m", duration_seconds=1)
                        block(tx)
                assert await store.count_generations() == 0

        asyncio.run(main())
    assert job is not None


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_statement_timeout_is_busy_as_a_lock_timeout_is(postgres_url: str, kind: str) -> None:
    """A write waiting for a row lock another transaction holds ended, where the URL (a role, the database)
    set a ``statement_timeout`` shorter than ``busy_timeout``, with a plain DatabaseError 'canceling statement
    due to statement timeout', where the same wait past the busy timeout (``lock_timeout``) is DatabaseBusy:
    a worker rides out a busy claim and ended its run on this one. A statement the server cancelled is
    DatabaseBusy too (transient; nothing of it committed), saying why."""
    with Store(postgres_url) as store:
        store.create_generation("held", model_name="m", duration_seconds=1)
        job = store.claim_next("w")
    assert job is not None
    url = f"{postgres_url}?options=-c%20statement_timeout%3D300"
    with psycopg.connect(postgres_url) as holder:
        holder.execute("SELECT id FROM generations WHERE id = %s FOR UPDATE", (job.id,))
        if kind == "sync":
            with Store(url, busy_timeout=30) as store, pytest.raises(DatabaseBusy) as busy:
                store.heartbeat(job.id, "w")
        else:

            async def main() -> None:
                async with AsyncStore(url, busy_timeout=30) as store:
                    await store.heartbeat(job.id, "w")

            with pytest.raises(DatabaseBusy) as busy:
                asyncio.run(main())
    assert "statement_timeout" in str(busy.value) and "statement timeout" in str(busy.value)
    # a statement_timeout too, but one no statement of a loaded machine's meets (300 ms: any could)
    with Store(url.replace("%3D300", "%3D60000")) as store:
        assert store.heartbeat(job.id, "w") is not None  # the lock gone: the store works on


def test_an_async_transaction_on_a_lost_connection_logs_no_warning(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The same block on ``AsyncStore``: its own error was raised, and psycopg logged a WARNING on top ('error
    ignored in rollback of <psycopg.AsyncTransaction ...>: terminating connection ...', on stderr with no
    logging configured), where ``Store`` logs nothing: at DEBUG now, as the pool's records of a lost
    connection (``backends.QuietPoolFailures``)."""

    async def main() -> None:
        async with AsyncStore(postgres_url) as store:
            with pytest.raises(_Mine):
                async with store.transaction() as tx:
                    await tx.create_generation("never stored", model_name="m", duration_seconds=1)
                    _end_sessions_of(postgres_url)
                    raise _Mine("mine")

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    assert not [record for record in caplog.records if "rollback" in record.getMessage()]


def test_migrating_a_read_only_database_with_a_migration_left_fails_at_once(
    scratch_database: tuple[Any, str],
) -> None:
    """A migrated database set read-only (a replica) where a migration is left (a newer musicstore starting
    there, ``Store(url, migrate=True)``): each try of yoyo's lock row was refused as read-only, and tried
    again until ``lock_timeout`` (60 s by default) before the MigrationError said so. A refusal no wait
    ends (read-only, a role without the right to write the row) now fails the first try."""
    server, name = scratch_database
    server.admin(f"CREATE DATABASE {name}")
    url = server.url(name)
    migrate(url)
    last = shipped_migrations()[-1]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM _yoyo_migration WHERE migration_id = %s", (last,))
    server.admin(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
    began = time.monotonic()
    with pytest.raises(MigrationError) as refused:
        migrate(url, lock_timeout=90)
    assert time.monotonic() - began < 30  # the first try, not lock_timeout (90 s)
    message = str(refused.value)
    assert "cannot take the migration lock, no process holds it" in message
    assert "read-only transaction" in message and "20" not in message.partition("refused")[2]


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("ending", ["terminated", "idle_in_transaction_session_timeout"])
def test_a_transaction_whose_connection_the_server_ended_says_nothing_was_committed(
    postgres_url: str, kind: str, ending: str
) -> None:
    """A ``store.transaction()`` block that ended normally after the server ended its connection while the
    block ran (a restart, ``pg_terminate_backend``, the server's ``idle_in_transaction_session_timeout``):
    its COMMIT was sent on the dead connection and failed as a COMMIT whose answer was lost does ('server
    closed the connection unexpectedly', 'terminating connection ...'), so the caller could not tell whether
    it committed. Nothing was sent since the server ended it, so nothing was: the error now says so, before
    any COMMIT is sent (the socket asked without waiting, as for an idle pooled connection)."""
    url = postgres_url
    if ending != "terminated":
        url += "?options=-c%20idle_in_transaction_session_timeout%3D200"

    def end() -> None:
        if ending == "terminated":
            _end_sessions_of(postgres_url)
        else:
            time.sleep(0.2)
            _until_no_session_idle_in_transaction(postgres_url)

    if kind == "sync":
        with Store(url) as store:
            with pytest.raises(DatabaseError) as ended, store.transaction() as tx:
                tx.create_generation("never stored", model_name="m", duration_seconds=1)
                end()
            assert store.count_generations() == 0
    else:

        async def main() -> DatabaseError:
            async with AsyncStore(url) as store:
                with pytest.raises(DatabaseError) as caught:
                    async with store.transaction() as tx:
                        await tx.create_generation("never stored", model_name="m", duration_seconds=1)
                        end()
                assert await store.count_generations() == 0
                return caught.value

        error = asyncio.run(main())
    message = str(ended.value if kind == "sync" else error)
    assert "before its COMMIT" in message and "nothing of it was committed" in message
