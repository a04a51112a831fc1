"""Store hunt (session 22): the job store's core API answers alike on SQLite and PostgreSQL, and its running
totals equal a recount of the rows after any history."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import sqlite3
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from musicstore import RESET_CONFIRMATION, AsyncStore, MusicstoreError, Status, Store, migrate
from musicstore.testing import FakeClock
from musicstore.web.reads import Filters, table_page

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
UNKNOWN = "00000000-0000-7000-8000-000000000000"
CAFE = "caf\u00e9"
PROMPTS = [
    "lofi",
    "Lofi",
    " lofi",
    "lofi ",
    CAFE,
    unicodedata.normalize("NFD", CAFE),
    "\U0001f3b5 drums",
    "tab\tnew\nline",
]
METADATA: list[dict[str, Any] | None] = [
    None,
    {},
    {"big": 1e308, "neg_zero": -0.0, "tiny": 5e-324, "max": 2**63 - 1, "min": -(2**63)},
    {"caf\u00e9": "\u2028\U0001f600", "": {"": []}, "nested": [{}, [], None, True, 0.1]},
    {"b": 1, "a": 2.5},
]
MODELS = ["m", "M", "musicgen-small"]
WORKERS = ["gpu-0", "gpu-1"]


Call = tuple[str, tuple[Any, ...], dict[str, Any]]
"""An operation's name and its arguments."""


class _Undo(Exception):
    """Raised at the end of a transaction's block to roll it back."""


def _sync(store: Store) -> tuple[Callable[[Call], Any], Callable[[list[Call], bool], list[Any]]]:
    """A store's calls, and its transactions (each call in one; rolled back when asked)."""

    def call(what: Call) -> Any:
        name, args, kwargs = what
        return getattr(store, name)(*args, **kwargs)

    def transact(calls: list[Call], undo: bool) -> list[Any]:
        results: list[Any] = []
        try:
            with store.transaction() as tx:
                for name, args, kwargs in calls:
                    results.append(getattr(tx, name)(*args, **kwargs))
                if undo:
                    raise _Undo
        except _Undo:
            pass
        return results

    return call, transact


def _async(
    store: AsyncStore, runner: asyncio.Runner
) -> tuple[Callable[[Call], Any], Callable[[list[Call], bool], list[Any]]]:
    """An AsyncStore's calls and transactions, each run to its end."""

    def call(what: Call) -> Any:
        name, args, kwargs = what
        return runner.run(getattr(store, name)(*args, **kwargs))

    async def in_one(calls: list[Call], undo: bool) -> list[Any]:
        results: list[Any] = []
        try:
            async with store.transaction() as tx:
                for name, args, kwargs in calls:
                    results.append(await getattr(tx, name)(*args, **kwargs))
                if undo:
                    raise _Undo
        except _Undo:
            pass
        return results

    return call, lambda calls, undo: runner.run(in_one(calls, undo))


class Side:
    """One store, with the ids it made (a job is named by its index in creation order)."""

    def __init__(
        self,
        driver: tuple[Callable[[Call], Any], Callable[[list[Call], bool], list[Any]]],
        recount: Callable[[], dict[str, Any]],
    ) -> None:
        self.call, self.transact = driver
        self.recount = recount
        self.ids: list[str | None] = []
        self.names: dict[str, str] = {}

    def made(self, value: Any) -> None:
        """Note a generation this side created (None: the creation failed)."""
        self.ids.append(value.id if value is not None else None)
        if value is not None:
            self.names.setdefault(value.id, f"<job {len(self.ids) - 1}>")

    def job(self, index: int) -> str:
        found = self.ids[index] if index < len(self.ids) else None
        return found or UNKNOWN

    def plain(self, value: Any) -> Any:
        """``value`` comparable across backends: this side's ids named by creation order, prompts' ids
        dropped (a PostgreSQL sequence skips the numbers its ON CONFLICT used), floats by their bits (so
        -0.0 is not 0.0), cursors as whether there is one."""
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: self.plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
            if type(value).__name__ == "Prompt":
                fields.pop("id")
            if type(value).__name__ == "Page":
                fields["next_cursor"] = fields["next_cursor"] is not None
            return type(value).__name__, fields
        if isinstance(value, datetime):
            assert value.tzinfo is UTC, value
            return value.isoformat()
        if isinstance(value, dict):
            return [(self.plain(k), self.plain(v)) for k, v in value.items()]
        if isinstance(value, list | tuple):
            return [self.plain(v) for v in value]
        if isinstance(value, str):
            return UUID.sub(lambda m: self.names.get(m.group(0), "<unknown id>"), value)
        if isinstance(value, float):
            return ("float", value.hex())
        if isinstance(value, bool | int):
            return (type(value).__name__, value)
        return value


