"""Regressions of the queue, waiting and metrics (session 22), on both backends, sync and async.

``wait_for`` on a job that is deleted while it waits (``delete_generation``, ``reset_database``) raises
``NotFound`` as soon as the delete commits: on PostgreSQL migration 0023's trigger sends the job's
``musicstore_finished`` notification when a pending or processing row is deleted (before, nothing woke the
waiter until its periodic re-try); on SQLite the ``data_version`` poll sees the delete."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore import AsyncStore, DatabaseError, NotFound, Store, waiting
from musicstore.ops.jobs import RESET_CONFIRMATION
from tests.conftest import new_job
from tests.test_slow_connect import _SlowProxy

LONG = 60.0
"""A wait no test reaches when the wake-up works."""
PROMPT = 30.0
"""A generous bound on a wake-up that works (milliseconds, but seconds on a loaded machine); without one the
waiter sleeps out ``LONG``."""


@pytest.fixture
def no_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback re-try far beyond each wait: a waiter that returns early was woken."""
    monkeypatch.setattr(waiting, "RECHECK_SECONDS", 3600.0)


@pytest.fixture
def other(db_url: str) -> Iterator[Store]:
    """A second store on the same database: another process's connections."""
    with Store(db_url) as opened:
        yield opened


def _later(action: Callable[[], Any], done: list[float], delay: float = 0.3) -> threading.Thread:
    """Run ``action`` after ``delay`` seconds in a thread; ``done`` gets the moment it returned."""

    def run() -> None:
        time.sleep(delay)
        action()
        done.append(time.monotonic())

    thread = threading.Thread(target=run)
    thread.start()
    return thread


# --- a waiter on a deleted job wakes at the delete ----------------------------------------------------------


@pytest.mark.usefixtures("no_recheck")
@pytest.mark.parametrize("how", ["delete_generation", "reset_database"])
def test_wait_for_a_job_deleted_while_it_waits_raises_not_found_at_once(
    db_url: str, other: Store, how: str
) -> None:
    with Store(db_url) as store:
        job = new_job(store)
        if how == "reset_database":  # deletes a processing job too
            assert store.claim_next("gpu-0") is not None
        delete = {
            "delete_generation": lambda: other.delete_generation(job.id),
            "reset_database": lambda: other.reset_database(confirm=RESET_CONFIRMATION),
        }[how]
        deleted: list[float] = []
        thread = _later(delete, deleted)
        try:
            with pytest.raises(NotFound):
                store.wait_for(job.id, timeout=LONG)
            woke = time.monotonic()
        finally:
            thread.join()
    assert woke - deleted[0] < PROMPT


@pytest.mark.usefixtures("no_recheck")
def test_async_wait_for_a_job_deleted_while_it_waits_raises_not_found_at_once(
    db_url: str, other: Store
) -> None:
    async def main() -> float:
        async with AsyncStore.open(db_url) as store:
            job = await store.create_generation("p", model_name="m", duration_seconds=1.0)
            waits = [asyncio.ensure_future(store.wait_for(job.id, timeout=LONG)) for _ in range(3)]
            await asyncio.sleep(0.3)
            await asyncio.to_thread(other.delete_generation, job.id)
            deleted = time.monotonic()
            results = await asyncio.gather(*waits, return_exceptions=True)
            assert all(isinstance(r, NotFound) for r in results), results
            return time.monotonic() - deleted

    assert asyncio.run(main()) < PROMPT


@pytest.mark.usefixtures("no_recheck")
def test_deleting_a_finished_job_or_another_one_wakes_no_waiter(db_url: str, other: Store) -> None:
    """The delete's notification is the deleted pending or processing job's own: a waiter on another job
    sleeps on; deleting finished jobs (retention) sends nothing."""
    with Store(db_url) as store:
        mine, theirs, old = new_job(store, "mine"), new_job(store, "theirs"), new_job(store, "old")
        store.cancel(old.id)
        deleted: list[float] = []
        thread = _later(lambda: [other.delete_generation(g) for g in (theirs.id, old.id)], deleted, 0.1)
        read = store.wait_for(mine.id, timeout=0.6)
        thread.join()
    assert not read.is_finished and read.id == mine.id


