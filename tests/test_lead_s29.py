"""Session 29's own fixes (the lead's)."""

from __future__ import annotations

import random

from musicstore.runner import conflict_wait


def test_a_conflict_retrys_wait_leaves_the_applications_random_state_alone() -> None:
    """A WriteConflict retry drew its jitter from the global ``random``: a worker's seeded simulation (or
    Hypothesis drawing while a retry waited, HypothesisDeprecationWarning in CI) saw its sequence moved."""
    random.seed(29)
    expected = [random.random() for _ in range(3)]
    random.seed(29)
    waits = [conflict_wait(attempt) for attempt in (1, 2, 3)]
    assert [random.random() for _ in range(3)] == expected
    assert all(0.005 * 2**i <= wait <= 0.015 * 2**i for i, wait in enumerate(waits))
