"""The PostgreSQL connectors' cheaper round trips: BEGIN and COMMIT sent through libpq's ``PQexec``
(``postgres._command``), and the async connector's spare connection (``AsyncPostgresConnector.acquire``);
what they must not change."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import pytest

from musicstore import AsyncStore, DatabaseError, Store
from musicstore.backends import postgres, postgres_async

from .conftest import new_job


def _pool_requests(pool: Any) -> int:
    return int(pool.get_stats().get("requests_num", 0))


@pytest.fixture
def lent(postgres_url: str) -> Iterator[tuple[Any, Any]]:
    """A store's PostgreSQL connector and a connection it lent, given back after the test."""
    with Store(postgres_url) as store:
        connector = store._connector
        conn = connector.acquire()
        try:
            yield connector, conn
        finally:
            connector.release(conn)


def test_a_commit_that_fails_raises_and_ends_the_transaction(lent: tuple[Any, Any]) -> None:
    """A COMMIT refused by the server (a deferred constraint checked at COMMIT) is an error, not a notice."""
    import psycopg

    connector, conn = lent
    conn.execute("CREATE TEMPORARY TABLE deferred_check (v integer UNIQUE DEFERRABLE INITIALLY DEFERRED)")
    connector.begin(conn, write=True)
    conn.execute("INSERT INTO deferred_check VALUES (1), (1)")
    with pytest.raises(psycopg.errors.UniqueViolation):
        connector.commit(conn)
    assert conn.pgconn.transaction_status == postgres._IDLE
    assert connector.translate(psycopg.errors.UniqueViolation("x")) is not None
    assert conn.execute("SELECT count(*) FROM deferred_check").fetchone() == (0,)


def test_a_begin_on_a_closed_connection_is_a_translated_error(lent: tuple[Any, Any]) -> None:
    import psycopg

    connector, conn = lent
    conn.close()
    with pytest.raises(psycopg.OperationalError) as raised:
        connector.begin(conn, write=True)
    assert isinstance(connector.translate(raised.value), DatabaseError)


def test_writes_commit_and_a_failed_write_rolls_back(postgres_url: str) -> None:
    """Through the store: each write's BEGIN and COMMIT (``Command``), a transaction block, a read-only
    snapshot; a block that raises leaves nothing, and statements prepared meanwhile still run."""
    with Store(postgres_url) as store:
        for _ in range(8):  # past psycopg's prepare threshold: statements prepared on the server
            new_job(store)
        with pytest.raises(RuntimeError), store.transaction() as tx:
            new_job(tx, "rolled back")
            raise RuntimeError("abort")
        assert store.get_prompt_by_text("rolled back") is None
        with store.transaction(write=False) as snapshot:
            assert snapshot.count_generations() == 8
        for _ in range(8):
            claimed = store.claim_next("w")
            assert claimed is not None
            store.complete_generation(claimed.id, file_path="a.wav", file_size_bytes=1)
        assert store.count_generations(status="completed") == 8


def test_the_pool_connections_send_commands_through_libpq(postgres_url: str) -> None:
    """The store's write BEGIN and COMMIT never go through psycopg's cursor (``Connection.execute``'s)."""
    import psycopg

    with Store(postgres_url) as store:
        conn = store._connector.acquire()
        try:
            assert isinstance(conn, postgres.connection_class())
            sent: list[str] = []
            original = psycopg.Connection.cursor

            def spied(self: Any, *args: Any, **kwargs: Any) -> Any:
                if self is conn:  # the pool's own thread configures new connections through cursors
                    sent.append("cursor")
                return original(self, *args, **kwargs)

            psycopg.Connection.cursor = spied  # type: ignore[method-assign]
            try:
                assert conn.execute(store._connector.BEGIN_WRITE) is None
                assert conn.pgconn.transaction_status == 2  # PQTRANS_INTRANS
                assert conn.execute(store._connector.COMMIT) is None
                assert conn.pgconn.transaction_status == postgres._IDLE
                assert sent == []
                conn.execute("SELECT 1")  # a plain str: psycopg's own execute
                assert sent == ["cursor"]
            finally:
                psycopg.Connection.cursor = original  # type: ignore[method-assign]
        finally:
            store._connector.release(conn)


