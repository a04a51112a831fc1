"""AsyncStore used without ``open()``, session 28: its first operation checks the schema as ``Store(url)`` and
``AsyncStore.open`` do, once, with the same errors and warnings."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from musicstore import AsyncStore, Store, migrate
from musicstore.drivers import opening
from musicstore.errors import DatabaseError, InvalidInput, MigrationError, NewerSchemaWarning
from musicstore.migrate import shipped_migrations
from musicstore.urls import resolve
from tests.connecting import opened, opened_async

_counter = iter(range(10**6))


def _sql(url: str, statement: str) -> list[tuple[Any, ...]]:
    """Run one statement outside the library."""
    target = resolve(url)
    if target.dialect == "sqlite":
        with sqlite3.connect(str(target.path)) as conn:
            rows = conn.execute(statement).fetchall()
        conn.close()
        return rows
    import psycopg

    with psycopg.connect(url, autocommit=True) as pg:
        cursor = pg.execute(statement)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database that exists with no schema at all: an empty SQLite file, an empty PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path / "empty.db"
        sqlite3.connect(path).close()
        yield f"sqlite:///{path}"
        return
    server = request.getfixturevalue("musicstore_postgres_server")
    name = f"musicstore_aopen_{os.getpid()}_{next(_counter)}"
    server.admin(f"CREATE DATABASE {name}")
    yield server.url(name)
    server.admin(f"DROP DATABASE {name} WITH (FORCE)")


def _lacking(url: str) -> str:
    """``url``'s database made to lack its newest migration (as one a former version migrated); its name."""
    newest = max(shipped_migrations())
    _sql(url, f"DELETE FROM _yoyo_migration WHERE migration_id = '{newest}'")
    return newest


def _newer(url: str) -> str:
    """``url``'s database marked migrated by a later musicstore; the later migration's id."""
    later = f"{int(max(shipped_migrations())[:4]) + 1:04d}.from-a-later-version"
    _sql(
        url,
        "INSERT INTO _yoyo_migration (migration_hash, migration_id, applied_at_utc) "
        f"VALUES ('h', '{later}', '2027-01-01 00:00:00')",
    )
    return later


def _sync_error(url: str) -> str:
    with pytest.raises(MigrationError) as raised:
        Store(url)
    return str(raised.value)


FirstUse = Callable[[AsyncStore], Awaitable[Any]]


async def _in_transaction(store: AsyncStore) -> None:
    async with store.transaction() as tx:
        await tx.count_generations()


FIRST_USES: dict[str, FirstUse] = {
    "a read": lambda store: store.count_generations(),
    "a read of many steps": lambda store: store.get_database_stats(),
    "a write": lambda store: store.create_generation("x", model_name="m", duration_seconds=1),
    "a claim": lambda store: store.claim_next("gpu-0"),
    "a transaction": _in_transaction,
    "a claim that waits": lambda store: store.claim_next("gpu-0", wait=0.1),
    "wait_for": lambda store: store.wait_for("01a24ac8-1884-7764-b9ee-19e82f13d81c", timeout=0.1),
    "report_progress": lambda store: store.report_progress("01a24ac8-1884-7764-b9ee-19e82f13d81c", "w", 0.5),
}


def _first(url: str, use: FirstUse, *, bare: bool = False) -> Any:
    """``use`` as the first operation of ``async with AsyncStore(url)`` (``bare``: ``AsyncStore(url)``
    closed by hand)."""

    async def main() -> Any:
        if not bare:
            async with AsyncStore(url) as store:
                return await use(store)
        store = AsyncStore(url)
        try:
            return await use(store)
        finally:
            await store.close()

    return asyncio.run(main())


@pytest.mark.parametrize("first", list(FIRST_USES))
def test_a_first_operation_on_an_unmigrated_database_raises_the_sync_stores_error(
    empty_url: str, first: str
) -> None:
    """A database with no schema: ``Store(url)`` raises MigrationError naming yoyo's missing table; an
    AsyncStore used without ``open()`` raised one naming whichever table its first query read ('no such
    table: prompts'), or, waiting, none at all."""
    expected = _sync_error(empty_url)
    with pytest.raises(MigrationError) as raised:
        _first(empty_url, FIRST_USES[first])
    assert str(raised.value) == expected


