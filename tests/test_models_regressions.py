"""Regressions of the vocabulary: the dataclasses (musicstore.models), the input checks (musicstore.validate),
storage names (musicstore.storage_names) and ids (musicstore.ids)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from musicstore import AsyncStore, Generation, RetryPolicy, Store, storage_names, validate
from musicstore.errors import InvalidInput

from .conftest import new_job

HUGE: Any = 10**5000
"""An int whose decimal text Python refuses to make (``sys.get_int_max_str_digits``: 4300 digits)."""

HUGE_INT_CALLS: dict[str, Callable[[Store, str], Any]] = {
    "create priority": lambda s, gid: new_job(s, priority=HUGE),
    "create sample_rate": lambda s, gid: new_job(s, sample_rate=HUGE),
    "create channels": lambda s, gid: new_job(s, channels=HUGE),
    "create duration": lambda s, gid: new_job(s, duration_seconds=HUGE),
    "get id": lambda s, gid: s.get_generation(HUGE),
    "claim lease": lambda s, gid: s.claim_next("w", lease_seconds=HUGE),
    "claim_batch count": lambda s, gid: s.claim_batch("w", HUGE),
    "fail max_attempts": lambda s, gid: s.fail(gid, "boom", max_attempts=HUGE),
    "fail retry": lambda s, gid: s.fail(gid, "boom", retry=HUGE),
    "requeue max_attempts": lambda s, gid: s.requeue_expired(max_attempts=HUGE),
    "status": lambda s, gid: s.update_generation_status(gid, HUGE),
    "list limit": lambda s, gid: s.list_generations(limit=HUGE),
    "list cursor": lambda s, gid: s.list_generations(cursor=HUGE),
    "complete size": lambda s, gid: s.complete_generation(gid, file_path="a.wav", file_size_bytes=HUGE),
    "progress fraction": lambda s, gid: s.report_progress(gid, "w", HUGE),
    "retry policy": lambda s, gid: RetryPolicy(base_seconds=HUGE),
}


@pytest.mark.parametrize("call", sorted(HUGE_INT_CALLS))
def test_an_int_too_long_to_print_is_invalid_input(store: Store, call: str) -> None:
    """An int of more than 4300 digits is refused as InvalidInput saying what it is, and nothing is written.
    Before, the message's repr of it raised a bare ValueError (Python's limit on int to str conversion)."""
    gid = new_job(store).id
    claimed = store.claim_next("w")
    assert claimed is not None and claimed.id == gid
    before = store.get_all_generations()
    with pytest.raises(InvalidInput, match="integer of 16610 bits"):
        HUGE_INT_CALLS[call](store, gid)
    assert store.get_all_generations() == before


@pytest.mark.parametrize(
    "check",
    [storage_names.check_key, storage_names.check_prefix, storage_names.check_checksum],
)
def test_storage_name_checks_refuse_huge_ints_and_cut_long_values(check: Callable[[Any], Any]) -> None:
    with pytest.raises(InvalidInput, match="integer of 16610 bits"):
        check(HUGE)
    with pytest.raises(InvalidInput) as refused:
        check("\x01" + "a" * 1_000_000)
    assert len(str(refused.value)) < 300


def test_a_long_refused_id_is_not_echoed_whole(store: Store) -> None:
    """A refused id is shown cut (a megabyte of it was the message)."""
    with pytest.raises(InvalidInput) as refused:
        store.get_generation("x" * 1_000_000)
    assert len(str(refused.value)) < 300
    assert "1000002 characters" in str(refused.value)


EDGE_MOMENTS = [
    # a zone ahead of UTC carries the last moments of 9999 into the year 10000, one behind it the first
    # moments of year 1 into year 0: neither is a Python datetime
    ("Pacific/Kiritimati", datetime(9999, 12, 31, 20, 0, 0, 999_999, tzinfo=UTC)),
    ("America/New_York", datetime(1, 1, 1, 1, 0, 0, 1, tzinfo=UTC)),
]


@pytest.mark.parametrize(("zone", "when"), EDGE_MOMENTS)
def test_a_moment_accepted_reads_back_whatever_the_servers_time_zone(
    postgres_url: str, zone: str, when: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run_after the store accepts (years 1 to 9999 in UTC) reads back equal on a PostgreSQL session whose
    TimeZone is not UTC (the server's or the database's setting, PGTZ). Before, psycopg built the moment in
    the session's zone: every read of the row (get, list, claim) failed with DatabaseError 'timestamp too
    large (after year 10K)' or 'too small (before year 1)', where SQLite read it back."""
    monkeypatch.setenv("PGTZ", zone)  # libpq's: the session's TimeZone, as a server's setting would be
    with Store(postgres_url) as store:
        made = new_job(store, run_after=when)
        assert store.get_generation(made.id) == made
        assert store.list_generations().items == [made]


