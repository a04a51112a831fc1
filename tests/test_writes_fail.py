"""``fail`` is a ``Fixed`` write (``retry_generation``; its ``more`` steps fail the job when no attempt is
left; without ``retry`` its ``first`` steps fail it alone): ``Store`` runs a retry without its generator
(``runner.fixed_write``), a transaction drives the steps derived from it (``runner.drive``, as
``AsyncStore`` does). Either way the same statuses, rows and errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore import RetryPolicy, Status, Store, ops
from musicstore.testing import FakeClock
from tests.twin_stores import answer, twin_stores

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
JOBS = 3
OTHER_ID = "01890000-0000-7000-8000-000000000000"  # a valid id no row has

action = st.one_of(
    st.tuples(
        st.just("fail"),
        st.sampled_from([0, 1, 2, OTHER_ID, "not-an-id"]),
        st.sampled_from(["CUDA out of memory", "", 5]),
        st.sampled_from([True, False, "yes"]),
        st.sampled_from([1, 2, 3, 0]),
        st.sampled_from([None, "w1", "w2"]),
        st.sampled_from([None, RetryPolicy(base_seconds=10.0, jitter=0.0), "fast"]),
    ),
    st.tuples(st.just("claim"), st.sampled_from(["w1", "w2"])),
    st.tuples(st.just("advance"), st.sampled_from([1.0, 20.0])),
)


def two_claimed(store: Store) -> list[str]:
    """``JOBS`` generations, the first two claimed by w1 and w2; their ids."""
    ids = [store.create_generation(f"p{n}", model_name="m", duration_seconds=8).id for n in range(JOBS)]
    store.claim_next("w1")
    store.claim_next("w2")
    return ids


def apply(store: Store, act: tuple[Any, ...], ids: list[str], direct: bool) -> tuple[str, object]:
    clock = store.clock
    assert isinstance(clock, FakeClock)
    if act[0] == "advance":
        clock.advance(act[1])
        return "ok", None
    if act[0] == "claim":
        return answer(lambda: getattr(store.claim_next(act[1]), "id", None))
    _, job, message, retry, attempts, worker, backoff = act
    gid = ids[job] if isinstance(job, int) else job
    kwargs = {"retry": retry, "max_attempts": attempts, "worker_id": worker, "backoff": backoff}
    if direct:
        return answer(lambda: store.fail(gid, message, **kwargs))

    def in_transaction() -> Status:
        with store.transaction() as tx:
            return tx.run(ops.fail, gid, message, **kwargs)

    return answer(in_transaction)


@settings(max_examples=40, deadline=None)
@given(history=st.lists(action, max_size=12))
def test_fail_answers_as_its_steps(_musicstore_sqlite_template: Path, history: list[Any]) -> None:
    with twin_stores(_musicstore_sqlite_template, START, two_claimed) as (direct, stepped, ids):
        for act in history:
            assert apply(direct, act, ids, True) == apply(stepped, act, ids, False), act
        assert direct.get_all_generations() == stepped.get_all_generations()


def test_store_fails_without_the_generator_unless_it_is_final(
    sqlite_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(sqlite_url, clock=clock) as store:
        ids = [store.create_generation(f"p{n}", model_name="m", duration_seconds=8).id for n in range(2)]
        for _ in ids:
            store.claim_next("w1")
        steps = ops.fail.steps

        def no_steps(*args: object, **kwargs: object) -> Any:
            raise AssertionError("the generator ran")

        monkeypatch.setattr(ops.fail, "steps", no_steps)
        assert store.fail(ids[0], "boom") is Status.PENDING  # retried: one statement
        store.claim_next("w1")
        assert store.fail(ids[0], "boom", max_attempts=2) is Status.FAILED  # no attempt left: more steps
        with pytest.raises(AssertionError, match="the generator ran"):
            store.fail(ids[1], "boom", retry=False)
        monkeypatch.setattr(ops.fail, "steps", steps)
        assert store.fail(ids[1], "boom", retry=False) is Status.FAILED
        rows = [store.get_generation(gid) for gid in ids]
        assert [(g.status, g.error_message, g.completed_at) for g in rows if g] == [
            (Status.FAILED, "boom", clock.now)
        ] * 2
