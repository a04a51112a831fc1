"""A PostgreSQL server that is down, for a store that had connections to it: each operation (a read, a
write, a transaction, a claim; sync and async) is a typed DatabaseError within the busy timeout and a connect
attempt, not a hang, that names no password; the store works again once the server is back, each write run
once. Coverage, no behaviour change.
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
from musicstore.migrate import migrate
from musicstore.testing import _pgserver
from musicstore.testing._seaweed import _die_with_parent

SECRET = "hunter2-not-in-messages"


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
