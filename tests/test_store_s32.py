"""A write's single statement, which commits itself (session 32).

On PostgreSQL a write that is one statement (a claim, a heartbeat, a cancel: ``Operation.alone``) runs in
autocommit, with no BEGIN and no COMMIT (``backends.postgres.BEGIN_LATER``). When the server ended the
connection while that statement was in flight, the store raised a plain ``DatabaseError``, which a caller
reads as "nothing happened", though the statement may have committed before its answer was lost: it is
``CommitUnknown`` now, as for a lost COMMIT (``tests/test_store_s31.py``), sync and async.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from musicstore import AsyncStore, CommitUnknown, DatabaseError, Status, Store
from tests.test_store_s31 import lost_mid_write


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_connection_lost_during_a_write_committing_itself_says_the_outcome_is_unknown(
    postgres_url: str, kind: str
) -> None:
    with Store(postgres_url) as store:
        job = store.create_generation("lost cancel", model_name="m", duration_seconds=1)
    holder = psycopg.connect(postgres_url)  # a transaction holding the row: the cancel waits for it
    holder.execute("SELECT id FROM generations WHERE id = %s FOR UPDATE", (job.id,))
    watcher = psycopg.connect(postgres_url, autocommit=True)

    def cancel() -> None:
        if kind == "sync":
            with Store(postgres_url, busy_timeout=60) as store:
                store.cancel(job.id)
        else:

            async def main() -> None:
                async with AsyncStore(postgres_url, busy_timeout=60) as store:
                    await store.cancel(job.id)

            asyncio.run(main())

    try:
        raised = lost_mid_write(watcher, "UPDATE%", cancel)  # the cancel's UPDATE waits for the row
    finally:
        holder.rollback()
        holder.close()
        watcher.close()
    assert len(raised) == 1, raised
    error = raised[0]
    assert isinstance(error, CommitUnknown) and isinstance(error, DatabaseError), repr(error)
    assert "may or may not have been committed" in str(error)
    with Store(postgres_url) as store:
        row = store.get_generation(job.id)
    assert row is not None and row.status is Status.PENDING  # here it had not: the statement never ran


def test_a_write_committing_itself_that_fails_on_a_live_connection_is_not_commit_unknown(
    postgres_url: str,
) -> None:
    """A statement the server answered with an error (a row lock past the busy timeout) committed nothing:
    the error says so, as before."""
    with Store(postgres_url) as store:
        job = store.create_generation("busy cancel", model_name="m", duration_seconds=1)
    holder = psycopg.connect(postgres_url)
    holder.execute("SELECT id FROM generations WHERE id = %s FOR UPDATE", (job.id,))
    try:
        with Store(postgres_url, busy_timeout=0.2) as store, pytest.raises(DatabaseError) as raised:
            store.cancel(job.id)
    finally:
        holder.rollback()
        holder.close()
    assert not isinstance(raised.value, CommitUnknown), repr(raised.value)
