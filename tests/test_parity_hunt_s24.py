"""Differential tests: one random history of public operations on Store and AsyncStore, SQLite and PostgreSQL,
must give the same answers (values, dataclass fields, error types and messages) and leave the same state,
compared after every step, strictly (``-0.0`` is not ``0.0``, ``True`` is not ``1``, ``1.0`` is not ``1``).

Extends ``tests/test_parity_regressions.py``'s ``Parity`` machine (its rules run here too) with metadata of
odd shapes, reads of every kind, progress, deletes, compatibility writes, transactions, owner keys that a
collation orders otherwise than bytes, and a comparison of the whole visible state after each step.
``MUSICSTORE_PARITY_EXAMPLES`` and ``MUSICSTORE_PARITY_STEPS`` make a longer hunt."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import math
import os
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from musicstore import RESET_CONFIRMATION, AsyncStore, MusicstoreError, RetryPolicy, Store
from musicstore.migrate import migrate
from musicstore.ops.progress import Coalescer
from musicstore.testing import FakeClock
from tests.test_parity_regressions import START, UUID, WORKERS, Parity, Side, _async, _open, _sync

EXAMPLES = int(os.environ.get("MUSICSTORE_PARITY_EXAMPLES", "10"))
STEPS = int(os.environ.get("MUSICSTORE_PARITY_STEPS", "30"))

ODD_TEXT = st.sampled_from(
    ["", " ", "é", "日本語", "🎵", "a\u0301", "\u202e", "x" * 50, "'; --", "\\", '"', "\t\n"]
)
ODD_NUMBERS = st.sampled_from(
    [0, -0.0, 0.0, 1, 1.0, -1, 2**53 + 1, 2**63 - 1, -(2**63), 1e308, -1e308, 5e-324, 1.5, 0.1, True, False]
)
JSON = st.recursive(
    st.none() | ODD_NUMBERS | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ODD_TEXT, inner, max_size=3),
    max_leaves=8,
)
INDEX = st.integers(0, 8)
OWNER_KEYS = ["o1", "o10", "o2", "B", "a", "Ä", "a b", "a-b", "ab", "A", "ä", "z"]
"""More keys than PostgreSQL's claim tries at once (8), whose byte order differs from a collation's."""
METADATA = st.none() | st.dictionaries(ODD_TEXT, JSON, max_size=4)


class Strict(Side):
    """A side whose answers keep their types: a float is not an int, ``-0.0`` is not ``0.0``, a bool is not
    an int, a datetime shows its offset; ``transact`` runs steps in one transaction."""

    def __init__(
        self,
        call: Callable[[str, tuple[Any, ...], dict[str, Any]], Any],
        transact: Callable[[Side, list[Step], bool], list[Any]],
    ) -> None:
        super().__init__(call)
        self.transact = transact

    def plain(self, value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: self.plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
            if type(value).__name__ == "Prompt":
                fields.pop("id")
            if type(value).__name__ == "Page":
                fields["next_cursor"] = fields["next_cursor"] != ("NoneType", "None")
            return type(value).__name__, fields
        if isinstance(value, dict):
            return "dict", [(self.plain(k), self.plain(v)) for k, v in value.items()]
        if isinstance(value, list | tuple):
            return type(value).__name__, [self.plain(v) for v in value]
        if isinstance(value, enum.Enum):
            return type(value).__name__, value.value
        if isinstance(value, str):
            return "str", UUID.sub(lambda m: self.names.get(m.group(0), "<unknown id>"), value)
        if isinstance(value, float) and math.isnan(value):
            return "float", "NaN"
        if isinstance(value, datetime):
            return "datetime", value.isoformat()
        return type(value).__name__, repr(value)


class Rollback(Exception):
    """Raised in a transaction's block to roll it back."""


Step = tuple[str, Callable[[Side], tuple[Any, ...]], dict[str, Any]]
"""An operation's name, its positional arguments on a side, its keyword arguments."""


def failure(exc: MusicstoreError) -> tuple[Any, ...]:
    """An error as compared: its type, message and attributes (``current``, ``existing_id``...)."""
    return type(exc).__name__, str(exc), {k: v for k, v in vars(exc).items() if not k.startswith("_")}


