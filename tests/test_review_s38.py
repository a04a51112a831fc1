"""Session 38: ``session_replication_role`` set for a database or role.

Left at ``replica`` on a database or role by a replication or DMS load (or in ``PGOPTIONS``), it fires no
trigger: the totals and owners' lanes the store's triggers keep went unkept, with no error (a count read 0
after three jobs, a job with an owner was never claimed). Each new connection sets it back to ``origin``
where it is not; a role that may not set it gets an error that says so, and nothing is written.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from musicstore import DatabaseError, MigrationError, Store
from musicstore.aio import AsyncStore
from musicstore.migrate import migrate


def _database(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT current_database()").fetchone()
    assert row is not None
    return str(row[0])


def _replica_database(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} SET session_replication_role = replica").format(
                sql.Identifier(_database(url))
            )
        )
    with psycopg.connect(url) as conn:  # the setting is in force for a new session
        assert conn.execute("SHOW session_replication_role").fetchone() == ("replica",)


def test_a_replica_role_of_the_database_is_set_back_sync(postgres_url: str) -> None:
    _replica_database(postgres_url)
    store = Store(postgres_url)
    try:
        made = [
            store.create_generation("lofi", model_name="m", duration_seconds=5, owner_key="alice")
            for _ in range(3)
        ]
        assert store.count_generations() == 3
        assert store.get_database_stats().prompt_uses == 3
        claimed = store.claim_next("w1")
        assert claimed is not None and claimed.id == made[0].id
    finally:
        store.close()


def test_a_replica_role_of_the_database_is_set_back_async(postgres_url: str) -> None:
    _replica_database(postgres_url)

    async def main() -> None:
        async with AsyncStore(postgres_url) as store:
            made = await store.create_generation("lofi", model_name="m", duration_seconds=5, owner_key="bob")
            assert await store.count_generations() == 1
            claimed = await store.claim_next("w1")
            assert claimed is not None and claimed.id == made.id

    asyncio.run(main())


def test_migrate_sets_a_replica_role_back(postgres_url: str) -> None:
    """A migration's session gets the store's settings: its triggers are made, and fire afterwards."""
    _replica_database(postgres_url)
    assert migrate(postgres_url) == []  # nothing left to apply, and no error
    store = Store(postgres_url)
    try:
        store.create_generation("lofi", model_name="m", duration_seconds=5)
        assert store.count_generations() == 1
    finally:
        store.close()


@pytest.fixture
def replica_role_url(postgres_url: str) -> Iterator[str]:
    """A URL for a role that is not a superuser, with ``session_replication_role = replica`` set for it by a
    superuser (which PostgreSQL applies at its sessions' start, and the role may not change)."""
    name = f"app_{uuid.uuid4().hex[:12]}"
    role = sql.Identifier(name)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
        for grant in (
            "GRANT ALL ON ALL TABLES IN SCHEMA public TO {}",
            "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {}",
            "GRANT ALL ON SCHEMA public TO {}",
        ):
            admin.execute(sql.SQL(grant).format(role))
        admin.execute(sql.SQL("ALTER ROLE {} SET session_replication_role = replica").format(role))
    user = postgres_url.split("//", 1)[1].split("@", 1)[0].split(":", 1)[0]
    yield postgres_url.replace(f"//{user}@", f"//{name}@", 1)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(role))
        admin.execute(sql.SQL("DROP ROLE {}").format(role))


def _rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM generations").fetchone()
    assert row is not None
    return int(row[0])


def test_a_role_that_may_not_set_it_back_is_told_why_sync(postgres_url: str, replica_role_url: str) -> None:
    with psycopg.connect(replica_role_url) as conn:  # the role's own sessions run as replicas
        assert conn.execute("SHOW session_replication_role").fetchone() == ("replica",)
    with pytest.raises(DatabaseError, match="session_replication_role is not 'origin'") as raised:
        store = Store(replica_role_url, busy_timeout=1.0)
        try:
            store.create_generation("lofi", model_name="m", duration_seconds=5)
        finally:
            store.close()
    assert "pool_size" not in str(raised.value)
    assert _rows(postgres_url) == 0


def test_a_role_that_may_not_set_it_back_is_told_why_async(postgres_url: str, replica_role_url: str) -> None:
    async def main() -> None:
        async with AsyncStore(replica_role_url, busy_timeout=1.0) as store:
            await store.create_generation("lofi", model_name="m", duration_seconds=5)

    with pytest.raises(DatabaseError, match="session_replication_role is not 'origin'"):
        asyncio.run(main())
    assert _rows(postgres_url) == 0


def test_migrate_as_a_role_that_may_not_set_it_back_says_why(replica_role_url: str) -> None:
    with pytest.raises(MigrationError, match="session_replication_role is not 'origin'") as raised:
        migrate(replica_role_url)
    assert "check the URL" not in str(raised.value)
