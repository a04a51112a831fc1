"""Regressions found hunting ``AsyncStore``'s cancellations, its pool and its loops (both backends where the
behaviour exists on both), and ``musicstore.testing``'s fixtures. No pytest-asyncio: each test runs its
coroutine with ``asyncio.run``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

import pytest

from musicstore import Generation, Status, Store
from musicstore.aio import AsyncStore

BUSY = 60.0
"""The busy timeout of these tests' stores: a wait that lasts it is the bug."""
PROMPT = 15.0
"""How soon a cancelled wait must have ended (seconds; generous for a loaded machine, where a thread's
rollback and the event loop's turns may take seconds; still a quarter of ``BUSY``)."""


async def anew_job(store: Any, prompt: str = "lofi hip hop at 90 BPM") -> Generation:
    job: Generation = await store.create_generation(prompt, model_name="musicgen-small", duration_seconds=8)
    return job


def test_a_write_waiting_for_a_lock_ends_at_once_when_its_task_is_cancelled(db_url: str) -> None:
    """A write waiting for a lock another connection holds (SQLite's writer lock, taken by ``BEGIN
    IMMEDIATE``; PostgreSQL's row lock) ends as soon as its task is cancelled (``asyncio.timeout``), with
    nothing written, not after ``busy_timeout``; the store works on, and closes. Before, on SQLite the
    cancelled task waited out the whole busy timeout (the rollback queued behind the waiting BEGIN)."""

    async def timed_out(call: Coroutine[Any, Any, object]) -> float:
        started = time.monotonic()
        try:
            async with asyncio.timeout(0.2):
                await call
        except TimeoutError:
            return time.monotonic() - started
        raise AssertionError("the write did not wait for the lock: the test proves nothing")

    async def in_a_transaction(store: AsyncStore, gid: str) -> None:
        async with store.transaction() as tx:
            await tx.create_generation("in the block", model_name="m", duration_seconds=8)
            await tx.cancel(gid)

    async def main() -> None:
        with Store(db_url) as sync:
            job = sync.create_generation("held", model_name="musicgen-small", duration_seconds=8)
            store = await AsyncStore.open(db_url, busy_timeout=BUSY, pool_size=2)
            try:
                with sync.transaction() as holder:
                    holder.cancel(job.id)  # the writer lock (SQLite), the row's lock (PostgreSQL)
                    took = [
                        await timed_out(store.cancel(job.id)),
                        await timed_out(in_a_transaction(store, job.id)),
                    ]
                    assert max(took) < PROMPT, f"the cancelled writes waited {took} s"
                    holder.create_generation("the holder's", model_name="m", duration_seconds=8)
                assert await store.get_prompt_by_text("in the block") is None  # rolled back: nothing written
                assert (await store.get_generation(job.id)).status is Status.CANCELLED  # type: ignore[union-attr]
                await asyncio.gather(*(anew_job(store, f"after {i}") for i in range(4)))
                assert await store.count_generations() == 6
            finally:
                started = time.monotonic()
                await store.close()
            assert time.monotonic() - started < PROMPT

    asyncio.run(main())


def test_a_postgres_store_used_in_another_event_loop_is_a_clear_error_and_closes(postgres_url: str) -> None:
    """An ``AsyncStore`` belongs to the loop it was opened in (docs/async.md): on PostgreSQL its pool's
    workers are that loop's tasks. Awaited in a later ``asyncio.run``, an operation raises ``InvalidInput``
    saying so, and ``close()`` there closes its connections. Before, operations ran on the connections the
    first loop had made but the pool could no longer open any (its workers had ended with their loop: a task
    beyond them waited for the busy timeout, then ``DatabaseBusy``: raise pool_size), and ``close()`` raised
    ``RuntimeError: Event loop is closed``, leaving the connections open."""
    import psycopg

    from musicstore import InvalidInput

    opened: list[AsyncStore] = []

    async def first() -> None:
        store = await AsyncStore.open(postgres_url, pool_size=4, busy_timeout=2)
        await anew_job(store, "first loop")
        opened.append(store)

    async def second() -> None:
        store = opened[0]
        for call in (store.count_generations, lambda: anew_job(store, "second loop")):
            try:
                await call()
            except InvalidInput as exc:
                assert "event loop" in str(exc)
            else:
                raise AssertionError("an operation in another event loop ran")
        await store.close()
        with pytest.raises(InvalidInput, match="closed"):
            await store.count_generations()
        async with AsyncStore.open(postgres_url) as again:  # one per loop: works
            assert await again.count_generations() == 1

    def connections() -> int:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            ).fetchone()
            return int(row[0]) if row else 0

    asyncio.run(first())
    assert connections() > 0
    asyncio.run(second())
    deadline = time.monotonic() + 30  # the server's backends end after the client closed (seconds, loaded)
    while connections() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert connections() == 0, "close() left the store's connections open"


