"""Claim waits in herds (``musicstore.waiting.herds``): an enqueue wakes one idle ``claim_next(wait=...)`` of
a herd, not every one. Before, each enqueue (one NOTIFY, one change of SQLite's ``data_version``) woke every
claim wait of the store: N waits made N claims per enqueue, and on an ``AsyncStore`` the enqueue queued for a
pooled connection behind them (200 waits and 200 enqueues: 7-18 s; with 1000 waits a few hundred of 1000
jobs claimed in 60 s). The promises kept: no job is lost (every notification is followed by a try of each
herd begun after it; a try that took a job wakes the next), and the waits of different claim options are
different herds (what one would not claim, another may)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore import Generation, InvalidInput, Store, WriteConflict, waiting
from musicstore.aio import AsyncStore
from musicstore.waiting import hub as listening
from musicstore.waiting.herds import Herds
from tests.conftest import until

# --- the herds alone: a model of every interleaving ------------------------------------------------------


_HERDS = [waiting.claiming({}), waiting.claiming({"owner_limit": 1})]
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("register"), st.integers(0, 5), st.integers(0, 1)),
        st.tuples(st.just("arm"), st.integers(0, 5), st.just(0)),
        st.tuples(st.just("notify"), st.integers(0, 2), st.just(0)),  # 2: SQLite's change, every herd
        st.tuples(st.just("end"), st.integers(0, 5), st.integers(0, 1)),  # 1: its last try took a job
    ),
    max_size=40,
)


@settings(max_examples=400, deadline=None)
@given(ops=_OPS)
def test_every_notification_is_followed_by_a_try_of_each_herd_and_wakes_at_most_one_of_it(
    ops: list[tuple[str, int, int]],
) -> None:
    """Random interleavings of claim waits registering, arming (each try), ending (with or without a job)
    and notifications: a notification wakes at most one wait of each herd, an ending wait at most two; and
    while a notification (or a job taken: more may have come) has not been followed by a try of its herd
    begun after it, a wait of that herd is woken (or about to make its first try) to make one, unless the
    herd has no wait left. No wait is woken that is not registered, nor one of another herd."""
    herds = Herds()
    waits: dict[int, listening._Waiter] = {}
    flagged: dict[int, bool] = {}  # woken since its last try began, or never tried: a try is coming
    owed = [False, False]  # a notification (or a job taken) not yet followed by a try of the herd

    def woken(found: list[listening._Waiter], herd: int | None, most: int) -> None:
        assert len(found) <= most
        assert len({id(w) for w in found}) == len(found)
        for w in found:
            i = next(i for i, each in waits.items() if each is w)
            assert herd is None or w.wake == _HERDS[herd]
            flagged[i] = True

    for op, i, k in ops:
        if op == "register" and i not in waits:
            waits[i] = listening._ThreadWaiter(_HERDS[k])
            herds.add(waits[i])
            flagged[i] = True  # its first step is a try
        elif op == "arm" and i in waits:
            herds.armed(waits[i])
            flagged[i] = False
            owed[_HERDS.index(waits[i].wake)] = False  # this try sees every notification before it
        elif op == "notify":
            found = herds.wake() if i == 2 else herds.wake(waiting.PENDING, "")
            for h in range(2):
                owed[h] = True
            woken(found, None, 2)
            assert len({w.wake for w in found}) == len(found)  # one per herd
        elif op == "end" and i in waits:
            gone = waits.pop(i)
            del flagged[i]
            h = _HERDS.index(gone.wake)
            if k:
                owed[h] = True
            woken(herds.remove(gone, took=bool(k)), h, 2)
        assert len(herds) == len(waits) and {id(w) for w in herds} == {id(w) for w in waits.values()}
        for h in range(2):
            members = [i for i, w in waits.items() if w.wake == _HERDS[h]]
            if owed[h] and members:
                assert any(flagged[i] for i in members), f"herd {h}: a notification no try will follow"


# --- a store's waits: tries counted -----------------------------------------------------------------------


@pytest.fixture
def tries(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every wait's tries (its listener's ``arm``, before each), counted; ``RECHECK_SECONDS`` made long, so
    that only a wake-up makes a wait try again."""
    counted = [0]
    for kind in (listening._ThreadWaiter, listening._TaskWaiter):

        def counting(self: Any, arm: Any = kind.arm) -> None:
            counted[0] += 1
            arm(self)

        monkeypatch.setattr(kind, "arm", counting)
    monkeypatch.setattr(waiting, "RECHECK_SECONDS", 60.0)
    yield counted


