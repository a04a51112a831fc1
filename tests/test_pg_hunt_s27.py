"""The PostgreSQL backend under failure (session 27's hunt): outages, killed connections, odd settings."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from musicstore import AsyncStore, DatabaseError, Store
from musicstore.testing import _pgserver
from tests.test_reconnect_regressions import _end_clients_of, _start_again, _stop, own_server, own_url
from tests.test_slow_connect import _SlowProxy

__all__ = ["own_server", "own_url"]  # fixtures, used by name

OUTAGE_SECONDS = 8.0
"""Long enough that psycopg_pool's own reconnection, left to itself, backs off past it: it tries at 1, 3, 7
and 15 s (each pause doubled, ±10 %), so the store's first try after the server came back is ~5 s or more
before its next attempt."""
BUSY_SECONDS = 2.0
"""The stores' ``busy_timeout`` in the outage test, sized to tell the back-off apart: left to itself, the
pool retries at 7 s (±10 %), then at 15 s (13.5 s at the earliest) after it found its connection lost, by
the server's stop or by the end of the first failed operation (which may wait out ``busy_timeout``; the
outage counts from that end). The operation after the restart, waiting ``busy_timeout`` for the pool, fails
where the back-off is left to itself while 2 + 8 + restart + 2 s is under 13.5 s: while the restart takes
under 1.5 s (0.1 s measured). A store that works has 2 s to connect (1 s could fail under a stall; 3 s no
longer caught the back-off: measured)."""


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_the_store_works_at_once_when_the_server_is_back_after_an_outage(
    own_server: _pgserver.Server, own_url: str, kind: str
) -> None:
    """A server down for several seconds, then back: the next operation works. Before, the pool's background
    reconnection had backed off (1, 2, 4, 8... s, for up to 5 minutes) and every operation until its next
    attempt failed after busy_timeout with DatabaseBusy 'no pooled connection came free in time; raise
    pool_size', for about as long again as the outage lasted."""

    if kind == "sync":
        with Store(own_url, pool_size=4, busy_timeout=BUSY_SECONDS) as store:
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
        async with AsyncStore.open(own_url, pool_size=4, busy_timeout=BUSY_SECONDS) as store:
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


class _Hole(_SlowProxy):
    """A TCP proxy to ``target``; while ``open`` is False it accepts new connections and never answers them
    (a hung server or proxy, a load balancer whose backend is gone), holding them until ``close``
    (``_SlowProxy``'s piping, with no delay)."""

    open = True

    def _open(self, client: socket.socket) -> None:
        if not self.open:
            self.sockets.append(client)
            return  # held, never answered
        self._join(client, socket.create_connection(("127.0.0.1", self.target)))


@pytest.fixture
def hole(postgres_url: str) -> Iterator[tuple[_Hole, str]]:
    port = urlsplit(postgres_url).port
    assert port is not None
    proxy = _Hole(port)
    try:
        yield proxy, postgres_url.replace(f":{port}/", f":{proxy.port}/")
    finally:
        proxy.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_the_store_works_again_soon_after_a_server_that_hung_answers_again(
    hole: tuple[_Hole, str], postgres_url: str, kind: str
) -> None:
    """New connections accepted and never answered for a while (the store's own ended meanwhile), then
    answered again: the store works again within a few seconds. Before, the pool's connection attempts had
    no connect timeout (psycopg's default: 130 s); its threads stuck in them, it made no connection for up to
    two minutes after the server answered again, and every operation failed with DatabaseBusy."""
    proxy, url = hole

    def hang() -> None:
        proxy.open = False
        assert _end_clients_of(postgres_url) >= 1

    if kind == "sync":
        with Store(url, pool_size=4, busy_timeout=1.0) as store:
            store.create_generation("lofi", model_name="m", duration_seconds=2.0)
            hang()
            with pytest.raises(DatabaseError, match="timeout"):
                store.count_generations()
            proxy.open = True
            deadline = time.monotonic() + 60.0  # the bug: psycopg's 130 s
            while True:
                try:
                    assert store.count_generations() == 1
                    break
                except DatabaseError:
                    assert time.monotonic() < deadline, "the store did not work again in 60 s"
        return

    async def main() -> None:
        async with AsyncStore.open(url, pool_size=4, busy_timeout=1.0) as store:
            await store.create_generation("lofi", model_name="m", duration_seconds=2.0)
            await asyncio.to_thread(hang)
            with pytest.raises(DatabaseError, match="timeout"):
                await store.count_generations()
            proxy.open = True
            deadline = time.monotonic() + 60.0  # the bug: psycopg's 130 s
            while True:
                try:
                    assert await store.count_generations() == 1
                    break
                except DatabaseError:
                    assert time.monotonic() < deadline, "the store did not work again in 60 s"

    asyncio.run(main())
