"""Round robin between the lane of jobs without an owner key and the keyed lanes under retries (issue 15's
fairness): that lane's last service is its jobs' latest ``started_at``, and a retry, a requeue of an expired
lease or a replay cleared a job's ``started_at``, so the lane forgot it had been served and took turn after
turn while a keyed lane waited. They keep it now (the last claim's start), on both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from musicstore import Generation, Status, Store
from musicstore.testing import FakeClock


def _job(store: Store, prompt: str, owner_key: str | None = None) -> Generation:
    return store.create_generation(prompt, model_name="m", duration_seconds=8, owner_key=owner_key)


def _row(store: Store, generation_id: str) -> Generation:
    row = store.get_generation(generation_id)
    assert row is not None
    return row


def _serve(store: Store, clock: FakeClock, claims: int) -> list[str]:
    """One worker: claim, then fail the flaky jobs (retried at once) and complete the others."""
    served: list[str] = []
    for _ in range(claims):
        job = store.claim_next("w")
        if job is None:
            break
        served.append(job.prompt)
        clock.advance(1)
        if job.prompt.startswith("flaky"):
            assert store.fail(job.id, "CUDA out of memory", max_attempts=10) is Status.PENDING
        else:
            store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=1)
        clock.advance(1)
    return served


def test_the_lane_without_a_key_takes_turns_with_a_keyed_lane_under_retries(
    store: Store, clock: FakeClock
) -> None:
    """A worker alone, the jobs without a key failing and retried at once: the lane without a key and key
    K's lane alternate, as two keyed lanes do (before: flaky0 five times in a row while K waited)."""
    flaky = [_job(store, f"flaky{i}") for i in range(3)]
    clock.advance(1)
    for i in range(3):
        _job(store, f"K{i}", "K")
    clock.advance(1)
    assert _serve(store, clock, 7) == ["flaky0", "K0", "flaky0", "K1", "flaky0", "K2", "flaky0"]
    retried = _row(store, flaky[0].id)
    assert retried.is_pending and retried.attempts == 4
    assert retried.started_at == clock.now - timedelta(seconds=2)  # the last claim's


def test_a_keyed_lane_in_its_place_is_served_the_same(store: Store, clock: FakeClock) -> None:
    """The same queue with the flaky jobs under a key of their own: the same turns (the keyed lanes kept
    theirs in owner_lanes.served_at already)."""
    for i in range(3):
        _job(store, f"flaky{i}", "A")
    clock.advance(1)
    for i in range(3):
        _job(store, f"K{i}", "K")
    clock.advance(1)
    assert _serve(store, clock, 7) == ["flaky0", "K0", "flaky0", "K1", "flaky0", "K2", "flaky0"]


def test_a_requeued_expired_lease_keeps_its_lanes_turn(store: Store, clock: FakeClock) -> None:
    """A job without a key whose lease ran out, requeued: the lane was served by that claim, so the keyed
    lane waiting goes next (before: the requeued job was claimed again at once, being older)."""
    lost = _job(store, "lost")
    clock.advance(1)
    _job(store, "K0", "K")
    _job(store, "K1", "K")
    clock.advance(1)
    first = store.claim_next("w", lease_seconds=10)
    assert first is not None and first.id == lost.id
    started = first.started_at
    clock.advance(11)
    assert store.requeue_expired().requeued == [lost.id]
    requeued = _row(store, lost.id)
    assert requeued.is_pending and requeued.worker_id is None
    served = []
    for _ in range(3):
        clock.advance(1)
        job = store.claim_next("w")
        assert job is not None
        served.append(job.prompt)
        store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=1)
    assert served == ["K0", "lost", "K1"]
    assert requeued.started_at == started  # the last claim's start, kept while pending


@pytest.mark.parametrize("replay", ["replay", "replay_all"])
def test_a_replayed_dead_letter_keeps_its_lanes_turn(store: Store, clock: FakeClock, replay: str) -> None:
    """A dead letter without a key replayed: its lane was served by its last claim, as a keyed lane's
    served_at remembers it, so a keyed lane's job enqueued meanwhile goes first (before: the replayed job,
    older, went first, its lane taken for one never served)."""
    dead = _job(store, "dead")
    clock.advance(1)
    claimed = store.claim_next("w")
    assert claimed is not None and claimed.id == dead.id
    clock.advance(1)
    assert store.fail(dead.id, "decoder crashed", max_attempts=1) is Status.FAILED
    _job(store, "K0", "K")
    clock.advance(1)
    if replay == "replay":
        store.replay(dead.id)
    else:
        assert store.replay_all() == [dead.id]
    replayed = _row(store, dead.id)
    assert replayed.is_pending and replayed.attempts == 0 and replayed.completed_at is None
    clock.advance(1)
    first = store.claim_next("w")
    assert first is not None and first.prompt == "K0"
    second = store.claim_next("w")
    assert second is not None and second.id == dead.id and second.attempts == 1
    assert second.started_at == clock.now
    assert replayed.started_at == claimed.started_at  # the last claim's start, kept while pending