WAITS, JOBS = 30, 8


def _prompt(tag: str, i: int) -> str:
    return f"{tag} {i}"


def _has(found: list[Generation | None], count: int) -> bool:
    return len(found) == count


def _claiming(store: Store, worker_id: str, into: list[Generation | None], **options: Any) -> None:
    """A claim wait (up to 60 s), its result into ``into``; ended by the store's close (InvalidInput)."""
    with suppress(InvalidInput):
        into.append(store.claim_next(worker_id, wait=60, **options))


def test_an_enqueue_wakes_a_bounded_number_of_claim_waits(db_url: str, tries: list[int]) -> None:
    """30 idle ``claim_next(wait=...)`` threads, 8 enqueues one after the other: at most 4 claim tries per
    enqueue (the woken wait's, the one its job wakes, and on SQLite the one the claim's own commit wakes),
    not 30; every job claimed at once by a woken wait (``RECHECK_SECONDS`` is a minute here)."""
    got: list[Generation | None] = []
    with Store(db_url) as store:
        threads = [threading.Thread(target=_claiming, args=(store, f"w{i}", got)) for i in range(WAITS)]
        for thread in threads:
            thread.start()
        until(lambda: waiting.listeners(store).hub.waiters == WAITS and tries[0] >= WAITS)
        time.sleep(0.2)  # each asleep after its first try
        before = tries[0]
        for n in range(JOBS):
            store.create_generation(_prompt("job", n), model_name="m", duration_seconds=1)
            until(partial(_has, got, n + 1), 20)  # woken: well before the re-try (60 s)
        time.sleep(0.2)  # the last chain ends
        spent = tries[0] - before
        store.close()  # wakes the rest: they end
        for thread in threads:
            thread.join(20)
    assert sorted(g.prompt for g in got if g is not None) == [_prompt("job", n) for n in range(JOBS)]
    assert spent <= 4 * JOBS, f"{spent} claim tries for {JOBS} enqueues with {WAITS} waiting"