def _sqlite_recount(url: str) -> Callable[[], dict[str, Any]]:
    path = url.removeprefix("sqlite:///")

    def recount() -> dict[str, Any]:
        with sqlite3.connect(path) as conn:
            return _recount(conn.execute)

    return recount


def _postgres_recount(url: str) -> Callable[[], dict[str, Any]]:
    import psycopg

    def recount() -> dict[str, Any]:
        with psycopg.connect(url, autocommit=True) as conn:
            return _recount(conn.execute)

    return recount


def _recount(execute: Callable[..., Any]) -> dict[str, Any]:
    by_status = dict.fromkeys(Status, 0)
    for status, n in execute("SELECT status, count(*) FROM generations GROUP BY status").fetchall():
        by_status[Status(status)] = n
    done = "status = 'completed'"
    (file_bytes,) = execute("SELECT coalesce(sum(file_size_bytes), 0) FROM generations").fetchone()
    (seconds,) = execute(
        f"SELECT coalesce(sum(generation_time_seconds), 0) FROM generations WHERE {done}"
    ).fetchone()
    (audio,) = execute(f"SELECT coalesce(sum(duration_seconds), 0) FROM generations WHERE {done}").fetchone()
    (prompts, uses) = execute("SELECT count(*), coalesce(sum(used_count), 0) FROM prompts").fetchone()
    return {
        "by_status": by_status,
        "total_file_bytes": int(file_bytes),
        "total_generation_seconds": float(seconds),
        "completed_audio_seconds": float(audio),
        "unique_prompts": prompts,
        "prompt_uses": int(uses),
    }


