"""The renditions' running totals (migration 0011): ``storage_stats`` counts the renditions and their bytes
from totals that triggers keep on both backends (inserts, deletes, a generation's cascading delete, a
changed size), equal to a recount at every step; the migration fills them from the rows and rolls back."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore import Store, migrate
from musicstore.maintenance.usage import storage_stats
from tests.test_rendition_store import MP3, completed, figures
from tests.test_schema import _from, _rollback, _sql, _tables


def recount(db_url: str) -> tuple[int, int]:
    """The renditions and their bytes, counted from the table itself (outside the library)."""
    ((count, size),) = _sql(db_url, "SELECT count(*), coalesce(sum(file_size_bytes), 0) FROM renditions")
    return int(count), int(size)  # type: ignore[call-overload]


def totals(store: Store) -> tuple[int, int]:
    stats = storage_stats(store)
    return stats.renditions, stats.rendition_bytes


def _rendition(store: Store, gid: str, n: int, size: int) -> Any:
    settings = {**MP3, "bitrate_kbps": (128, 160, 192, 224, 256, 320)[n % 6], "sample_rate": 32_000 + n}
    return store.create_rendition(
        gid, **figures(f"2026/{gid}.{n}.mp3", settings=settings, file_size_bytes=size)
    )


def test_storage_stats_count_the_renditions_and_their_bytes(store: Store, db_url: str) -> None:
    first, second = completed(store, 2)
    assert totals(store) == (0, 0)
    made = [_rendition(store, first, n, 1000 + n) for n in range(3)]
    _rendition(store, second, 0, 50)
    assert totals(store) == recount(db_url) == (4, 3003 + 50)
    stats = storage_stats(store)
    assert stats.file_bytes == 200 and stats.generations == 2  # the generations' own files, as before
    _sql(db_url, f"UPDATE renditions SET file_size_bytes = 7 WHERE id = '{made[0].id}'")  # a changed size
    assert totals(store) == recount(db_url) == (4, 7 + 1001 + 1002 + 50)
    _sql(db_url, f"DELETE FROM renditions WHERE id = '{made[1].id}'")
    assert totals(store) == recount(db_url) == (3, 7 + 1002 + 50)
    store.delete_generation(first)  # its renditions go with it (ON DELETE CASCADE), and from the totals
    assert totals(store) == recount(db_url) == (1, 50)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(st.tuples(st.sampled_from(["make", "drop", "delete"]), st.integers(1, 10**9)), max_size=8)
)
def test_the_totals_are_a_recount_after_any_steps(db_url: str, steps: list[tuple[str, int]]) -> None:
    with Store(db_url) as store:
        gids = completed(store, 2)
        made: list[Any] = []
        for n, (step, size) in enumerate(steps):
            if step == "make":
                made.append(_rendition(store, gids[n % 2], n, size))
            elif step == "drop" and made:
                _sql(db_url, f"DELETE FROM renditions WHERE id = '{made.pop().id}'")
            elif step == "delete":
                store.delete_generation(gids[n % 2])
                made = [r for r in made if r.generation_id != gids[n % 2]]
                gids[n % 2] = completed(store)[0]
            assert totals(store) == recount(db_url)
        assert totals(store)[0] == len(made)
        store.delete_generation(gids[0])
        store.delete_generation(gids[1])
        assert totals(store) == recount(db_url) == (0, 0)


def test_0011_fills_the_totals_from_the_rows_and_rolls_back(db_url: str) -> None:
    with Store(db_url) as store:
        first, second = completed(store, 2)
        made = [_rendition(store, first, n, 100 + n) for n in range(3)]
        assert totals(store) == (3, 303)

    _rollback(db_url, "0011")
    assert "rendition_totals" not in _tables(db_url)
    # Changed while no trigger keeps the totals: the reapplied migration must count what is there.
    _sql(db_url, f"DELETE FROM renditions WHERE id = '{made[0].id}'")
    _sql(db_url, f"UPDATE renditions SET file_size_bytes = 9 WHERE id = '{made[1].id}'")

    assert migrate(db_url) == _from("0011")
    assert "rendition_totals" in _tables(db_url)
    with Store(db_url) as store:
        assert totals(store) == recount(db_url) == (2, 9 + 102)
        _rendition(store, second, 0, 40)
        assert totals(store) == recount(db_url) == (3, 9 + 102 + 40)


@pytest.mark.parametrize("column", ["renditions", "file_bytes"])
def test_sqlite_totals_cannot_go_negative(sqlite_url: str, column: str) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        _sql(sqlite_url, f"UPDATE rendition_totals SET {column} = -1")
