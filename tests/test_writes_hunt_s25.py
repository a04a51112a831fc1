"""Session 25's write paths, hunted: ``complete_generation`` as a ``Fixed`` write (run by ``Store``
without its generator, its steps derived for a transaction and ``AsyncStore``) answers alike through every
driver on both backends: the row and totals it leaves, each error and its words, the watched attempt it
notes. Differential runs against a021e6b (the session's base) found the same answers; this pins them where
tests/test_perf_s25.py (SQLite, Store direct against a transaction) does not reach: PostgreSQL, AsyncStore."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from musicstore import Generation, Status, Store
from musicstore.aio import AsyncStore
from musicstore.ops.jobs import watching
from musicstore.testing import FakeClock

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
UNKNOWN = "01890000-0000-7000-8000-000000000000"
DRIVERS = ("direct", "transaction", "async", "async transaction")

Complete = Callable[..., Generation]


def _outcome(complete: Complete, gid: str, **kwargs: Any) -> tuple[str, Any]:
    try:
        done = complete(gid, **kwargs)
    except Exception as exc:  # the error and its words, ids named in place
        return type(exc).__name__, str(exc).replace(gid, "<id>")
    return "ok", (done.status, done.file_path, done.generation_time_seconds, done.metadata)


def _scenario(store: Store, clock: FakeClock, complete: Complete) -> list[Any]:
    """Five jobs: 0, 1, 3 claimed by w1, 2 by w2, 4 pending; 3 cancelled while w1 runs it. The pending one
    is cancelled at the end (the next call's claims take its own jobs)."""
    ids = [
        store.create_generation(f"p{n}", model_name="m", duration_seconds=8, metadata={"n": n}).id
        for n in range(5)
    ]
    for worker in ("w1", "w1", "w2", "w1"):
        store.claim_next(worker)
    store.cancel(ids[3])
    clock.advance(30)
    file = {"file_path": "a/b.wav", "file_size_bytes": 7}
    seen: list[Any] = [
        _outcome(complete, ids[0], worker_id="w1", metadata={"k": "w"}, **file),
        _outcome(complete, ids[0], worker_id="w1", **file),  # completed already
        _outcome(complete, ids[1], worker_id="w2", **file),  # another worker's claim
        _outcome(complete, ids[2], worker_id="w2", metadata={"x": float("nan")}, **file),
        _outcome(complete, ids[3], worker_id="w1", **file),  # cancelled meanwhile
        _outcome(complete, UNKNOWN, worker_id="w1", **file),
        _outcome(complete, ids[4], **file),  # pending
        _outcome(complete, ids[1], file_path="../x.wav", file_size_bytes=1),
    ]
    with watching(ids[1], "w1") as attempt:
        seen.append(_outcome(complete, ids[1], generation_time_seconds=2.5, **file))
    seen.append(attempt.ended)
    with watching(ids[2], "w2") as attempt:
        seen.append(_outcome(complete, ids[2], worker_id="w1", **file))
    seen.append(attempt.ended)
    seen.append([(g.status, g.file_size_bytes) for g in map(store.get_generation, ids) if g is not None])
    store.cancel(ids[4])  # nothing left for the next driver's claims but its own jobs
    return seen


def _completer(driver: str, store: Store, url: str, clock: FakeClock, loop: asyncio.AbstractEventLoop) -> Any:
    """``complete_generation`` through ``driver``, as a blocking call, and what closes it."""
    if driver == "direct":
        return store.complete_generation, lambda: None
    if driver == "transaction":

        def in_transaction(gid: str, **kwargs: Any) -> Generation:
            with store.transaction() as tx:
                return tx.complete_generation(gid, **kwargs)

        return in_transaction, lambda: None
    astore = loop.run_until_complete(AsyncStore.open(url, clock=clock))

    async def in_async_transaction(gid: str, **kwargs: Any) -> Generation:
        async with astore.transaction() as tx:
            return await tx.complete_generation(gid, **kwargs)

    def blocking(gid: str, **kwargs: Any) -> Generation:
        call = astore.complete_generation if driver == "async" else in_async_transaction
        return loop.run_until_complete(call(gid, **kwargs))

    return blocking, lambda: loop.run_until_complete(astore.close())


def test_complete_answers_alike_through_every_driver_on_both_backends(db_url: str) -> None:
    clock = FakeClock(START)
    loop = asyncio.new_event_loop()
    answers: dict[str, list[Any]] = {}
    try:
        with Store(db_url, clock=clock) as store:
            for driver in DRIVERS:
                complete, close = _completer(driver, store, db_url, clock, loop)
                try:
                    answers[driver] = _scenario(store, clock, complete)
                finally:
                    close()
            stats = store.get_database_stats()
    finally:
        loop.close()
    expected = answers["direct"]
    assert expected[0] == ("ok", (Status.COMPLETED, "a/b.wav", 30.0, {"n": 0, "k": "w"}))
    assert expected[1][0] == "LeaseLost" and "is completed: worker 'w1' no longer owns it" in expected[1][1]
    assert expected[2][0] == "LeaseLost" and "processed by worker 'w1'" in expected[2][1]
    assert expected[3][0] == "InvalidInput" and "nan" in expected[3][1]
    assert expected[4][0] == "Cancelled" and "was cancelled while worker 'w1' ran it" in expected[4][1]
    assert expected[5][0] == "NotFound"
    assert expected[6][0] == "InvalidTransition" and "is pending" in expected[6][1]
    assert expected[7][0] == "InvalidInput" and "file_path" in expected[7][1]
    assert expected[8] == ("ok", (Status.COMPLETED, "a/b.wav", 2.5, {"n": 1}))
    assert expected[9] is Status.COMPLETED
    assert expected[10][0] == "LeaseLost" and expected[11] is None
    assert expected[12] == [
        (Status.COMPLETED, 7),
        (Status.COMPLETED, 7),
        (Status.PROCESSING, None),
        (Status.CANCELLED, None),
        (Status.PENDING, None),
    ]
    for driver in DRIVERS[1:]:
        assert answers[driver] == expected, driver
    assert stats.by_status[Status.COMPLETED] == 2 * len(DRIVERS)
    assert stats.total_file_bytes == 7 * 2 * len(DRIVERS)
