"""Claims of docs/usage.md, queue.md, async.md, operations.md and testing.md that the code did not keep: each
test quotes the claim it holds the code to."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import musicstore
import musicstore.compat
from musicstore import InvalidInput, Store
from musicstore.aio import AsyncStore
from musicstore.testing import FakeClock
from musicstore.urls import URL_ENV


@pytest.mark.parametrize("value", ["", "   "])
def test_a_set_but_empty_database_variable_is_refused_never_read_as_the_default(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # usage.md: "an empty URL ("", an unset variable's value) is InvalidInput, never read as the default":
    # MUSICSTORE_DATABASE_URL=$PROD_URL with $PROD_URL unset migrated and opened data/generations.db
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(URL_ENV, value)
    openings = (musicstore.migrate, musicstore.init_db, Store, AsyncStore, musicstore.compat.default_store)
    for opening in openings:
        with pytest.raises(InvalidInput, match=URL_ENV):
            opening()
    assert not (tmp_path / "data").exists()


def test_reset_database_deletes_the_rows_but_keeps_the_owner_limits(db_url: str) -> None:
    # usage.md said "deletes every row"; the owner keys' limits are configuration and stay (as the operation's
    # own docstring says), so a test that resets between examples must clear a limit itself
    request: dict[str, Any] = {
        "model_name": "m",
        "duration_seconds": 1,
        "owner_key": "k",
        "idempotency_key": "i",
    }
    with Store(db_url) as store:
        job = store.create_generation("p", **request)
        store.set_owner_limit("k", 0)
        store.set_owner_limit("other", 2)
        store.reset_database(confirm=musicstore.RESET_CONFIRMATION)
        stats = store.get_database_stats()
        assert stats.total == 0 and stats.unique_prompts == 0 and store.get_most_used_prompts(5) == []
        assert store.queue_depth().levels == [] and store.queue_depth().running == {}
        assert store.get_owner_limits() == {"k": 0, "other": 2}
        again = store.create_generation("p", **request)
        assert again.id != job.id and store.claim_next("w") is None  # "k" is still paused
        store.set_owner_limit("k", None)
        assert store.claim_next("w") is not None


@pytest.mark.parametrize(("low", "high"), [(5_000, 6_000), (12_000, 20_000), (20_000, 20_000)])
def test_prompts_draw_long_minimums_up_to_the_stores_limit(low: int, high: int, tmp_path: Path) -> None:
    # testing.md: "prompts draws from min_size (1) to max_size characters, at most the store's 20,000";
    # from min_size 5,000 on, hypothesis failed its health check at the first draw, and over 8,192 it raised
    # InvalidArgument: "min_size is larger than Hypothesis supports"
    from hypothesis import HealthCheck, given, settings

    from musicstore.testing import strategies as ms
    from musicstore.urls import sqlite_url

    drawn: list[str] = []

    @settings(
        max_examples=10,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(ms.prompts(min_size=low, max_size=high))
    def draw(prompt: str) -> None:
        assert low <= len(prompt) <= high and prompt.strip()
        drawn.append(prompt)

    draw()
    with Store(sqlite_url(tmp_path / "long.db"), migrate=True) as store:
        for prompt in drawn[:3]:
            job = store.create_generation(prompt, model_name="m", duration_seconds=1)
            assert store.get_generation(job.id) == job


def test_a_report_with_a_shorter_lease_keeps_the_claims_longer_one(db_url: str) -> None:
    # queue.md: a written report with lease_seconds= extends the lease "to at least that long from now" and
    # keeps one that already runs longer (the page read as if heartbeat kept it too: heartbeat sets it)
    clock = FakeClock()
    with Store(db_url, clock=clock) as store:
        job = store.create_generation("p", model_name="m", duration_seconds=1)
        store.claim_next("gpu-0", lease_seconds=3600)
        assert store.report_progress(job.id, "gpu-0", 0.5, "sampling", lease_seconds=10)
        assert store.get_generation(job.id).lease_expires_at == clock() + timedelta(seconds=3600)  # type: ignore[union-attr]
        clock.advance(3000)
        assert store.report_progress(job.id, "gpu-0", 0.6, "decoding", lease_seconds=1200)
        assert store.get_generation(job.id).lease_expires_at == clock() + timedelta(seconds=1200)  # type: ignore[union-attr]


@pytest.mark.parametrize("status", ["pending", "completed", "cancelled"])
def test_putting_back_a_generation_that_is_not_processing_says_so(db_url: str, status: str) -> None:
    # usage.md: update_generation_status(id, "pending") puts a processing one back; for any other it raised
    # InvalidTransition saying the generation "cannot be failed from that status"
    with Store(db_url) as store:
        job = store.create_generation("p", model_name="m", duration_seconds=1)
        if status != "pending":
            store.claim_next("gpu-0")
            if status == "completed":
                store.complete_generation(job.id, file_path="a.wav", file_size_bytes=1)
            else:
                store.cancel(job.id)
        with pytest.raises(musicstore.InvalidTransition) as raised:
            store.update_generation_status(job.id, "pending")
        assert raised.value.current == status and type(raised.value) is musicstore.InvalidTransition
        assert "failed" not in str(raised.value) and "processing" in str(raised.value)
        assert store.get_generation(job.id).status == status  # type: ignore[union-attr]