@pytest.mark.parametrize("first", list(FIRST_USES))
def test_a_first_operation_on_a_database_lacking_a_migration_raises_and_writes_nothing(
    db_url: str, first: str
) -> None:
    """A database that lacks a migration this version ships: ``Store(url)`` and ``AsyncStore.open`` refuse
    it (MigrationError naming it); an AsyncStore used without ``open()`` read and wrote it without a word."""
    missing = _lacking(db_url)
    expected = _sync_error(db_url)
    assert missing in expected
    for bare in (False, True):
        with pytest.raises(MigrationError) as raised:
            _first(db_url, FIRST_USES[first], bare=bare)
        assert str(raised.value) == expected
    assert _sql(db_url, "SELECT count(*) FROM generations") == [(0,)]


def test_a_first_operation_on_a_database_a_later_version_migrated_warns_once_at_the_callers_line(
    db_url: str,
) -> None:
    """A database a later musicstore migrated: ``Store(url)`` warns (NewerSchemaWarning) and opens; an
    AsyncStore used without ``open()`` said nothing. Now its first operation warns, once however many tasks
    make it together, pointing at the caller's line, and every operation goes on."""
    later = _newer(db_url)
    with pytest.warns(NewerSchemaWarning, match=later):
        Store(db_url).close()

    async def main() -> list[int]:
        async with AsyncStore(db_url) as store:
            counts = await asyncio.gather(*(store.count_generations() for _ in range(8)))
            await store.create_generation("x", model_name="m", duration_seconds=1)
            return [*counts, await store.count_generations()]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert asyncio.run(main()) == [0] * 8 + [1]
    newer = [w for w in caught if issubclass(w.category, NewerSchemaWarning)]
    assert len(newer) == 1, [str(w.message) for w in caught]
    assert later in str(newer[0].message)
    assert newer[0].filename == __file__


def test_a_missing_sqlite_file_is_refused_as_the_sync_store_refuses_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nothing.db'}"
    expected = _sync_error(url)
    for first in FIRST_USES.values():
        with pytest.raises(MigrationError) as raised:
            _first(url, first)
        assert str(raised.value) == expected
    assert list(tmp_path.iterdir()) == []