def _wakes_at_the_delete(db_url: str, other: Store) -> float:
    """Seconds from a pending job's delete to its waiter's ``NotFound``."""
    with Store(db_url) as store:
        job = new_job(store)
        deleted: list[float] = []
        thread = _later(lambda: other.delete_generation(job.id), deleted)
        try:
            with pytest.raises(NotFound):
                store.wait_for(job.id, timeout=LONG)
            return time.monotonic() - (deleted[0] if deleted else 0.0)
        finally:
            thread.join()


@pytest.mark.usefixtures("no_recheck")
def test_0023_rolls_back_and_applies_again_keeping_the_totals(db_url: str, other: Store) -> None:
    """0023's function is also the totals' (``generations_count``): deletes of every status keep the totals
    equal to a count of the rows, before and after its rollback; rolled back (0004's function again), the
    delete sends nothing; applied again, it wakes the waiter."""
    from musicstore.migrate import migrate
    from tests.test_schema import _from, _rollback, _sql

    def notifies() -> bool:
        if not db_url.startswith("postgres"):
            return False
        function = "SELECT prosrc FROM pg_proc WHERE proname = 'musicstore_count_generations'"
        [(source,)] = _sql(db_url, function)
        return "musicstore_finished" in str(source)

    def totals_match() -> None:
        counted = _sql(db_url, "SELECT status, count(*) FROM generations GROUP BY status ORDER BY status")
        by_status = {str(status): n for status, n in other.get_database_stats().by_status.items() if n}
        assert by_status == {str(status): int(str(n)) for status, n in counted}

    jobs = [new_job(other, f"job {i}") for i in range(6)]
    other.claim_next("gpu-0")
    other.cancel(jobs[1].id)
    other.delete_generation(jobs[1].id)  # a finished one
    other.delete_generation(jobs[2].id)  # a pending one
    totals_match()
    assert notifies() == db_url.startswith("postgres")
    _rollback(db_url, "0023")
    assert not notifies()
    other.delete_generation(jobs[3].id)
    totals_match()
    assert migrate(db_url) == _from("0023")
    assert notifies() == db_url.startswith("postgres")
    other.delete_generation(jobs[4].id)
    totals_match()
    assert _wakes_at_the_delete(db_url, other) < PROMPT


# --- the metrics' longest ready wait ------------------------------------------------------------------------


def _exposed(text: bytes, name: str) -> float:
    [value] = [line.split()[-1] for line in text.decode().splitlines() if line.startswith(f"{name} ")]
    return float(value)


def test_metrics_longest_ready_wait_leaves_out_deferred_jobs(db_url: str) -> None:
    """``musicstore_oldest_pending_age_seconds`` counts a job scheduled for later or backing off before a
    retry (as it always did); ``musicstore_longest_ready_wait_seconds`` counts only the jobs that can be
    claimed, each from when it became ready (the later of its creation and its ``run_after``), 0 when none
    is: the figure to alert on when workers stop claiming."""
    from datetime import timedelta

    from musicstore.metrics import metrics_text, read_metrics
    from musicstore.models import RetryPolicy
    from musicstore.testing import FakeClock

    clock = FakeClock()
    start = clock()
    with Store(db_url, clock=clock) as store:
        new_job(store, "later", run_after=start + timedelta(days=1))
        backing_off = new_job(store, "backing off")
        assert store.claim_next("gpu-0") is not None
        store.fail(backing_off.id, "out of memory", retry=True, backoff=RetryPolicy(1000.0, 1000.0, 0.0))
        clock.advance(100)
        snapshot = read_metrics(store)
        assert snapshot.oldest_pending_age == 100.0 and snapshot.longest_ready_wait is None  # all deferred
        assert snapshot.as_dict()["longest_ready_wait_seconds"] is None
        assert _exposed(metrics_text(store), "musicstore_longest_ready_wait_seconds") == 0.0
        ready = new_job(store, "ready")
        clock.advance(40)
        snapshot = read_metrics(store)
        assert snapshot.oldest_pending_age == 140.0 and snapshot.longest_ready_wait == 40.0
        assert snapshot.as_dict()["longest_ready_wait_seconds"] == 40.0
        text = metrics_text(store)
        assert _exposed(text, "musicstore_oldest_pending_age_seconds") == 140.0
        assert _exposed(text, "musicstore_longest_ready_wait_seconds") == 40.0
        claimed = store.claim_next("gpu-0")
        assert claimed is not None and claimed.id == ready.id
        clock.advance(870)  # the backing-off job became ready at 1000 s, 10 s ago
        snapshot = read_metrics(store)
        assert snapshot.oldest_pending_age == 1010.0 and snapshot.longest_ready_wait == 10.0
        assert store.queue_depth().longest_ready_wait_seconds == 10.0


