"""Moving a store's rows to another backend keeps every row and figure exactly."""

from __future__ import annotations

import pytest

from musicstore import Generation, InvalidInput, Prompt, Stats, Store
from musicstore.maintenance.transfer import copy_store
from musicstore.ops import import_rows, prompts_after
from tests.conftest import FakeClock, new_job


def _everything(store: Store) -> tuple[list[Generation], Stats, list[Prompt]]:
    generations = store.list_generations(limit=1000).items
    return (
        sorted(generations, key=lambda g: g.id),
        store.get_database_stats(),
        store.get_most_used_prompts(1000),
    )


def test_copy_sqlite_to_postgres_keeps_rows_and_totals(sqlite_url: str, postgres_url: str) -> None:
    clock = FakeClock()
    with Store(sqlite_url, clock=clock) as source:
        for i in range(12):
            new_job(source, f"prompt {i % 4}", metadata={"i": i, "nested": {"x": [1.5, None, "é"]}})
            clock.advance(0.000_123)
        done = source.claim_next("w1")
        assert done is not None
        source.complete_generation(done.id, file_path="a/b.wav", file_size_bytes=42, metadata={"lufs": -16.0})
        failing = source.claim_next("w2")
        assert failing is not None
        source.fail(failing.id, "boom", retry=False)
        source.cancel(source.get_pending_generations(1)[0].id)
        source.claim_next("still-working")
        expected = _everything(source)
        with Store(postgres_url) as target:
            assert copy_store(source, target, batch=5) == 12
            assert _everything(target) == expected
            assert copy_store(source, target, batch=5) == 0  # rerun: nothing new, nothing doubled
            assert _everything(target) == expected


def test_import_refuses_a_file_path_outside_the_root(sqlite_url: str, clock: FakeClock) -> None:
    with (
        Store(sqlite_url, clock=clock) as source,
        Store(sqlite_url.replace(".db", "-target.db"), migrate=True, clock=clock) as target,
    ):
        job = new_job(source)
        source.claim_next("w")
        done = source.complete_generation(job.id, file_path="a.wav", file_size_bytes=8)
        done.file_path = "/etc/passwd.wav"
        target.run(import_rows, source.run(prompts_after, 0, 10), [])
        with pytest.raises(InvalidInput, match="file_path"):
            target.run(import_rows, [], [done])
        assert target.count_generations() == 0


@pytest.mark.parametrize("batch", [0, -1, True, 2.5])
def test_a_batch_size_that_is_not_a_positive_integer_is_refused(
    sqlite_url: str, clock: FakeClock, batch: object
) -> None:
    """batch=0 used to copy nothing and return 0, as if the source were empty."""
    with (
        Store(sqlite_url, clock=clock) as source,
        Store(sqlite_url.replace(".db", "-target.db"), migrate=True, clock=clock) as target,
    ):
        new_job(source)
        with pytest.raises(InvalidInput, match="batch"):
            copy_store(source, target, batch=batch)  # type: ignore[arg-type]
        assert target.count_generations() == 0
        assert copy_store(source, target, batch=1) == 1
