"""The UTC day a generation's storage is counted on (the trigger-kept totals by day: migrations 0005, 0016).

SQLite keeps ``created_at`` in integer microseconds since the epoch; 0005's triggers took its day as
``date(created_at / 1000000, 'unixepoch')``, and SQLite's integer division truncates toward zero, so a moment
in the last fraction of a second before a midnight before 1970 (1969-12-31T23:59:59.5Z) was counted on the
next day. 0016 floors. Both backends must put every moment on the day Python's ``created_at.date()`` says,
and the totals must equal a recount after an upgrade of a database the old triggers filled.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from musicstore import Generation, Store, migrate
from musicstore.maintenance.usage import storage_stats
from musicstore.testing import FakeClock
from tests.test_schema import _from, _rollback, _sql
from tests.test_totals import assert_grouped_totals_are_a_recount, every_generation

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HALF_A_SECOND_BEFORE_1970 = datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)


def _made_at(store: Store, clock: FakeClock, moment: datetime, size: int = 7) -> Generation:
    """A completed generation created at ``moment`` with a file of ``size`` bytes."""
    clock.now = moment
    job = store.create_generation("a day's count", model_name="m", duration_seconds=1.0)
    clock.now = moment + timedelta(seconds=1)
    claimed = store.claim_next("w")
    assert claimed is not None and claimed.id == job.id
    done: Generation = store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=size)
    return done


def _days(store: Store) -> dict[str, tuple[int, int]]:
    return {day: (b.generations, b.file_bytes) for day, b in storage_stats(store).by_day.items()}


def test_half_a_second_before_1970_counts_on_1969_12_31_on_both_backends(db_url: str) -> None:
    clock = FakeClock(HALF_A_SECOND_BEFORE_1970)
    with Store(db_url, clock=clock) as store:
        made = _made_at(store, clock, HALF_A_SECOND_BEFORE_1970)
        assert made.created_at == HALF_A_SECOND_BEFORE_1970
        assert made.created_at.date() == date(1969, 12, 31)  # Python's day
        assert _days(store) == {"1969-12-31": (1, 7)}  # SQLite said 1970-01-01
        store.delete_generation(made.id)  # the delete finds the row on the day its insert counted it
        assert _days(store) == {}
        assert_grouped_totals_are_a_recount(store, every_generation(store))


def _moments() -> st.SearchStrategy[datetime]:
    """Moments from year 1 to 9999, many of them within a second of a midnight (before 1970 and after)."""
    anywhere = st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    )
    near_midnight = st.builds(
        lambda day, micros: datetime.combine(day, datetime.min.time(), UTC) + timedelta(microseconds=micros),
        st.dates(min_value=date(1, 1, 2), max_value=date(9999, 12, 30)),
        st.integers(-1_000_000, 1_000_000),
    )
    return st.one_of(anywhere, near_midnight)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(moment=_moments())
@example(moment=HALF_A_SECOND_BEFORE_1970)
@example(moment=EPOCH - timedelta(microseconds=1))
@example(moment=EPOCH - timedelta(days=1, microseconds=1))
@example(moment=EPOCH)
@example(moment=datetime(1, 1, 2, tzinfo=UTC) - timedelta(microseconds=1))
def test_every_moment_counts_on_the_day_python_says(db_url: str, moment: datetime) -> None:
    """Property: a generation created at any moment is counted on ``moment.date()`` (UTC) by the backend's
    trigger, and its delete takes it off that day again."""
    clock = FakeClock(moment)
    with Store(db_url, clock=clock) as store:
        for row in every_generation(store):  # an example that failed leaves its row: each starts empty
            store.delete_generation(row.id)
        made = _made_at(store, clock, moment, size=3)
        assert _days(store) == {moment.date().isoformat(): (1, 3)}
        store.delete_generation(made.id)
        assert _days(store) == {}


def _stored_days(db_url: str) -> dict[str, tuple[int, int]]:
    """The totals by day as the table holds them (read without the library: any schema version)."""
    day = "day" if db_url.startswith("sqlite") else "to_char(day, 'YYYY-MM-DD')"
    rows = _sql(
        db_url,
        f"SELECT {day}, sum(generations), sum(file_bytes) FROM generation_day_totals GROUP BY 1"
        " HAVING sum(generations) > 0",
    )
    return {str(d): (int(str(n)), int(str(b))) for d, n, b in rows}


def _set_created_at(db_url: str, gid: str, moment: datetime) -> None:
    micros = (moment - EPOCH) // timedelta(microseconds=1)
    value = str(micros) if db_url.startswith("sqlite") else f"'{moment.isoformat()}'"
    _sql(db_url, f"UPDATE generations SET created_at = {value} WHERE id = '{gid}'")


def test_0016_recounts_the_days_the_old_triggers_got_wrong_and_rolls_back(db_url: str) -> None:
    """A database whose totals 0005's triggers kept (SQLite counted a moment just before a midnight before
    1970 on the next day): after 0016 the totals by day equal a recount and deletes keep them so; its
    rollback recounts those days as the old triggers bucket them, so their deletes find each row where it
    is counted."""
    clock = FakeClock()
    moments = [
        HALF_A_SECOND_BEFORE_1970,
        EPOCH - timedelta(days=1, microseconds=1),  # 1969-12-30T23:59:59.999999Z
        EPOCH - timedelta(days=3, seconds=5),  # whole seconds off midnight: right before 0016 too
        EPOCH,
        EPOCH + timedelta(hours=30),  # 1970-01-02: never touched
        datetime(2026, 1, 1, 12, tzinfo=UTC),
    ]
    with Store(db_url, clock=clock) as store:
        made = [_made_at(store, clock, datetime(2026, 1, 2, tzinfo=UTC), size=10 + i) for i in range(6)]
    _rollback(db_url, "0016")
    for row, moment in zip(made, moments, strict=True):  # moved by the old update trigger
        _set_created_at(db_url, row.id, moment)
    old = _stored_days(db_url)
    if db_url.startswith("sqlite"):  # the defect: 1969-12-31T23:59:59.5Z counted on 1970-01-01
        assert old["1970-01-01"] == (2, 10 + 13) and old["1969-12-31"] == (1, 11) and "1969-12-30" not in old
    assert migrate(db_url) == _from("0016")
    with Store(db_url, clock=clock) as store:
        assert _days(store) == {
            "1969-12-28": (1, 12), "1969-12-30": (1, 11), "1969-12-31": (1, 10), "1970-01-01": (1, 13),
            "1970-01-02": (1, 14), "2026-01-01": (1, 15),
        }  # fmt: skip
        assert_grouped_totals_are_a_recount(store, every_generation(store))
        store.delete_generation(made[0].id)
        assert_grouped_totals_are_a_recount(store, every_generation(store))
    _rollback(db_url, "0016")
    if db_url.startswith("sqlite"):  # as the old triggers count them, made[0] gone
        assert _stored_days(db_url) == {**old, "1970-01-01": (1, 13)}
    _sql(db_url, "DELETE FROM generations")  # the old delete trigger: each row off the day it was counted on
    assert _stored_days(db_url) == {}
    assert migrate(db_url) == _from("0016")
