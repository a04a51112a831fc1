"""Sync/async parity, session 26: one random history on Store and AsyncStore, SQLite and PostgreSQL (the
``strict_four`` stores of ``tests/test_parity_hunt_s24.py``), now with this session's changes in it: progress
reports whose lease is shorter than the coalescing interval, owner limits that wake idle workers, the
metrics' figures read with and without the window's rows (``metrics_op(rows=...)``), and the dashboard's
recent failures (``web.reads.recent_failures_op``). And an awaiting task cancelled in the middle of its
wait (``claim_next(wait=...)``, ``wait_for``) leaves nothing registered and no transaction open."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import rule, run_state_machine_as_test

from musicstore import AsyncStore, MusicstoreError, Status, Store, waiting
from musicstore.metrics import metrics_op
from musicstore.testing import FakeClock
from musicstore.web.reads import recent_failures_op
from tests.test_parity_hunt_s24 import Mono, Wider, failure, strict_four
from tests.test_parity_regressions import WORKERS, Side

__all__ = ["strict_four"]

EXAMPLES = int(os.environ.get("MUSICSTORE_PARITY_EXAMPLES", "10"))
STEPS = int(os.environ.get("MUSICSTORE_PARITY_STEPS", "30"))


def _figures(snapshot: Any) -> Any:
    """A metrics snapshot's fields, less the time it took to read (``seconds``: the wall clock)."""
    fields = {f.name: getattr(snapshot, f.name) for f in dataclasses.fields(snapshot)}
    fields.pop("seconds", None)
    return fields


class Session26(Wider):
    """``Wider``'s history with this session's operations in it."""

    def same_run(self, op: Any, kwargs: dict[str, Any], shape: Any = None) -> list[Any]:
        """``store.run(op, **kwargs)`` on the four stores: the same answers (``shape`` applied to a value)."""
        answers = []
        for side in self.sides:
            try:
                value = side.call("run", (op,), kwargs)
            except MusicstoreError as exc:
                said: Any = failure(exc)
            else:
                said = ("ok", value if shape is None else shape(value))
            answers.append(side.plain(said))
        assert all(said == answers[0] for said in answers[1:]), (op.__name__, kwargs, answers)
        return answers

    @rule(
        rows=st.sampled_from([True, False, 1, None]),
        window=st.sampled_from([3600.0, 1e-6, 60.0]),
        limit=st.sampled_from([1, 2, 1000]),
    )
    def metrics(self, rows: Any, window: float, limit: int) -> None:
        kwargs = {"rows": rows, "window": window, "window_limit": limit}
        self.same_run(metrics_op, kwargs, _figures)
        if rows is True:  # the window's figures are the same read either way
            for side in self.sides:
                full = side.call("run", (metrics_op,), kwargs)
                bare = side.call("run", (metrics_op,), {**kwargs, "rows": False})
                assert bare.recent == []
                assert full.window == bare.window, (full.window, bare.window)

    @rule(limit=st.sampled_from([1, 3, 10, 0, -1, 10**9, True]))
    def recent_failures(self, limit: int) -> None:
        self.same_run(recent_failures_op, {"limit": limit})

    @rule(
        back=st.integers(0, 2),
        worker=st.sampled_from(WORKERS),
        stage=st.sampled_from([None, "sampling"]),
        lease=st.sampled_from([0.1, 0.4, 1.5, 0.0]),
        later=st.sampled_from([0.0, 0.04, 0.06, 0.2, 0.8]),
        reports=st.integers(1, 4),
    )
    def short_lease_progress(
        self, *, back: int, worker: str, stage: str | None, lease: float, later: float, reports: int
    ) -> None:
        """Reports that extend a lease shorter than the coalescing interval: written alike."""
        for i in range(reports):
            self.mono.now += later
            args = lambda side, i=i: (side.last_claimed(back), worker, i / 10, stage)  # noqa: E731
            self.same("report_progress", args, {"lease_seconds": lease})


def test_four_stores_agree_with_this_sessions_operations(
    strict_four: tuple[list[Side], FakeClock, Mono],
) -> None:
    Session26.sides, Session26.clock, Session26.mono = strict_four
    run_state_machine_as_test(
        Session26, settings=settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None)
    )


def _open_transactions(store: AsyncStore, url: str) -> int:
    """How many of the store's connections are in a transaction: SQLite, connections lent out (an open
    transaction holds its connection); PostgreSQL, sessions of the database idle or active in one."""
    if not url.startswith("postgres"):
        return len(store._connector._lent)
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
            "AND (state LIKE 'idle in transaction%' OR xact_start IS NOT NULL)"
        ).fetchone()
        return int(row[0]) if row else 0


async def _no_transaction_soon(store: AsyncStore, url: str, when: Any) -> None:
    """None of the store's connections is in a transaction soon (a cancelled SQLite transaction's rollback
    runs on its connection's thread after the task ended: ``AsyncSQLiteConnector.release``): within 30 s, as
    a loaded machine may take seconds to run that thread; a transaction left open never ends."""
    deadline = asyncio.get_running_loop().time() + 30.0
    while (left := await asyncio.to_thread(_open_transactions, store, url)) != 0:
        assert asyncio.get_running_loop().time() < deadline, (when, left)
        await asyncio.sleep(0.01)


