"""Store and AsyncStore, on SQLite and on PostgreSQL, answer one random sequence of operations alike: the same
results in the same order, the same errors (type and message), under one FakeClock."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from musicstore import RESET_CONFIRMATION, AsyncStore, MusicstoreError, RetryPolicy, Store
from musicstore.testing import FakeClock

START = datetime.fromisoformat("2026-01-01T12:00:00+00:00")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
UNKNOWN = "00000000-0000-7000-8000-000000000000"
OWNERS = [None, "alice", "bob"]
WORKERS = ["gpu-0", "gpu-1"]
READS = ["queue_depth", "get_database_stats", "get_pending_generations", "list_dead_letters", "replay_all"]


class Side:
    """One of the four stores, with the ids it made (a job is named by its index across the four)."""

    def __init__(self, call: Callable[[str, tuple[Any, ...], dict[str, Any]], Any]) -> None:
        self.call = call
        self.ids: list[str | None] = []
        self.claimed: list[str] = []
        self.names: dict[str, str] = {}

    def job(self, index: int) -> str:
        found = self.ids[index] if index < len(self.ids) else None
        return found or UNKNOWN

    def last_claimed(self, back: int) -> str:
        return self.claimed[-1 - back] if back < len(self.claimed) else UNKNOWN

    def plain(self, value: Any) -> Any:
        """``value`` with this side's ids named by creation order, NaN made comparable, prompts' ids dropped
        (a PostgreSQL sequence skips the numbers its ON CONFLICT used)."""
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: self.plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
            if type(value).__name__ == "Prompt":
                fields.pop("id")
            if type(value).__name__ == "Page":
                fields["next_cursor"] = fields["next_cursor"] is not None
            return type(value).__name__, fields
        if isinstance(value, dict):
            return {self.plain(k): self.plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.plain(v) for v in value]
        if isinstance(value, str):
            return UUID.sub(lambda m: self.names.get(m.group(0), "<unknown id>"), value)
        if isinstance(value, float) and math.isnan(value):
            return "NaN"
        return value


def _sync(store: Store) -> Callable[[str, tuple[Any, ...], dict[str, Any]], Any]:
    return lambda name, args, kwargs: getattr(store, name)(*args, **kwargs)


Call = Callable[[str, tuple[Any, ...], dict[str, Any]], Any]


def _async(store: AsyncStore, runner: asyncio.Runner) -> Call:
    return lambda name, args, kwargs: runner.run(getattr(store, name)(*args, **kwargs))


async def _open(url: str, clock: FakeClock) -> AsyncStore:
    return await AsyncStore.open(url, clock=clock)


@pytest.fixture
def four(
    musicstore_sqlite_url: str, musicstore_postgres_server: Any, tmp_path: Path
) -> Iterator[tuple[list[Side], FakeClock]]:
    """Store and AsyncStore on two fresh SQLite files and two fresh PostgreSQL databases, one clock."""
    server = musicstore_postgres_server
    names = [f"parity_{i}_{id(tmp_path)}" for i in range(2)]
    server.admin(*(f"CREATE DATABASE {name} TEMPLATE {server.template}" for name in names))
    second = tmp_path / "second.db"
    second.write_bytes(Path(musicstore_sqlite_url.removeprefix("sqlite:///")).read_bytes())
    clock = FakeClock(START)
    runner = asyncio.Runner()
    stores = [Store(musicstore_sqlite_url, clock=clock), Store(server.url(names[0]), clock=clock)]
    urls = [f"sqlite:///{second}", server.url(names[1])]
    astores = [runner.run(_open(url, clock)) for url in urls]
    try:
        yield [*(Side(_sync(s)) for s in stores), *(Side(_async(s, runner)) for s in astores)], clock
    finally:
        for store in stores:
            store.close()
        for astore in astores:
            runner.run(astore.close())
        runner.close()
        server.admin(*(f"DROP DATABASE {name} WITH (FORCE)" for name in names))


class Parity(RuleBasedStateMachine):
    """Each rule runs on the four stores; their answers must be equal."""

    sides: list[Side]
    clock: FakeClock

    def __init__(self) -> None:
        super().__init__()
        self.created = 0
        for side in self.sides:
            side.call("reset_database", (), {"confirm": RESET_CONFIRMATION})
            for owner in OWNERS[1:]:
                side.call("set_owner_limit", (owner, None), {})
            side.ids.clear()
            side.claimed.clear()
            side.names.clear()
        self.clock.now = START

    def same(self, name: str, args: Callable[[Side], tuple[Any, ...]], kwargs: dict[str, Any]) -> None:
        answers = []
        for side in self.sides:
            try:
                value = side.call(name, args(side), kwargs)
            except MusicstoreError as exc:
                value, answer = None, (type(exc).__name__, str(exc))
            else:
                answer = ("ok", value)
            if name == "create_generation":
                side.ids.append(value.id if value is not None else None)
                if value is not None:
                    side.names.setdefault(value.id, f"<job {len(side.ids) - 1}>")
            elif name in ("claim_next", "claim_batch") and value:
                side.claimed.extend(g.id for g in (value if isinstance(value, list) else [value]))
            answers.append(side.plain(answer))
        assert all(answer == answers[0] for answer in answers[1:]), (name, answers)

    @rule(
        prompt=st.sampled_from(["lofi", "ambient drone", "", "x\x00y"]),
        owner=st.sampled_from(OWNERS),
        priority=st.sampled_from([0, 1, -1, 40_000]),
        key=st.sampled_from([None, "k1", "k2"]),
        later=st.sampled_from([None, -5.0, 30.0]),
        metadata=st.sampled_from([None, {"bpm": 90}, {"b": 1, "a": [1.5, None]}, {"x": math.nan}]),
    )
    def create(
        self,
        *,
        prompt: str,
        owner: str | None,
        priority: int,
        key: str | None,
        later: float | None,
        metadata: Any,
    ) -> None:
        kwargs: dict[str, Any] = {"model_name": "m", "duration_seconds": 2.0, "owner_key": owner}
        kwargs.update(priority=priority, idempotency_key=key, metadata=metadata)
        if later is not None:
            kwargs["run_after"] = self.clock.now + timedelta(seconds=later)
        self.same("create_generation", lambda side: (prompt,), kwargs)

    @rule(
        worker=st.sampled_from(WORKERS),
        limit=st.sampled_from([None, 1, 0, -1]),
        lease=st.sampled_from([30, 0]),
    )
    def claim(self, worker: str, limit: int | None, lease: float) -> None:
        self.same("claim_next", lambda side: (worker,), {"owner_limit": limit, "lease_seconds": lease})

    @rule(worker=st.sampled_from(WORKERS), count=st.sampled_from([1, 3, 0]), limit=st.sampled_from([None, 1]))
    def claim_batch(self, worker: str, count: int, limit: int | None) -> None:
        self.same("claim_batch", lambda side: (worker, count), {"owner_limit": limit})

    @rule(back=st.integers(0, 2), worker=st.sampled_from(WORKERS))
    def heartbeat(self, back: int, worker: str) -> None:
        self.same("heartbeat", lambda side: (side.last_claimed(back), worker), {})

    @rule(back=st.integers(0, 2), worker=st.sampled_from([None, *WORKERS]), size=st.sampled_from([10, -1]))
    def complete(self, back: int, worker: str | None, size: int) -> None:
        kwargs = {"file_path": "a/b.wav", "file_size_bytes": size, "worker_id": worker}
        kwargs["metadata"] = {"lufs": -16}
        self.same("complete_generation", lambda side: (side.last_claimed(back),), kwargs)

    @rule(
        back=st.integers(0, 2),
        attempts=st.sampled_from([1, 3, 0]),
        retry=st.booleans(),
        base=st.sampled_from([None, 0.0, 10.0]),
    )
    def fail(self, back: int, attempts: int, retry: bool, base: float | None) -> None:
        backoff = None if base is None else RetryPolicy(base_seconds=base, jitter=0)
        kwargs = {"max_attempts": attempts, "retry": retry, "backoff": backoff}
        self.same("fail", lambda side: (side.last_claimed(back), "boom"), kwargs)

    @rule(index=st.integers(0, 30), reason=st.sampled_from([None, "user", ""]))
    def cancel(self, index: int, reason: str | None) -> None:
        self.same("cancel", lambda side: (side.job(index),), {"reason": reason})

    @rule(index=st.integers(0, 30))
    def replay(self, index: int) -> None:
        self.same("replay", lambda side: (side.job(index),), {})

    @rule(seconds=st.sampled_from([0.5, 31.0, 700.0]), attempts=st.sampled_from([1, 3]))
    def requeue(self, seconds: float, attempts: int) -> None:
        self.clock.advance(seconds)
        self.same("requeue_expired", lambda side: (), {"max_attempts": attempts})

    @rule(
        status=st.sampled_from([None, "pending", "processing", "failed", "bogus"]),
        limit=st.sampled_from([1, 2, 50]),
        pages=st.integers(1, 4),
    )
    def pages(self, status: str | None, limit: int, pages: int) -> None:
        cursors: dict[int, str | None] = {id(side): None for side in self.sides}

        for _ in range(pages):
            answers = []
            for side in self.sides:
                kwargs = {"status": status, "limit": limit, "cursor": cursors[id(side)]}
                try:
                    page = side.call("list_generations", (), kwargs)
                except MusicstoreError as exc:
                    answers.append(side.plain((type(exc).__name__, str(exc))))
                    continue
                cursors[id(side)] = page.next_cursor
                answers.append(side.plain(page))
            assert all(answer == answers[0] for answer in answers[1:]), answers
            if all(c is None for c in cursors.values()):
                break

    @rule(name=st.sampled_from(READS))
    def read(self, name: str) -> None:
        self.same(name, lambda side: (), {})

    @rule(index=st.integers(0, 30))
    def position(self, index: int) -> None:
        self.same("queue_position", lambda side: (side.job(index),), {})

    @rule(status=st.sampled_from([None, "pending", "completed", "x"]))
    def count(self, status: str | None) -> None:
        self.same("count_generations", lambda side: (), {"status": status})

    @rule(prompt=st.sampled_from(["lofi", "nope", ""]))
    def prompts(self, prompt: str) -> None:
        self.same("get_prompt_by_text", lambda side: (prompt,), {})
        self.same("get_most_used_prompts", lambda side: (), {"limit": 5})

    @rule(owner=st.sampled_from(OWNERS[1:]), limit=st.sampled_from([None, 1, 0]))
    def owner_limit(self, owner: str, limit: int | None) -> None:
        self.same("set_owner_limit", lambda side: (owner, limit), {})
        self.same("get_owner_limits", lambda side: (), {})


def test_four_stores_agree(four: tuple[list[Side], FakeClock]) -> None:
    """Sync and async, SQLite and PostgreSQL: one random history, equal answers at every step."""
    Parity.sides, Parity.clock = four
    run_state_machine_as_test(
        Parity, settings=settings(max_examples=12, stateful_step_count=30, deadline=None)
    )


def _terminate_the_clients_of(url: str) -> int:
    """End every other client connection to ``url``'s database (as a server's idle_session_timeout, a proxy
    or a failover does): the store's pooled connections and its listening one."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid, 60000)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def _until_listening(url: str) -> None:
    """Until the store's hub listens on ``url``'s database (made at its first wait: a connection, seconds
    on a loaded machine), then a little more: the wait asleep."""
    import time

    import psycopg

    deadline = time.monotonic() + 30
    with psycopg.connect(url, autocommit=True) as admin:
        while admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'"
        ).fetchone() == (0,):
            assert time.monotonic() < deadline, "the wait never listened"
            time.sleep(0.02)
    time.sleep(0.2)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_wait_outlives_its_store_s_connections_ending_while_it_sleeps(
    musicstore_postgres_url: str, kind: str
) -> None:
    """PostgreSQL ends the store's connections while ``wait_for`` sleeps (idle_session_timeout, a proxy, an
    operator): the hub listens again and wakes the wait, whose next read then met the dead pooled connection
    and raised DatabaseError ('terminating connection'), ending a wait the server was still there for. Sync
    and async alike, the wait returns the job once another host finishes it."""
    import threading
    import time

    url = musicstore_postgres_url
    with Store(url) as setup:
        job = setup.create_generation("lofi", model_name="m", duration_seconds=2.0)
    outcome: dict[str, Any] = {}

    def finish_later() -> None:
        _until_listening(url)  # the wait sleeps by then
        assert _terminate_the_clients_of(url) >= 2
        time.sleep(0.3)
        with Store(url) as other:
            assert other.claim_next("gpu-9") is not None
            other.complete_generation(job.id, file_path="a/b.wav", file_size_bytes=1, worker_id="gpu-9")

    async def wait_async() -> Any:
        async with AsyncStore.open(url) as store:
            await store.count_generations()
            thread = threading.Thread(target=finish_later)
            thread.start()
            try:
                return await store.wait_for(job.id, timeout=60)
            finally:
                await asyncio.to_thread(thread.join)

    if kind == "sync":
        with Store(url) as store:
            store.count_generations()
            thread = threading.Thread(target=finish_later)
            thread.start()
            try:
                outcome["found"] = store.wait_for(job.id, timeout=60)
            finally:
                thread.join()
    else:
        outcome["found"] = asyncio.run(wait_async())
    assert outcome["found"].status.value == "completed"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_wait_on_a_store_closed_before_any_wait_opens_no_listening_connection(
    musicstore_postgres_url: str, kind: str
) -> None:
    """A wait on a closed store is refused (InvalidInput). One that never waited before ``close`` made the
    store's hub first: a listening server connection and its thread, left open for as long as the store
    object lived (and listening again after every loss), for a wait that could not run."""
    import psycopg

    from musicstore import waiting

    url = musicstore_postgres_url
    job = UNKNOWN

    async def closed_async() -> str:
        store = await AsyncStore.open(url)
        await store.close()
        with pytest.raises(MusicstoreError) as refused:
            await store.wait_for(job, timeout=1)
        with pytest.raises(MusicstoreError):
            await store.claim_next("gpu-0", wait=1)
        kept.append(store)
        return f"{type(refused.value).__name__}: {refused.value}"

    kept: list[Any] = []
    if kind == "sync":
        store = Store(url)
        store.close()
        with pytest.raises(MusicstoreError) as refused:
            store.wait_for(job, timeout=1)
        with pytest.raises(MusicstoreError):
            store.claim_next("gpu-0", wait=1)
        kept.append(store)
        said = f"{type(refused.value).__name__}: {refused.value}"
    else:
        said = asyncio.run(closed_async())
    assert said == "InvalidInput: the store is closed; open a new one to wait"
    with psycopg.connect(url) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'"
        ).fetchone()
    assert row is not None and row[0] == 0
    hub = waiting.listeners(kept[0]).hub
    assert hub is not None and not hub.started