def _sync_transact(store: Store) -> Callable[[Side, list[Step], bool], list[Any]]:
    """Run steps in one transaction of ``store``, each step's error caught inside it (as a caller that goes
    on after one may); rolled back at the end when asked."""

    def transact(side: Side, steps: list[Step], rollback: bool) -> list[Any]:
        answers: list[Any] = []
        try:
            with store.transaction() as tx:
                for name, args, kwargs in steps:
                    try:
                        answers.append(("ok", getattr(tx, name)(*args(side), **kwargs)))
                    except MusicstoreError as exc:
                        answers.append(failure(exc))
                if rollback:
                    raise Rollback
        except Rollback:
            answers.append("rolled back")
        except MusicstoreError as exc:
            answers.append(("at commit", failure(exc)))
        return answers

    return transact


def _async_transact(
    store: AsyncStore, runner: asyncio.Runner
) -> Callable[[Side, list[Step], bool], list[Any]]:
    """``_sync_transact`` for an AsyncStore."""

    async def transact(side: Side, steps: list[Step], rollback: bool) -> list[Any]:
        answers: list[Any] = []
        try:
            async with store.transaction() as tx:
                for name, args, kwargs in steps:
                    try:
                        answers.append(("ok", await getattr(tx, name)(*args(side), **kwargs)))
                    except MusicstoreError as exc:
                        answers.append(failure(exc))
                if rollback:
                    raise Rollback
        except Rollback:
            answers.append("rolled back")
        except MusicstoreError as exc:
            answers.append(("at commit", failure(exc)))
        return answers

    return lambda side, steps, rollback: runner.run(transact(side, steps, rollback))


class Mono:
    """One monotonic clock for the four stores' progress coalescers."""

    now = 0.0

    def __call__(self) -> float:
        return self.now


