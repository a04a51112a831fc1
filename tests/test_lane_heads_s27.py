"""PostgreSQL: every change of a keyed lane's pending jobs that waits for an enqueue of the same lane (its
``owner_lanes`` row locked by the enqueue's transaction) keeps the new job claimable (migration 0025; the
claim itself since 79309fc). The trigger's head recompute was one UPDATE: it waited for the row, then wrote
the head from the snapshot its statement took before the enqueue committed, so the new job stayed pending and
no claim took it (claims read only lanes with a head) until the lane changed again."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest

from musicstore import Store, migrate
from musicstore.models import Generation
from tests.test_schema import _from, _rollback

CHANGES: dict[str, Callable[[Store, Generation], object]] = {
    "cancel": lambda store, job: store.cancel(job.id),
    "delete": lambda store, job: store.delete_generation(job.id),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_lane_change_waiting_for_an_enqueue_of_its_lane_leaves_the_new_job_claimable(
    postgres_url: str, change: str
) -> None:
    key = uuid.uuid4().hex
    held, release = threading.Event(), threading.Event()
    with Store(postgres_url) as store:
        first = store.create_generation("first", model_name="m", duration_seconds=1, owner_key=key)

        def enqueue() -> None:  # the lane's second job, uncommitted until released
            with store.transaction() as tx:
                tx.create_generation("second", model_name="m", duration_seconds=1, owner_key=key)
                held.set()
                release.wait(20)

        threads = [threading.Thread(target=enqueue)]
        threads[0].start()
        assert held.wait(20)
        threads.append(threading.Thread(target=CHANGES[change], args=(store, first)))
        threads[1].start()
        time.sleep(0.5)  # the change waits for the lane's row
        release.set()
        for thread in threads:
            thread.join(20)
        claimed = store.claim_next("worker")
    assert claimed is not None and claimed.prompt == "second"


def test_0025_rolls_back_and_applies_again(db_url: str) -> None:
    """Both backends: 0025 rolls back (0015's trigger function on PostgreSQL, nothing on SQLite) and applies
    again; the lanes still work after it."""
    _rollback(db_url, "0025")
    assert migrate(db_url) == _from("0025")
    with Store(db_url) as store:
        key = uuid.uuid4().hex
        job = store.create_generation("after 0025", model_name="m", duration_seconds=1, owner_key=key)
        claimed = store.claim_next("worker")
        assert claimed is not None and claimed.id == job.id