def test_async_calls_in_a_row_reuse_the_spare_not_the_pool(postgres_url: str) -> None:
    async def main() -> None:
        async with AsyncStore.open(postgres_url) as store:
            await store.create_generation("lofi", model_name="m", duration_seconds=1.0)
            await store.count_generations()
            pool = store._connector._pool
            before = _pool_requests(pool)
            for _ in range(20):
                await store.count_generations()
                await store.create_generation("lofi", model_name="m", duration_seconds=1.0)
                async with store.transaction() as tx:
                    await tx.count_generations()
            assert _pool_requests(pool) == before  # failed before: 60 more getconn
            assert len(store._connector._spare) == 1

    asyncio.run(main())


def test_async_spare_goes_back_through_the_pool_after_its_time(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_async, "SPARE_SECONDS", 0.0)  # read by the async connector

    async def main() -> None:
        async with AsyncStore.open(postgres_url) as store:
            pool = store._connector._pool
            before = _pool_requests(pool)
            for _ in range(5):
                await store.count_generations()
            assert _pool_requests(pool) == before + 5

    asyncio.run(main())


def test_async_a_connection_given_back_in_a_transaction_is_not_kept(postgres_url: str) -> None:
    async def main() -> None:
        async with AsyncStore.open(postgres_url) as store:
            connector = store._connector
            await store.count_generations()
            conn = await connector.acquire()
            await conn.execute("BEGIN")
            await connector.release(conn)  # the pool rolls it back; never the spare in this state
            assert connector._spare == []
            for _ in range(3):
                again = await connector.acquire()
                try:
                    assert again.pgconn.transaction_status == postgres._IDLE
                finally:
                    await connector.release(again)
            assert await store.count_generations() == 0

    asyncio.run(main())


def test_async_tasks_never_share_a_connection(postgres_url: str) -> None:
    """Tasks holding connections at the same time (across awaits) each hold their own, spare or not."""

    async def main() -> None:
        async with AsyncStore.open(postgres_url, pool_size=6) as store:
            connector = store._connector
            held: list[Any] = []

            async def task() -> None:
                for _ in range(20):
                    conn = await connector.acquire()
                    assert all(conn is not other for other in held)
                    held.append(conn)
                    await asyncio.sleep(0)
                    await conn.execute("SELECT 1")
                    held.remove(conn)
                    await connector.release(conn)

            await asyncio.gather(*(task() for _ in range(6)))
            assert await store.count_generations() == 0

    asyncio.run(main())


def test_async_closing_the_store_closes_the_spare(postgres_url: str) -> None:
    async def main() -> None:
        store = await AsyncStore.open(postgres_url)
        await store.count_generations()
        await store.count_generations()
        (spare,) = store._connector._spare
        await store.close()
        assert spare.closed
        assert store._connector._spare == []
        async with AsyncStore.open(postgres_url) as reopened:
            assert await reopened.count_generations() == 0

    asyncio.run(main())


def test_async_a_dead_spare_is_at_most_an_error_once_then_replaced(postgres_url: str) -> None:
    """As test_postgres_spare's: the call after the termination fails at most (the backend not waited for)."""
    import psycopg

    async def main() -> None:
        async with AsyncStore.open(postgres_url) as store:
            await store.count_generations()
            (spare,) = store._connector._spare
            pid = spare.info.backend_pid
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with suppress(DatabaseError):
                await store.count_generations()
            assert await store.count_generations() == 0
            (again,) = store._connector._spare
            assert again.info.backend_pid != pid

    asyncio.run(main())


def _status(conn: Any) -> int:
    return int(conn.pgconn.transaction_status)


def test_begin_later_commits_a_lone_statement_without_begin_or_commit(lent: tuple[Any, Any]) -> None:
    _, conn = lent
    conn.execute("CREATE TEMPORARY TABLE later_check (v integer)")
    conn.execute(postgres.BEGIN_LATER)
    conn.execute("INSERT INTO later_check VALUES (1)")
    assert _status(conn) == postgres._IDLE  # committed on its own: no BEGIN went out
    conn.execute(postgres.COMMIT)  # nothing to commit: not sent
    assert conn.later == 0 and _status(conn) == postgres._IDLE
    conn.execute(postgres.BEGIN_LATER)
    conn.execute(postgres.COMMIT)  # no statement at all
    conn.execute("INSERT INTO later_check VALUES (2)")  # after it, plain autocommit
    assert _status(conn) == postgres._IDLE
    assert conn.execute("SELECT count(*) FROM later_check").fetchone() == (2,)


