"""Bad input gets a typed error and writes nothing; odd but valid input is stored verbatim."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from musicstore import InvalidInput, Store
from musicstore.testing import strategies as ms
from musicstore.validate import MAX_PROMPT_CHARS
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
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
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
