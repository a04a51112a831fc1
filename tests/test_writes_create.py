"""``create_generation`` is a ``Fixed`` write (its prompt upsert and insert): ``Store`` runs a call without an
idempotency key without its generator (``runner.fixed_write``), and one with a key through the steps derived
from it (the key's lookup first). Either way, and in a transaction (``runner.drive``, as ``AsyncStore``
drives it), the same rows, answers and errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore import DatabaseError, Generation, IdempotencyConflict, MusicstoreError, Store, ops
from musicstore.models import prompt_digest
from musicstore.testing import FakeClock
from tests.twin_stores import twin_stores

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

request = st.fixed_dictionaries(
    {
        "prompt": st.sampled_from(["lofi", "ambient drones", "lofi ", "", 7]),
        "model_name": st.sampled_from(["musicgen-small", "m", ""]),
        "duration_seconds": st.sampled_from([8, 30.0, 0, float("nan")]),
    },
    optional={
        "metadata": st.sampled_from([None, {}, {"bpm": 90}, {"bpm": 91, "key": "C"}, {"x": float("inf")}]),
        "priority": st.sampled_from([0, 5, -3, 40_000]),
        "run_after": st.sampled_from([START + timedelta(hours=1), START - timedelta(days=1), START.date()]),
        "owner_key": st.sampled_from(["alice", "bob", ""]),
        "idempotency_key": st.sampled_from(["k1", "k2", "", None]),
        "model_version": st.sampled_from(["1.0", None]),
    },
)


def outcome(call: Callable[[], Generation], ids: dict[str, int]) -> tuple[str, object]:
    """The answer with its id replaced by the order it was first seen in (ids are random)."""
    try:
        made = call()
    except MusicstoreError as exc:
        text = str(exc)
        for gid, n in ids.items():
            text = text.replace(gid, f"#{n}")
        return type(exc).__name__, text
    return "ok", replace(made, id=f"#{ids.setdefault(made.id, len(ids))}")


def rows(store: Store, ids: dict[str, int]) -> list[Generation]:
    return [replace(row, id=f"#{ids[row.id]}") for row in store.get_all_generations()]


@settings(max_examples=40, deadline=None)
@given(history=st.lists(request, max_size=8))
def test_create_answers_as_its_steps(
    _musicstore_sqlite_template: Path, history: list[dict[str, Any]]
) -> None:
    """The direct call (fixed queries, or the key's steps) and a transaction driving the generator agree."""
    with twin_stores(_musicstore_sqlite_template, START, lambda store: None) as (direct, stepped, _):
        direct_ids: dict[str, int] = {}
        stepped_ids: dict[str, int] = {}
        for asked in history:

            def on_its_own(asked: dict[str, Any] = asked) -> Generation:
                return direct.create_generation(**asked)

            def in_transaction(asked: dict[str, Any] = asked) -> Generation:
                with stepped.transaction() as tx:
                    return tx.create_generation(**asked)

            assert outcome(on_its_own, direct_ids) == outcome(in_transaction, stepped_ids), asked
            assert isinstance(direct.clock, FakeClock) and isinstance(stepped.clock, FakeClock)
            direct.clock.advance(1.0)
            stepped.clock.advance(1.0)
        assert rows(direct, direct_ids) == rows(stepped, stepped_ids)
        assert direct.get_most_used_prompts(10) == stepped.get_most_used_prompts(10)


def test_store_creates_without_the_generator_unless_a_key_is_given(
    sqlite_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(sqlite_url, clock=clock) as store:
        later = clock.now + timedelta(minutes=5)
        steps = ops.create_generation.steps

        def no_steps(*args: object, **kwargs: object) -> Any:
            raise AssertionError("the generator ran")

        monkeypatch.setattr(ops.create_generation, "steps", no_steps)
        made = store.create_generation("lofi", model_name="m", duration_seconds=8, run_after=later)
        assert made == store.get_generation(made.id)
        assert made.run_after == later and made.created_at == clock.now and made.metadata == {}
        with pytest.raises(AssertionError, match="the generator ran"):
            store.create_generation("lofi", model_name="m", duration_seconds=8, idempotency_key="k")
        monkeypatch.setattr(ops.create_generation, "steps", steps)
        keyed = store.create_generation("lofi", model_name="m", duration_seconds=8, idempotency_key="k")
        again = store.create_generation("lofi", model_name="m", duration_seconds=8, idempotency_key="k")
        assert again == keyed == store.get_generation(keyed.id)
        with pytest.raises(IdempotencyConflict):
            store.create_generation("jazz", model_name="m", duration_seconds=8, idempotency_key="k")
        assert store.get_prompt_by_text("lofi").used_count == 2  # type: ignore[union-attr]
        assert len(store.get_all_generations()) == 2


@pytest.mark.parametrize("stepped", [False, True])
def test_a_prompt_whose_digest_another_text_holds_inserts_nothing(sqlite_url: str, stepped: bool) -> None:
    """The upsert finds no row: the insert never runs, the error says why (either way)."""
    with Store(sqlite_url) as store:
        store.create_generation("other", model_name="m", duration_seconds=8)
    conn = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        conn.execute("UPDATE prompts SET digest = ? WHERE text = 'other'", (prompt_digest("lofi"),))
    except sqlite3.IntegrityError:
        pytest.skip("the schema refuses a prompt row whose digest is another text's")
    finally:
        conn.close()
    with Store(sqlite_url) as store:
        with pytest.raises(DatabaseError, match="another text"):
            if stepped:
                with store.transaction() as tx:
                    tx.create_generation("lofi", model_name="m", duration_seconds=8)
            else:
                store.create_generation("lofi", model_name="m", duration_seconds=8)
        assert len(store.get_all_generations()) == 1