def test_an_async_store_enqueue_wakes_a_bounded_number_of_claim_waits(db_url: str, tries: list[int]) -> None:
    """As above with an ``AsyncStore``: 100 waiting tasks, the enqueues made by the same store (before, each
    queued for a pooled connection behind the 100 tries it woke)."""
    waits = 100

    async def main() -> tuple[int, list[Generation | None]]:
        async with AsyncStore.open(db_url) as store:
            tasks = [asyncio.create_task(store.claim_next(f"w{i}", wait=60)) for i in range(waits)]
            deadline = time.monotonic() + 30  # then 20 s more for the claims: under the re-try (60 s)
            while waiting.listeners(store).hub.waiters < waits or tries[0] < waits:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            before = tries[0]
            for n in range(JOBS):
                await store.create_generation(_prompt("job", n), model_name="m", duration_seconds=1)
                while sum(task.done() for task in tasks) < n + 1:
                    assert time.monotonic() < deadline + 20
                    await asyncio.sleep(0.005)
            await asyncio.sleep(0.2)
            spent = tries[0] - before
            got = [task.result() for task in tasks if task.done()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            assert waiting.listeners(store).hub.waiters == 0
            return spent, got

    spent, got = asyncio.run(main())
    assert sorted(g.prompt for g in got if g is not None) == [_prompt("job", n) for n in range(JOBS)]
    assert spent <= 4 * JOBS, f"{spent} claim tries for {JOBS} enqueues with {waits} waiting"


# --- no job lost: N waits, M <= N jobs, in batches, with waits of another herd -----------------------------

_runs = itertools.count()


@st.composite
def _scenes(draw: st.DrawFn) -> tuple[list[int | None], list[int], list[float]]:
    plain = draw(st.integers(1, 8))  # waits with no owner limit: the jobs are theirs to claim
    limited = draw(st.integers(0, 4))  # waits with owner_limit=1: another herd, most jobs not theirs
    limits: list[int | None] = draw(st.permutations([None] * plain + [1] * limited))
    jobs = draw(st.integers(1, plain))
    batches: list[int] = []
    while sum(batches) < jobs:
        batches.append(draw(st.integers(1, jobs - sum(batches))))
    pauses = draw(
        st.lists(st.sampled_from([0.0, 0.0, 0.003, 0.02]), min_size=len(batches), max_size=len(batches))
    )
    return limits, batches, pauses


def _enqueue(store: Store, prompts: list[str], key: str) -> None:
    """One transaction that enqueues ``prompts`` under ``key``, run again after a ``WriteConflict``, as the
    store's own operations are (one of a transaction only its caller can run again): PostgreSQL may end it
    for a deadlock with a claim of the same owner key's lane (the claim holds the lane's row and waits for
    the totals' shard row the enqueue holds, and the enqueue waits for the lane's row)."""
    for _ in range(5):
        try:
            with store.transaction():
                for prompt in prompts:
                    store.create_generation(prompt, model_name="m", duration_seconds=1, owner_key=key)
            return
        except WriteConflict:
            continue
    raise AssertionError("the enqueue conflicted five times")


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scene=_scenes())
def test_every_job_enqueued_is_claimed_by_a_waiting_worker_at_once(
    db_url: str, tries: list[int], scene: tuple[list[int | None], list[int], list[float]]
) -> None:
    """N claim waits (some with ``owner_limit=1``: another herd; one key's jobs are theirs only until they
    hold one), M <= N jobs enqueued in batches (several in one transaction: one notification) with random
    pauses: every job is claimed, by wake-ups alone (``RECHECK_SECONDS`` is a minute here), within seconds;
    so no wake-up is lost, nor ends in a herd that could not use it."""
    limits, batches, pauses = scene
    tag, key = f"run{next(_runs)}", uuid.uuid4().hex  # each example's jobs, and a key no earlier job holds
    got: list[Generation | None] = []
    with Store(db_url) as store:
        threads = [
            threading.Thread(target=_claiming, args=(store, f"w{i}", got), kwargs={"owner_limit": limits[i]})
            for i in range(len(limits))
        ]
        first = tries[0]
        for thread in threads:
            thread.start()
        until(
            lambda: waiting.listeners(store).hub.waiters == len(limits) and tries[0] - first >= len(limits),
            20,
        )
        time.sleep(0.05)  # asleep
        n = 0
        for size, pause in zip(batches, pauses, strict=True):
            _enqueue(store, [_prompt(tag, n + i) for i in range(size)], key)
            n += size
            time.sleep(pause)
        # 30 s: a loaded machine's stalls do not reach it, and the waits' re-try and last try (60 s from
        # their start; here 20 + 30 s at the most, and the enqueues) come later: only wake-ups claim in time
        deadline = time.monotonic() + 30
        while len(mine := [g for g in got if g is not None]) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        claimed = sorted(g.prompt for g in mine)
        store.close()
        for thread in threads:
            thread.join(20)
    assert claimed == sorted(_prompt(tag, i) for i in range(n)), "a job was left pending"


def test_a_woken_wait_cancelled_before_its_try_passes_its_wake_up_on(db_url: str, tries: list[int]) -> None:
    """Two claim waits of one herd; the enqueue wakes the one asleep longest, whose task is cancelled before
    it runs: the wake-up goes to the other, which claims the job at once (``RECHECK_SECONDS`` is a minute
    here: without the hand-over, the job would wait for it)."""

    async def main() -> Generation | None:
        async with AsyncStore.open(db_url) as store:
            hub = waiting.listeners(store).hub
            first = asyncio.create_task(store.claim_next("first", wait=60))
            while hub.waiters < 1 or tries[0] < 1:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            second = asyncio.create_task(store.claim_next("second", wait=60))
            while hub.waiters < 2 or tries[0] < 2:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            with Store(db_url) as other:
                # blocking, not in a thread: the loop must not run the woken task (before the busy wait
                # below, it could: it then armed, and no wait was left holding the wake-up to look for)
                other.create_generation("one job", model_name="m", duration_seconds=1)
                deadline = time.monotonic() + 60
                while not hub._herds._woken:  # blocking: the woken task must not run yet
                    assert time.monotonic() < deadline
                    time.sleep(0.001)
                first.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await first
                async with asyncio.timeout(20):  # woken: well before its re-try (60 s)
                    return await second

    found = asyncio.run(main())
    assert found is not None and found.prompt == "one job" and found.worker_id == "second"


