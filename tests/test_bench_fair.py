"""The benchmarks' fair floors (``benchmarks.fair``) build exactly the library's objects, for any row."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks import fair
from benchmarks.bare import FAR_FUTURE, Bare, sqlite_bare
from musicstore import Generation, Prompt, Store
from musicstore.ops import import_rows
from musicstore.testing.strategies import generations


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Bare]]:
    path: Path = tmp_path_factory.mktemp("fair") / "store.db"
    store = Store(f"sqlite:///{path}", migrate=True)
    bare = sqlite_bare(path)
    yield store, bare
    bare.conn.close()
    store.close()


def same(library: object, floor: object) -> None:
    assert library == floor
    assert repr(library) == repr(floor)  # a naive or non-UTC datetime, a str for a Status, would differ


@st.composite
def queued(draw: st.DrawFn) -> Generation:
    """A row with the queue's and progress's fields drawn too (the fair floor must decode them all)."""
    row = draw(generations())
    moments = st.none() | st.integers(0, 2**40).map(lambda us: row.created_at + timedelta(microseconds=us))
    keys = st.none() | st.text("abcdefghij-_0123456789", min_size=1, max_size=12)
    return replace(
        row,
        priority=draw(st.integers(-32_768, 32_767)),
        run_after=draw(moments),
        owner_key=draw(keys),
        idempotency_key=draw(keys.map(lambda key: None if key is None else f"{row.id}-{key}")),
        progress=draw(st.none() | st.floats(0, 1)),
        stage=draw(st.none() | st.sampled_from(["sampling", "decoding"])),
        progress_at=draw(moments),
    )


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(queued(), min_size=1, max_size=4, unique_by=lambda g: g.id))
def test_fair_floor_returns_the_librarys_objects(stores: tuple[Store, Bare], rows: list[Generation]) -> None:
    store, bare = stores
    prompts = [Prompt(0, g.prompt, 1, g.created_at, g.created_at) for g in rows]
    store.run(import_rows, prompts, rows)
    ex = bare.conn.execute
    get = bare.sql("get_generation")
    fair.check_columns(ex(get, {"id": rows[0].id}).description, fair.GENERATION_COLUMNS)
    for row in rows:
        same(store.get_generation(row.id), fair.generation_sqlite(ex(get, {"id": row.id}).fetchone()))
    totals = ex(bare.sql("totals"))
    fair.check_columns(totals.description, fair.TOTALS_COLUMNS)
    totals_rows = totals.fetchall()
    same(store.get_database_stats(), fair.stats(totals_rows))
    same(store.count_generations(status=rows[0].status), fair.count(totals_rows, rows[0].status.value))
    page = store.list_generations(limit=2)
    params = {"before_created_at": bare.stamp(FAR_FUTURE), "before_id": "~", "limit": 3, "offset": 0}
    same(page, fair.page(ex(bare.sql("list_generations"), params).fetchall(), 2, fair.generation_sqlite))
    if page.next_cursor is not None:
        at, gid = fair.cursor_bounds(page.next_cursor)
        params = {"before_created_at": at, "before_id": gid, "limit": 3, "offset": 0}
        rows_after = ex(bare.sql("list_generations"), params).fetchall()
        same(
            store.list_generations(limit=2, cursor=page.next_cursor),
            fair.page(rows_after, 2, fair.generation_sqlite),
        )
    most = ex(bare.sql("most_used_prompts"), {"limit": 5}).fetchall()
    same(store.get_most_used_prompts(5), [fair.prompt_sqlite(r) for r in most])


def test_checked_floors_return_the_librarys_results(stores: tuple[Store, Bare]) -> None:
    """The writes' checked floors (``benchmarks.checked_floors``) change the rows as the library does and
    return the same objects, up to what a second call must differ in (a new id, another moment)."""
    from benchmarks.checked_floors import NO_DELAY, checked_floors
    from benchmarks.data import add_jobs
    from musicstore import Requeued, Status

    store, bare = stores
    done = {"key": "C major", "loudness_lufs": -16.0}
    checked = checked_floors(bare, done)
    made = checked["create"](("checked floor prompt", {"genre": "lofi", "bpm": 90}))
    assert type(made) is Generation and store.get_generation(made.id) == made
    assert store.get_prompt_by_text("checked floor prompt") is not None
    lib_job, floor_job = add_jobs(store, 2, worker="bench")
    expires = checked["heartbeat"](floor_job)
    assert store.get_generation(floor_job).lease_expires_at == expires  # type: ignore[union-attr]
    assert type(expires) is type(store.heartbeat(lib_job, "bench"))
    path = f"2026/11/22/{lib_job}.wav"
    ours = store.complete_generation(lib_job, file_path=path, file_size_bytes=3_840_044, metadata=done)
    theirs = checked["complete"](floor_job)
    assert type(theirs) is Generation and theirs == store.get_generation(floor_job)
    moments: dict[str, Any] = dict.fromkeys(("completed_at", "lease_expires_at", "generation_time_seconds"))
    assert replace(theirs, id=ours.id, file_path=path, **moments) == replace(ours, **moments)
    retried = add_jobs(store, 1, worker="bench")[0]
    assert checked["fail"](retried) is Status.PENDING
    assert store.get_generation(retried).is_pending  # type: ignore[union-attr]
    taken = checked["requeue_expired"](None)  # the expired leases of the rows drawn above, if any
    assert type(taken) is Requeued and taken.requeued == sorted(taken.requeued)
    assert all(store.get_generation(gid).is_pending for gid in taken.requeued)  # type: ignore[union-attr]
    assert store.requeue_expired() == Requeued([], [])  # nothing left for the library to take
    assert NO_DELAY == {"base_seconds": 0.0, "cap_seconds": 0.0, "jitter": 0.0}


class _Undo(Exception):
    """Leaves a transaction rolled back."""


def test_checked_claim_floors_take_what_the_library_takes(stores: tuple[Store, Bare]) -> None:
    """The claims' checked floors take the job the library would take (asked first, then rolled back) and
    return the same object, up to the claim's moments."""
    from benchmarks.checked_floors import checked_floors
    from benchmarks.data import add_jobs
    from musicstore import Status

    store, bare = stores
    checked = checked_floors(bare, {})
    add_jobs(store, 12)
    moments: dict[str, Any] = dict.fromkeys(("started_at", "lease_expires_at"))
    with pytest.raises(_Undo), store.transaction() as tx:
        ours = tx.claim_next("bench-lib")
        raise _Undo
    theirs = checked["claim"](None)
    assert ours is not None and type(theirs) is Generation
    assert theirs.status is Status.PROCESSING and theirs == store.get_generation(theirs.id)
    assert replace(theirs, **moments) == replace(ours, **moments)
    with pytest.raises(_Undo), store.transaction() as tx:
        batch = tx.claim_batch("bench-lib", 10)
        raise _Undo
    taken = checked["claim_batch"](None)
    assert isinstance(taken, list)
    assert len(batch) == 10 and [type(g) for g in taken] == [Generation] * 10
    assert [store.get_generation(g.id) for g in taken] == taken
    assert [replace(g, **moments) for g in taken] == [replace(g, **moments) for g in batch]
