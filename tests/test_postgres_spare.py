"""The PostgreSQL connector's spare connection (``PostgresConnector.acquire``): one idle connection kept out
of the pool between calls, so a call does not pay the pool's ``getconn``/``putconn``; what it must not
change."""

from __future__ import annotations

import os
from contextlib import suppress
from typing import Any

import pytest

from musicstore import DatabaseError, Store
from musicstore.backends import postgres

from .conftest import new_job


def _requests(store: Store) -> int:
    return int(store._connector.pool.get_stats().get("requests_num", 0))


def _backend_pid(store: Store) -> int:
    connector = store._connector
    conn = connector.acquire()
    try:
        return int(conn.info.backend_pid)
    finally:
        connector.release(conn)


def test_calls_in_a_row_reuse_the_spare_not_the_pool(postgres_url: str) -> None:
    with Store(postgres_url) as store:
        new_job(store)
        store.count_generations()
        before = _requests(store)
        for _ in range(20):
            store.count_generations()
            new_job(store)
            with store.transaction() as tx:
                tx.count_generations()
        assert _requests(store) == before  # failed before: 60 more getconn


def test_the_spare_goes_back_through_the_pool_after_its_time(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "SPARE_SECONDS", 0.0)
    with Store(postgres_url) as store:
        before = _requests(store)
        for _ in range(5):
            store.count_generations()
        assert _requests(store) == before + 5


def test_a_connection_given_back_in_a_transaction_is_not_kept(postgres_url: str) -> None:
    with Store(postgres_url) as store:
        connector = store._connector
        store.count_generations()
        conn = connector.acquire()
        conn.execute("BEGIN")
        connector.release(conn)  # the pool rolls it back; never handed out as the spare in this state
        assert connector._spare == []
        for _ in range(3):
            again = connector.acquire()
            try:
                assert again.pgconn.transaction_status == postgres._IDLE
            finally:
                connector.release(again)
        assert store.count_generations() == 0


def test_closing_the_store_closes_the_spare(postgres_url: str) -> None:
    store = Store(postgres_url)
    store.count_generations()
    store.count_generations()
    (spare,) = store._connector._spare
    store.close()
    assert spare.closed
    with Store(postgres_url) as reopened:
        assert reopened.count_generations() == 0


def test_a_dead_spare_is_at_most_an_error_once_then_replaced(postgres_url: str) -> None:
    """Not waiting for the backend to end: the next call fails if the server's word has not reached the
    socket yet (tests/test_reconnect_regressions.py waits, and finds no error), at most that one."""
    import psycopg

    with Store(postgres_url) as store:
        store.count_generations()
        pid = _backend_pid(store)
        assert store._connector._spare, "the spare is kept"
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with suppress(DatabaseError):
            store.count_generations()
        assert store.count_generations() == 0
        assert _backend_pid(store) != pid


def test_threads_never_share_a_connection(postgres_url: str) -> None:
    """Each of 8 threads holding a connection at the same time holds its own."""
    import threading

    with Store(postgres_url, pool_size=8) as store:
        connector = store._connector
        held: list[Any] = []
        barrier = threading.Barrier(8)
        lock = threading.Lock()

        def worker() -> None:
            for _ in range(30):
                conn = connector.acquire()
                with lock:
                    assert all(conn is not other for other in held)
                    held.append(conn)
                barrier.wait()
                with lock:
                    held.remove(conn)
                connector.release(conn)
                barrier.wait()

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.count_generations() == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_take_its_parents_spare(postgres_url: str) -> None:
    with Store(postgres_url) as store:
        store.count_generations()
        parent = _backend_pid(store)
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - the child reports through the pipe
            code = 1
            try:
                os.write(write, str(_backend_pid(store)).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        got = os.read(read, 64)
        os.close(read)
        _, status = os.waitpid(child, 0)
        assert status == 0
        assert int(got) != parent
        assert _backend_pid(store) == parent
        assert store.count_generations() == 0
