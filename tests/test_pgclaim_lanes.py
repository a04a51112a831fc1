"""PostgreSQL's lanes after migration 0014: ``owner_lanes.head_run_after`` is the head's ``run_after``, kept
by the lanes' trigger with the head, read by ``claim_fast`` instead of a probe of the head's row."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis.stateful import invariant, run_state_machine_as_test

from musicstore import Store, migrate
from musicstore.testing import FakeClock
from tests.test_queue_fairness import QueueMachine
from tests.test_schema import _from, _rollback, _sql

# Each lane's kept head and its run_after, and the same read from the head's row (outside the library).
HEADS = (
    "SELECT l.owner_key, l.head_id, l.head_run_after, g.run_after FROM owner_lanes AS l"
    " LEFT JOIN generations AS g ON g.id = l.head_id ORDER BY l.owner_key"
)


def _heads_agree(url: str) -> list[tuple[object, ...]]:
    rows = _sql(url, HEADS)
    for key, head, kept, actual in rows:
        assert kept == actual, (key, head, kept, actual)
    return rows


class LaneMachine(QueueMachine):
    @invariant()
    def head_run_after_is_the_heads(self) -> None:
        _heads_agree(self.url)


def test_head_run_after_follows_claims_retries_cancels_and_waits(postgres_url: str) -> None:
    """The fairness model (order, limits, run_after waits) with every lane's head_run_after checked."""
    run_state_machine_as_test(
        type("Machine", (LaneMachine,), {"url": postgres_url}),
        settings=settings(
            max_examples=20,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )


def test_a_run_after_changed_alone_moves_the_lane(postgres_url: str) -> None:
    """An UPDATE of a pending job's run_after alone (outside the library) fires the lanes' trigger: the
    lane's head_run_after follows, and the claim waits for it."""
    clock = FakeClock()
    with Store(postgres_url, clock=clock) as store:
        job = store.create_generation("p", model_name="m", duration_seconds=1, owner_key="a")
        assert _heads_agree(postgres_url) == [("a", job.id, None, None)]
        later = clock.now + timedelta(seconds=60)
        _sql(postgres_url, f"UPDATE generations SET run_after = '{later.isoformat()}' WHERE id = '{job.id}'")
        assert _heads_agree(postgres_url) == [("a", job.id, later, later)]
        assert store.claim_next("w", owner_limit=2) is None
        clock.advance(61)
        claimed = store.claim_next("w", owner_limit=2)
        assert claimed is not None and claimed.id == job.id
        assert _heads_agree(postgres_url) == [("a", None, None, None)]


def test_0014_takes_head_run_after_from_the_rows_and_rolls_back(postgres_url: str) -> None:
    clock = FakeClock()
    later = clock.now + timedelta(seconds=30)
    with Store(postgres_url, clock=clock) as store:
        waiting = store.create_generation(
            "w", model_name="m", duration_seconds=1, owner_key="a", run_after=later
        )
        store.create_generation("r", model_name="m", duration_seconds=1, owner_key="b")
    _rollback(postgres_url, "0014")
    columns = _sql(
        postgres_url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'owner_lanes'"
    )
    assert ("head_run_after",) not in columns
    # changed while 0014 is not applied (0012's trigger keeps the head): the migration must see it
    _sql(postgres_url, "UPDATE generations SET priority = 1 WHERE owner_key = 'b'")
    assert migrate(postgres_url) == _from("0014")
    rows = _heads_agree(postgres_url)
    assert [(key, kept) for key, _, kept, _ in rows] == [("a", later), ("b", None)]
    assert rows[0][1] == waiting.id
    with Store(postgres_url, clock=clock) as store:
        first = store.claim_next("w", owner_limit=2)
        assert first is not None and first.owner_key == "b"
        assert store.claim_next("w", owner_limit=2) is None  # a's head waits
        clock.advance(31)
        second = store.claim_next("w", owner_limit=2)
        assert second is not None and second.id == waiting.id
