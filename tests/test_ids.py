"""Generation ids: canonical UUIDv7 text, strictly increasing within a process whatever the clock does."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from musicstore import Store, ids
from musicstore.ids import check_id, new_id

from .conftest import new_job


@pytest.fixture
def sequence(monkeypatch: pytest.MonkeyPatch) -> Iterator[ids._Sequence]:
    """A fresh id sequence for this test (the process-wide one is left alone)."""
    fresh = ids._Sequence()
    monkeypatch.setattr(ids, "_sequence", fresh)
    yield fresh


def fixed_clock(monkeypatch: pytest.MonkeyPatch, readings: list[int]) -> None:
    """time.time_ns as ids sees it returns these nanosecond readings, then the last one forever."""
    values = iter(readings)
    last = readings[-1]

    def time_ns() -> int:
        return next(values, last)

    monkeypatch.setattr(ids, "_clock_ns", time_ns)


def test_ids_are_canonical_uuid7_and_strictly_increasing() -> None:
    made = [new_id() for _ in range(20_000)]
    assert made == sorted(made) and len(set(made)) == len(made)
    for value in made[::997]:
        parsed = uuid.UUID(value)
        assert str(parsed) == check_id(value)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122


@given(st.lists(st.integers(min_value=0, max_value=2**60), min_size=2, max_size=50))
def test_ids_increase_even_when_the_clock_stalls_or_steps_back(readings: list[int]) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(ids, "_sequence", ids._Sequence())
        fixed_clock(monkeypatch, readings)
        made = [new_id() for _ in readings]
    assert made == sorted(made) and len(set(made)) == len(made)
    first_millis = int(made[0].replace("-", "")[:12], 16)
    assert first_millis == readings[0] // 1_000_000  # the time prefix is the clock's millisecond


def test_a_full_millisecond_borrows_the_next(
    sequence: ids._Sequence, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed_clock(monkeypatch, [5_000_000])
    before = new_id()
    sequence.random = (1 << 74) - 2  # the random bits cannot grow any more within millisecond 5
    after = new_id()
    assert after > before
    assert int(after.replace("-", "")[:12], 16) == 6 and uuid.UUID(after).version == 7


def test_ids_from_many_threads_are_unique_and_each_thread_sees_them_increase() -> None:
    per_thread: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        out.extend(new_id() for _ in range(5_000))

    threads = [threading.Thread(target=make, args=(out,)) for out in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [value for out in per_thread for value in out]
    assert len(set(everything)) == len(everything)
    assert all(out == sorted(out) for out in per_thread)


def test_jobs_enqueued_at_one_instant_are_claimed_in_creation_order(store: Store) -> None:
    """With a frozen clock every job has the same created_at: the id breaks the tie in creation order."""
    created = [new_job(store, f"prompt {i}").id for i in range(30)]
    claimed: list[str] = []
    while (job := store.claim_next("w")) is not None:
        claimed.append(job.id)
    assert claimed == created


def test_random_bits_are_drawn_in_bulk_and_handed_out_once(sequence: ids._Sequence) -> None:
    """One os.urandom call serves many ids; no byte of the pool is handed out twice."""
    first = new_id()
    pool = sequence.pool
    made = [new_id() for _ in range(50)]
    assert sequence.pool is pool and sequence.at > 10  # the same draw, read further on
    assert first < made[0] and made == sorted(made) and len(set(made)) == 50


def test_a_pool_drawn_to_its_end_is_drawn_again(sequence: ids._Sequence) -> None:
    new_id()
    sequence.at = ids.POOL_BYTES - 3  # fewer bytes left than a draw takes
    before = sequence.pool
    made = [new_id() for _ in range(3)]
    assert sequence.pool is not before and made == sorted(made)


def test_a_forked_child_hands_out_other_ids_than_its_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a fork, parent and child share the pool's unread bytes and the last id: the child must forget
    both, or both would make the same ids in the same millisecond."""
    monkeypatch.setattr(ids, "_sequence", ids._Sequence())
    new_id()  # the pool is drawn and part read before the fork
    fixed_clock(monkeypatch, [time.time_ns() + 10**9])  # both continue in one later millisecond
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ids to the parent, then out without running pytest's exit
        try:
            os.write(write, " ".join(new_id() for _ in range(200)).encode())
        finally:
            os._exit(0)
    os.close(write)
    parent = [new_id() for _ in range(200)]
    with os.fdopen(read) as pipe:
        child = pipe.read().split()
    os.waitpid(pid, 0)
    assert len(child) == 200 and child == sorted(child)
    assert not set(parent) & set(child)


def test_fresh_sequences_start_at_random_points(monkeypatch: pytest.MonkeyPatch) -> None:
    fixed_clock(monkeypatch, [7_000_000])
    firsts = set()
    for _ in range(5):
        monkeypatch.setattr(ids, "_sequence", ids._Sequence())
        firsts.add(new_id().split("-", 2)[2])  # the part after the millisecond
    assert len(firsts) == 5
