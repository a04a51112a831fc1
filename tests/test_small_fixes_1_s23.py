"""Regressions of small s23 fixes: the metrics window's tie-break, copy_files' dry run at a key conflict,
backup to a dangling symlink, and reconcile's count of verified peaks files on a folder."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from musicstore import Store
from musicstore.metrics import read_metrics
from musicstore.ops import creation
from musicstore.testing import FakeClock

GEN: dict[str, Any] = {
    "model_name": "musicgen-small",
    "duration_seconds": 10,
    "sample_rate": 32_000,
    "channels": 2,
}

# --- the metrics window: rows of one created_at are cut by id -----------------------------------------


def test_a_cut_window_keeps_the_rows_of_one_moment_with_the_highest_ids(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows created in one microsecond, cut by ``window_limit``: the rows counted are those with the
    highest ids (newest first, then by id, as the dashboard's lists), not whichever the index walk met
    first (there: the last inserted). The ids here fall as the rows are made."""
    falling = (f"01a20180-5e48-7dc6-afbf-{n:012x}" for n in itertools.count(999, -1))
    monkeypatch.setattr(creation, "new_id", lambda: next(falling))
    first = store.create_generation("first", **GEN)  # the highest id
    for i in range(3):
        store.create_generation(f"later {i}", **GEN)
    store.cancel(first.id)
    cut = read_metrics(store, window=3600, window_limit=1)
    assert cut.window.truncated
    assert cut.window.generations["cancelled"] == 1 and cut.window.generations["pending"] == 0