class TwoBackends(RuleBasedStateMachine):
    """Each rule runs on Store and AsyncStore, on SQLite and on PostgreSQL, under one clock; their answers
    must be equal, and each store's statistics must equal a recount of its rows."""

    sides: list[Side]
    clock: FakeClock

    def __init__(self) -> None:
        super().__init__()
        for side in self.sides:
            side.call(("reset_database", (), {"confirm": RESET_CONFIRMATION}))
            side.ids.clear()
            side.names.clear()
        self.clock.now = START

    def same(
        self,
        name: str,
        args: Callable[[Side], tuple[Any, ...]],
        kwargs: dict[str, Any],
        more: Callable[[Side], dict[str, Any]] | None = None,
    ) -> list[Any]:
        answers, values = [], []
        for side in self.sides:
            try:
                extra = {} if more is None else more(side)
                value = side.call((name, args(side), {**kwargs, **extra}))
            except MusicstoreError as exc:
                value, answer = None, (type(exc).__name__, str(exc))
            else:
                answer = ("ok", value)
            if name == "create_generation":
                side.made(value)
            answers.append(side.plain(answer))
            values.append(value)
        assert all(answer == answers[0] for answer in answers[1:]), (name, answers)
        return values

    @rule(
        prompt=st.sampled_from(PROMPTS),
        model=st.sampled_from(MODELS),
        metadata=st.sampled_from(METADATA),
        duration=st.sampled_from([1, 0.1, 29.999999, 1e-6]),
    )
    def create(self, prompt: str, model: str, metadata: Any, duration: float) -> None:
        kwargs = {"model_name": model, "duration_seconds": duration, "metadata": metadata}
        self.same("create_generation", lambda side: (prompt,), kwargs)

    @rule(prompt=st.sampled_from(PROMPTS))
    def track(self, prompt: str) -> None:
        self.same("track_prompt_usage", lambda side: (prompt,), {})

    @rule(worker=st.sampled_from(WORKERS), count=st.sampled_from([1, 2]))
    def claim(self, worker: str, count: int) -> None:
        self.same("claim_batch", lambda side: (worker, count), {"lease_seconds": 30})

    @rule(index=st.integers(0, 12), seconds=st.sampled_from([None, 0, 0.1, 1e-7, 12.3456789]))
    def complete(self, index: int, seconds: float | None) -> None:
        kwargs = {"file_path": "a/b.wav", "file_size_bytes": 1 + index, "generation_time_seconds": seconds}
        kwargs["metadata"] = {"lufs": -16.0, "big": 1e308}
        self.same("complete_generation", lambda side: (side.job(index),), kwargs)

    @rule(index=st.integers(0, 12), values=st.sampled_from([{"peaks": "p"}, {"big": -0.0, "n": None}]))
    def merge(self, index: int, values: dict[str, Any]) -> None:
        self.same("merge_metadata", lambda side: (side.job(index), values), {})

    @rule(index=st.integers(0, 12), retry=st.booleans(), attempts=st.sampled_from([1, 3]))
    def fail(self, index: int, retry: bool, attempts: int) -> None:
        kwargs = {"retry": retry, "max_attempts": attempts}
        self.same("fail", lambda side: (side.job(index), "boom"), kwargs)

    @rule(index=st.integers(0, 12))
    def cancel(self, index: int) -> None:
        self.same("cancel", lambda side: (side.job(index),), {})

    @rule(index=st.integers(0, 12))
    def delete(self, index: int) -> None:
        self.same("delete_generation", lambda side: (side.job(index),), {})

    @rule(index=st.integers(0, 12), status=st.sampled_from(["pending", "failed", "cancelled", "completed"]))
    def update(self, index: int, status: str) -> None:
        self.same("update_generation_status", lambda side: (side.job(index), status), {})

    @rule(index=st.integers(0, 12))
    def replay(self, index: int) -> None:
        self.same("replay", lambda side: (side.job(index),), {})

    @rule(seconds=st.sampled_from([0, 1e-6, 0.5, 31.0]))
    def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(hours=st.sampled_from([-7, 5.5, 14]))
    def zone(self, hours: float) -> None:
        """The same instant, told in another zone: the store keeps and returns it in UTC."""
        self.clock.now = self.clock.now.astimezone(timezone(timedelta(hours=hours)))

    @rule()
    def requeue(self) -> None:
        self.same("requeue_expired", lambda side: (), {"max_attempts": 2})

    @rule(
        status=st.sampled_from([None, "pending", "completed"]),
        model=st.sampled_from([None, *MODELS]),
        limit=st.sampled_from([1, 2, 3]),
        insert=st.booleans(),
    )
    def pages(self, status: str | None, model: str | None, limit: int, insert: bool) -> None:
        """Walk every page; rows created between pages (at the same moment, newer) never show up twice, and
        every row that was there before the walk shows up exactly once."""
        before = {
            id(side): {
                g.id
                for g in side.call(
                    ("get_all_generations", (), {"limit": 10_000, "status": status, "model_name": model})
                )
            }
            for side in self.sides
        }
        cursors: dict[int, str | None] = {id(side): None for side in self.sides}
        seen: dict[int, list[str]] = {id(side): [] for side in self.sides}
        for number in range(10_000):
            kwargs = {"status": status, "model_name": model, "limit": limit}
            pages = self.same(
                "list_generations", lambda side: (), kwargs, lambda side: {"cursor": cursors[id(side)]}
            )
            for side, page in zip(self.sides, pages, strict=True):
                cursors[id(side)] = page.next_cursor
                seen[id(side)].extend(g.id for g in page.items)
            if insert and number < 3:
                self.create(PROMPTS[0], model or MODELS[0], None, 1)
            if cursors[id(self.sides[0])] is None:
                break
        for side in self.sides:
            walked = seen[id(side)]
            assert len(walked) == len(set(walked)), walked
            assert before[id(side)] <= set(walked)

    @rule(
        status=st.sampled_from([None, "pending", "processing", "completed", "failed", "cancelled"]),
        model=st.sampled_from([None, *MODELS]),
    )
    def count(self, status: str | None, model: str | None) -> None:
        self.same("count_generations", lambda side: (), {"status": status, "model_name": model})

    @rule(prompt=st.sampled_from(PROMPTS))
    def prompts(self, prompt: str) -> None:
        self.same("get_prompt_by_text", lambda side: (prompt,), {})
        self.same("get_most_used_prompts", lambda side: (), {"limit": 20})

    @rule()
    def reads(self) -> None:
        self.same("get_pending_generations", lambda side: (), {"limit": 50})
        self.same("get_all_generations", lambda side: (), {"limit": 50})

    @rule(
        prompt=st.sampled_from(PROMPTS),
        index=st.integers(0, 12),
        undo=st.booleans(),
        complete=st.booleans(),
    )
    def transaction(self, prompt: str, index: int, undo: bool, complete: bool) -> None:
        """Several operations in one transaction, committed or rolled back (or ended by an error): the same
        answers, and the totals follow what was committed."""
        answers = []
        for side in self.sides:
            calls: list[Call] = [
                ("create_generation", (prompt,), {"model_name": "m", "duration_seconds": 2.5}),
                ("track_prompt_usage", (prompt,), {}),
                ("claim_batch", ("gpu-0", 2), {"lease_seconds": 30}),
            ]
            if complete:
                done = {"file_path": "t.wav", "file_size_bytes": 7, "generation_time_seconds": 0.25}
                calls.append(("complete_generation", (side.job(index),), done))
            try:
                results = side.transact(calls, undo)
            except MusicstoreError as exc:
                answer: Any = (type(exc).__name__, str(exc))
                side.made(None)
            else:
                answer = ("ok", results)
                side.made(None if undo else results[0])
            answers.append(side.plain(answer))
        assert all(answer == answers[0] for answer in answers[1:]), answers

    @invariant()
    def totals_equal_a_recount(self) -> None:
        self.same("get_database_stats", lambda side: (), {})
        for side in self.sides:
            stats = side.call(("get_database_stats", (), {}))
            counted = side.recount()
            assert stats.by_status == counted["by_status"]
            assert stats.total_file_bytes == counted["total_file_bytes"]
            assert stats.unique_prompts == counted["unique_prompts"]
            assert stats.prompt_uses == counted["prompt_uses"]
            for name in ("total_generation_seconds", "completed_audio_seconds"):
                assert math.isclose(getattr(stats, name), counted[name], abs_tol=1e-5), name