def test_a_fresh_postgres_database_never_meets_another_runs_of_the_same_pid(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, musicstore_postgres_server: Any
) -> None:
    """``musicstore_postgres_url`` and ``musicstore_s3_url`` give a fresh database and a fresh prefix even on
    a server another run shares or left things on (``$MUSICSTORE_TEST_POSTGRES_URL``,
    ``$MUSICSTORE_TEST_S3_URL``) whose pytest had the same process id: in containers pytest's pid is the same
    run after run (often 1). Before, names were the pid and a counter: the database of a run killed before
    its teardown, or of a run at the same time, made CREATE DATABASE fail, and its objects were found under
    the "fresh" prefix (or deleted by the other run's teardown)."""
    import itertools
    import os

    from musicstore.testing import plugin

    monkeypatch.setattr(plugin, "_databases", itertools.count(10_000))
    pid = os.getpid()
    server = musicstore_postgres_server
    theirs = f"musicstore_test_{pid}_10000"  # what a run with this pid names its first database
    server.admin(f"CREATE DATABASE {theirs}")
    try:
        url = request.getfixturevalue("musicstore_postgres_url")
        with Store(url) as store:
            assert store.count_generations() == 0
    finally:
        server.admin(f"DROP DATABASE IF EXISTS {theirs} WITH (FORCE)")


def test_a_fresh_s3_prefix_never_holds_another_runs_objects_of_the_same_pid(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, musicstore_s3_server: Any
) -> None:
    """As above, for ``musicstore_s3_url``'s prefix."""
    import itertools
    import os

    from musicstore.testing import plugin

    monkeypatch.setattr(plugin, "_databases", itertools.count(10_001))
    pid = os.getpid()
    s3 = musicstore_s3_server
    client = s3.client()
    left = f"{s3.prefix}test-{pid}-10001/left-by-another-run.wav"
    client.put_object(Bucket=s3.bucket, Key=left, Body=b"RIFF")
    try:
        prefix = request.getfixturevalue("musicstore_s3_url").split("/", 3)[3]
        found = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix).get("Contents", [])
        assert found == [], f"the fresh prefix {prefix} holds another run's objects"
        assert client.get_object(Bucket=s3.bucket, Key=left)["Body"].read() == b"RIFF"
    finally:
        client.delete_object(Bucket=s3.bucket, Key=left)
        client.close()


def test_a_transaction_cancelled_at_any_await_commits_both_writes_or_neither(db_url: str) -> None:
    """A transaction block of two writes, cancelled after each number of event-loop turns in turn (every
    await it makes, BEGIN and COMMIT included): both rows or neither, each prompt counted once per row, no
    connection handed out inside a transaction (SQLite's rollback now ends after the cancelled task), the
    next operation works and the store closes."""

    async def main() -> None:
        store = await AsyncStore.open(db_url, busy_timeout=BUSY, pool_size=3)
        connector: Any = store._connector
        try:

            async def pair(i: int) -> None:
                async with store.transaction() as tx:
                    await anew_job(tx, f"pair {i}")
                    await anew_job(tx, f"pair {i}")

            started = time.monotonic()
            await pair(-1)
            whole = time.monotonic() - started  # how long a pair takes: cancelled across that span
            outcomes = set()
            for turns in range(40):
                task = asyncio.create_task(pair(turns))
                if turns < 10:
                    for _ in range(turns):
                        await asyncio.sleep(0)
                else:
                    await asyncio.sleep(whole * (turns - 10) / 25)
                task.cancel()
                outcomes.add((await asyncio.gather(task, return_exceptions=True))[0].__class__.__name__)
                idle = getattr(connector, "_idle", [])
                assert not any(conn.in_transaction for conn in idle), "a connection went back mid-transaction"
                rows = await store.count_generations()
                prompt = await store.get_prompt_by_text(f"pair {turns}")
                mine = 0 if prompt is None else prompt.used_count
                assert mine in (0, 2), f"cancelled after {turns} turns: {mine} of the pair's 2 rows"
                assert rows % 2 == 0
            assert "CancelledError" in outcomes, outcomes
        finally:
            await asyncio.wait_for(store.close(), BUSY)

    asyncio.run(main())


