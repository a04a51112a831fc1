"""Prompts of any content up to the documented limit: stored, counted exactly, read back unchanged, unique.

On PostgreSQL a btree entry over the text itself fails above ~2.7 kB of incompressible text; prompts are
unique by the SHA-256 of their text instead (migration 0004), on both backends.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from musicstore import Store
from musicstore.models import prompt_digest
from musicstore.validate import MAX_PROMPT_CHARS
from tests.conftest import new_job

_rng = random.Random(10)
RANDOM_ASCII = "".join(_rng.choice([chr(c) for c in range(33, 127)]) for _ in range(MAX_PROMPT_CHARS))
CJK = "".join(chr(_rng.randrange(0x4E00, 0x9FFF)) for _ in range(MAX_PROMPT_CHARS))
EMOJI = "".join(chr(_rng.randrange(0x1F300, 0x1FAFF)) for _ in range(MAX_PROMPT_CHARS))


def _text(alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=1, max_size=MAX_PROMPT_CHARS)


PROMPTS = st.one_of(
    _text(st.characters(min_codepoint=33, max_codepoint=126)),  # random ASCII
    _text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)),  # CJK
    _text(st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)),  # emoji
    _text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00")),  # any valid text
    st.binary(min_size=1, max_size=MAX_PROMPT_CHARS // 2).map(bytes.hex),  # incompressible, any length
).filter(lambda text: text.strip() != "")
_SLOW_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]


@given(text=PROMPTS)
@example(text=RANDOM_ASCII)
@example(text=CJK[:1000])
@example(text=CJK)
@example(text=EMOJI)
@example(text=RANDOM_ASCII[:2700])
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
def test_any_valid_prompt_is_stored_counted_and_read_back(store: Any, text: str) -> None:
    before = store.get_prompt_by_text(text)
    uses = 0 if before is None else before.used_count
    unique = store.get_database_stats().unique_prompts
    job = new_job(store, text)
    assert store.get_generation(job.id).prompt == text
    tracked = store.track_prompt_usage(text)
    assert tracked.text == text and tracked.used_count == uses + 2
    prompt = store.get_prompt_by_text(text)
    assert prompt == tracked
    assert store.get_database_stats().unique_prompts == unique + (before is None)
    assert text in {p.text for p in store.get_most_used_prompts(10_000)}


def test_prompts_that_differ_anywhere_are_distinct(store: Any) -> None:
    near = [RANDOM_ASCII, RANDOM_ASCII[:-1] + "!", "!" + RANDOM_ASCII[1:], RANDOM_ASCII[:-1]]
    for text in near:
        new_job(store, text)
    for text in near:
        prompt = store.get_prompt_by_text(text)
        assert prompt is not None and prompt.text == text and prompt.used_count == 1
    assert store.get_prompt_by_text(RANDOM_ASCII[:-2]) is None


def test_concurrent_creates_of_one_long_prompt_give_one_row_with_the_exact_count(db_url: str) -> None:
    threads, each = 6, 8
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def create() -> None:
        try:
            with Store(db_url, busy_timeout=30) as store:
                barrier.wait()
                for _ in range(each):
                    new_job(store, EMOJI)
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=create) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    with Store(db_url) as store:
        prompt = store.get_prompt_by_text(EMOJI)
        assert prompt is not None and prompt.used_count == threads * each
        stats = store.get_database_stats()
        assert (stats.unique_prompts, stats.prompt_uses, stats.total) == (1, threads * each, threads * each)


def test_postgres_ties_each_digest_to_its_text(postgres_url: str) -> None:
    """CHECKs: a row written by hand cannot carry a digest of another text (SQLite: see test_schema)."""
    import psycopg

    with Store(postgres_url) as store:
        job = new_job(store, "p")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO prompts (text, used_count, first_used_at, last_used_at, digest)"
                " VALUES ('q', 1, now(), now(), %s)",
                (prompt_digest("not q"),),
            )
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE generations SET prompt = 'q' WHERE id = %s", (job.id,))
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("DELETE FROM prompts")


def test_sqlite_refuses_a_generation_whose_prompt_is_not_its_digests_text(sqlite_url: str) -> None:
    import sqlite3

    with Store(sqlite_url) as store:
        job = new_job(store, "p")
        new_job(store, "q")
    conn = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE generations SET prompt = 'q' WHERE id = ?", (job.id,))
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE generations SET prompt_digest = ? WHERE id = ?", (prompt_digest("q"), job.id))
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("DELETE FROM prompts")
    conn.close()