# --- a wait's listening connection is bounded by the store's connect timeout --------------------------------


class _FreezingProxy(_SlowProxy):
    """A TCP proxy to ``target`` that passes connections on at once until ``frozen``; then it accepts new ones
    and never answers (a server that stopped answering, a network partition after the connect)."""

    frozen = False

    def _open(self, client: socket.socket) -> None:
        if self.frozen:
            self.sockets.append(client)  # held, silent, until the proxy closes
            return
        server = socket.create_connection(("127.0.0.1", self.target))
        self.sockets += [client, server]
        for source, sink in ((client, server), (server, client)):
            threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()


@pytest.fixture
def freezing(postgres_url: str) -> Iterator[tuple[_FreezingProxy, str]]:
    port = urlsplit(postgres_url).port
    assert port is not None
    proxy = _FreezingProxy(port)
    try:
        yield proxy, postgres_url.replace(f":{port}/", f":{proxy.port}/")
    finally:
        proxy.close()


BOUND = 10.0
"""Far more than the connect timeout a ``busy_timeout`` of 1 s gives (libpq's least, 2 s)."""


def test_a_wait_on_a_server_that_stopped_answering_fails_within_the_connect_timeout(
    freezing: tuple[_FreezingProxy, str],
) -> None:
    """The first wait of a store makes its listening connection: with no connect timeout (the store's own
    connections have libpq's, from ``busy_timeout``) ``claim_next(wait=0.5)`` or ``wait_for(timeout=1)``
    hung for as long as the server did not answer, whatever their own timeout."""
    proxy, url = freezing
    with Store(url, busy_timeout=1.0) as store:
        job = new_job(store)
        proxy.frozen = True
        outcome: list[BaseException | None] = []

        def wait() -> None:
            try:
                store.wait_for(job.id, timeout=1.0)
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        started = time.monotonic()
        thread = threading.Thread(target=wait, daemon=True)
        thread.start()
        thread.join(BOUND)
        assert outcome, "the wait hung on its listening connection"
        assert isinstance(outcome[0], DatabaseError) and time.monotonic() - started < BOUND


def test_an_async_wait_on_a_server_that_stopped_answering_fails_within_the_connect_timeout(
    freezing: tuple[_FreezingProxy, str],
) -> None:
    proxy, url = freezing
    proxy.frozen = True

    outcome: list[BaseException | None] = []

    async def main() -> None:
        async with AsyncStore(url, busy_timeout=1.0) as store:
            try:
                await store.claim_next("gpu-0", wait=0.5)
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

    # in a thread of its own: a hung connect holds asyncio.run's executor at its shutdown too
    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    thread.join(BOUND)
    assert outcome, "the wait hung on its listening connection"
    assert isinstance(outcome[0], DatabaseError)


def test_concurrent_waits_on_a_server_that_stopped_answering_share_one_connect_attempt(
    freezing: tuple[_FreezingProxy, str],
) -> None:
    """The waits that queued for the hub's listening connection while one of them made it share that attempt:
    its failure is theirs. Before, each made its own attempt in turn, so the eighth of eight concurrent
    ``wait_for`` (an API server's requests) failed only after eight connect timeouts."""
    proxy, url = freezing
    with Store(url, busy_timeout=1.0) as store:
        job = new_job(store)
        proxy.frozen = True
        outcomes: list[BaseException | None] = []

        def wait() -> None:
            try:
                store.wait_for(job.id, timeout=1.0)
                outcomes.append(None)
            except BaseException as exc:
                outcomes.append(exc)

        started = time.monotonic()
        threads = [threading.Thread(target=wait, daemon=True) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(BOUND - (time.monotonic() - started), 0.1))
        assert len(outcomes) == 8, f"{8 - len(outcomes)} waits still hang after {BOUND} s"
        assert all(isinstance(outcome, DatabaseError) for outcome in outcomes), outcomes


