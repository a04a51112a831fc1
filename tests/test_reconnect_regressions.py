"""A store whose idle PostgreSQL connections the server ended (``pg_terminate_backend``,
``idle_session_timeout``, a proxy, a server restart) goes on: its next operation runs on a live connection.

Before: the first operation after took the dead connection (the connector's spare, or one idle in the pool),
sent its statement there, and raised DatabaseError ('terminating connection due to administrator command');
only the next call worked. A write must never run twice for it: each case counts the rows.
A server that is really down still gives a typed DatabaseError, within the busy timeout and a connect, that
names no password.
"""

from __future__ import annotations

import asyncio
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from musicstore import AsyncStore, DatabaseError, Store
from musicstore.backends import postgres, postgres_async
from musicstore.migrate import migrate
from musicstore.testing import _pgserver
from musicstore.testing._seaweed import _die_with_parent
from tests.conftest import until

SECRET = "hunter2-not-in-messages"


_OTHER_CLIENTS = (
    "datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
)
"""The rows of ``pg_stat_activity`` of the other client connections to the database."""


def _end_clients_of(url: str) -> int:
    """End every other client connection to ``url``'s database, each gone when this returns (the
    ``pg_terminate_backend`` timeout waits for its exit): as a server's idle_session_timeout, a proxy or an
    operator does. Returns how many."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute(
            f"SELECT pg_terminate_backend(pid, 60000) FROM pg_stat_activity WHERE {_OTHER_CLIENTS}"
        ).fetchall()
    assert all(ended for (ended,) in rows)
    return len(rows)


def _clients(url: str) -> int:
    """How many other client connections ``url``'s database has."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        row = admin.execute(f"SELECT count(*) FROM pg_stat_activity WHERE {_OTHER_CLIENTS}").fetchone()
    assert row is not None
    return int(row[0])


def _rows(url: str) -> tuple[int, int]:
    """(generations, running generations) in ``url``'s database, counted on a connection of its own."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'processing') FROM generations"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


OPERATIONS = ["get", "create", "transaction", "claim", "stats"]


def _sync_operation(store: Store, name: str, job_id: str) -> None:
    """Run the operation ``name``, and check its answer."""
    if name == "get":
        found = store.get_generation(job_id)
        assert found is not None and found.id == job_id
    elif name == "create":
        store.create_generation("after", model_name="m", duration_seconds=2.0)
    elif name == "transaction":
        with store.transaction() as tx:
            made = tx.create_generation("after", model_name="m", duration_seconds=2.0)
            assert tx.get_generation(made.id) is not None
    elif name == "claim":
        claimed = store.claim_next("gpu-0")
        assert claimed is not None and claimed.id == job_id
    else:
        assert store.get_database_stats().total == 1


async def _async_operation(store: AsyncStore, name: str, job_id: str) -> None:
    """``_sync_operation`` on an ``AsyncStore``."""
    if name == "get":
        found = await store.get_generation(job_id)
        assert found is not None and found.id == job_id
    elif name == "create":
        await store.create_generation("after", model_name="m", duration_seconds=2.0)
    elif name == "transaction":
        async with store.transaction() as tx:
            made = await tx.create_generation("after", model_name="m", duration_seconds=2.0)
            assert await tx.get_generation(made.id) is not None
    elif name == "claim":
        claimed = await store.claim_next("gpu-0")
        assert claimed is not None and claimed.id == job_id
    else:
        assert (await store.get_database_stats()).total == 1


def _expected_rows(name: str) -> tuple[int, int]:
    """The rows after the operation ran once: one created, or the one job claimed."""
    return {"create": (2, 0), "transaction": (2, 0), "claim": (1, 1)}.get(name, (1, 0))


def _hold_several(store: Store, count: int) -> None:
    """Have ``count`` connections open at once, then give them back: the pool keeps them idle (and the
    connector one of them as its spare)."""
    connector = store._connector
    held = [connector.acquire() for _ in range(count)]
    for conn in held:
        connector.release(conn)


async def _hold_several_async(store: AsyncStore, count: int) -> None:
    connector = store._connector
    held = [await connector.acquire() for _ in range(count)]
    for conn in held:
        await connector.release(conn)


IDLE = ["spare", "pooled", "pool only"]
"""Which idle connections the server ends: ``spare``, those of a store just opened (its spare, and the one
the pool keeps); ``pooled``: four, the spare among them; ``pool only``: four in the pool, no spare kept."""


def _idle_as(idle: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Set up for ``idle`` (``IDLE``); how many connections the store will have open at least."""
    if idle == "pool only":
        monkeypatch.setattr(postgres, "SPARE_SECONDS", 0.0)  # each connection given back goes to the pool
        monkeypatch.setattr(postgres_async, "SPARE_SECONDS", 0.0)  # as read by the async connector
    return 1 if idle == "spare" else 4


