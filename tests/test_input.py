"""Bad input gets a typed error and writes nothing; odd but valid input is stored verbatim."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from musicstore import InvalidInput, Store, validate
from musicstore.testing import strategies as ms
from musicstore.validate import MAX_METADATA_BYTES, MAX_PROMPT_CHARS
from tests.conftest import new_job

BAD_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("empty prompt", {"prompt": ""}, "empty"),
    ("whitespace prompt", {"prompt": " \t\n "}, "empty"),
    ("prompt too long", {"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, "maximum"),
    ("prompt with NUL", {"prompt": "a\x00b"}, "NUL"),
    ("prompt lone surrogate", {"prompt": "a\ud800b"}, "Unicode"),
    ("prompt not str", {"prompt": b"bytes"}, "str"),
    ("sample rate zero", {"sample_rate": 0}, "sample_rate"),
    ("sample rate negative", {"sample_rate": -44_100}, "sample_rate"),
    ("sample rate float", {"sample_rate": 44_100.0}, "integer"),
    ("sample rate bool", {"sample_rate": True}, "integer"),
    ("sample rate too high", {"sample_rate": 10_000_000}, "sample_rate"),
    ("channels zero", {"channels": 0}, "channels"),
    ("channels nine", {"channels": 9}, "channels"),
    ("duration NaN", {"duration_seconds": math.nan}, "finite"),
    ("duration inf", {"duration_seconds": math.inf}, "finite"),
    ("duration negative", {"duration_seconds": -1.0}, "finite"),
    ("duration zero", {"duration_seconds": 0}, "> 0"),
    ("duration string", {"duration_seconds": "30"}, "number"),
    ("metadata list", {"metadata": [1, 2]}, "dict"),
    ("metadata set value", {"metadata": {"a": {1, 2}}}, "JSON"),
    ("metadata NaN", {"metadata": {"x": math.nan}}, "JSON"),
    ("metadata int key", {"metadata": {1: "a"}}, "read back"),
    ("metadata tuple", {"metadata": {"a": (1, 2)}}, "read back"),
    ("model name empty", {"model_name": ""}, "model_name"),
    ("model name None", {"model_name": None}, "model_name"),
]


@pytest.mark.parametrize(("field", "bad", "message"), BAD_FIELDS, ids=[b[0] for b in BAD_FIELDS])
def test_bad_create_input_raises_and_writes_nothing(
    store: Store, field: str, bad: dict[str, Any], message: str
) -> None:
    fields: dict[str, Any] = {
        "prompt": "fine",
        "model_name": "m",
        "duration_seconds": 30.0,
        "sample_rate": 32_000,
        "channels": 2,
    }
    fields.update(bad)
    prompt = fields.pop("prompt")
    with pytest.raises(InvalidInput, match=message):
        store.create_generation(prompt, **fields)
    stats = store.get_database_stats()
    assert stats.total == 0 and stats.unique_prompts == 0


def test_unknown_status_string_is_invalid_input(store: Store) -> None:
    with pytest.raises(InvalidInput, match="valid statuses are pending, processing"):
        store.list_generations(status="done")
    with pytest.raises(InvalidInput):
        store.count_generations(status="PENDING")


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.claim_next(""),
        lambda s: s.claim_next("w", lease_seconds=0),
        lambda s: s.claim_next("w", lease_seconds=math.nan),
        lambda s: s.list_generations(limit=0),
        lambda s: s.list_generations(limit=10**9),
        lambda s: s.list_generations(offset=-1),
        lambda s: s.requeue_expired(max_attempts=0),
        lambda s: s.get_most_used_prompts(limit=-5),
    ],
)
def test_bad_worker_and_list_arguments(store: Store, call: Any) -> None:
    with pytest.raises(InvalidInput):
        call(store)


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.wav", "a/../../b.wav", "", "a\\b.wav"])
def test_complete_rejects_paths_outside_the_root(store: Store, path: str) -> None:
    job = new_job(store)
    store.claim_next("w")
    with pytest.raises(InvalidInput, match="file_path"):
        store.complete_generation(job.id, file_path=path, file_size_bytes=1)
    assert store.get_generation(job.id).is_processing  # type: ignore[union-attr]


VERBATIM = [
    "it's a \"quoted\" prompt; with 'both' quotes",
    "'); DROP TABLE generations; --",
    "Robert'); DELETE FROM prompts WHERE ('1'='1",
    "lo-fi 🎧🎹 beats ✨ with emoji 👩🏽‍🎤",
    "日本の夏祭り、太鼓と笛",
    "موسيقى هادئة للدراسة",
    "Ελληνική μουσική, σε ρυθμό 7/8",
    "  leading and trailing spaces  ",
    "line one\nline two\ttabbed\r\n",
    "%s %(name)s {} {0} :param ? $1",
    "x" * 10_000,
    "ü" * 10_000,
]


@pytest.mark.parametrize("prompt", VERBATIM, ids=range(len(VERBATIM)))
def test_odd_prompts_round_trip_verbatim(store: Store, prompt: str) -> None:
    job = new_job(store, prompt)
    stored = store.get_generation(job.id)
    assert stored is not None and stored.prompt == prompt
    tracked = store.get_prompt_by_text(prompt)
    assert tracked is not None and tracked.text == prompt and tracked.used_count == 1


metadata_objects = ms.metadata()
prompts = ms.prompts(max_size=300)

_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_SETTINGS
@given(metadata=metadata_objects)
def test_metadata_round_trips_exactly(store: Store, metadata: dict[str, Any]) -> None:
    job = new_job(store, metadata=metadata)
    stored = store.get_generation(job.id)
    assert stored is not None and stored.metadata == metadata


@_SETTINGS
@given(created=metadata_objects, merged=metadata_objects)
def test_completion_merges_metadata_shallowly(
    store: Store, created: dict[str, Any], merged: dict[str, Any]
) -> None:
    job = new_job(store, metadata=created)
    claimed = store.claim_next("w")
    assert claimed is not None and claimed.id == job.id
    done = store.complete_generation(job.id, file_path="f.wav", file_size_bytes=1, metadata=merged)
    assert done.metadata == {**created, **merged}
    assert store.get_generation(job.id) == done


@_SETTINGS
@given(prompt=prompts)
def test_prompt_text_round_trips_exactly(store: Store, prompt: str) -> None:
    job = new_job(store, prompt)
    assert store.get_generation(job.id).prompt == prompt  # type: ignore[union-attr]
    assert store.get_prompt_by_text(prompt).text == prompt  # type: ignore[union-attr]


def _metadata_of_bytes(size: int) -> dict[str, str]:
    """A metadata object whose stored JSON text is exactly ``size`` UTF-8 bytes, mostly 3-byte characters."""
    overhead = len('{"k":""}')
    wide = (size - overhead) // 3 - 10
    return {"k": "€" * wide + "a" * (size - overhead - 3 * wide)}


def test_the_metadata_limit_counts_utf8_bytes(store: Store) -> None:
    largest = _metadata_of_bytes(MAX_METADATA_BYTES)
    assert len(validate.metadata(largest).encode()) == MAX_METADATA_BYTES
    assert len(validate.metadata(largest)) < MAX_METADATA_BYTES / 2  # far fewer characters than bytes
    job = new_job(store, metadata=largest)
    assert store.get_generation(job.id).metadata == largest  # type: ignore[union-attr]
    with pytest.raises(InvalidInput, match=f"{MAX_METADATA_BYTES + 1} bytes as UTF-8 JSON"):
        new_job(store, metadata=_metadata_of_bytes(MAX_METADATA_BYTES + 1))
    assert store.get_database_stats().total == 1


ISSUE_CASES: list[tuple[str, Any, str]] = [
    ("deep metadata", lambda s, j: new_job(s, metadata=_deep(5_000)), "nested deeper than 64"),
    ("surrogate key", lambda s, j: new_job(s, metadata={"\ud800": 1}), "lone surrogate"),
    ("surrogate value", lambda s, j: new_job(s, metadata={"a": ["\udfff"]}), "lone surrogate"),
    ("surrogate model", lambda s, j: new_job(s, model_name="m\ud800"), "model_name"),
    ("surrogate worker", lambda s, j: s.claim_next("w\ud800"), "worker_id"),
    ("huge lease", lambda s, j: s.claim_next("w", lease_seconds=1e300), "lease_seconds"),
    ("list reason", lambda s, j: s.cancel(j.id, ["x", "y"]), "reason must be a str"),
    ("NUL reason", lambda s, j: s.cancel(j.id, "a\x00b"), "NUL"),
    ("NUL message", lambda s, j: s.update_generation_status(j.id, "failed", error_message="\x00"), "NUL"),
    ("huge offset", lambda s, j: s.list_generations(offset=2**64), "offset"),
    ("int cursor", lambda s, j: s.list_generations(cursor=7), "cursor"),
    ("int metadata value", lambda s, j: new_job(s, metadata={"n": 2**64}), "64 bits"),
]


def _deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(("case", "call", "message"), ISSUE_CASES, ids=[c[0] for c in ISSUE_CASES])
def test_the_reported_cases_are_invalid_input(store: Store, case: str, call: Any, message: str) -> None:
    job = new_job(store)
    before = store.get_generation(job.id), store.get_database_stats()
    with pytest.raises(InvalidInput, match=message):
        call(store, job)
    assert (store.get_generation(job.id), store.get_database_stats()) == before