DELAYS = [*(("turns", n) for n in range(0, 24, 3)), *(("seconds", s) for s in (0.01, 0.05, 0.3, 1.2))]
"""When the cancel lands: after some event-loop turns (the first try, its query), or some seconds (asleep
on the hub, woken by a re-check)."""


@pytest.mark.parametrize("how", ["claim_next", "wait_for"])
def test_a_wait_cancelled_at_any_moment_leaves_nothing_registered_and_no_transaction(
    db_url: str, how: str
) -> None:
    """Property over when the cancel lands: the task ends with ``CancelledError``, the hub holds no wait of
    it, no connection of the store is in a transaction, another store can write at once, and the store's
    next wait works (woken by a commit: a paused owner key resumed, the awaited job cancelled)."""

    async def main() -> None:
        async with AsyncStore.open(db_url, busy_timeout=30) as store:  # 2 s: a new connection's margin
            job = await store.create_generation(
                "awaited", model_name="m", duration_seconds=1.0, owner_key="alice"
            )
            await store.set_owner_limit("alice", 0)  # paused: a claim waits
            hub = waiting.listeners(store).hub
            for kind, amount in DELAYS:
                if how == "claim_next":
                    task = asyncio.ensure_future(store.claim_next("gpu-0", wait=30))
                else:
                    task = asyncio.ensure_future(store.wait_for(job.id, timeout=30))
                if kind == "turns":
                    for _ in range(int(amount)):
                        await asyncio.sleep(0)
                else:
                    await asyncio.sleep(amount)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert hub.waiters == 0, (kind, amount, hub.waiters)
                await _no_transaction_soon(store, db_url, (kind, amount))
                with Store(db_url, busy_timeout=5) as other:  # the writer's lock is free (leaked: never)
                    other.track_prompt_usage(f"after {kind} {amount}")
            if how == "claim_next":
                waiter = asyncio.ensure_future(store.claim_next("gpu-1", wait=60))
                await asyncio.sleep(0.2)
                await store.set_owner_limit("alice", None)  # resumed: the idle claim is woken
                got = await asyncio.wait_for(waiter, 60)
                assert got is not None and got.id == job.id and got.attempts == 1
            else:
                reader = asyncio.ensure_future(store.wait_for(job.id, timeout=60))
                await asyncio.sleep(0.2)
                await store.cancel(job.id)
                finished = await asyncio.wait_for(reader, 60)
                assert finished.status is Status.CANCELLED
            assert hub.waiters == 0

    asyncio.run(main())


def test_an_idle_async_worker_cancelled_leaves_nothing_registered_and_one_resumed_key_wakes_it(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ``AsyncWorker`` idle on a paused owner key: cancelled mid-wait, its hub holds nothing; another one,
    idle, takes the job soon after ``set_owner_limit`` resumes the key (on PostgreSQL woken by the NOTIFY it
    sends, well before the worker's re-check), as a ``Worker`` does. The re-checks (the worker's slice, the
    wait's fallback re-try) are an hour here, so a worker that took the job was woken, however long a loaded
    machine took to run it; each worker is seen asleep on the hub before what wakes it."""
    from musicstore import worker as worker_module
    from musicstore.worker import AsyncJob, AsyncWorker

    monkeypatch.setattr(worker_module, "WAIT_SLICE_SECONDS", 3600.0)
    monkeypatch.setattr(waiting, "RECHECK_SECONDS", 3600.0)

    async def asleep(hub: Any) -> None:
        deadline = asyncio.get_running_loop().time() + 30.0
        while hub.waiters != 1:
            assert asyncio.get_running_loop().time() < deadline, "the worker never slept on the hub"
            await asyncio.sleep(0.01)

    async def main() -> None:
        async with AsyncStore.open(db_url) as store:
            job = await store.create_generation("paused", model_name="m", duration_seconds=1.0, owner_key="k")
            await store.set_owner_limit("k", 0)
            hub = waiting.listeners(store).hub
            done: list[str] = []

            async def handler(job: AsyncJob) -> dict[str, Any]:
                done.append(job.id)
                return {"file_path": "a.wav", "file_size_bytes": 1}

            worker = AsyncWorker(store, "gpu-0", handler)
            task = asyncio.ensure_future(worker.run(max_jobs=1))
            await asyncio.wait_for(asleep(hub), 60)
            assert hub.waiters == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert hub.waiters == 0 and done == []
            await _no_transaction_soon(store, db_url, "worker cancelled")
            task = asyncio.ensure_future(AsyncWorker(store, "gpu-1", handler).run(max_jobs=1))
            await asyncio.wait_for(asleep(hub), 60)
            started = asyncio.get_running_loop().time()
            await store.set_owner_limit("k", None)
            report = await asyncio.wait_for(task, 30)
            assert done == [job.id], report
            assert asyncio.get_running_loop().time() - started < 30  # woken, not re-checked (an hour)
            assert hub.waiters == 0

    asyncio.run(main())
