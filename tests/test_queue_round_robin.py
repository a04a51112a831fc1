"""Round robin among lanes (migration 0015): lanes equal on priority and running jobs are served in turn,
the one served longest ago first, so a worker alone (each job finished before the next claim, every lane
then with none running) cannot serve one key's backlog while another key's job waits."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore import Store, migrate
from musicstore.ops.jobs import RESET_CONFIRMATION
from musicstore.testing import FakeClock
from tests.test_schema import _from, _rollback, _sql

LANES = ["a", "b", "c", None]


def _pairs(db_url: str, query: str) -> list[tuple[object, Any]]:
    return [(row[0], row[1]) for row in _sql(db_url, query)]


def _one_worker(store: Store, clock: FakeClock, claims: int) -> list[str | None]:
    """Claim and finish jobs one at a time, a millisecond apart: each claimed job's owner key, in order."""
    served: list[str | None] = []
    for _ in range(claims):
        clock.advance(0.001)
        job = store.claim_next("w")
        if job is None:
            break
        served.append(job.owner_key)
        store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=1)
    return served


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(order=st.lists(st.sampled_from(LANES), min_size=1, max_size=24))
def test_a_worker_alone_serves_the_lanes_in_turn(db_url: str, order: list[str | None]) -> None:
    """Jobs created in any order across the lanes (three keys and the lane without one): between two claims
    of one lane, every lane that still had a job waiting was served once."""
    clock = FakeClock()
    with Store(db_url, clock=clock) as store:
        store.reset_database(confirm=RESET_CONFIRMATION)
        for i, key in enumerate(order):
            store.create_generation(f"p{i}", model_name="m", duration_seconds=1, owner_key=key)
            clock.advance(0.001)
        served = _one_worker(store, clock, len(order) + 1)
    assert Counter(served) == Counter(order)  # each job once
    left = Counter(order)
    last: dict[str | None, int] = {}
    for i, key in enumerate(served):
        waiting = {lane for lane, n in left.items() if n}  # the lanes with a job just before claim i
        if key in last:
            between = set(served[last[key] + 1 : i])
            assert waiting - {key} <= between, (served, i)
        last[key] = i
        left[key] -= 1


def test_a_key_with_one_job_is_not_kept_behind_a_backlog(db_url: str) -> None:
    """A key's single job, enqueued after another key's (or the keyless lane's) 300 jobs and while they are
    being served, is the next claim of a worker alone."""
    clock = FakeClock()
    with Store(db_url, clock=clock) as store:
        for backlog, single in (("hog", "small"), (None, "small"), ("hog", None)):
            store.reset_database(confirm=RESET_CONFIRMATION)
            for i in range(300):
                store.create_generation(f"h{i}", model_name="m", duration_seconds=1, owner_key=backlog)
            clock.advance(0.001)
            assert _one_worker(store, clock, 10) == [backlog] * 10
            store.create_generation("one", model_name="m", duration_seconds=1, owner_key=single)
            assert _one_worker(store, clock, 3) == [single, backlog, backlog]


def test_0015_takes_served_at_from_the_rows_and_rolls_back(db_url: str) -> None:
    """Applied to rows, 0015 gives each lane its jobs' latest start (a lane never served: the epoch, first
    among equals); rolled back, the column and the index are gone; applied again, the claim serves in turn."""
    clock = FakeClock()
    with Store(db_url, clock=clock) as store:
        for i, key in enumerate(["a", "a", "b", "b", "c"]):
            store.create_generation(f"p{i}", model_name="m", duration_seconds=1, owner_key=key)
            clock.advance(0.001)
        first = store.claim_next("w")
        assert first is not None and first.owner_key == "a"
        store.complete_generation(first.id, file_path="a.wav", file_size_bytes=1)
    _rollback(db_url, "0015")
    columns = {
        row[0]
        for row in _sql(
            db_url,
            "SELECT name FROM pragma_table_info('owner_lanes')"
            if db_url.startswith("sqlite")
            else "SELECT column_name FROM information_schema.columns WHERE table_name = 'owner_lanes'",
        )
    }
    assert "served_at" not in columns and "running" in columns
    # b's job claimed while 0015 is not applied (0012's trigger keeps the lane): the migration must see it
    b_job = _sql(db_url, "SELECT id FROM generations WHERE owner_key = 'b' ORDER BY created_at LIMIT 1")[0][0]
    _sql(
        db_url,
        "UPDATE generations SET status = 'processing', worker_id = 'x', started_at = created_at,"
        f" lease_expires_at = created_at WHERE id = '{b_job}'",
    )
    assert migrate(db_url) == _from("0015")
    kept: dict[object, Any] = dict(_pairs(db_url, "SELECT owner_key, served_at FROM owner_lanes"))
    starts = dict(_pairs(db_url, "SELECT owner_key, max(started_at) FROM generations GROUP BY owner_key"))
    assert kept["a"] == starts["a"] and kept["b"] == starts["b"] and starts["c"] is None
    assert kept["c"] == (0 if db_url.startswith("sqlite") else datetime(1970, 1, 1, tzinfo=UTC))
    assert kept["c"] < kept["b"] < kept["a"]
    with Store(db_url, clock=clock) as store:
        # b's job finished: c never served, then b (served before a), then a
        store.complete_generation(str(b_job), file_path="b.wav", file_size_bytes=1)
        assert _one_worker(store, clock, 4) == ["c", "b", "a"]