def test_sqlite_and_postgres_answer_a_random_history_alike(
    musicstore_sqlite_url: str, musicstore_postgres_server: Any, tmp_path: Path
) -> None:
    """One random sequence of calls on Store and AsyncStore, each on SQLite and on PostgreSQL: equal answers
    (datetimes aware UTC to the microsecond, metadata floats to the bit), every row once across pages,
    totals equal to a recount."""
    server = musicstore_postgres_server
    names = [f"store_hunt_{i}_{id(tmp_path)}" for i in range(2)]
    server.admin(*(f"CREATE DATABASE {name} TEMPLATE {server.template}" for name in names))
    second = tmp_path / "second.db"
    second.write_bytes(Path(musicstore_sqlite_url.removeprefix("sqlite:///")).read_bytes())
    lite_urls, pg_urls = [musicstore_sqlite_url, f"sqlite:///{second}"], [server.url(name) for name in names]
    clock = FakeClock(START)
    runner = asyncio.Runner()
    stores = [Store(lite_urls[0], clock=clock), Store(pg_urls[0], clock=clock)]
    astores = [runner.run(_open(url, clock)) for url in (lite_urls[1], pg_urls[1])]
    try:
        TwoBackends.sides = [
            Side(_sync(stores[0]), _sqlite_recount(lite_urls[0])),
            Side(_sync(stores[1]), _postgres_recount(pg_urls[0])),
            Side(_async(astores[0], runner), _sqlite_recount(lite_urls[1])),
            Side(_async(astores[1], runner), _postgres_recount(pg_urls[1])),
        ]
        TwoBackends.clock = clock
        run_state_machine_as_test(
            TwoBackends, settings=settings(max_examples=15, stateful_step_count=40, deadline=None)
        )
    finally:
        for store in stores:
            store.close()
        for astore in astores:
            runner.run(astore.close())
        runner.close()
        server.admin(*(f"DROP DATABASE {name} WITH (FORCE)" for name in names))


async def _open(url: str, clock: FakeClock) -> AsyncStore:
    return await AsyncStore.open(url, clock=clock)


def test_queue_position_under_a_clock_in_the_first_days_of_the_year_1(db_url: str) -> None:
    """The throughput window reaching back before the year 1 counts from its start: an answer, not an
    OverflowError (which is no MusicstoreError), as every other operation gives under such a clock."""
    clock = FakeClock(datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC))
    with Store(db_url, clock=clock) as store:
        job = store.create_generation("early", model_name="m", duration_seconds=1)
        claimed = store.claim_next("gpu-0", lease_seconds=1)
        assert claimed is not None
        store.complete_generation(job.id, file_path="a.wav", file_size_bytes=1)
        waiting = store.create_generation("next", model_name="m", duration_seconds=1)
        position = store.queue_position(waiting.id, window_seconds=60)
        assert (position.ahead, position.completed_per_minute, position.eta_seconds) == (0, 1.0, 60)


