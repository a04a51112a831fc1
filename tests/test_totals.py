"""Running totals equal a recount of the rows after any sequence of operations (exactly, both backends).

Seconds are kept as integer microseconds: a total of seconds is the sum of each row's value rounded to the
microsecond (half up), so after completing jobs with fractional times and deleting them all it reads 0.0.
The totals by model (and status) and by UTC day (migration 0005) behind ``count_generations(model_name=…)``
and ``storage_stats()`` are checked the same way, also under concurrent writers (PostgreSQL's shards).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import Counter
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from musicstore import Generation, InvalidTransition, NotFound, Stats, Status
from musicstore.maintenance.retention import cleanup
from musicstore.maintenance.usage import Bucket, storage_stats
from musicstore.ops import RESET_CONFIRMATION
from musicstore.validate import MAX_PAGE
from tests.conftest import FakeClock, new_job

SECONDS = st.floats(min_value=0.0, max_value=30 * 86_400.0, allow_nan=False, allow_infinity=False)
DURATIONS = st.floats(min_value=1e-6, max_value=86_400.0, allow_nan=False, allow_infinity=False)
PROMPTS = st.sampled_from(["a", "b", "lofi at 0.1 BPM", "雨の日の ピアノ 🎹"])
MODELS = st.sampled_from(["musicgen-small", "musicgen-large", "模型 🎹"])


def micros(seconds: float) -> int:
    """A row's value as the totals count it: rounded to the microsecond, half up (values are >= 0)."""
    return math.floor(seconds * 1_000_000 + 0.5)


def every_generation(store: Any) -> list[Generation]:
    rows: list[Generation] = []
    cursor = None
    while True:
        page = store.list_generations(limit=MAX_PAGE, cursor=cursor)
        rows += page.items
        if page.next_cursor is None:
            return rows
        cursor = page.next_cursor


def assert_totals_are_a_recount(store: Any) -> Stats:
    """Every figure of ``get_database_stats()`` against a recount of the rows read back (exact equality)."""
    stats: Stats = store.get_database_stats()
    rows = every_generation(store)
    done = [g for g in rows if g.status is Status.COMPLETED]
    prompts = store.get_most_used_prompts(MAX_PAGE)
    assert stats.by_status == {s: sum(g.status is s for g in rows) for s in Status}
    assert stats.total == len(rows) == store.count_generations()
    assert stats.total_file_bytes == sum(g.file_size_bytes or 0 for g in rows)
    gen_micros = sum(micros(g.generation_time_seconds or 0.0) for g in done)
    assert stats.total_generation_seconds == gen_micros / 1_000_000
    assert stats.completed_audio_seconds == sum(micros(g.duration_seconds) for g in done) / 1_000_000
    assert stats.unique_prompts == len(prompts)
    assert stats.prompt_uses == sum(p.used_count for p in prompts)
    assert_grouped_totals_are_a_recount(store, rows)
    return stats


def _buckets(rows: list[Generation], key: Any) -> dict[str, Bucket]:
    buckets: dict[str, Bucket] = {}
    for g in rows:
        bucket = buckets.setdefault(key(g), Bucket())
        bucket.generations += 1
        bucket.file_bytes += g.file_size_bytes or 0
    return dict(sorted(buckets.items()))


def assert_grouped_totals_are_a_recount(store: Any, rows: list[Generation]) -> None:
    """Counts by model (and status) and storage by model and by UTC day against a recount of ``rows``."""
    report = storage_stats(store)
    assert report.by_model == _buckets(rows, lambda g: g.model_name)
    assert list(report.by_model) == sorted(report.by_model)
    assert report.by_day == _buckets(rows, lambda g: g.created_at.astimezone(UTC).date().isoformat())
    assert list(report.by_day) == sorted(report.by_day)
    assert report.by_status == {
        s.value: _buckets(rows, lambda g: g.status.value).get(s.value, Bucket()) for s in Status
    }
    counted = Counter((g.model_name, g.status) for g in rows)
    for model in {g.model_name for g in rows} | {"never used"}:
        assert store.count_generations(model_name=model) == sum(g.model_name == model for g in rows)
        for status in Status:
            assert store.count_generations(status=status, model_name=model) == counted[model, status]


def test_fractional_times_completed_then_deleted_leave_exact_zeros(store: Any) -> None:
    """The reported case: 2.8e-17 seconds with 0 completed."""
    times = [0.1, 0.2, 0.3, 1 / 3, 2.675, 1e-7]
    jobs = [new_job(store, duration_seconds=0.1 + t) for t in times]
    for job, seconds in zip(jobs, times, strict=True):
        assert store.claim_next("w").id == job.id
        store.complete_generation(
            job.id, file_path=f"{job.id}.wav", file_size_bytes=3, generation_time_seconds=seconds
        )
    for job in jobs:
        store.delete_generation(job.id)
    stats = store.get_database_stats()
    assert (stats.total_generation_seconds, stats.completed_audio_seconds) == (0.0, 0.0)
    assert stats.average_generation_seconds is None
    assert_totals_are_a_recount(store)


