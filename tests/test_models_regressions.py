"""Regressions of the vocabulary: the dataclasses (musicstore.models), the input checks (musicstore.validate),
storage names (musicstore.storage_names) and ids (musicstore.ids)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from musicstore import RetryPolicy, Store, storage_names
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
