"""AsyncStore used without ``open()``, session 28: its first operation checks the schema as ``Store(url)`` and
``AsyncStore.open`` do, once, with the same errors and warnings."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from musicstore import AsyncStore, Store, migrate
from musicstore.drivers import opening
from musicstore.errors import MigrationError, NewerSchemaWarning
from musicstore.migrate import shipped_migrations
from musicstore.urls import resolve

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

    async def slow(self: AsyncStore) -> None:
        if not gate[0].is_set():
            gate[0].set()
            await asyncio.sleep(10)
        await real(self)

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
            return list(await asyncio.wait_for(asyncio.gather(*others), 5))

    assert asyncio.run(main()) == [0, 0, 0]


def test_a_first_call_on_a_migrated_database_works(db_url: str) -> None:
    for name, first in FIRST_USES.items():
        if name not in ("wait_for", "report_progress"):
            _first(db_url, first)
    assert _first(db_url, FIRST_USES["a read"], bare=True) == 1
