"""The PostgreSQL backend under failure (session 27's hunt): outages, killed connections, odd settings."""

from __future__ import annotations

import asyncio
import time

import pytest

from musicstore import AsyncStore, DatabaseError, Store
from musicstore.testing import _pgserver
from tests.test_reconnect_regressions import _start_again, _stop, own_server, own_url

__all__ = ["own_server", "own_url"]  # fixtures, used by name

OUTAGE_SECONDS = 8.0
"""Long enough that psycopg_pool's own reconnection, left to itself, backs off past it: it tries at 1, 3, 7
and 15 s (each pause doubled, ±10 %), so the store's first try after the server came back is ~5 s or more
before its next attempt."""


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_the_store_works_at_once_when_the_server_is_back_after_an_outage(
    own_server: _pgserver.Server, own_url: str, kind: str
) -> None:
    """A server down for several seconds, then back: the next operation works. Before, the pool's background
    reconnection had backed off (1, 2, 4, 8... s, for up to 5 minutes) and every operation until its next
    attempt failed after busy_timeout with DatabaseBusy 'no pooled connection came free in time; raise
    pool_size', for about as long again as the outage lasted."""

    if kind == "sync":
        with Store(own_url, pool_size=4, busy_timeout=1.0) as store:
            store.create_generation("lofi", model_name="m", duration_seconds=2.0)
            _stop(own_server)
            with pytest.raises(DatabaseError):  # the pool finds its connection lost and tries to connect
                store.count_generations()
            time.sleep(OUTAGE_SECONDS)
            _start_again(own_server)
            assert store.count_generations() == 1
            store.create_generation("after", model_name="m", duration_seconds=2.0)
            assert store.count_generations() == 2
        return

    async def main() -> None:
        async with AsyncStore.open(own_url, pool_size=4, busy_timeout=1.0) as store:
            await store.create_generation("lofi", model_name="m", duration_seconds=2.0)
            _stop(own_server)  # in this thread: the server dies with the thread that started it
            with pytest.raises(DatabaseError):
                await store.count_generations()
            await asyncio.sleep(OUTAGE_SECONDS)
            _start_again(own_server)
            assert await store.count_generations() == 1
            await store.create_generation("after", model_name="m", duration_seconds=2.0)
            assert await store.count_generations() == 2

    asyncio.run(main())