def test_begin_later_opens_the_transaction_before_a_second_statement(lent: tuple[Any, Any]) -> None:
    """The first statement stays committed; the second and later ones commit or roll back together."""
    connector, conn = lent
    conn.execute("CREATE TEMPORARY TABLE later_check (v integer)")
    conn.execute(postgres.BEGIN_LATER)
    conn.execute("INSERT INTO later_check VALUES (1)")
    conn.execute("INSERT INTO later_check VALUES (2)")
    assert _status(conn) == 2  # PQTRANS_INTRANS: BEGIN went out before the second statement
    conn.execute("INSERT INTO later_check VALUES (3)")
    connector.rollback(conn)
    assert conn.later == 0 and _status(conn) == postgres._IDLE
    assert conn.execute("SELECT v FROM later_check").fetchall() == [(1,)]
    conn.execute(postgres.BEGIN_LATER)
    conn.execute("INSERT INTO later_check VALUES (4)")
    conn.execute("INSERT INTO later_check VALUES (5)")
    conn.execute(postgres.COMMIT)
    assert _status(conn) == postgres._IDLE
    assert conn.execute("SELECT count(*) FROM later_check").fetchone() == (3,)


def test_begin_later_never_outlives_the_connection_going_back(postgres_url: str) -> None:
    """A connection given back before its first statement (neither committed nor rolled back) is handed out
    again in plain autocommit: no statement of the next caller opens a transaction."""
    with Store(postgres_url) as store:
        connector = store._connector
        conn = connector.acquire()
        conn.execute(postgres.BEGIN_LATER)
        connector.release(conn)
        again = connector.acquire()
        try:
            assert again is conn  # the spare
            again.execute("SELECT 1")
            again.execute("SELECT 2")
            assert _status(again) == postgres._IDLE
        finally:
            connector.release(again)


def test_claims_and_heartbeats_begun_later_keep_their_answers(postgres_url: str) -> None:
    """The writes a store may begin later (one statement, or a claim) answer as in a transaction: claims
    take each job once in order, a heartbeat of a job not held is LeaseLost, a cancel of a finished one
    InvalidTransition; the store's COMMIT of a write begun later is not sent."""
    from musicstore import InvalidTransition, LeaseLost

    with Store(postgres_url) as plain, Store(postgres_url) as store:
        store._connector.BEGIN_WRITE = postgres.BEGIN_LATER  # as store.py would pass it per operation
        made = [new_job(plain, f"job {i}") for i in range(5)]
        claimed = [store.claim_next("w") for _ in range(5)]
        assert [job.id for job in claimed if job] == [job.id for job in made]
        assert store.claim_next("w") is None
        store.heartbeat(made[0].id, "w")
        with pytest.raises(LeaseLost):
            store.heartbeat(made[1].id, "other")
        plain.complete_generation(made[2].id, file_path="a.wav", file_size_bytes=1)
        with pytest.raises(InvalidTransition):
            store.cancel(made[2].id)
        store.cancel(made[3].id)
        counts = {status: plain.count_generations(status=status) for status in ("processing", "cancelled")}
        assert counts == {"processing": 3, "cancelled": 1}


def test_claims_begun_later_under_contention_respect_limits_and_claim_once(postgres_url: str) -> None:
    """Threads claiming with BEGIN_LATER (claim_fast alone in autocommit; the fallback in a transaction
    begun before its second statement) over keyed lanes with a limit: every job is claimed at most once and
    no key holds more than its limit."""
    import threading

    keys, per_key, limit, threads = 5, 6, 2, 6
    with Store(postgres_url, pool_size=threads + 2) as store:
        for n in range(per_key):
            for k in range(keys):
                new_job(store, f"job {k}/{n}", owner_key=f"user-{k}")
        store._connector.BEGIN_WRITE = postgres.BEGIN_LATER
        claimed: list[Any] = []
        lock = threading.Lock()
        start = threading.Barrier(threads)

        def worker(name: str) -> None:
            start.wait()
            while True:
                job = store.claim_next(name, owner_limit=limit)
                if job is None:
                    return
                with lock:
                    claimed.append(job)

        pool = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        ids = [job.id for job in claimed]
        assert len(ids) == len(set(ids)) == keys * limit
        held: dict[str, int] = {}
        for job in claimed:
            held[job.owner_key] = held.get(job.owner_key, 0) + 1
        assert held == {f"user-{k}": limit for k in range(keys)}
        assert store.count_generations(status="processing") == keys * limit