@pytest.mark.parametrize(("zone", "when"), EDGE_MOMENTS)
def test_a_moment_accepted_reads_back_whatever_the_servers_time_zone_async(
    postgres_url: str, zone: str, when: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGTZ", zone)

    async def main() -> None:
        async with AsyncStore.open(postgres_url) as store:
            made = await store.create_generation("p", model_name="m", duration_seconds=1.0, run_after=when)
            assert await store.get_generation(made.id) == made

    asyncio.run(main())


def sign(value: float | None) -> float:
    assert value is not None
    return math.copysign(1.0, value)


def test_negative_zero_is_stored_as_zero_on_both_backends(store: Store) -> None:
    """-0.0 where 0 is accepted (a progress fraction, generation_time_seconds, a quality) is kept as 0.0: what
    the write returns, what SQLite reads back (it stores an integral REAL as an integer) and what PostgreSQL
    reads back (its double keeps the sign) are one value. Before, PostgreSQL and the write's return gave
    -0.0 and SQLite 0.0 (shown as "-0.0" by the CLI's JSON on one backend and "0.0" on the other)."""
    gid = new_job(store).id
    assert store.claim_next("w") is not None
    store.report_progress(gid, "w", -0.0)
    reported = store.get_generation(gid)
    assert reported is not None and sign(reported.progress) == 1.0
    done = store.complete_generation(gid, file_path="a.wav", file_size_bytes=0, generation_time_seconds=-0.0)
    assert sign(done.generation_time_seconds) == 1.0
    read = store.get_generation(gid)
    assert read is not None and sign(read.generation_time_seconds) == 1.0


@given(st.one_of(st.floats(min_value=-0.0, max_value=1e6), st.integers(0, 10**6)))
def test_number_returns_the_value_as_a_float_with_no_negative_zero(value: float) -> None:
    real = validate.number(value, "x", positive=False, high=1e6)
    assert real == value and type(real) is float and sign(real) == 1.0
    real = validate.number(value, "x", positive=False)
    assert real == value and type(real) is float and sign(real) == 1.0


def test_a_claimed_generation_has_float_seconds_as_a_read_has(store: Store) -> None:
    """A generation returned by a claim (an UPDATE ... RETURNING) has duration_seconds a float, as a read of
    the row has, on both backends. Before, SQLite (3.40: RETURNING skips the REAL column's conversion of a
    value stored as an integer) gave the int 30 for 30.0: the returned row's repr, JSON and type differed
    from the read's and from PostgreSQL's (``g.duration_seconds.is_integer()`` raised AttributeError)."""
    first, second = new_job(store, duration_seconds=30.0), new_job(store, duration_seconds=12.0)
    claimed = store.claim_next("w")
    batch = store.claim_batch("w", 5)
    assert claimed is not None and [g.id for g in [claimed, *batch]] == [first.id, second.id]
    for got in [claimed, *batch]:
        read = store.get_generation(got.id)
        assert type(got.duration_seconds) is float
        assert read is not None and repr(got) == repr(read)


@pytest.mark.parametrize("field", ["duration_seconds", "generation_time_seconds", "progress"])
def test_the_row_readers_give_float_seconds_for_an_integral_real(field: str) -> None:
    """Both row readers (by position, by name) make a stored REAL that SQLite hands over as an int a float."""
    names = list(Generation.__dataclass_fields__)
    row: dict[str, Any] = dict.fromkeys(names)
    row.update(
        id="x", prompt="p", model_name="m", duration_seconds=1.0, sample_rate=8000, channels=1,
        status="pending", created_at=0, attempts=0, metadata="{}", priority=0,
    )  # fmt: skip
    row[field] = 1
    for made in (Generation.reader(names)([row[name] for name in names]), Generation.from_row(row)):
        assert type(getattr(made, field)) is float
