"""PostgreSQL: an enqueue and a claim of one owner key on one totals shard never deadlock.

Every trigger-kept write of a job takes its session's shard of ``generation_totals`` (``mod(pg_backend_pid(),
16)``, the first trigger on generations: ``generations_count``) before the lane's ``owner_lanes`` row (the
lanes' trigger, after it); the claim locked the lane's row first (``claim_fast``: FOR UPDATE SKIP LOCKED;
``claim_lane_head``: FOR UPDATE), then its UPDATE's trigger took the shard. Two sessions on one shard, an
enqueue (holding the shard's ``pending`` totals, waiting for the lane) and a claim of that lane (holding the
lane, waiting for the totals), deadlocked: PostgreSQL aborted one after ``deadlock_timeout`` (1 s), a single
operation ran again, a caller's transaction got WriteConflict. The claim now takes its shard's totals rows
(``processing``, then ``pending``) before any lane's row: ``claim_fast`` in its own statement,
``queue_decide`` before ``claim_lane_head`` (sql/postgres/claim.sql).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import psycopg.errors
import psycopg.sql
import pytest

from musicstore import Store
from musicstore.models import Generation
from tests.test_upload_order_regressions import SHARDS, _backend_pid

pytestmark = pytest.mark.postgres


def _slow_deadlock_breaks(url: str) -> float:
    """A bound on the time a sequence without a deadlock takes: PostgreSQL breaks a deadlock after
    ``deadlock_timeout`` (1 s), which a loaded machine's plain work (connects, inserts, commits, threads) may
    take too, so it is raised to 20 s for this test's database (the sessions opened after this) where the
    role may (a superuser: the throwaway server's); the bound is then 10 s. Else 1 s, the default."""
    with psycopg.connect(url, autocommit=True) as conn:
        name = psycopg.sql.Identifier(conn.info.dbname)
        try:
            conn.execute(psycopg.sql.SQL("ALTER DATABASE {} SET deadlock_timeout = '20s'").format(name))
        except psycopg.errors.InsufficientPrivilege:
            return 1.0
    return 10.0


def _pair_on_one_shard(url: str) -> tuple[Store, Store]:
    """Two stores of one connection each (``pool_size=1``) whose backends fall on one totals shard."""
    first = Store(url, pool_size=1)
    shard = _backend_pid(first) % SHARDS
    for _ in range(40 * SHARDS):
        second = Store(url, pool_size=1)
        if _backend_pid(second) % SHARDS == shard:
            return first, second
        second.close()
    first.close()
    pytest.fail(f"no connection of {40 * SHARDS} fell on shard {shard}")


def _off_shard(url: str, store: Store) -> Store:
    """A store of one connection whose backend falls on another totals shard than ``store``'s."""
    while True:
        other = Store(url, pool_size=1)
        if _backend_pid(other) % SHARDS != _backend_pid(store) % SHARDS:
            return other
        other.close()


def _blocked(url: str, waiter: int, by: set[int], waiting: Callable[[], bool]) -> None:
    """Until the backend ``waiter`` waits for a lock one of the backends ``by`` holds, while ``waiting()``
    (``by`` empty: until ``waiting()`` is false)."""
    deadline = time.monotonic() + 20
    with psycopg.connect(url, autocommit=True) as monitor:
        while waiting():
            row = monitor.execute("SELECT pg_blocking_pids(%s)", (waiter,)).fetchone()
            if row is not None and by & set(row[0]):
                return
            assert time.monotonic() < deadline, f"{waiter} never waited for {by}"
            time.sleep(0.01)


def _deadlocks(url: str) -> int:
    """The deadlocks PostgreSQL broke in this test's database (its backends' stats, flushed as they end)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row is not None else 0


def _job(store: Any, prompt: str, key: str) -> Generation:
    job: Generation = store.create_generation(prompt, model_name="m", duration_seconds=1, owner_key=key)
    return job


def test_a_claim_waiting_for_an_enqueuing_transaction_of_its_shard_does_not_deadlock_it(
    postgres_url: str,
) -> None:
    """The enqueue's transaction holds its shard's pending totals (a job of another lane), a claim of lane
    ``key`` on the same shard waits for them, then the transaction enqueues on ``key``: before, the claim held
    ``key``'s lane row already, and one of the two transactions was aborted after 1 s (the claim's, in its
    caller's transaction: WriteConflict)."""
    key, other = uuid.uuid4().hex, uuid.uuid4().hex
    bound = _slow_deadlock_breaks(postgres_url)
    enqueuer, claimer = _pair_on_one_shard(postgres_url)
    try:
        first = _job(enqueuer, "first", key)
        holder, waiter = _backend_pid(enqueuer), _backend_pid(claimer)
        outcome: list[Any] = []

        def claim() -> None:
            try:
                with claimer.transaction() as tx:
                    outcome.append(tx.claim_next("worker"))
            except Exception as exc:  # reported below
                outcome.append(exc)

        started = time.monotonic()
        with enqueuer.transaction() as tx:
            another = _job(tx, "another lane", other)  # the shard's pending totals held to the commit
            thread = threading.Thread(target=claim)
            thread.start()
            _blocked(postgres_url, waiter, {holder}, thread.is_alive)
            second = _job(tx, "second", key)
        thread.join(30)
        assert not thread.is_alive()
        assert [type(got) for got in outcome] == [Generation], outcome
        assert outcome[0].id == first.id
        assert time.monotonic() - started < bound  # no deadlock_timeout spent
        rest = [claimer.claim_next("worker") for _ in range(3)]
        assert {job.id for job in rest if job is not None} == {another.id, second.id}
    finally:
        enqueuer.close()
        claimer.close()
    assert _deadlocks(postgres_url) == 0


def test_a_single_claim_waiting_for_its_lanes_row_does_not_deadlock_an_enqueue_of_its_shard(
    postgres_url: str,
) -> None:
    """The same through ``claim_lane_head``, a single operation: a third transaction (another shard) holds
    lane ``key``'s row, so the one-statement claim skips the lane and the claim then waits for the row (FOR
    UPDATE). Meanwhile a transaction on the claim's shard enqueues on another lane, then on ``key``. Before,
    once the third committed, the claim held the lane's row and waited for that transaction's totals: a
    deadlock, broken after 1 s by aborting the claim, which ran again. Now the claim holds its shard's totals
    while it waits for the row, and the enqueue waits for the claim instead."""
    key, other = uuid.uuid4().hex, uuid.uuid4().hex
    bound = _slow_deadlock_breaks(postgres_url)
    enqueuer, claimer = _pair_on_one_shard(postgres_url)
    holder = _off_shard(postgres_url, enqueuer)
    release, enqueued, go = threading.Event(), threading.Event(), threading.Event()
    try:
        first = _job(enqueuer, "first", key)
        pids = [_backend_pid(store) for store in (enqueuer, claimer, holder)]
        created: list[Generation] = []
        claimed: list[Any] = []

        def hold() -> None:  # lane ``key``'s row held (a job of the lane, uncommitted) until released
            with holder.transaction() as tx:
                created.append(_job(tx, "held", key))
                release.wait(30)

        def claim() -> None:
            claimed.append(claimer.claim_next("worker"))

        def enqueue() -> None:
            with enqueuer.transaction() as tx:
                created.append(_job(tx, "another lane", other))  # the shard's pending totals
                enqueued.set()
                go.wait(30)
                created.append(_job(tx, "second", key))

        threads = [threading.Thread(target=work) for work in (hold, claim, enqueue)]
        threads[0].start()
        _blocked(postgres_url, pids[2], set(), lambda: not created)  # the lane's row is held
        threads[1].start()
        _blocked(postgres_url, pids[1], {pids[2]}, threads[1].is_alive)  # the claim waits for it
        threads[2].start()
        # the enqueue took its totals (before), or waits for the claim's (now)
        _blocked(postgres_url, pids[0], {pids[1]}, lambda: not enqueued.is_set())
        release.set()
        threads[0].join(30)
        _blocked(postgres_url, pids[1], {pids[0]}, threads[1].is_alive)  # before: the claim waits
        started = time.monotonic()
        go.set()
        for thread in threads:
            thread.join(30)
        assert time.monotonic() - started < bound  # no deadlock_timeout spent
        assert [job.id for job in claimed] == [first.id]
        rest = [claimer.claim_next("worker") for _ in range(4)]
        assert sorted(job.id for job in rest if job is not None) == sorted(job.id for job in created)
    finally:
        release.set()
        go.set()
        for store in (enqueuer, claimer, holder):
            store.close()
    assert _deadlocks(postgres_url) == 0


def test_a_claim_with_nothing_to_claim_does_not_wait_for_a_writer_of_its_shard(postgres_url: str) -> None:
    """The claim takes its shard's totals only once a lane has a head (claim_fast) or its job was found
    (claim_lane_head): with nothing to claim it returns None at once, though a transaction on its shard holds
    the shard's pending totals (its enqueue uncommitted)."""
    enqueuer, claimer = _pair_on_one_shard(postgres_url)
    try:
        with enqueuer.transaction() as tx:
            _job(tx, "uncommitted", uuid.uuid4().hex)
            outcome: list[Any] = []
            thread = threading.Thread(target=lambda: outcome.append(claimer.claim_next("worker")))
            thread.start()
            thread.join(30)  # the enqueue's transaction ends after this: a claim that waits for it is seen
            assert not thread.is_alive(), "the empty claim waited for the enqueue's transaction"
        assert outcome == [None]
    finally:
        enqueuer.close()
        claimer.close()


PAIRS = 40


def test_concurrent_enqueues_and_claims_of_one_key_on_one_shard_never_deadlock(postgres_url: str) -> None:
    """``PAIRS`` times: a job of a new key committed, then an enqueue of a second job of that key and a claim
    run at once by two single operations on one shard. Every job is claimed once, and PostgreSQL broke no
    deadlock. Before, one pair in 40 to 150 here on 2 cores (each cost the claim 1 s and a try): a check under
    load; the tests above are the reproduction."""
    enqueuer, claimer = _pair_on_one_shard(postgres_url)
    created: list[str] = []
    claimed: list[str] = []
    try:
        for n in range(PAIRS):
            key = uuid.uuid4().hex
            created.append(_job(enqueuer, f"head {n}", key).id)
            start = threading.Barrier(2)

            def enqueue(n: int = n, key: str = key, start: threading.Barrier = start) -> None:
                start.wait(60)
                created.append(_job(enqueuer, f"next {n}", key).id)

            def claim(start: threading.Barrier = start) -> None:
                start.wait(60)
                got = claimer.claim_next("worker")
                if got is not None:
                    claimed.append(got.id)

            threads = [threading.Thread(target=enqueue), threading.Thread(target=claim)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
        while (got := claimer.claim_next("worker")) is not None:
            claimed.append(got.id)
    finally:
        enqueuer.close()
        claimer.close()
    assert sorted(claimed) == sorted(created)
    assert _deadlocks(postgres_url) == 0
