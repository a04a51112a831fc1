"""Session 25's write-path changes keep every answer: ``complete_generation`` is a ``Fixed`` write (the row
read, then the UPDATE whose parameters the read decides), run by ``Store`` without its generator
(``runner.fixed_write``); a transaction (``runner.drive``, as ``AsyncStore`` drives it) runs the steps derived
from the same definition. Either way the same rows, answers and errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore import Generation, Status, Store, ops
from musicstore.models import repeating_reader
from musicstore.ops.jobs import watching
from musicstore.testing import FakeClock
from tests.twin_stores import answer, twin_stores

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
JOBS = 5
OTHER_ID = "01890000-0000-7000-8000-000000000000"  # a valid id no row has


def prepared(store: Store) -> list[str]:
    """``JOBS`` generations with metadata: three claimed by w1, the fourth by w2, the last pending."""
    ids = [
        store.create_generation(
            f"prompt {n}", model_name="m", duration_seconds=8, metadata={"n": n, "k": "v"}
        ).id
        for n in range(JOBS)
    ]
    for worker in ("w1", "w1", "w1", "w2"):
        store.claim_next(worker)
    return ids


completion = st.fixed_dictionaries(
    {
        "job": st.one_of(st.integers(0, JOBS - 1), st.just(OTHER_ID), st.just("not-an-id")),
        "file_path": st.sampled_from(["a/b.wav", "../up.wav", "/abs.wav", "x.flac"]),
        "file_size_bytes": st.sampled_from([1, 0, -1, 3_840_044]),
    },
    optional={
        "metadata": st.sampled_from(
            [None, {}, {"k": "w"}, {"nested": {"a": [1, 2]}}, {"x": float("nan")}, {"big": "x" * 70_000}]
        ),
        "worker_id": st.sampled_from([None, "w1", "w2", ""]),
        "generation_time_seconds": st.sampled_from([None, 0.0, 5.5, -1.0, float("inf")]),
    },
)


@settings(max_examples=40, deadline=None)
@given(
    history=st.lists(
        st.one_of(completion, st.tuples(st.just("advance"), st.sampled_from([0.5, 30.0]))), max_size=8
    )
)
def test_complete_answers_as_its_steps(_musicstore_sqlite_template: Path, history: list[Any]) -> None:
    """The direct call and a transaction driving the derived steps agree: answers, errors, rows, and what a
    watched attempt notes."""
    with twin_stores(_musicstore_sqlite_template, START, prepared) as (direct, stepped, ids):
        for act in history:
            if isinstance(act, tuple):
                for store in (direct, stepped):
                    assert isinstance(store.clock, FakeClock)
                    store.clock.advance(act[1])
                continue
            asked = dict(act)
            job = asked.pop("job")
            gid = ids[job] if isinstance(job, int) else job

            def on_its_own(asked: dict[str, Any] = asked, gid: str = gid) -> Generation:
                return direct.complete_generation(gid, **asked)

            def in_transaction(asked: dict[str, Any] = asked, gid: str = gid) -> Generation:
                with stepped.transaction() as tx:
                    return tx.complete_generation(gid, **asked)

            with watching(gid, "w1") as first:
                got = answer(on_its_own)
            with watching(gid, "w1") as second:
                expected = answer(in_transaction)
            assert got == expected, asked
            assert first.ended == second.ended
        assert direct.get_all_generations() == stepped.get_all_generations()
        assert direct.get_database_stats() == stepped.get_database_stats()


def test_store_completes_without_the_generator(
    sqlite_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Store.complete_generation`` runs the fixed queries: the generator never runs, and the row returned is
    the row stored, its metadata merged and a copy the caller's dict shares nothing with."""
    with Store(sqlite_url, clock=clock) as store:
        job = store.create_generation("lofi", model_name="m", duration_seconds=8, metadata={"a": 1})
        store.claim_next("w1")

        def no_steps(*args: object, **kwargs: object) -> Any:
            raise AssertionError("the generator ran")

        monkeypatch.setattr(ops.complete_generation, "steps", no_steps)
        clock.advance(4.0)
        extra: dict[str, Any] = {"b": [1, 2]}
        with watching(job.id, "w1") as attempt:
            done = store.complete_generation(
                job.id, file_path="a/b.wav", file_size_bytes=10, metadata=extra, worker_id="w1"
            )
        extra["b"].append(3)
        assert attempt.ended is Status.COMPLETED
        assert done == store.get_generation(job.id)
        assert done.status is Status.COMPLETED and done.completed_at == clock.now
        assert done.metadata == {"a": 1, "b": [1, 2]} and done.generation_time_seconds == 4.0
        assert done.lease_expires_at is None and done.file_path == "a/b.wav" and done.file_size_bytes == 10


def test_a_claim_batch_encodes_its_parameters_once(
    sqlite_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``claim_batch`` yields one ``claim_fast`` step for every claim: ``runner.drive`` encodes its parameters
    the first time only, and each claim still takes the next job, at the batch's one moment."""
    with Store(sqlite_url, clock=clock) as store:
        made = [store.create_generation(f"p{n}", model_name="m", duration_seconds=8).id for n in range(5)]
        connector = store._connector
        encode, encoded = connector.encode, []

        def counted(params: dict[str, Any]) -> dict[str, Any]:
            encoded.append(params)
            return encode(params)  # type: ignore[no-any-return]

        monkeypatch.setattr(connector, "encode", counted)
        store._direct.clear()  # the bound writes took the connector's encode when made
        taken = store.claim_batch("w1", 4, lease_seconds=60)
        assert [job.id for job in taken] == made[:4]
        assert len([p for p in encoded if "lease_expires_at" in p]) == 1
        assert {job.started_at for job in taken} == {clock.now}
        assert all(job.worker_id == "w1" and job.status is Status.PROCESSING for job in taken)
        assert [job.id for job in store.claim_batch("w2", 4)] == made[4:]


COLUMNS = tuple(Generation.__dataclass_fields__)
moment = st.one_of(
    st.none(),
    st.sampled_from([0, 1, 1_764_000_000_123_456, 1_764_000_000_123_457, -5]),
    st.sampled_from(
        [
            datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
            datetime(2026, 11, 22, 13, 0, tzinfo=timezone(timedelta(hours=1))),
        ]
    ),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(moment, moment, moment), min_size=1, max_size=8))
def test_a_repeating_reader_reads_as_the_reader(values: list[tuple[Any, Any, Any]]) -> None:
    """A claim batch's row reader (``repeating_reader``: its start and lease end decoded once for a run of
    rows that repeat them) gives every row as ``Generation.reader`` does, whatever came before it."""
    plain = Generation.reader(COLUMNS)
    repeating = repeating_reader("started_at", "lease_expires_at")(COLUMNS)
    base: dict[str, Any] = dict.fromkeys(COLUMNS)
    base.update(
        id="01890000-0000-7000-8000-000000000001", prompt="p", model_name="m", duration_seconds=8,
        sample_rate=32_000, channels=2, status="processing", created_at=1_764_000_000_000_000,
        attempts=1, metadata="{}", priority=0,
    )  # fmt: skip
    for started, lease, progress_at in values:
        row = tuple({**base, "started_at": started, "lease_expires_at": lease, "progress_at": progress_at}[n]
                    for n in COLUMNS)  # fmt: skip
        expected, got = plain(row), repeating(row)
        assert got == expected
        assert got.started_at is None or got.started_at.tzinfo is UTC