def test_totals_equal_a_recount_after_any_sequence(store: Any, clock: FakeClock, tmp_path: Path) -> None:
    root = tmp_path / "audio"
    root.mkdir()

    class Totals(RuleBasedStateMachine):
        @initialize()
        def empty(self) -> None:
            store.reset_database(confirm=RESET_CONFIRMATION)
            assert_totals_are_a_recount(store)

        @rule(prompt=PROMPTS, model=MODELS, duration=DURATIONS)
        def create(self, prompt: str, model: str, duration: float) -> None:
            new_job(store, prompt, model_name=model, duration_seconds=duration)

        @rule()
        def reset(self) -> None:
            store.reset_database(confirm=RESET_CONFIRMATION)

        @rule(count=st.integers(1, 3))
        def claim(self, count: int) -> None:
            store.claim_batch("w", count, lease_seconds=60)

        @rule(seconds=st.none() | SECONDS, size=st.integers(0, 10**12), data=st.data())
        def complete(self, seconds: float | None, size: int, data: st.DataObject) -> None:
            processing = store.list_generations(status=Status.PROCESSING, limit=MAX_PAGE).items
            if processing:
                job = data.draw(st.sampled_from(processing))
                clock.advance(data.draw(SECONDS))
                (root / f"{job.id}.wav").write_bytes(b"x")
                store.complete_generation(
                    job.id, file_path=f"{job.id}.wav", file_size_bytes=size, generation_time_seconds=seconds
                )

        @rule(retry=st.booleans(), data=st.data())
        def fail(self, retry: bool, data: st.DataObject) -> None:
            processing = store.list_generations(status=Status.PROCESSING, limit=MAX_PAGE).items
            if processing:
                store.fail(data.draw(st.sampled_from(processing)).id, "boom", retry=retry)

        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            live = [g for g in every_generation(store) if not g.is_finished]
            if live:
                store.cancel(data.draw(st.sampled_from(live)).id, "no longer wanted")

        @rule(data=st.data())
        def delete(self, data: st.DataObject) -> None:
            deletable = [g for g in every_generation(store) if not g.is_processing]
            if deletable:
                store.delete_generation(data.draw(st.sampled_from(deletable)).id)

        @rule()
        def expire_leases(self) -> None:
            clock.advance(61)
            store.requeue_expired(max_attempts=2)

        @rule(statuses=st.sets(st.sampled_from(["completed", "failed", "cancelled"]), min_size=1))
        def retention(self, statuses: set[str]) -> None:
            cleanup(store, root, statuses=sorted(statuses), older_than=timedelta(0), dry_run=False)

        @invariant()
        def totals_are_a_recount(self) -> None:
            assert_totals_are_a_recount(store)

    run_state_machine_as_test(
        Totals,
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )


@pytest.mark.parametrize("seconds", [0.1, 0.5e-6, 1.5e-6, 2.5e-6, 1e-7, 123456.789012345])
def test_rounding_is_half_up_to_the_microsecond(store: Any, seconds: float) -> None:
    job = new_job(store)
    store.claim_next("w")
    store.complete_generation(job.id, file_path="a.wav", file_size_bytes=1, generation_time_seconds=seconds)
    assert store.get_database_stats().total_generation_seconds == micros(seconds) / 1_000_000


def test_grouped_totals_equal_a_recount_under_concurrent_writers(db_url: str) -> None:
    """Four writers (on PostgreSQL four sessions, so several shards of each key) create, claim, complete,
    fail, cancel and delete generations of three models at once; afterwards every total is a recount."""
    from musicstore import Store

    threads, rounds = 4, 12
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def attempt(operation: Any, *args: Any, **kwargs: Any) -> None:
        with contextlib.suppress(InvalidTransition, NotFound):  # another writer took, ended or deleted it
            operation(*args, **kwargs)

    def work(n: int) -> None:
        try:
            with Store(db_url, busy_timeout=30) as store:
                barrier.wait()
                for i in range(rounds):
                    job = new_job(store, f"p{i % 3}", model_name=f"m{(n + i) % 3}")
                    claimed = store.claim_next(f"w{n}", lease_seconds=60)
                    if claimed is None:
                        continue
                    if i % 4 == 0:
                        attempt(store.fail, claimed.id, "boom", retry=i % 8 == 0)
                    else:
                        path = f"{claimed.id}.wav"
                        attempt(store.complete_generation, claimed.id, file_path=path, file_size_bytes=i + n)
                    if i % 3 == 0:
                        attempt(store.cancel, job.id)
                    if i % 5 == 0:
                        attempt(store.delete_generation, claimed.id)
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors, errors
    with Store(db_url) as store:
        stats = assert_totals_are_a_recount(store)
        assert stats.total > 0 and len(storage_stats(store).by_model) == 3