def _collated_database(server: Any, name: str) -> None:
    """A migrated database whose collation is not byte order (ICU, en-US: "a" < "B" < "ä"); the template's
    copy where the server cannot make one (no ICU, before PostgreSQL 15)."""
    try:
        server.admin(
            f"CREATE DATABASE {name} TEMPLATE template0"
            " LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        )
    except Exception:
        server.admin(f"CREATE DATABASE {name} TEMPLATE {server.template}")
    else:
        migrate(server.url(name))


@pytest.fixture
def strict_four(
    musicstore_sqlite_url: str, musicstore_postgres_server: Any, tmp_path: Path
) -> Iterator[tuple[list[Side], FakeClock, Mono]]:
    """Store and AsyncStore on two fresh SQLite files and two fresh PostgreSQL databases (the async one
    collated by ICU), one clock, one monotonic clock for their progress coalescers."""
    server = musicstore_postgres_server
    names = [f"parity_s24_{i}_{id(tmp_path)}" for i in range(2)]
    server.admin(f"CREATE DATABASE {names[0]} TEMPLATE {server.template}")
    _collated_database(server, names[1])
    second = tmp_path / "second.db"
    second.write_bytes(Path(musicstore_sqlite_url.removeprefix("sqlite:///")).read_bytes())
    clock, mono = FakeClock(START), Mono()
    runner = asyncio.Runner()
    stores = [Store(musicstore_sqlite_url, clock=clock), Store(server.url(names[0]), clock=clock)]
    urls = [f"sqlite:///{second}", server.url(names[1])]
    astores = [runner.run(_open(url, clock)) for url in urls]
    for store in [*stores, *astores]:
        store.__dict__["_coalescer"] = Coalescer(clock=mono)
    try:
        sides: list[Side] = [Strict(_sync(s), _sync_transact(s)) for s in stores]
        sides += [Strict(_async(s, runner), _async_transact(s, runner)) for s in astores]
        yield sides, clock, mono
    finally:
        for store in stores:
            store.close()
        for astore in astores:
            runner.run(astore.close())
        runner.close()
        server.admin(*(f"DROP DATABASE {name} WITH (FORCE)" for name in names))


class Twin(RuleBasedStateMachine):
    """Four stores (``strict_four``) emptied for each run; ``same`` runs one call on each and compares."""

    sides: list[Side]  # Strict ones (``strict_four``)
    clock: FakeClock
    mono: Mono

    def __init__(self) -> None:
        RuleBasedStateMachine.__init__(self)  # not Parity's: the stores are emptied here
        self.created = 0
        self.mono.now = 0.0
        self.clock.now = START
        for side in self.sides:
            side.call("reset_database", (), {"confirm": RESET_CONFIRMATION})
            for owner in side.call("get_owner_limits", (), {}):
                side.call("set_owner_limit", (owner, None), {})
            side.ids.clear()
            side.claimed.clear()
            side.names.clear()

    def same(self, name: str, args: Any, kwargs: dict[str, Any]) -> None:
        answers = []
        for side in self.sides:
            try:
                value = side.call(name, args(side), kwargs)
            except MusicstoreError as exc:
                value, said = None, failure(exc)
            else:
                said = ("ok", value)
            if name == "create_generation":
                side.ids.append(value.id if value is not None else None)
                if value is not None:
                    side.names.setdefault(value.id, f"<job {len(side.ids) - 1}>")
            elif name in ("claim_next", "claim_batch") and value:
                side.claimed.extend(g.id for g in (value if isinstance(value, list) else [value]))
            answers.append(side.plain(said))
        assert all(said == answers[0] for said in answers[1:]), (name, answers)

    @invariant()
    def same_state(self) -> None:
        self.same("list_generations", lambda side: (), {"limit": 200})
        self.same("get_database_stats", lambda side: (), {})
        self.same("queue_depth", lambda side: (), {})
        self.same("get_owner_limits", lambda side: (), {})
        self.same("get_most_used_prompts", lambda side: (), {"limit": 100})
        self.same("get_pending_generations", lambda side: (), {"limit": 100})


class Wider(Twin, Parity):
    """``Parity``'s rules and more; every answer and the whole visible state compared strictly."""

    @initialize(metadata=st.lists(METADATA, min_size=2, max_size=4))
    def seed(self, metadata: list[Any]) -> None:
        for index, data in enumerate(metadata):
            kwargs = {
                "model_name": "m",
                "duration_seconds": 2.0,
                "metadata": data,
                "owner_key": OWNER_KEYS[index],
            }
            self.same("create_generation", lambda side, i=index: (f"seed {i % 2}",), kwargs)
        self.same("claim_batch", lambda side: ("gpu-0", 2), {"lease_seconds": 30})

    @rule(
        prompt=st.sampled_from(["lofi", "日本語 🎵", "a" * 300, " padded ", "\u202eevil"]),
        owner=st.sampled_from([None, "alice", "ünï", "x" * 200]),
        priority=st.sampled_from([0, 32767, -32768, 5]),
        key=st.sampled_from([None, "k1", "k3"]),
        metadata=METADATA,
        duration=st.sampled_from([2.0, 0.1, 1e-9, 3600.5]),
        version=st.sampled_from([None, "v1", "V2", "é", "e-f", "ef"]),
        rate=st.sampled_from([32000, 44100]),
        channels=st.sampled_from([1, 2, 8]),
        bad=st.sampled_from(
            [{}] * 6
            + [{"owner_key": "y" * 201}, {"owner_key": ""}, {"priority": 32768}, {"idempotency_key": ""}]
            + [{"duration_seconds": -1.0}, {"duration_seconds": math.inf}, {"model_version": ""}]
            + [{"sample_rate": 0}, {"sample_rate": 8000.0}, {"channels": 9}, {"model_name": " "}]
        ),
    )
    def create_odd(
        self,
        *,
        prompt: str,
        owner: str | None,
        priority: int,
        key: str | None,
        metadata: Any,
        duration: float,
        version: str | None,
        rate: Any,
        channels: int,
        bad: dict[str, Any],
    ) -> None:
        kwargs: dict[str, Any] = {"model_name": version or "m", "duration_seconds": duration}
        kwargs.update(owner_key=owner, priority=priority, idempotency_key=key, metadata=metadata)
        kwargs.update(model_version=version, sample_rate=rate, channels=channels)
        kwargs.update(bad)
        self.same("create_generation", lambda side: (prompt,), kwargs)

    @rule(index=INDEX)
    def get(self, index: int) -> None:
        self.same("get_generation", lambda side: (side.job(index),), {})

    @rule(index=INDEX)
    def delete(self, index: int) -> None:
        self.same("delete_generation", lambda side: (side.job(index),), {})

    @rule(
        back=st.integers(0, 2),
        worker=st.sampled_from(WORKERS),
        fraction=st.sampled_from([0.0, 0.5, 1.0, -0.0, 1.5, math.nan]),
        stage=st.sampled_from([None, "sampling", "décodage", "", "s" * 65]),
        lease=st.sampled_from([None, 1.0, 600.0]),
        later=st.sampled_from([0.0, 0.5, 2.0]),
    )
    def progress(
        self, *, back: int, worker: str, fraction: float, stage: str | None, lease: float | None, later: float
    ) -> None:
        self.mono.now += later
        args = lambda side: (side.last_claimed(back), worker, fraction, stage)  # noqa: E731
        self.same("report_progress", args, {"lease_seconds": lease})

    @rule(
        back=st.integers(0, 2), worker=st.sampled_from(WORKERS), lease=st.sampled_from([1.0, 0.0, 1e-7, 1e12])
    )
    def heartbeat_lease(self, back: int, worker: str, lease: float) -> None:
        self.same("heartbeat", lambda side: (side.last_claimed(back), worker), {"lease_seconds": lease})

    @rule(
        back=st.integers(0, 2),
        metadata=METADATA,
        seconds=st.sampled_from([None, 0.0, 1.5, 1e-7, -1.0]),
        path=st.sampled_from(["a/b.wav", "../x.wav", "日本/🎵.flac"]),
    )
    def complete_odd(self, back: int, metadata: Any, seconds: float | None, path: str) -> None:
        kwargs = {"file_path": path, "file_size_bytes": 7, "metadata": metadata}
        kwargs["generation_time_seconds"] = seconds
        self.same("complete_generation", lambda side: (side.last_claimed(back),), kwargs)

    @rule(index=INDEX, metadata=METADATA)
    def merge(self, index: int, metadata: Any) -> None:
        self.same("merge_metadata", lambda side: (side.job(index), metadata or {}), {})

    @rule(
        index=INDEX,
        status=st.sampled_from(["pending", "failed", "cancelled", "completed", "processing"]),
        message=st.sampled_from([None, "", "oops ü"]),
    )
    def update_status(self, index: int, status: str, message: str | None) -> None:
        self.same(
            "update_generation_status", lambda side: (side.job(index), status), {"error_message": message}
        )

    @rule(prompt=st.sampled_from(["lofi", "日本語 🎵", "new", "", "  "]))
    def track(self, prompt: str) -> None:
        self.same("track_prompt_usage", lambda side: (prompt,), {})

    @rule(
        seconds=st.sampled_from([1e-6, 0.0000004, 1.0, 30.0]),
        attempts=st.sampled_from([1, 2]),
        base=st.sampled_from([None, 5.0, 1.7e-6, 2.5e-6]),
    )
    def requeue_backoff(self, seconds: float, attempts: int, base: float | None) -> None:
        self.clock.advance(seconds)
        backoff = None if base is None else RetryPolicy(base_seconds=base, jitter=0)
        self.same("requeue_expired", lambda side: (), {"max_attempts": attempts, "backoff": backoff})

    @rule(
        back=st.integers(0, 2),
        base=st.sampled_from([1.7e-6, 2.5e-6, 0.1234567]),
        attempts=st.sampled_from([3, 3, 1]),
    )
    def fail_backoff(self, back: int, base: float, attempts: int) -> None:
        """A retry whose backoff has a fraction of a microsecond (SQLite truncated it, PostgreSQL rounded)."""
        kwargs = {"max_attempts": attempts, "backoff": RetryPolicy(base_seconds=base, jitter=0)}
        self.same("fail", lambda side: (side.last_claimed(back), "boom"), kwargs)

    @rule(seconds=st.sampled_from([1e-6, 0.0000004, 0.001]))
    def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(
        status=st.sampled_from([None, "completed", "cancelled", "pending"]),
        model=st.sampled_from([None, "m", "V2", "é", ""]),
        limit=st.sampled_from([1, 3]),
        offset=st.sampled_from([0, 1, 5, -1]),
    )
    def listing(self, status: str | None, model: str | None, limit: int, offset: int) -> None:
        kwargs = {"status": status, "model_name": model, "limit": limit, "offset": offset}
        self.same("get_all_generations", lambda side: (), kwargs)
        self.same("count_generations", lambda side: (), {"status": status, "model_name": model})

    @rule(limit=st.sampled_from([1, 2, 0]), pages=st.integers(1, 3))
    def dead_letters(self, limit: int, pages: int) -> None:
        cursors: dict[int, str | None] = {id(side): None for side in self.sides}
        for _ in range(pages):
            answers = []
            for side in self.sides:
                try:
                    page = side.call("list_dead_letters", (), {"limit": limit, "cursor": cursors[id(side)]})
                except MusicstoreError as exc:
                    answers.append(side.plain(failure(exc)))
                    continue
                cursors[id(side)] = page.next_cursor
                answers.append(side.plain(page))
            assert all(answer == answers[0] for answer in answers[1:]), answers
            if all(c is None for c in cursors.values()):
                break

    @rule(limit=st.sampled_from([1, 5, 0]))
    def pending(self, limit: int) -> None:
        self.same("get_pending_generations", lambda side: (), {"limit": limit})
        self.same("get_most_used_prompts", lambda side: (), {"limit": limit})

    @rule(index=INDEX, window=st.sampled_from([1.0, 600.0, 1e-6]))
    def position_window(self, index: int, window: float) -> None:
        self.same("queue_position", lambda side: (side.job(index),), {"window_seconds": window})

    @rule(index=INDEX)
    def wait_for_now(self, index: int) -> None:
        self.same("wait_for", lambda side: (side.job(index),), {"timeout": 0})

    @rule(owner=st.sampled_from(["ünï", "alice"]), limit=st.sampled_from([2, 32767, 2**31, -1]))
    def owner_limit_odd(self, owner: str, limit: int) -> None:
        self.same("set_owner_limit", lambda side: (owner, limit), {})

    @rule(
        steps=st.lists(
            st.sampled_from(
                ["create", "create_key", "claim", "complete", "fail", "cancel", "delete", "limit"]
            ),
            min_size=1,
            max_size=4,
        ),
        index=INDEX,
        rollback=st.booleans(),
    )
    def transaction(self, steps: list[str], index: int, rollback: bool) -> None:
        menu: dict[str, tuple[str, Any, dict[str, Any]]] = {
            "create": (
                "create_generation",
                lambda side: ("in tx",),
                {"model_name": "m", "duration_seconds": 1.0},
            ),
            "create_key": (
                "create_generation",
                lambda side: ("in tx",),
                {"model_name": "m", "duration_seconds": 1.0, "idempotency_key": "k1", "owner_key": "alice"},
            ),
            "claim": ("claim_next", lambda side: ("gpu-0",), {"owner_limit": 1}),
            "complete": (
                "complete_generation",
                lambda side: (side.last_claimed(0),),
                {"file_path": "t.wav", "file_size_bytes": 1},
            ),
            "fail": ("fail", lambda side: (side.last_claimed(0), "tx boom"), {"max_attempts": 2}),
            "cancel": ("cancel", lambda side: (side.job(index),), {}),
            "delete": ("delete_generation", lambda side: (side.job(index),), {}),
            "limit": ("set_owner_limit", lambda side: ("alice", 0), {}),
        }
        chosen = [menu[step] for step in steps]
        answers = [side.plain(cast(Strict, side).transact(side, chosen, rollback)) for side in self.sides]
        assert all(said == answers[0] for said in answers[1:]), ("transaction", steps, answers)
        self._refresh_ids()

    def _refresh_ids(self) -> None:
        """Re-learn each side's jobs from the rows (a transaction's creates and claims are not seen by
        ``same``): every row by creation order, the processing ones by start order."""
        for side in self.sides:
            page = side.call("list_generations", (), {"limit": 500})
            rows = sorted(page.items, key=lambda g: (g.created_at, g.id))
            known = set(side.ids)
            for row in rows:
                if row.id not in known:
                    side.ids.append(row.id)
                    side.names.setdefault(row.id, f"<job {len(side.ids) - 1}>")
            running = sorted(
                (g for g in rows if g.status.value == "processing" and g.id not in side.claimed),
                key=lambda g: (g.started_at, g.id),
            )
            side.claimed.extend(g.id for g in running)

    @rule(owner=st.integers(0, 11), limit=st.sampled_from([None, 0, 1]), later=st.sampled_from([None, 5.0]))
    def many_owners(self, owner: int, limit: int | None, later: float | None) -> None:
        kwargs: dict[str, Any] = {"model_name": "m", "duration_seconds": 1.0, "owner_key": OWNER_KEYS[owner]}
        if later is not None:
            kwargs["run_after"] = self.clock.now + timedelta(seconds=later)
        self.same("create_generation", lambda side: ("lane",), kwargs)
        if owner % 3 == 0:
            self.same("set_owner_limit", lambda side: (OWNER_KEYS[owner], limit), {})

    @rule(seconds=st.sampled_from([1e-6, 0.5, 40.0]))
    def clock_back(self, seconds: float) -> None:
        """A host whose clock is behind the others'."""
        self.clock.now -= timedelta(seconds=seconds)


def test_four_stores_agree_on_a_wider_history(strict_four: tuple[list[Side], FakeClock, Mono]) -> None:
    """Sync and async, SQLite and PostgreSQL, one random history of every public operation: strictly equal
    answers and state at every step."""
    Wider.sides, Wider.clock, Wider.mono = strict_four
    run_state_machine_as_test(
        Wider, settings=settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None)
    )


