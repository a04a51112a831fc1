"""``Fixed`` writes (heartbeat, cancel, requeue_expired: ``ops.writes_fixed``) give the same answers and
errors whether ``Store`` runs them without a generator (``runner.fixed_write``) or a transaction drives the
steps derived from them (``runner.drive``, as ``AsyncStore`` does): hypothesis draws a history of calls, and
two copies of one database, each with its own clock at the same time, take it one way each."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore import Requeued, RetryPolicy, Store, ops
from musicstore.backends.sqlite import SQLiteConnector, encode
from musicstore.ops.jobs import lease_of
from musicstore.testing import FakeClock
from tests.twin_stores import answer, twin_stores

JOBS = 4
OTHER_ID = "01890000-0000-7000-8000-000000000000"  # a valid id no row has

job = st.one_of(st.integers(0, JOBS - 1), st.just(OTHER_ID), st.just("not-an-id"), st.just(7))
worker = st.sampled_from(["w1", "w2", "", 5, None])
lease = st.sampled_from([60.0, 300.0, 0.5, 30, -1.0, float("nan"), "60", 1e9])
action = st.one_of(
    st.tuples(st.just("heartbeat"), job, worker, lease),
    st.tuples(st.just("cancel"), job, st.sampled_from([None, "no longer needed", 5, "x" * 5000])),
    st.tuples(
        st.just("requeue"),
        st.sampled_from([1, 3, 0, "3", True]),
        st.sampled_from([None, RetryPolicy(base_seconds=10.0, jitter=0.0), "fast"]),  # jitter: random()
    ),
    st.tuples(st.just("advance"), st.sampled_from([1.0, 59.0, 61.0, 400.0])),
    st.tuples(st.just("claim"), st.sampled_from(["w1", "w2"])),
    st.tuples(st.just("fail"), st.integers(0, JOBS - 1)),
)


def two_leased(store: Store) -> list[str]:
    """``JOBS`` generations, the first two claimed by w1 (lease 60 s); their ids."""
    ids = [store.create_generation(f"prompt {n}", model_name="m", duration_seconds=8).id for n in range(JOBS)]
    store.claim_next("w1", lease_seconds=60)
    store.claim_next("w1", lease_seconds=60)
    return ids


def in_transaction(store: Store, op: ops.Operation[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``op`` driven as a generator: through ``Transaction.run`` (``runner.start_in``, ``runner.drive``)."""
    with store.transaction() as tx:
        return tx.run(op, *args, **kwargs)


def apply(store: Store, act: tuple[Any, ...], ids: list[str], direct: bool) -> tuple[str, object]:
    kind = act[0]
    clock = store.clock
    assert isinstance(clock, FakeClock)
    if kind == "advance":
        return "ok", clock.advance(act[1])
    if kind == "claim":
        return answer(lambda: getattr(store.claim_next(act[1], lease_seconds=60), "id", None))
    ref = act[1]
    gid = ids[ref] if kind in ("heartbeat", "cancel", "fail") and isinstance(ref, int) and ref < JOBS else ref
    if kind == "fail":
        return answer(lambda: store.fail(gid, "boom", retry=False))
    op: ops.Operation[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    if kind == "heartbeat":
        op, args, kwargs = ops.heartbeat, (gid, act[2]), {"lease_seconds": act[3]}
    elif kind == "cancel":
        op, args, kwargs = ops.cancel, (gid, act[2]), {}
    else:
        op, args, kwargs = ops.requeue_expired, (), {"max_attempts": act[1], "backoff": act[2]}
    if direct:
        method = getattr(store, op.__name__)
        return answer(lambda: method(*args, **kwargs))
    return answer(lambda: in_transaction(store, op, *args, **kwargs))


@settings(max_examples=40, deadline=None)
@given(history=st.lists(action, max_size=12))
def test_fixed_writes_answer_as_their_steps(_musicstore_sqlite_template: Path, history: list[Any]) -> None:
    with twin_stores(_musicstore_sqlite_template, None, two_leased) as (direct, stepped, ids):
        for act in history:
            got, expected = apply(direct, act, ids, True), apply(stepped, act, ids, False)
            assert got == expected, act
            if act[0] == "requeue" and got[0] == "ok":
                assert isinstance(got[1], Requeued)
        assert direct.get_all_generations() == stepped.get_all_generations()


def test_store_runs_fixed_writes_without_their_generator(
    sqlite_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(sqlite_url, clock=clock)
    try:
        ids = [store.create_generation(f"p{n}", model_name="m", duration_seconds=8).id for n in range(2)]
        claimed = store.claim_next("w1", lease_seconds=60)
        assert claimed is not None and claimed.id == ids[0]

        def no_steps(*args: object, **kwargs: object) -> Any:
            raise AssertionError("the generator ran")

        for op in (ops.heartbeat, ops.cancel, ops.requeue_expired):
            monkeypatch.setattr(op, "steps", no_steps)
        assert store.heartbeat(ids[0], "w1", lease_seconds=90.0) == clock.now + timedelta(seconds=90)
        assert store.requeue_expired() == Requeued(requeued=[], failed=[])
        store.cancel(ids[1], "not needed")
        assert store.get_generation(ids[1]).status == "cancelled"  # type: ignore[union-attr]
    finally:
        store.close()


@given(st.floats(min_value=1e-6, max_value=30 * 86400.0) | st.integers(1, 30 * 86400))
def test_lease_of_is_the_timedelta_of_its_seconds(seconds: float) -> None:
    """From a microsecond (a shorter lease, none once rounded, is refused: tests/test_review_s39.py)."""
    assert lease_of(float(seconds)) == timedelta(0, float(seconds))
    assert lease_of(float(seconds)) == timedelta(0, float(seconds))  # kept


@given(st.datetimes(timezones=st.timezones()))
def test_sqlite_stamp_binds_a_moment_as_encode_does(moment: datetime) -> None:
    """A ``Fixed`` write's moments, stamped by the connector, are bound as the parameters ``encode`` makes."""
    assert SQLiteConnector.stamp(moment) == encode({"at": moment})["at"]