@pytest.mark.parametrize("idle", IDLE)
@pytest.mark.parametrize("name", OPERATIONS)
def test_the_first_operation_after_idle_connections_ended_works(
    musicstore_postgres_url: str, name: str, idle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operation works the first time, and runs once."""
    url = musicstore_postgres_url
    several = _idle_as(idle, monkeypatch)
    with Store(url, pool_size=4) as store:
        job = store.create_generation("lofi", model_name="m", duration_seconds=2.0)
        _hold_several(store, several)
        assert bool(store._connector._spare) is (idle != "pool only")
        assert _end_clients_of(url) >= several
        _sync_operation(store, name, job.id)
        assert _rows(url) == _expected_rows(name)
        assert store.count_generations() == _expected_rows(name)[0]  # and the calls after


@pytest.mark.parametrize("idle", IDLE)
@pytest.mark.parametrize("name", OPERATIONS)
def test_async_the_first_operation_after_idle_connections_ended_works(
    musicstore_postgres_url: str, name: str, idle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = musicstore_postgres_url
    several = _idle_as(idle, monkeypatch)

    async def main() -> None:
        async with AsyncStore.open(url, pool_size=4) as store:
            job = await store.create_generation("lofi", model_name="m", duration_seconds=2.0)
            await _hold_several_async(store, several)
            assert bool(store._connector._spare) is (idle != "pool only")
            assert await asyncio.to_thread(_end_clients_of, url) >= several
            await _async_operation(store, name, job.id)
            assert _rows(url) == _expected_rows(name)
            assert await store.count_generations() == _expected_rows(name)[0]

    asyncio.run(main())


def _idle_session_timeout(url: str, milliseconds: int) -> None:
    """Have the server end each new session of ``url``'s database once idle for ``milliseconds``."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {name} SET idle_session_timeout = {int(milliseconds)}")


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_idle_session_timeout_ends_no_operation(musicstore_postgres_url: str, kind: str) -> None:
    """The server's idle_session_timeout (200 ms) ends the store's connections between each two operations:
    each operation, read or write, works at once, and each write runs once. (Each operation waits until the
    server has ended them all: a backend exits once its FATAL is sent, so that the client can see it.)"""
    url = musicstore_postgres_url
    _idle_session_timeout(url, 200)
    rows_after = {"get": (1, 0), "stats": (1, 0), "claim": (1, 1), "create": (2, 1), "transaction": (3, 1)}

    if kind == "sync":
        with Store(url, pool_size=4) as store:
            job = store.create_generation("lofi", model_name="m", duration_seconds=2.0)
            _hold_several(store, 4)
            for name, rows in rows_after.items():
                until(lambda: _clients(url) == 0)
                _sync_operation(store, name, job.id)
                assert _rows(url) == rows
        return

    async def main() -> None:
        async with AsyncStore.open(url, pool_size=4) as store:
            job = await store.create_generation("lofi", model_name="m", duration_seconds=2.0)
            await _hold_several_async(store, 4)
            for name, rows in rows_after.items():
                await asyncio.to_thread(until, lambda: _clients(url) == 0)
                await _async_operation(store, name, job.id)
                assert _rows(url) == rows

    asyncio.run(main())


# A server of this module's own, which its tests stop and start again (the session's is shared).


@pytest.fixture(scope="module")
def own_server() -> Iterator[_pgserver.Server]:
    if _pgserver.find_bindir() is None:
        pytest.skip("needs PostgreSQL's server binaries")
    server = _pgserver.start()
    try:
        server.admin("CREATE DATABASE reconnect")
        migrate(server.url("reconnect"))
        yield server
    finally:
        server.stop()


def _with_password(server: _pgserver.Server) -> str:
    """The database's URL with a password (the server trusts loopback clients: it is not asked for)."""
    return server.url("reconnect").replace("musicstore@", f"musicstore:{SECRET}@")


@pytest.fixture
def own_url(own_server: _pgserver.Server) -> Iterator[str]:
    url = own_server.url("reconnect")
    yield _with_password(own_server)
    if own_server.process is None or own_server.process.poll() is not None:
        _start_again(own_server)
    own_server.admin("DROP DATABASE reconnect WITH (FORCE)", "CREATE DATABASE reconnect")
    migrate(url)


def _stop(server: _pgserver.Server) -> None:
    """A fast shutdown (SIGINT): the server ends every session, as a restart or a failover does."""
    assert server.process is not None
    server.process.send_signal(signal.SIGINT)
    server.process.wait(timeout=60)


def _start_again(server: _pgserver.Server) -> None:
    """Start the stopped server again: the same data folder, port and settings."""
    assert server.process is not None
    owner = pwd.getpwnam(server.user) if server.user else None
    with open(server.base / "log", "ab") as log:
        since = log.tell()
        server.process = subprocess.Popen(
            server.process.args,
            cwd=server.base,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=owner.pw_uid if owner else None,
            group=owner.pw_gid if owner else None,
            extra_groups=[] if owner else None,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
    _pgserver._wait(server, time.monotonic() + 60, since)


def _restart(server: _pgserver.Server) -> None:
    _stop(server)
    _start_again(server)


@pytest.mark.parametrize("name", OPERATIONS)
def test_the_first_operation_after_a_server_restart_works(
    own_server: _pgserver.Server, own_url: str, name: str
) -> None:
    with Store(own_url, pool_size=4) as store:
        job = store.create_generation("lofi", model_name="m", duration_seconds=2.0)
        _hold_several(store, 4)
        _restart(own_server)
        _sync_operation(store, name, job.id)
        assert _rows(own_url) == _expected_rows(name)


@pytest.mark.parametrize("name", OPERATIONS)
def test_async_the_first_operation_after_a_server_restart_works(
    own_server: _pgserver.Server, own_url: str, name: str
) -> None:
    async def main() -> None:
        async with AsyncStore.open(own_url, pool_size=4) as store:
            job = await store.create_generation("lofi", model_name="m", duration_seconds=2.0)
            await _hold_several_async(store, 4)
            _restart(own_server)  # in this thread: the server dies with the thread that started it
            await _async_operation(store, name, job.id)
            assert _rows(own_url) == _expected_rows(name)

    asyncio.run(main())


def _fails_quickly(call: Callable[[], Any], limit: float) -> DatabaseError:
    started = time.monotonic()
    with pytest.raises(DatabaseError) as raised:
        call()
    assert time.monotonic() - started < limit
    assert SECRET not in str(raised.value)
    return raised.value


@pytest.mark.parametrize("name", OPERATIONS)
def test_a_server_that_is_down_is_a_quick_typed_error_without_the_password(
    own_server: _pgserver.Server, own_url: str, name: str
) -> None:
    """Each call while the server is down raises DatabaseError (not a hang), within the busy timeout and a
    connect attempt; none names the password. The store works again once the server is back."""
    with Store(own_url, pool_size=4, busy_timeout=1.0) as store:
        job = store.create_generation("lofi", model_name="m", duration_seconds=2.0)
        _hold_several(store, 4)
        _stop(own_server)
        for _ in range(2):
            _fails_quickly(lambda: _sync_operation(store, name, job.id), limit=10.0)
        _start_again(own_server)
        _sync_operation(store, name, job.id)
        assert _rows(own_url) == _expected_rows(name)


def test_async_a_server_that_is_down_is_a_quick_typed_error_without_the_password(
    own_server: _pgserver.Server, own_url: str
) -> None:
    async def main() -> None:
        async with AsyncStore.open(own_url, pool_size=4, busy_timeout=1.0) as store:
            job = await store.create_generation("lofi", model_name="m", duration_seconds=2.0)
            await _hold_several_async(store, 4)
            _stop(own_server)
            for name in OPERATIONS:
                await _async_fails_quickly(_async_operation(store, name, job.id), limit=10.0)
            _start_again(own_server)  # in this thread (PR_SET_PDEATHSIG: the thread that started it)
            await _async_operation(store, "create", job.id)
            assert _rows(own_url) == (2, 0)

    asyncio.run(main())


async def _async_fails_quickly(call: Awaitable[Any], limit: float) -> None:
    started = time.monotonic()
    with pytest.raises(DatabaseError) as raised:
        await call
    assert time.monotonic() - started < limit
    assert SECRET not in str(raised.value)
