"""The claim floor of ``benchmarks.queue_claims`` (run 4) is a correct claim with per-key limits: 8 processes
claiming with a binding limit take no job twice, never more of a key than its limit, and its counters stay
equal to the keys' processing jobs, on both backends."""

from __future__ import annotations

from collections import Counter

from benchmarks.queue_claims_race import race
from benchmarks.queue_claims_sides import KEYS, _spread, floor_miscounted
from musicstore import Store
from tests.test_schema import _sql

LIMIT = 2
JOBS = 6 * KEYS


def test_the_floor_holds_a_binding_limit_under_8_processes(db_url: str) -> None:
    with Store(db_url) as store:
        for i in range(JOBS):
            store.create_generation(f"job {i}", model_name="m", duration_seconds=1)
    dialect = "sqlite" if db_url.startswith("sqlite") else "postgres"
    _spread(db_url, dialect, floor=True)
    per_key = Counter(key for (key,) in _sql(db_url, "SELECT owner_key FROM generations"))

    result = race(db_url, ("floor", LIMIT, False), "floor, limit 2")

    running = Counter(
        key for (key,) in _sql(db_url, "SELECT owner_key FROM generations WHERE status = 'processing'")
    )
    assert result.double == 0
    assert running == {key: min(LIMIT, jobs) for key, jobs in per_key.items()}  # each key filled, no more
    assert result.jobs == sum(running.values())
    assert result.left == JOBS - result.jobs
    assert floor_miscounted(db_url) == 0


def test_the_tag_order_holds_a_binding_limit_under_8_processes(postgres_url: str) -> None:
    """``benchmarks.queue_tag_order``'s claim (PostgreSQL only) is a correct claim with per-key limits too."""
    from benchmarks.queue_claims_sides import TAGS_SCHEMA

    with Store(postgres_url) as store:
        for i in range(JOBS):
            store.create_generation(f"job {i}", model_name="m", duration_seconds=1)
    _spread(postgres_url, "postgres")
    for statement in TAGS_SCHEMA:
        _sql(postgres_url, statement)
    per_key = Counter(key for (key,) in _sql(postgres_url, "SELECT owner_key FROM generations"))

    result = race(postgres_url, ("tags", LIMIT, False), "tags, limit 2")

    running = Counter(
        key for (key,) in _sql(postgres_url, "SELECT owner_key FROM generations WHERE status = 'processing'")
    )
    counted = {key: count for key, count in _sql(postgres_url, "SELECT owner_key, running FROM tag_lanes")}
    assert result.double == 0
    assert running == {key: min(LIMIT, jobs) for key, jobs in per_key.items()}
    assert counted == dict(running)
    assert result.jobs == sum(running.values())
    assert result.left == JOBS - result.jobs