def test_a_claim_waiting_for_an_enqueue_of_its_lane_leaves_the_new_job_claimable(postgres_url: str) -> None:
    """PostgreSQL: a claim (no owner limit) that took a lane's job while an enqueue of the same owner key was
    uncommitted (its lane's row locked) waited for it in its trigger, then wrote the lane's head as it had
    read it before the enqueue committed: none. The new job stayed pending and no claim took it (they look
    only at lanes with a head) until the lane changed again; a claim wait woken for it slept on. Now the
    claim locks the lane's row before it takes the job."""
    key = uuid.uuid4().hex
    held, release = threading.Event(), threading.Event()
    found: list[Generation | None] = []
    with Store(postgres_url) as store:
        store.create_generation(_prompt("lane", 0), model_name="m", duration_seconds=1, owner_key=key)

        def enqueue() -> None:  # the lane's second job, uncommitted until released
            with store.transaction() as tx:
                tx.create_generation(_prompt("lane", 1), model_name="m", duration_seconds=1, owner_key=key)
                held.set()
                release.wait(20)

        threads = [threading.Thread(target=enqueue)]
        threads[0].start()
        assert held.wait(20)
        threads.append(threading.Thread(target=lambda: found.append(store.claim_next("first"))))
        threads[1].start()
        time.sleep(0.5)  # the claim takes the first job, and waits for the lane's row
        release.set()
        for thread in threads:
            thread.join(20)
        found.append(store.claim_next("second"))
    assert [g.prompt if g is not None else None for g in found] == [_prompt("lane", 0), _prompt("lane", 1)]


def test_a_woken_wait_whose_try_raised_passes_its_wake_up_on(
    sqlite_url: str, tries: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two claim waits of one herd; the enqueue wakes the one asleep longest, whose try raises (a database
    error): the wake-up goes to the other, which claims the job at once (``RECHECK_SECONDS`` is a minute
    here). Its try had begun, so its wake-up was spent, and it passed none on: the job waited for the
    re-try (found by the herd investigation)."""
    calls: dict[str, int] = {}
    done: dict[str, int] = {}  # tries returned: one still running could claim the job enqueued below
    got: list[Generation | None] = []
    errors: list[BaseException] = []
    with Store(sqlite_url) as store:
        run = store.run

        def failing(op: Any, worker_id: str, /, *args: Any, **kwargs: Any) -> Any:
            calls[worker_id] = calls.get(worker_id, 0) + 1
            if worker_id == "first" and calls[worker_id] == 2:  # its try after the wake-up
                raise WriteConflict("the database refused the try")
            found = run(op, worker_id, *args, **kwargs)
            done[worker_id] = done.get(worker_id, 0) + 1
            return found

        monkeypatch.setattr(store, "run", failing)

        def wait(worker: str) -> None:
            try:
                got.append(store.claim_next(worker, wait=30))
            except Exception as exc:  # the first's WriteConflict (and, were the job left, the close's)
                errors.append(exc)

        first = threading.Thread(target=wait, args=("first",))
        first.start()
        until(lambda: done.get("first") == 1 and waiting.listeners(store).hub.waiters == 1)
        time.sleep(0.05)  # asleep, armed before the second
        second = threading.Thread(target=wait, args=("second",))
        second.start()
        until(lambda: done.get("second") == 1 and waiting.listeners(store).hub.waiters == 2)
        time.sleep(0.05)
        started = time.monotonic()
        job = store.create_generation("one", model_name="m", duration_seconds=1)
        first.join(60)
        second.join(60)
        took = time.monotonic() - started
    assert [type(e) for e in errors] == [WriteConflict]
    assert [g.id for g in got if g is not None] == [job.id]
    assert took < 20, took  # at once (ms), not at the second's last try (its wait of 30 s)