class Lanes(Twin):
    """The claim's order alone, densely: a few owner keys and the lane without one, two priorities, heads
    that wait for their ``run_after`` behind ready jobs, limits, retries, and a clock that moves by steps."""

    @rule(
        owner=st.sampled_from([None, "a", "B", "ä", "a-b", "ab"]),
        priority=st.sampled_from([0, 0, 1]),
        later=st.sampled_from([None, None, -1.0, 0.0, 2.0, 5.0]),
    )
    def enqueue(self, owner: str | None, priority: int, later: float | None) -> None:
        kwargs: dict[str, Any] = {"model_name": "m", "duration_seconds": 1.0, "owner_key": owner}
        kwargs["priority"] = priority
        if later is not None:
            kwargs["run_after"] = self.clock.now + timedelta(seconds=later)
        self.same("create_generation", lambda side: ("lane",), kwargs)

    @rule(limit=st.sampled_from([None, 1, 2]), count=st.sampled_from([1, 1, 2]))
    def take(self, limit: int | None, count: int) -> None:
        if count == 1:
            self.same("claim_next", lambda side: ("gpu-0",), {"owner_limit": limit})
        else:
            self.same("claim_batch", lambda side: ("gpu-1", count), {"owner_limit": limit})

    @rule(back=st.integers(0, 3), how=st.sampled_from(["complete", "retry", "cancel"]))
    def finish(self, back: int, how: str) -> None:
        if how == "complete":
            kwargs = {"file_path": "a.wav", "file_size_bytes": 1}
            self.same("complete_generation", lambda side: (side.last_claimed(back),), kwargs)
        elif how == "retry":
            self.same("fail", lambda side: (side.last_claimed(back), "x"), {"max_attempts": 5})
        else:
            self.same("cancel", lambda side: (side.last_claimed(back),), {})

    @rule(seconds=st.sampled_from([0.0, 1.0, 3.0]))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(owner=st.sampled_from(["a", "B", "ä"]), limit=st.sampled_from([None, 0, 1]))
    def limit(self, owner: str, limit: int | None) -> None:
        self.same("set_owner_limit", lambda side: (owner, limit), {})