def test_many_first_calls_together_make_one_check_then_none(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tasks making their first calls at once wait for one check; later operations make none."""
    checks: list[set[str]] = []
    check_schema = opening.check_schema

    def counted(url: str, applied: set[str]) -> None:
        checks.append(applied)
        check_schema(url, applied)

    monkeypatch.setattr("musicstore.aio.check_schema", counted)

    async def main() -> list[Any]:
        async with AsyncStore(db_url, pool_size=3) as store:
            made = await asyncio.gather(
                *(store.create_generation(f"p{i}", model_name="m", duration_seconds=1) for i in range(10)),
                *(store.count_generations() for _ in range(10)),
                _in_transaction(store),
            )
            assert len(checks) == 1
            await store.claim_next("gpu-0")
            await store.get_database_stats()
            return made

    made = asyncio.run(main())
    assert len(made) == 21
    assert len(checks) == 1


def test_many_first_calls_on_an_unmigrated_database_all_raise_from_one_check(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each of the tasks gets the check's MigrationError; the check is made once (its one query), and made
    again by a later call, which passes once the database is migrated."""
    _lacking(db_url)
    expected = _sync_error(db_url)
    checks: list[set[str]] = []
    check_schema = opening.check_schema

    def counted(url: str, applied: set[str]) -> None:
        checks.append(applied)
        check_schema(url, applied)

    monkeypatch.setattr("musicstore.aio.check_schema", counted)

    async def main() -> None:
        async with AsyncStore(db_url) as store:
            raised = await asyncio.gather(
                *(store.create_generation(f"p{i}", model_name="m", duration_seconds=1) for i in range(5)),
                *(store.count_generations() for _ in range(5)),
                return_exceptions=True,
            )
            assert [str(error) for error in raised] == [expected] * 10
            assert all(isinstance(error, MigrationError) for error in raised)
            assert len(checks) == 1
            await asyncio.to_thread(migrate, db_url)
            assert await store.count_generations() == 0
            assert len(checks) == 2

    asyncio.run(main())


def test_a_cancelled_first_call_leaves_the_check_to_the_others(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task making the check is cancelled: the tasks waiting for it make it in its place, and pass."""
    gate: list[asyncio.Event] = []
    real = AsyncStore._check

    async def slow(self: AsyncStore) -> Any:
        if not gate[0].is_set():
            gate[0].set()
            await asyncio.sleep(10)
        return await real(self)

    monkeypatch.setattr(AsyncStore, "_check", slow)

    async def main() -> list[int]:
        gate.append(asyncio.Event())
        async with AsyncStore(db_url) as store:
            first = asyncio.ensure_future(store.count_generations())
            await gate[0].wait()
            others = [asyncio.ensure_future(store.count_generations()) for _ in range(3)]
            await asyncio.sleep(0.05)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            return list(await asyncio.wait_for(asyncio.gather(*others), 30))  # their own checks: a connect

    assert asyncio.run(main()) == [0, 0, 0]


def test_a_first_call_on_a_migrated_database_works(db_url: str) -> None:
    for name, first in FIRST_USES.items():
        if name not in ("wait_for", "report_progress"):
            _first(db_url, first)
    assert _first(db_url, FIRST_USES["a read"], bare=True) == 1


# --- psycopg_pool's warnings on a connection a store's pool could not make ----------------------------------

SECRET = "s3cret-pool-pw"


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pool_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name.startswith("psycopg")]


def _shown(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(caplog.text.splitlines() + [record.getMessage() for record in caplog.records])


@pytest.mark.parametrize("how", ["Store", "AsyncStore.open", "AsyncStore"])
def test_a_store_on_a_closed_port_raises_one_typed_error_and_logs_no_warning(
    caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """psycopg_pool logged a WARNING for each try of its pool to connect (two to four at each failed open:
    'error connecting in 'pool-1': connection failed: ...'), on top of the DatabaseError the store raised;
    with no logging configured, Python's last-resort handler printed them on stderr. They are DEBUG records
    now; no record shows the password."""
    pytest.importorskip("psycopg_pool")
    url = f"postgresql://bob:{SECRET}@127.0.0.1:{_closed_port()}/db"
    caplog.set_level(logging.DEBUG)

    async def main() -> None:
        if how == "AsyncStore.open":
            async with AsyncStore.open(url, busy_timeout=0.5):
                pass
        else:
            async with AsyncStore(url, busy_timeout=0.5) as store:
                await store.count_generations()

    with pytest.raises(DatabaseError, match="cannot connect to the database") as raised:
        if how == "Store":
            Store(url, busy_timeout=0.5)
        else:
            asyncio.run(main())
    assert SECRET not in str(raised.value)
    time.sleep(1.5)  # the pool's own tries go on a while in its threads (sync) until closed
    assert [r.getMessage() for r in _pool_records(caplog) if r.levelno >= logging.WARNING] == []
    assert SECRET not in _shown(caplog)


def test_the_pools_failures_are_debug_records_masked(caplog: pytest.LogCaptureFixture) -> None:
    """Shown at DEBUG (``logging.getLogger("psycopg").setLevel(logging.DEBUG)``), masked: a host name that
    holds the password is quoted by libpq."""
    pytest.importorskip("psycopg_pool")
    url = f"postgresql://bob:{SECRET}@{SECRET}.invalid/db"
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="psycopg")
    with pytest.raises(DatabaseError, match="cannot connect"):
        Store(url, busy_timeout=0.5)
    failures = [r for r in _pool_records(caplog) if "error connecting" in r.getMessage()]
    assert failures and {r.levelname for r in failures} == {"DEBUG"}
    assert SECRET not in _shown(caplog)


def test_another_pools_warnings_are_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    """Only the store's own pools are quieted: an application's pool of its own logs as psycopg_pool does."""
    psycopg_pool = pytest.importorskip("psycopg_pool")
    import musicstore.backends.postgres  # noqa: F401  # quiets the store's pools

    caplog.set_level(logging.WARNING)
    pool = psycopg_pool.ConnectionPool(
        f"postgresql://bob@127.0.0.1:{_closed_port()}/db", min_size=1, open=False, name="theirs"
    )
    with pytest.raises(psycopg_pool.PoolTimeout):
        pool.open(wait=True, timeout=0.5)
    pool.close()
    assert any("error connecting in 'theirs'" in r.getMessage() for r in _pool_records(caplog))


def test_a_server_stopped_mid_use_raises_typed_errors_and_logs_no_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that stops while a Store and an AsyncStore are open: each operation raises DatabaseError; the
    pools' 'discarding closed connection', 'discarding broken connection' and 'error connecting' records
    were WARNINGs, several per operation."""
    pytest.importorskip("psycopg_pool")
    from musicstore.testing import _pgserver

    if _pgserver.find_bindir() is None:
        pytest.skip("needs PostgreSQL's server binaries")
    server = _pgserver.start()
    try:
        server.admin("CREATE DATABASE stopped")
        url = server.url("stopped").replace("musicstore@", f"musicstore:{SECRET}@")
        migrate(url)
        caplog.set_level(logging.DEBUG)
        store = opened(lambda: Store(url, busy_timeout=0.5))  # connected: a slow first connect is no error
        loop = asyncio.new_event_loop()
        try:
            astore = loop.run_until_complete(opened_async(lambda: AsyncStore.open(url, busy_timeout=0.5)))
            assert store.count_generations() == loop.run_until_complete(astore.count_generations()) == 0
            server.stop()
            for _ in range(2):
                with pytest.raises(DatabaseError):
                    store.count_generations()
                with pytest.raises(DatabaseError):
                    loop.run_until_complete(astore.count_generations())
            loop.run_until_complete(asyncio.sleep(1.5))  # the pools try to reconnect meanwhile
            store.close()
            loop.run_until_complete(astore.close())
        finally:
            loop.close()
    finally:
        server.stop()
    assert [r.getMessage() for r in _pool_records(caplog) if r.levelno >= logging.WARNING] == []
    assert SECRET not in _shown(caplog)


def test_a_store_closed_before_its_first_operation_says_it_is_closed(db_url: str) -> None:
    """An AsyncStore closed unused: each operation raises the closed store's error, as a used one's do (the
    waits': 'open a new one to wait'), not the check's."""

    async def main() -> list[str]:
        store = AsyncStore(db_url)
        await store.close()
        said = []
        for use in FIRST_USES.values():
            with pytest.raises(InvalidInput) as raised:
                await use(store)
            said.append(str(raised.value))
        return said

    with Store(db_url) as store:
        store.count_generations()
    store.close()
    expected = []
    for name, use in FIRST_USES.items():
        with pytest.raises(InvalidInput) as raised:
            if name == "a transaction":
                with store.transaction() as tx:
                    tx.count_generations()
            else:
                use(store)  # type: ignore[arg-type]
        expected.append(str(raised.value))
    assert asyncio.run(main()) == expected


# --- a PostgreSQL AsyncStore left open as its loop ends, its pool still growing ---------------------------

_LEFT_OPEN_GROWING = """
import asyncio, sys
from musicstore.aio import AsyncStore

async def main():
    store = await AsyncStore.open(sys.argv[1], pool_size=3)
    await asyncio.gather(*(store.count_generations() for _ in range(3)))  # the pool grows: slow connects
    await store.create_generation("left open", model_name="musicgen-small", duration_seconds=8)
    print("loop over", flush=True)

asyncio.run(main())
"""


def test_a_process_whose_loop_ends_as_the_pool_grows_exits(postgres_url: str) -> None:
    """``asyncio.run`` ends with the store never closed while its pool still makes a connection (a server
    slow to connect to: the pool grew for the tasks waiting): asyncio.run cancels every task and waits for
    them, and psycopg_pool's worker swallowed the cancel in its connect, then waited for its next task for
    ever: the process never exited ('loop over', then nothing; tests/test_async_hunt_s24.py saw it once
    under load). The store's pool is closed as its loop ends."""
    import subprocess
    import sys
    from urllib.parse import urlsplit

    from tests.test_slow_connect import _SlowProxy

    port = urlsplit(postgres_url).port
    proxy = _SlowProxy(int(port or 0))
    slow = postgres_url.replace(f":{port}/", f":{proxy.port}/")
    try:
        done = subprocess.run(
            [sys.executable, "-c", _LEFT_OPEN_GROWING, slow],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the process did not exit: {exc.stdout!r} {exc.stderr!r}") from None
    finally:
        proxy.close()
    assert (done.returncode, done.stdout, done.stderr) == (0, "loop over\n", "")
    with Store(postgres_url) as store:
        assert store.count_generations() == 1