def test_a_generation_made_at_the_last_microsecond_is_listed_whatever_the_database_collation(
    musicstore_sqlite_url: str, musicstore_postgres_server: Any, tmp_path: Path
) -> None:
    """The first page's cursor is (datetime.max, a text after every id). That text was "~", after every
    id in byte order only: in a PostgreSQL database made with a locale's collation (ICU's en-US here, as
    glibc's en_US.UTF-8) a symbol sorts before digits and letters, so a generation created at
    9999-12-31T23:59:59.999999Z was left out of every list (SQLite listed it)."""
    server = musicstore_postgres_server
    name = f"store_hunt_icu_{id(tmp_path)}"
    try:
        icu = "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.utf8' TEMPLATE template0"
        server.admin(f"CREATE DATABASE {name} {icu}")
    except Exception as exc:  # a server built without ICU
        pytest.skip(f"no ICU collation on this PostgreSQL server: {exc}")
    try:
        migrate(server.url(name))
        clock = FakeClock(datetime.max.replace(tzinfo=UTC))
        for url in (musicstore_sqlite_url, server.url(name)):
            with Store(url, clock=clock) as store:
                job = store.create_generation("at the end of time", model_name="m", duration_seconds=1)
                assert [g.id for g in store.list_generations().items] == [job.id], url
                assert [g.id for g in store.list_generations(status="pending").items] == [job.id], url
                assert [g.id for g in store.get_all_generations(model_name="m")] == [job.id], url
                page = store.run(table_page, Filters())  # the dashboard's generations table
                assert [g.id for g in page.items] == [job.id], url
    finally:
        server.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_floats_read_back_exact_whatever_the_servers_extra_float_digits(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL sends a double in text with as many digits as the session's ``extra_float_digits`` asks:
    with 0 (a server's, a database's or a role's setting; ``PGOPTIONS`` here) only 15 significant digits, so
    a duration of 0.1 + 0.2 read back as 0.3 and 1/3 s of generation time as 0.333333333333333, unequal to
    what the writes returned and to SQLite's answers. The store's sessions set it (3: exact on every
    version)."""
    monkeypatch.setenv("PGOPTIONS", "-c extra_float_digits=0")
    duration, seconds = 0.1 + 0.2, 1 / 3
    with Store(postgres_url) as store:
        made = store.create_generation("p", model_name="m", duration_seconds=duration)
        assert store.get_generation(made.id) == made
        assert store.claim_next("gpu-0") is not None
        done = store.complete_generation(
            made.id, file_path="a.wav", file_size_bytes=1, generation_time_seconds=seconds
        )
        assert store.get_generation(made.id) == done
        assert (done.duration_seconds, done.generation_time_seconds) == (duration, seconds)

    async def main() -> None:
        async with AsyncStore.open(postgres_url) as astore:
            assert await astore.get_generation(made.id) == done

    asyncio.run(main())


@pytest.mark.parametrize("style", ["SQL, DMY", "German", "Postgres, MDY"])
def test_a_server_s_date_style_does_not_stop_the_store(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, style: str
) -> None:
    """psycopg reads a timestamptz sent as text only in the ISO DateStyle: on a server, database or role set
    to another (``PGOPTIONS`` here), opening a store raised psycopg's NotImplementedError ("can't parse
    timestamptz with DateStyle ..."), no MusicstoreError, and so did every read of a row. The store's
    sessions set DateStyle to ISO."""
    monkeypatch.setenv("PGOPTIONS", f"-c DateStyle={style.replace(' ', '')}")
    with Store(postgres_url) as store:
        made = store.create_generation("p", model_name="m", duration_seconds=1)
        assert store.get_generation(made.id) == made

    async def main() -> None:
        async with AsyncStore.open(postgres_url) as astore:
            assert await astore.get_generation(made.id) == made

    asyncio.run(main())


@pytest.mark.parametrize("encoding", ["LATIN1", "SQL_ASCII"])
def test_any_text_is_stored_whatever_the_client_encoding_the_environment_sets(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, encoding: str
) -> None:
    """psycopg encodes and decodes text in the session's client_encoding: with LATIN1 (``PGCLIENTENCODING``,
    or a database's or role's setting) a prompt with an emoji raised UnicodeEncodeError, no MusicstoreError;
    with SQL_ASCII text came back as bytes and the store refused the database as lacking every migration.
    The store's sessions use UTF8, as SQLite stores any text."""
    monkeypatch.setenv("PGCLIENTENCODING", encoding)
    prompt, metadata = "caf\u00e9 \U0001f3b5 \u4e2d", {"\u4e2d": "\U0001f600"}
    with Store(postgres_url) as store:
        made = store.create_generation(prompt, model_name="m", duration_seconds=1, metadata=metadata)
        assert store.get_generation(made.id) == made
        tracked = store.get_prompt_by_text(prompt)
        assert tracked is not None and tracked.used_count == 1

    async def main() -> None:
        async with AsyncStore.open(postgres_url) as astore:
            assert await astore.get_generation(made.id) == made

    asyncio.run(main())
