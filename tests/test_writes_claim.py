"""``claim_next`` is a ``Fixed`` write (``claim_fast``, then its ``more`` steps when PostgreSQL's claim is
left undecided): ``Store`` runs it without its generator (``runner.fixed_write``), a transaction drives the
steps derived from it (``runner.drive``, as ``AsyncStore`` does). Either way the same claims, rows and
errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore import Generation, MusicstoreError, Store, ops
from musicstore.ops.steps import MORE
from musicstore.testing import FakeClock
from tests.twin_stores import twin_stores

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
KEYS = st.sampled_from([None, "alice", "bob"])

action = st.one_of(
    st.tuples(
        st.just("create"),
        KEYS,
        st.sampled_from([0, 0, 3, -1]),
        st.sampled_from([None, None, 30.0, 120.0]),
    ),
    st.tuples(
        st.just("claim"),
        st.sampled_from(["w1", "w2", "", 5]),
        st.sampled_from([300.0, 60, -1.0, float("nan")]),
        st.sampled_from([None, 1, 2, 0, -1, "1"]),
    ),
    st.tuples(st.just("limit"), st.sampled_from(["alice", "bob"]), st.sampled_from([0, 1, None])),
    st.tuples(st.just("advance"), st.sampled_from([1.0, 61.0])),
)


def outcome(call: Callable[[], Generation | None]) -> tuple[str, object]:
    try:
        claimed = call()
    except MusicstoreError as exc:
        return type(exc).__name__, str(exc)
    return "ok", None if claimed is None else (claimed.prompt, claimed.worker_id, claimed.lease_expires_at)


def apply(store: Store, act: tuple[Any, ...], n: int, direct: bool) -> tuple[str, object]:
    clock = store.clock
    assert isinstance(clock, FakeClock)
    kind = act[0]
    if kind == "advance":
        clock.advance(act[1])
        return "ok", None
    if kind == "limit":
        store.set_owner_limit(act[1], act[2])
        return "ok", None
    if kind == "create":
        _, key, priority, after = act
        when = None if after is None else clock.now + timedelta(seconds=after)
        store.create_generation(
            f"job {n}", model_name="m", duration_seconds=8, owner_key=key, priority=priority, run_after=when
        )
        return "ok", None
    _, worker, lease, limit = act
    if direct:
        return outcome(lambda: store.claim_next(worker, lease_seconds=lease, owner_limit=limit))

    def in_transaction() -> Generation | None:
        with store.transaction() as tx:
            return tx.run(ops.claim_next, worker, lease_seconds=lease, owner_limit=limit)

    return outcome(in_transaction)


@settings(max_examples=40, deadline=None)
@given(history=st.lists(action, max_size=14))
def test_claims_answer_as_their_steps(_musicstore_sqlite_template: Path, history: list[Any]) -> None:
    with twin_stores(_musicstore_sqlite_template, START, lambda store: None) as (direct, stepped, _):
        for n, act in enumerate(history):
            assert apply(direct, act, n, True) == apply(stepped, act, n, False), act
        by_prompt: Callable[[Generation], str] = lambda g: g.prompt  # noqa: E731
        ours = sorted(direct.get_all_generations(), key=by_prompt)
        theirs = sorted(stepped.get_all_generations(), key=by_prompt)
        assert [(g.prompt, g.status, g.worker_id, g.started_at, g.attempts) for g in ours] == [
            (g.prompt, g.status, g.worker_id, g.started_at, g.attempts) for g in theirs
        ]


def test_store_claims_without_the_generator(
    sqlite_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(sqlite_url, clock=clock) as store:
        made = store.create_generation("lofi", model_name="m", duration_seconds=8)

        def no_steps(*args: object, **kwargs: object) -> Any:
            raise AssertionError("the generator ran")

        monkeypatch.setattr(ops.claim_next, "steps", no_steps)
        claimed = store.claim_next("w1", lease_seconds=60)
        assert claimed is not None and claimed.id == made.id and claimed == store.get_generation(made.id)
        assert claimed.lease_expires_at == clock.now + timedelta(seconds=60)
        assert store.claim_next("w1") is None


def test_an_undecided_claim_goes_on_with_its_more_steps(sqlite_url: str, clock: FakeClock) -> None:
    """``finish`` returning ``MORE`` (PostgreSQL's row of NULLs; forced here, after claim_fast took the first
    job) runs the claim's fallback in the same transaction, at the same moment: it takes the next job, and
    its result is the claim's."""
    fixed = ops.claim_next.fixed
    assert fixed is not None and fixed.more is not None
    with Store(sqlite_url, clock=clock) as store:
        for key in ("a", "b", "c"):
            store.create_generation(f"{key} job", model_name="m", duration_seconds=8, owner_key=key)
        ops.claim_next.fixed = fixed._replace(finish=lambda found, now, *checked: MORE)
        try:
            store._direct.clear()
            claimed = store.claim_next("w1", lease_seconds=60)
        finally:
            ops.claim_next.fixed = fixed
            store._direct.clear()
        rows = {g.prompt: g for g in store.get_all_generations()}
        assert claimed is not None and claimed == rows["b job"]
        assert rows["a job"].worker_id == rows["b job"].worker_id == "w1"
        assert rows["a job"].started_at == rows["b job"].started_at == clock.now
        assert rows["c job"].is_pending