# --- closing the store ends its waits at once on both backends ----------------------------------------------


@pytest.mark.usefixtures("no_recheck")
def test_closing_the_store_ends_its_waits_at_once_on_both_backends(db_url: str) -> None:
    """A wait in progress when its store closes ends with ``InvalidInput`` (the store is closed) at once: on
    PostgreSQL the hub wakes it; on SQLite its ``data_version`` poll slept on until the next re-try
    (``RECHECK_SECONDS``, 1 s) or the end of the wait."""
    from musicstore import InvalidInput

    store = Store(db_url)
    outcome: list[tuple[BaseException | None, float]] = []

    def wait() -> None:
        try:
            store.claim_next("gpu-0", wait=LONG)
            outcome.append((None, time.monotonic()))
        except BaseException as exc:
            outcome.append((exc, time.monotonic()))

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.3)
    closed = time.monotonic()
    store.close()
    thread.join()
    [(error, ended)] = outcome
    assert isinstance(error, InvalidInput) and ended - closed < PROMPT

    with Store(db_url) as other:
        job = new_job(other)

    async def main() -> float:
        astore = AsyncStore(db_url)
        task = asyncio.ensure_future(astore.wait_for(job.id, timeout=LONG))
        await asyncio.sleep(0.3)
        closed = time.monotonic()
        await astore.close()
        with pytest.raises(InvalidInput):
            await task
        return time.monotonic() - closed

    assert asyncio.run(main()) < PROMPT


_JOBS = st.lists(
    st.tuples(st.integers(0, 100), st.none() | st.integers(-200, 400)), min_size=0, max_size=8
)  # each job: seconds after the previous one, and its run_after from its creation (None: none)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(jobs=_JOBS, later=st.integers(0, 500))
def test_metrics_longest_ready_wait_agrees_with_queue_depth(
    db_url: str, jobs: list[tuple[int, int | None]], later: int
) -> None:
    """The metrics' bounded walk in creation order finds the same longest ready wait as ``queue_depth``'s
    pass over every pending job, whatever the jobs' creation times and ``run_after``s."""
    from datetime import timedelta

    from musicstore.metrics import read_metrics
    from musicstore.testing import FakeClock

    clock = FakeClock()
    with Store(db_url, clock=clock) as store:
        store.reset_database(confirm=RESET_CONFIRMATION)
        for gap, run_after in jobs:
            at = clock.advance(gap)
            new_job(store, run_after=None if run_after is None else at + timedelta(seconds=run_after))
        clock.advance(later)
        assert read_metrics(store).longest_ready_wait == store.queue_depth().longest_ready_wait_seconds


def test_queue_depth_by_priority_says_which_jobs_it_counts(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its limit, ``musicstore_queue_depth_by_priority`` counts the first jobs of the queue's lane index
    (by owner key, then priority), on PostgreSQL too (its query had no order: the planner's choice of index
    chose the jobs counted): its help said "the queue's first 10,000 in time order", which would have counted
    the three old normal jobs here, not the three newer high-priority ones."""
    from prometheus_client.parser import text_string_to_metric_families

    from musicstore.metrics import metrics_text, reads

    monkeypatch.setattr(reads, "PENDING_LIMIT", 3)
    with Store(db_url) as store:
        for i in range(3):
            new_job(store, f"old {i}", owner_key="zz")
        for i in range(3):
            new_job(store, f"new {i}", priority=5)
        text = metrics_text(store).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    family = families["musicstore_queue_depth_by_priority"]
    assert {s.labels["priority"]: s.value for s in family.samples} == {"high": 3, "normal": 0, "low": 0}
    assert "time order" not in family.documentation and "owner key, then priority" in family.documentation
