"""``queue_depth``'s longest ready wait: how long the longest-waiting claimable job has waited since it became
ready (the later of its creation and its ``run_after``), beside the oldest pending age (since creation). A job
scheduled for later, or backing off before a retry, does not count until its ``run_after``."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from musicstore import AsyncStore, RetryPolicy, Store
from musicstore.testing import FakeClock
from tests.test_cli import run


def test_the_longest_ready_wait_counts_from_when_a_job_became_ready(db_url: str) -> None:
    clock = FakeClock()
    start = clock()
    with Store(db_url, clock=clock) as store:
        first = store.create_generation("a", model_name="m", duration_seconds=1)
        clock.advance(10)
        later = store.create_generation(
            "b", model_name="m", duration_seconds=1, owner_key="u", run_after=start + timedelta(seconds=100)
        )
        ready = store.create_generation(  # its run_after before its creation: ready since created
            "c", model_name="m", duration_seconds=1, owner_key="u", run_after=start + timedelta(seconds=5)
        )
        clock.advance(10)
        depth = store.queue_depth()
        assert depth.oldest_pending_age_seconds == 20 and depth.longest_ready_wait_seconds == 20
        by_key = {level.owner_key: level for level in depth.levels}
        assert by_key["u"].ready_since == start + timedelta(seconds=10) and by_key["u"].deferred == 1
        assert by_key[None].ready_since == first.created_at

        store.cancel(first.id)
        depth = store.queue_depth()
        assert depth.oldest_pending_age_seconds == 10 and depth.longest_ready_wait_seconds == 10

        store.cancel(ready.id)  # only the job scheduled for later is left
        depth = store.queue_depth()
        assert depth.oldest_pending_age_seconds == 10 and depth.longest_ready_wait_seconds is None
        assert [level.ready_since for level in depth.levels] == [None]

        clock.advance(85)  # 5 s past its run_after
        depth = store.queue_depth()
        assert depth.oldest_pending_age_seconds == 95 and depth.longest_ready_wait_seconds == 5

        claimed = store.claim_next("gpu-0")
        assert claimed is not None and claimed.id == later.id
        store.fail(later.id, "out of memory", backoff=RetryPolicy(base_seconds=30, jitter=0))
        clock.advance(20)  # backing off: pending, not ready
        depth = store.queue_depth()
        assert depth.pending == 1 and depth.longest_ready_wait_seconds is None
        clock.advance(15)
        assert store.queue_depth().longest_ready_wait_seconds == 5

    async def read() -> float | None:
        async with AsyncStore(db_url, clock=clock) as async_store:
            return (await async_store.queue_depth()).longest_ready_wait_seconds

    assert asyncio.run(read()) == 5


def test_the_queue_command_prints_the_longest_ready_wait(sqlite_url: str) -> None:
    with Store(sqlite_url) as store:  # the command reads the real clock
        store.create_generation(
            "later", model_name="m", duration_seconds=1, run_after=datetime.now(UTC) + timedelta(days=1)
        )
    figures = json.loads(run("queue", "--database", sqlite_url, "--json").stdout)
    assert figures["pending"] == 1 and figures["oldest_pending_age_seconds"] >= 0
    assert figures["longest_ready_wait_seconds"] is None
    assert figures["by_priority_and_owner"][0]["ready_since"] is None
    table = run("queue", "--database", sqlite_url)
    assert table.returncode == 0 and "longest ready wait -" in table.stdout.splitlines()[0]


def test_the_queue_table_counts_a_keys_running_jobs_once(sqlite_url: str) -> None:
    """A key with pending jobs at several priorities shows its processing jobs on one row: the running column
    adds up to the first line's count (it repeated them on each of the key's rows)."""
    with Store(sqlite_url) as store:
        for priority in (0, 5, 5, 9):
            store.create_generation("p", model_name="m", duration_seconds=1, owner_key="u", priority=priority)
        assert store.claim_next("gpu-0") is not None  # the priority-9 job: u keeps rows at 5 and 0
    lines = run("queue", "--database", sqlite_url).stdout.splitlines()
    assert lines[0].startswith("pending 3, processing 1,")
    start = lines[2].index("running")  # the column's place in the header (cells are aligned under it)
    cells = [line[start : start + len("running")].strip() for line in lines[4:]]
    assert cells == ["1", ""]
