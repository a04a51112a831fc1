"""Moving a store's rows to another backend keeps every row and figure exactly."""

from __future__ import annotations

import pytest

from musicstore import Generation, InvalidInput, Prompt, Stats, Status, Store
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


BAD_TEXT = [
    ("prompts", "text", "lofi\x00 hip hop", "prompt"),
    ("generations", "model_name", "musicgen\x00", "model_name"),
    ("generations", "model_version", "v1\x00", "model_version"),
    ("generations", "error_message", "boom\x00", "error_message"),
    ("generations", "worker_id", "gpu\x00", "worker_id"),
    ("generations", "file_path", "a/b\x00.wav", "file_path"),
    ("generations", "metadata", '{"genre": "jazz\\u0000"}', "metadata"),
]


@pytest.mark.parametrize("case", BAD_TEXT, ids=[f"{t}.{c}" for t, c, *_ in BAD_TEXT])
def test_a_row_the_target_cannot_store_is_named_and_nothing_is_copied(
    sqlite_url: str, target_url: str, clock: FakeClock, case: tuple[str, str, str, str]
) -> None:
    """An old SQLite row whose text holds a NUL: PostgreSQL raised DatabaseError and
    SQLite stored it; now InvalidInput names the row and the field, and the target stays empty."""
    import sqlite3

    table, column, value, field = case
    with Store(sqlite_url, clock=clock) as source:
        for i in range(5):
            new_job(source, f"prompt {i}")
        job = source.claim_next("w")
        assert job is not None
        source.complete_generation(job.id, file_path="a/b.wav", file_size_bytes=8)
        prompt_id = source.get_prompt_by_text(job.prompt).id  # type: ignore[union-attr]
        row_id = prompt_id if table == "prompts" else job.id
        with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
            conn.execute(f"UPDATE {table} SET {column} = ? WHERE id = ?", (value, row_id))
        with Store(target_url) as target:
            with pytest.raises(InvalidInput, match=rf"{table[:-1]} '?{row_id}'?: .*{field}") as raised:
                copy_store(source, target, batch=2)
            assert "DatabaseError" not in type(raised.value).__name__
            assert target.count_generations() == 0 and target.get_most_used_prompts(10) == []


def test_import_rows_checks_every_row_before_it_writes(store: Store, clock: FakeClock) -> None:
    """A direct import_rows: the bad row is named, the good row before it is not written either, and a
    file_path spelled ``./x.wav`` is stored as ``x.wav``."""
    import dataclasses
    import uuid

    job = new_job(store)
    prompts = store.run(prompts_after, 0, 10)
    good = dataclasses.replace(job, id=str(uuid.uuid4()))
    bad = dataclasses.replace(job, id=str(uuid.uuid4()), error_message="boom\x00")
    with pytest.raises(InvalidInput, match=rf"generation '{bad.id}': error_message contains a NUL"):
        store.run(import_rows, prompts, [good, bad])
    assert store.count_generations() == 1
    done = dataclasses.replace(
        job, id=str(uuid.uuid4()), status=Status.COMPLETED, file_path="./x.wav", file_size_bytes=8
    )
    assert store.run(import_rows, [], [done]) == 1
    assert store.get_generation(done.id).file_path == "x.wav"  # type: ignore[union-attr]


def test_copy_keeps_queue_fields_progress_renditions_and_owner_limits(
    sqlite_url: str, postgres_url: str
) -> None:
    from datetime import timedelta

    from tests.test_rendition_store import figures

    clock = FakeClock()
    with Store(sqlite_url, clock=clock) as source:
        later = clock() + timedelta(hours=1)
        new_job(source, "vip", priority=7, owner_key="user-1", idempotency_key="click-1", run_after=later)
        new_job(source, "queued", owner_key="user-2")
        running = source.claim_next("gpu-0")
        assert running is not None and running.prompt == "queued"
        assert source.report_progress(running.id, "gpu-0", 0.25, "sampling")
        done = new_job(source, "done")
        source.claim_next("gpu-1")
        source.complete_generation(done.id, file_path="a/done.wav", file_size_bytes=42)
        mp3 = source.create_rendition(done.id, **figures("a/done.streaming.mp3"))
        source.set_owner_limit("user-1", 2)
        expected = _everything(source)
        with Store(postgres_url) as target:
            assert copy_store(source, target, batch=2) == 3
            assert _everything(target) == expected  # priority, run_after, keys, progress included
            assert target.list_renditions(done.id) == [mp3]
            assert target.get_owner_limits() == {"user-1": 2}
            assert copy_store(source, target, batch=2) == 0
            assert target.list_renditions(done.id) == [mp3]
