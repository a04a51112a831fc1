"""``/metrics`` reads its window's figures without the rows (``read_metrics(rows=False)``, the query
``metrics_window``): the same figures as from the rows, on both backends, whatever the history."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from musicstore import Store
from musicstore.errors import InvalidInput
from musicstore.metrics import metrics_text, read_metrics
from musicstore.testing import FakeClock
from tests.conftest import new_job


def _history(store: Store, clock: FakeClock, seed: int) -> None:
    """Jobs completed, failed (for good, retried, with messages that start like a lease's expiry or not),
    cancelled, requeued after their lease expired (once, and on their last attempt), left pending."""
    pick = random.Random(seed)
    messages = ["lease expired by hand", "Lease expired", "oom", "", " lease expired", "lease expiré"]
    for i in range(40):
        new_job(store, f"song {i}", owner_key=pick.choice([None, "alice"]))
        clock.advance(pick.choice([0.0, 1.0]))  # ties of created_at too
        roll = pick.random()
        if roll < 0.15:
            continue
        taken = store.claim_next("gpu-0", lease_seconds=5)  # this job, or one retried before it
        assert taken is not None
        if roll < 0.35:
            store.complete_generation(taken.id, file_path=f"{i}.wav", file_size_bytes=1)
        elif roll < 0.55:
            store.fail(taken.id, pick.choice(messages), retry=pick.random() < 0.5, max_attempts=2)
        elif roll < 0.7:
            store.cancel(taken.id)
        else:
            clock.advance(10.0)
            store.requeue_expired(max_attempts=pick.choice([1, 3]))
    clock.advance(1.0)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_window_without_rows_has_the_figures_of_the_rows(db_url: str, seed: int) -> None:
    clock = FakeClock()
    with Store(db_url, clock=clock) as store:
        _history(store, clock, seed)
        for limit in (1, 7, 25, 1_000):
            whole = read_metrics(store, window_limit=limit)
            lean = read_metrics(store, window_limit=limit, rows=False)
            assert lean.recent == [] and len(whole.recent) == min(limit, 40)
            assert lean.window == whole.window
        assert read_metrics(store).window.lease_expiries > 0  # the history has some (else the test is void)
        clock.advance(timedelta(hours=2).total_seconds())  # the window empty
        assert read_metrics(store, rows=False).window == read_metrics(store).window
        assert metrics_text(store)


def test_rows_must_be_a_bool(sqlite_url: str) -> None:
    with Store(sqlite_url) as store, pytest.raises(InvalidInput, match="rows"):
        read_metrics(store, rows="no")  # type: ignore[arg-type]