def test_a_wait_s_busy_try_is_not_taken_for_a_lost_connection() -> None:
    """A try that waited out the busy timeout for a pooled connection (psycopg_pool's PoolTimeout, an
    OperationalError without SQLSTATE) or a row lock is ``DatabaseBusy``: raised by the wait at once, not
    tried again as a lost connection is (which would wait out the busy timeout twice)."""
    import psycopg
    import psycopg_pool

    from musicstore import waiting
    from musicstore.backends.postgres import translate

    def translated(exc: BaseException) -> Any:
        found = translate(exc, "postgresql://h/db")
        assert found is not None
        found.__cause__ = exc
        return found

    assert not waiting.connection_lost(translated(psycopg_pool.PoolTimeout("no connection in 5 s")))
    assert not waiting.connection_lost(translated(psycopg.errors.LockNotAvailable("lock timeout")))
    assert waiting.connection_lost(translated(psycopg.OperationalError("server closed the connection")))


def test_an_idle_worker_outlives_its_store_s_connections_ending(musicstore_postgres_url: str) -> None:
    """A ``Worker`` idle on PostgreSQL (its claim's wait, ``waiting.until``) when the server ends the store's
    connections: it ended with DatabaseError at the next try; it goes on and runs the job enqueued after."""
    import threading
    import time

    from musicstore.worker import Worker

    url = musicstore_postgres_url
    ran: list[str] = []
    with Store(url) as store:

        def handle(job: Any) -> None:
            ran.append(job.generation.prompt)
            worker.stop()

        worker = Worker(store, "gpu-0", handle)
        store.count_generations()

        def later() -> None:
            _until_listening(url)  # the worker's claim waits
            assert _terminate_the_clients_of(url) >= 2
            time.sleep(0.3)
            with Store(url) as other:
                other.create_generation("after", model_name="m", duration_seconds=2.0)

        thread = threading.Thread(target=later)
        thread.start()
        try:
            worker.run(max_jobs=1)
        finally:
            thread.join()
    assert ran == ["after"]