def test_strategies_take_one_model_rate_or_channel_count_as_they_take_one_status() -> None:
    """``model_names="musicgen-small"`` narrows to that model, ``sample_rates=44_100`` and ``channels=1``
    to that rate and count, as ``generations(statuses="completed")`` narrows to one status; a value that is
    neither a name/number nor several is ``InvalidInput``. Before, a name was taken as its letters (requests
    for models "m", "u", "s"... drawn silently) and a number raised TypeError ('int' object is not
    iterable)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from musicstore import InvalidInput
    from musicstore.testing import strategies as ms

    @settings(max_examples=25, deadline=None, database=None)
    @given(
        request=ms.generation_requests(model_names="musicgen-small", sample_rates=44_100, channels=1),
        row=ms.generations(model_names="stable-audio-open", sample_rates=48_000, channels=2),
        clip=ms.audio(channels=1, max_seconds=0.1),
    )
    def check(request: dict[str, Any], row: Generation, clip: Any) -> None:
        assert (request["model_name"], request["sample_rate"], request["channels"]) == (
            "musicgen-small",
            44_100,
            1,
        )
        assert (row.model_name, row.sample_rate, row.channels) == ("stable-audio-open", 48_000, 2)
        assert clip.shape[0] == 1

    check()
    for bad in (
        lambda: ms.generation_requests(sample_rates=44_100.5),  # type: ignore[arg-type]
        lambda: ms.generation_requests(channels=None),  # type: ignore[arg-type]
        lambda: ms.generation_requests(model_names=7),  # type: ignore[arg-type]
        lambda: ms.audio(channels=st.just(1)),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidInput):
            bad()


def test_bad_statuses_and_as_tensor_narrowing_are_invalid_input() -> None:
    """``generations(statuses=...)`` that is neither a status nor several is ``InvalidInput`` (it raised
    TypeError: 'int' object is not iterable; ``b"completed"`` was read as its bytes: "unknown status 99"),
    and ``audio(as_tensor=...)`` takes only True or False, as ``transients`` does ("no" drew tensors)."""
    from musicstore import InvalidInput
    from musicstore.testing import strategies as ms

    for statuses in (5, None, object(), b"completed"):
        with pytest.raises(InvalidInput, match="status") as caught:
            ms.generations(statuses=statuses)  # type: ignore[arg-type]
        assert "unknown status 99" not in str(caught.value)  # not b"completed" read as its bytes
    for flag in ("no", 1, None):
        with pytest.raises(InvalidInput, match="as_tensor"):
            ms.audio(as_tensor=flag)  # type: ignore[arg-type]


def test_a_prompt_narrowing_that_is_no_strategy_is_refused_when_the_strategy_is_made() -> None:
    """``generation_requests(prompt=...)`` and ``generations(prompt=...)`` take a strategy of prompts; a
    str or list there is ``InvalidInput`` when the strategy is made, as docs/testing.md says of bad
    narrowing. Before, the strategy was made and its first draw raised hypothesis' InvalidArgument."""
    from musicstore import InvalidInput
    from musicstore.testing import strategies as ms

    for prompt in ("lofi", ["lofi"]):
        with pytest.raises(InvalidInput, match="prompt"):
            ms.generation_requests(prompt=prompt)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="prompt"):
            ms.generations(prompt=prompt)  # type: ignore[arg-type]
