"""A worker rides out a lost PostgreSQL server (a restart, a failover) instead of ending its run (session 27:
``run`` ended with the DatabaseError of the second lost try of its waiting claim, every worker of a service
stopped by a 10 s failover); ``migrate`` gives up on a server that never answers."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest

from musicstore import AsyncStore, Store, migrate, waiting
from musicstore.backends.postgres_settings import connect_settings, pool_settings
from musicstore.errors import MigrationError
from musicstore.migrate import CONNECT_SECONDS
from musicstore.testing import _pgserver
from musicstore.worker import AsyncJob, AsyncWorker, Job, Worker, WorkerReport
from tests.conftest import until
from tests.test_pg_hunt_s27 import _Hole, hole
from tests.test_reconnect_regressions import _start_again, _stop, own_server, own_url

__all__ = ["hole", "own_server", "own_url"]  # fixtures, used by name

DOWN_SECONDS = 6.0  # several of the store's busy timeouts (1 s): the waiting claim's tries fail meanwhile


def _complete(store: Store, job: Job) -> None:
    store.complete_generation(job.generation.id, file_path=f"{job.generation.id}.wav", file_size_bytes=1)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_worker_claims_again_once_the_server_is_back(
    own_server: _pgserver.Server, own_url: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker waiting for jobs while the server is stopped for several seconds, then started again: its run
    goes on and it claims and completes the job enqueued after; the outage is logged as it begins and as it
    ends (WARNING), not once a second."""
    caplog.set_level(logging.WARNING, logger="musicstore.worker")
    outcome: list[WorkerReport | BaseException] = []
    waits: list[Any] = []  # the store the worker waits on, once opened

    def waiting_for_work() -> bool:
        hub = waiting.listeners(waits[0]).hub if waits else None
        return hub is not None and hub.waiters >= 1

    with Store(own_url, pool_size=4, busy_timeout=1.0) as store:
        if kind == "sync":
            waits.append(store)
            worker = Worker(store, "gpu-0", lambda job: _complete(store, job))

            def run() -> None:
                try:
                    outcome.append(worker.run(max_jobs=1))
                except BaseException as exc:
                    outcome.append(exc)

        else:

            def run() -> None:
                async def main() -> WorkerReport:
                    async with AsyncStore.open(own_url, pool_size=4, busy_timeout=1.0) as astore:
                        waits.append(astore)

                        async def handler(job: AsyncJob) -> None:
                            g = job.generation
                            await astore.complete_generation(g.id, file_path=f"{g.id}.wav", file_size_bytes=1)

                        worker = AsyncWorker(astore, "gpu-0", handler)
                        return await worker.run(max_jobs=1)

                try:
                    outcome.append(asyncio.run(main()))
                except BaseException as exc:
                    outcome.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        until(lambda: waiting_for_work() or bool(outcome), 60)  # waiting for work, however loaded
        assert not outcome, outcome  # it began before the outage (not a failed open of the async store)
        _stop(own_server)
        time.sleep(DOWN_SECONDS)
        assert not outcome, outcome  # the run did not end on the outage
        _start_again(own_server)
        # the job is made, and read, by a store of its own: ``store``'s pool lost its connections in the
        # outage, and its busy_timeout of 1 s left a loaded machine too little time to connect again
        with Store(own_url, busy_timeout=60) as after:
            job = after.create_generation("after the outage", model_name="m", duration_seconds=1.0)
            thread.join(60)
            assert not thread.is_alive()
            assert len(outcome) == 1 and isinstance(outcome[0], WorkerReport), outcome
            assert outcome[0].done == 1
            row = after.get_generation(job.id)
            assert row is not None and row.status == "completed"
    said = [r.getMessage() for r in caplog.records if r.name == "musicstore.worker"]
    assert any("unreachable" in line for line in said), said
    assert any("answers again" in line for line in said), said
    assert len(said) <= 4, said


def test_migrate_gives_up_on_a_server_that_never_answers(hole: tuple[_Hole, str]) -> None:
    """``migrate`` of a PostgreSQL URL whose server (or a proxy before it) takes connections and never
    answers: a MigrationError within its connect timeout (``CONNECT_SECONDS``), not after psycopg's default
    130 s (found by the PostgreSQL hunt); a URL's own connect_timeout is kept."""
    proxy, url = hole
    proxy.open = False
    for given, seconds in ((url, CONNECT_SECONDS), (f"{url}?connect_timeout=3", 3)):
        started = time.monotonic()
        with pytest.raises(MigrationError, match="timeout"):
            migrate(given)
        assert time.monotonic() - started < seconds + 30  # not psycopg's 130 s


def test_a_urls_own_connect_timeout_wins_for_every_connection_of_a_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``connect_settings``, which the pool's connections, the reachability check and the wait hub all take
    (the check and the hub set their own timeout over the URL's before): the URL's own ``connect_timeout``
    and keepalives are kept, the rest filled in; ``busy_timeout`` rounded up, at least 2 s."""
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)  # yours: the URL's default (test_review_s37)
    base = "postgresql://u@127.0.0.1:5/db"
    assert connect_settings(base, 0.3)["connect_timeout"] == "2"
    assert connect_settings(base, 7.2)["connect_timeout"] == "8"
    assert "connect_timeout" not in connect_settings(base, None)
    own = connect_settings(f"{base}?connect_timeout=30&keepalives_idle=5", 1.0)
    assert "connect_timeout" not in own and "keepalives_idle" not in own and own["keepalives"] == "1"
    assert pool_settings(f"{base}?connect_timeout=30", 1.0) == {
        "autocommit": True,
        **own,
        "keepalives_idle": "30",
    }
