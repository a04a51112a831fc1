"""The store's layer, session 31: a COMMIT whose answer was lost, a batch's rows put back after an ordinary
error before its items start, NaN kept out of the float columns, and the dashboard's model filter indexed."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import psycopg
import pytest

from musicstore import AsyncStore, CommitUnknown, DatabaseError, Store
from tests.conftest import until

_HOLD = 3131  # the advisory lock the deferred trigger waits for, at COMMIT


def _hold_commits(url: str) -> psycopg.Connection[Any]:
    """A deferred trigger on ``generations`` that waits, at COMMIT, for an advisory lock the returned
    connection holds: a transaction that inserted a generation stays in its COMMIT until it is let go."""
    conn = psycopg.connect(url, autocommit=True)
    conn.execute(
        "CREATE FUNCTION s31_hold() RETURNS trigger LANGUAGE plpgsql AS"
        f" $$ BEGIN PERFORM pg_advisory_xact_lock({_HOLD}); RETURN NULL; END $$"
    )
    conn.execute(
        "CREATE CONSTRAINT TRIGGER s31_hold AFTER INSERT ON generations DEFERRABLE INITIALLY DEFERRED"
        " FOR EACH ROW EXECUTE FUNCTION s31_hold()"
    )
    conn.execute(f"SELECT pg_advisory_lock({_HOLD})")
    return conn


def _committing(holder: psycopg.Connection[Any]) -> int | None:
    """The backend waiting in its COMMIT for the held advisory lock, if one is."""
    row = holder.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND wait_event_type = 'Lock' AND wait_event = 'advisory' AND query = 'COMMIT'"
    ).fetchone()
    return None if row is None else int(row[0])


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("way", ["operation", "block"])
def test_a_connection_lost_during_commit_says_the_outcome_is_unknown(
    postgres_url: str, kind: str, way: str
) -> None:
    """The server ended the connection while a write's COMMIT was in flight (a restart, a failover,
    ``pg_terminate_backend``): the store raised a plain DatabaseError ('terminating connection due to
    administrator command'), as for any failed statement, which a caller reads as 'nothing happened'. The
    server may have committed before the answer was lost: it is ``CommitUnknown`` now (a DatabaseError),
    saying the transaction may or may not have been committed; a write, or a ``transaction()`` block, on
    ``Store`` and ``AsyncStore``. The COMMIT is held by a deferred trigger until the server ends it."""
    holder = _hold_commits(postgres_url)
    raised: list[BaseException] = []

    def write() -> None:
        try:
            if kind == "sync":
                with Store(postgres_url) as store:
                    if way == "operation":
                        store.create_generation("lost commit", model_name="m", duration_seconds=1)
                    else:
                        with store.transaction() as tx:
                            tx.create_generation("lost commit", model_name="m", duration_seconds=1)
            else:

                async def main() -> None:
                    async with AsyncStore(postgres_url) as store:
                        if way == "operation":
                            await store.create_generation("lost commit", model_name="m", duration_seconds=1)
                        else:
                            async with store.transaction() as tx:
                                await tx.create_generation("lost commit", model_name="m", duration_seconds=1)

                asyncio.run(main())
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        until(lambda: _committing(holder) is not None or not thread.is_alive())
        pid = _committing(holder)
        assert pid is not None, raised  # the write waits in its COMMIT
        holder.execute("SELECT pg_terminate_backend(%s, 60000)", (pid,))
        thread.join(60)
        assert not thread.is_alive()
    finally:
        holder.execute(f"SELECT pg_advisory_unlock({_HOLD})")
        holder.close()
    assert len(raised) == 1, raised
    error = raised[0]
    assert isinstance(error, CommitUnknown) and isinstance(error, DatabaseError), repr(error)
    assert "may or may not have been committed" in str(error)