def test_four_stores_claim_alike(strict_four: tuple[list[Side], FakeClock, Mono]) -> None:
    Lanes.sides, Lanes.clock, Lanes.mono = strict_four
    run_state_machine_as_test(
        Lanes, settings=settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None)
    )


BACKOFFS = [1.7e-6, 1.5e-6, 2.5e-6, 5e-7, 0.1234567, 2.0000007, 30.0]
"""Delays whose microseconds have a fraction: .7, a tie that rounds up to even, ties that round down."""


def test_a_backoff_s_run_after_is_rounded_alike_on_both_backends(db_url: str) -> None:
    """``fail`` and ``requeue_expired`` with a backoff set ``run_after`` to now + the delay rounded to the
    nearest microsecond, ties to even (``timedelta(seconds=...)``'s rounding, and PostgreSQL's): SQLite
    truncated the delay, so 1.7 µs gave a run_after 1 µs earlier than on PostgreSQL (and before the delay's
    lower bound, ``RetryPolicy.delay_range``)."""
    clock = FakeClock(START)
    with Store(db_url, clock=clock) as store:
        for base in BACKOFFS:
            policy = RetryPolicy(base_seconds=base, cap_seconds=600, jitter=0)
            failed = store.create_generation("backoff", model_name="m", duration_seconds=1.0)
            assert store.claim_next("gpu-0") is not None
            store.fail(failed.id, "boom", backoff=policy)
            row = store.get_generation(failed.id)
            assert row is not None and row.run_after == clock.now + timedelta(seconds=base), base
            store.delete_generation(failed.id)

            expired = store.create_generation("backoff", model_name="m", duration_seconds=1.0)
            claimed = store.claim_next("gpu-0", lease_seconds=1)
            assert claimed is not None and claimed.id == expired.id
            clock.advance(2)
            assert store.requeue_expired(backoff=policy).requeued == [expired.id]
            row = store.get_generation(expired.id)
            assert row is not None and row.run_after == clock.now + timedelta(seconds=base), base
            store.delete_generation(expired.id)