def _traced(conn: Any, path: Any) -> Any:
    """libpq's protocol trace of ``conn`` to ``path`` (every message the client sends and receives)."""
    traced = open(path, "wb")  # noqa: SIM115 - closed by the caller after ``untrace``
    conn.pgconn.trace(traced.fileno())
    return traced


def test_async_begin_later_commits_alone_and_opens_before_a_second_statement(postgres_url: str) -> None:
    """The async connection keeps ``BEGIN_LATER`` as the sync one does: a lone statement commits by itself,
    BEGIN goes out before a second one, and a connection given back mid-way is plain autocommit again."""

    async def main() -> None:
        async with AsyncStore.open(postgres_url) as store:
            connector = store._connector
            conn = await connector.acquire()
            try:
                await conn.execute("CREATE TEMPORARY TABLE later_check (v integer)")
                await conn.execute(postgres.BEGIN_LATER)
                await conn.execute("INSERT INTO later_check VALUES (1)")
                assert _status(conn) == postgres._IDLE
                await conn.execute("INSERT INTO later_check VALUES (2)")
                assert _status(conn) == 2  # PQTRANS_INTRANS
                await conn.execute("ROLLBACK")
                await conn.execute(postgres.BEGIN_LATER)
            finally:
                await connector.release(conn)
            again = await connector.acquire()
            try:
                assert again is conn and again.later == 0
                await again.execute("INSERT INTO later_check VALUES (3)")
                await again.execute("INSERT INTO later_check VALUES (4)")
                assert _status(again) == postgres._IDLE
                cursor = await again.execute("SELECT v FROM later_check ORDER BY v")
                assert await cursor.fetchall() == [(1,), (3,), (4,)]
            finally:
                await connector.release(again)

    asyncio.run(main())


def test_async_alone_writes_send_no_begin_and_others_do(postgres_url: str, tmp_path: Any) -> None:
    """AsyncStore begins an ``Operation.alone`` write as Store does: a claim decided in one statement, a
    heartbeat and a cancel go out without BEGIN or COMMIT (libpq's trace of the connection shows none);
    a create, which is not alone, still sends both; the answers are a transaction's."""
    from musicstore import LeaseLost

    async def main() -> None:
        async with AsyncStore.open(postgres_url) as store:
            made = [
                await store.create_generation(f"job {i}", model_name="m", duration_seconds=1.0)
                for i in range(3)
            ]
            (conn,) = store._connector._spare
            trace = tmp_path / "alone.trace"
            traced = _traced(conn, trace)
            try:
                claimed = await store.claim_next("w")
                await store.heartbeat(made[0].id, "w")
                await store.cancel(made[2].id)
            finally:
                conn.pgconn.untrace()
                traced.close()
            sent = trace.read_bytes()
            assert claimed is not None and claimed.id == made[0].id
            assert sent.count(b"UPDATE generations") >= 3 and b"BEGIN" not in sent and b"COMMIT" not in sent
            cancelled = await store.get_generation(made[2].id)
            assert cancelled is not None and cancelled.status == "cancelled"
            traced = _traced(conn, trace)
            try:  # the heartbeat changed nothing: the row read that explains it is a second statement
                with pytest.raises(LeaseLost):
                    await store.heartbeat(made[1].id, "other")
            finally:
                conn.pgconn.untrace()
                traced.close()
            sent = trace.read_bytes()
            assert b"BEGIN" in sent and b"ROLLBACK" in sent and _status(conn) == postgres._IDLE
            traced = _traced(conn, trace)
            try:
                await store.create_generation("one more", model_name="m", duration_seconds=1.0)
            finally:
                conn.pgconn.untrace()
                traced.close()
            sent = trace.read_bytes()
            assert b"BEGIN" in sent and b"COMMIT" in sent

    asyncio.run(main())
