"""Every public parameter of every store operation: a wrong type or an out-of-range value raises a typed
error (``InvalidInput``; ``ConfirmationRequired`` for ``reset_database``'s ``confirm``) and changes nothing.

Hypothesis picks an operation, one of its parameters and a hostile value for that parameter's kind (the other
arguments valid), on ``Store`` and ``AsyncStore``, on SQLite and PostgreSQL, and compares every row and the
running totals before and after.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore import RESET_CONFIRMATION, ConfirmationRequired, InvalidInput, MusicstoreError, Store, ops
from musicstore.aio import OPERATION_NAMES, AsyncStore
from musicstore.models import RetryPolicy
from musicstore.testing import FakeClock
from musicstore.validate import (
    INT64_MAX,
    MAX_FILE_BYTES,
    MAX_MESSAGE_CHARS,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_NAME_CHARS,
    MAX_PAGE,
    MAX_PATH_CHARS,
    MAX_PROMPT_CHARS,
    MAX_SECONDS,
)

# --- hostile values, one strategy per kind of parameter -----------------------------------------------------


class Opaque:
    """An object no JSON encoder or driver knows."""

    def __repr__(self) -> str:
        return "Opaque()"


_others = st.sampled_from([b"bytes", bytearray(b"x"), [1], ("a",), {"a": 1}, {1, 2}, Opaque(), object, 1j])
_numbers = st.sampled_from([math.nan, math.inf, -math.inf, -0.5, 3.0, Decimal("1"), Fraction(1, 2)])
_huge_ints = st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**30, -(10**400), 10**400])
_non_str = st.none() | st.booleans() | st.integers() | st.floats() | _numbers | _huge_ints | _others
_lone_surrogate = st.builds(
    lambda a, s, b: a + s + b, st.text(max_size=5), st.characters(categories=["Cs"]), st.text(max_size=5)
)
_with_nul = st.builds(lambda a, b: a + "\x00" + b, st.text(max_size=5), st.text(max_size=5))


def _over_long(limit: int) -> st.SearchStrategy[str]:
    return st.sampled_from(["x", "é", "🎧"]).map(lambda c: c * (limit + 1))


def bad_text(limit: int, *, blank_ok: bool, none_ok: bool) -> st.SearchStrategy[Any]:
    """Values a text parameter must refuse: not a str, NUL, lone surrogates, too long, blank (unless ok)."""
    bad = (_non_str.filter(lambda v: v is not None) if none_ok else _non_str) | _lone_surrogate | _with_nul
    bad |= _over_long(limit)
    if not blank_ok:
        bad |= st.sampled_from(["", " ", "\t\n", "\u3000"])
    return bad


def bad_int(low: int, high: int) -> st.SearchStrategy[Any]:
    """Not an int (bools, floats, strings, None...) or outside [low, high] (64-bit bounds included)."""
    out_of_range = st.integers(max_value=low - 1) | _huge_ints.filter(lambda v: not low <= v <= high)
    if high < INT64_MAX:
        out_of_range |= st.integers(min_value=high + 1)
    wrong_type = st.none() | st.booleans() | st.floats() | _numbers | st.text(max_size=5) | _others
    return out_of_range | wrong_type


def bad_number(*, positive: bool, high: float, none_ok: bool = False) -> st.SearchStrategy[Any]:
    """Not a real number, not finite, negative (or zero when positive), above ``high``, or beyond a float."""
    values = st.booleans() | st.text(max_size=5) | _others | st.sampled_from([Decimal("1"), Fraction(1, 2)])
    values |= st.sampled_from([math.nan, math.inf, -math.inf, -1e-300, -1, 10**400, -(10**400)])
    values |= st.floats(min_value=high, exclude_min=True) | st.integers(min_value=math.floor(high) + 1)
    values |= st.floats(max_value=0.0) if positive else st.floats(max_value=-5e-324)
    return values if none_ok else values | st.none()


def bad_flag() -> st.SearchStrategy[Any]:
    return st.integers() | st.none() | st.text(max_size=3) | _others | st.floats()


_deep = st.integers(MAX_METADATA_DEPTH, MAX_METADATA_DEPTH + 3000).map(
    lambda depth: _nest(depth, list) if depth % 2 else _nest(depth, dict)
)


def _nest(depth: int, kind: type) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind is list else {"k": value}
    return value


def bad_json_value() -> st.SearchStrategy[Any]:
    """A value a metadata object must not hold: not JSON, not reading back equal, or too big to store."""
    return (
        _others.filter(lambda v: not isinstance(v, list | dict))
        | st.sampled_from([math.nan, math.inf, -math.inf, Decimal("1.5"), Fraction(1, 3)])
        | _huge_ints
        | _lone_surrogate
        | _with_nul
        | st.tuples(st.integers())
        | st.frozensets(st.integers(), min_size=1)
        | _deep
        # more than MAX_METADATA_BYTES UTF-8 bytes in fewer characters: the limit counts bytes
        | st.sampled_from(["é", "€", "🎧"]).map(lambda c: c * (MAX_METADATA_BYTES // len(c.encode()) + 1))
    )


def bad_metadata(*, none_ok: bool) -> st.SearchStrategy[Any]:
    bad_keys = (
        st.integers() | st.booleans() | st.floats() | st.tuples(st.integers()) | _lone_surrogate | _with_nul
    )
    if not none_ok:
        bad_keys |= st.none()
    not_a_dict = st.lists(st.integers(), max_size=3) | st.text(max_size=5) | st.integers() | _others
    bad = (
        not_a_dict.filter(lambda v: not isinstance(v, dict))
        | st.builds(lambda k: {"ok": 1, k: "v"}, bad_keys)
        | st.builds(lambda v: {"ok": 1, "bad": v}, bad_json_value())
        | st.builds(lambda v: {"ok": [1, {"inner": v}]}, bad_json_value())
    )
    return bad if none_ok else bad | st.none()


_ID = "01a20180-5e48-7dc6-afbf-cdf54fb09fcb"
bad_id = (
    _non_str
    | st.text(max_size=40).filter(lambda t: t != t.lower() or len(t) != 36)
    | st.sampled_from([_ID.upper(), "{" + _ID + "}", _ID.replace("-", ""), _ID + "\x00", _ID[:-1] + "\ud800"])
)
bad_status_value = (
    st.text(max_size=12).filter(
        lambda t: t not in {"pending", "processing", "completed", "failed", "cancelled"}
    )
    | st.integers()
    | st.booleans()
    | st.sampled_from(["PENDING", " pending", "pending\x00", "pend\ud800"])
    | _others
)
bad_cursor = (
    st.integers() | st.booleans() | st.floats() | _others | _lone_surrogate | _with_nul | st.text(max_size=60)
) | _over_long(300)
bad_path = (
    bad_text(MAX_PATH_CHARS, blank_ok=True, none_ok=False)
    | st.sampled_from(["", "/etc/passwd", "../x.wav", "a/../../b.wav", "a\\b.wav", "/"])
    | st.text(max_size=10).map(lambda t: "/" + t)
)
bad_confirm = st.one_of(st.text(max_size=20), _non_str).filter(lambda v: v != RESET_CONFIRMATION)

PROMPT = bad_text(MAX_PROMPT_CHARS, blank_ok=False, none_ok=False)
NAME = bad_text(MAX_NAME_CHARS, blank_ok=False, none_ok=False)
OPTIONAL_NAME = bad_text(MAX_NAME_CHARS, blank_ok=False, none_ok=True)
OPTIONAL_MESSAGE = bad_text(MAX_MESSAGE_CHARS, blank_ok=True, none_ok=True)
MESSAGE = bad_text(MAX_MESSAGE_CHARS, blank_ok=True, none_ok=False)
LEASE = bad_number(positive=True, high=MAX_SECONDS)
PAGE_LIMIT = bad_int(1, MAX_PAGE)
ATTEMPTS = bad_int(1, INT64_MAX)
OWNER_LIMIT = bad_int(0, 1_000_000).filter(lambda v: v is not None)  # None: no limit, or the default
BACKOFF = _non_str.filter(lambda v: v is not None) | st.text(max_size=5)  # a RetryPolicy or None
MOMENT = (  # an aware datetime or None
    _non_str.filter(lambda v: v is not None)
    | st.text(max_size=10)
    | st.sampled_from([datetime(2030, 1, 1), datetime.max, datetime.min])
)
STATUS_FILTER = bad_status_value


def bad_level(low: float, high: float, *, silence_ok: bool = False) -> st.SearchStrategy[Any]:
    """Not a real number, NaN, or outside [low, high] (a level in dB or LUFS); None and -inf mean silence
    where ``silence_ok``."""
    values = st.booleans() | st.text(max_size=5) | _others | st.sampled_from([Decimal("1"), Fraction(1, 2)])
    values |= st.sampled_from([math.nan, math.inf, 10**400]) | st.floats(min_value=high, exclude_min=True)
    values |= st.floats(max_value=low, exclude_max=low != -70.0).filter(lambda v: v != -math.inf)
    return values if silence_ok else values | st.none() | st.just(-math.inf)


_RENDITION: dict[str, Any] = {
    "settings": {"format": "mp3", "sample_rate": 32_000, "channels": 2, "bitrate_kbps": 192},
    "profile": "streaming",
    "target_lufs": -14.0,
    "ceiling_dbtp": -1.0,
    "file_size_bytes": 10,
    "duration_seconds": 1.0,
    "loudness_lufs": -14.0,
    "true_peak_dbtp": -1.5,
    "loudness_status": "normalized",
    "checksum": "0" * 64,
}
_REQUEST = ("settings", "profile", "target_lufs", "ceiling_dbtp")
BAD_SETTINGS = (
    _non_str
    | st.builds(
        lambda v: {**_RENDITION["settings"], "format": v},
        st.text(max_size=5).filter(lambda t: t not in {"mp3", "opus", "vorbis", "flac", "wav"}) | _non_str,
    )
    | st.builds(lambda v: {**_RENDITION["settings"], "sample_rate": v}, bad_int(8_000, 384_000))
    | st.builds(lambda v: {**_RENDITION["settings"], "channels": v}, bad_int(1, 8))
    | st.builds(lambda v: {**_RENDITION["settings"], "extra": v}, bad_json_value())
)

# --- the catalogue: every operation, valid arguments, and the hostile strategy of each parameter -----------


@dataclass(frozen=True)
class Seeded:
    """Ids of rows in each status the operations can act on."""

    pending: str
    processing: str
    completed: str
    failed: str = _ID  # a dead letter (replay)


@dataclass(frozen=True)
class Case:
    valid: Callable[[Seeded], dict[str, Any]]
    hostile: dict[str, st.SearchStrategy[Any]]
    error: type[MusicstoreError] = InvalidInput


_LIST = Case(
    lambda s: {"status": "pending", "model_name": "m", "limit": 5, "offset": 0, "cursor": None},
    {
        "status": STATUS_FILTER,
        "model_name": OPTIONAL_NAME,
        "limit": PAGE_LIMIT,
        "offset": bad_int(0, INT64_MAX),
        "cursor": bad_cursor,
    },
)

CASES: dict[str, Case] = {
    "create_generation": Case(
        lambda s: {
            "prompt": "p",
            "model_name": "m",
            "duration_seconds": 30.0,
            "sample_rate": 32_000,
            "channels": 2,
            "model_version": "1.0",
            "metadata": {"bpm": 90},
            "priority": 5,
            "run_after": None,
            "owner_key": "user-1",
            "idempotency_key": "request-1",
        },
        {
            "prompt": PROMPT,
            "model_name": NAME,
            "duration_seconds": bad_number(positive=True, high=86_400.0),
            "sample_rate": bad_int(8_000, 384_000),
            "channels": bad_int(1, 8),
            "model_version": OPTIONAL_NAME,
            "metadata": bad_metadata(none_ok=True),
            "priority": bad_int(-32_768, 32_767),
            "run_after": MOMENT,
            "owner_key": OPTIONAL_NAME,
            "idempotency_key": OPTIONAL_NAME,
        },
    ),
    "get_generation": Case(lambda s: {"generation_id": s.pending}, {"generation_id": bad_id}),
    "list_generations": _LIST,
    "get_all_generations": _LIST,
    "get_pending_generations": Case(lambda s: {"limit": 5}, {"limit": PAGE_LIMIT}),
    "count_generations": Case(
        lambda s: {"status": "pending", "model_name": "m"},
        {"status": STATUS_FILTER, "model_name": OPTIONAL_NAME},
    ),
    "get_database_stats": Case(lambda s: {}, {}),
    "claim_next": Case(
        lambda s: {"worker_id": "w2", "lease_seconds": 60.0, "owner_limit": 2},
        {"worker_id": NAME, "lease_seconds": LEASE, "owner_limit": OWNER_LIMIT},
    ),
    "claim_batch": Case(
        lambda s: {"worker_id": "w2", "count": 2, "lease_seconds": 60.0, "owner_limit": None},
        {"worker_id": NAME, "count": PAGE_LIMIT, "lease_seconds": LEASE, "owner_limit": OWNER_LIMIT},
    ),
    "heartbeat": Case(
        lambda s: {"generation_id": s.processing, "worker_id": "w", "lease_seconds": 60.0},
        {"generation_id": bad_id, "worker_id": NAME, "lease_seconds": LEASE},
    ),
    "complete_generation": Case(
        lambda s: {
            "generation_id": s.processing,
            "file_path": "2026/01/01/x.wav",
            "file_size_bytes": 10,
            "generation_time_seconds": 1.5,
            "metadata": {"lufs": -16.0},
            "worker_id": "w",
        },
        {
            "generation_id": bad_id,
            "file_path": bad_path,
            "file_size_bytes": bad_int(0, MAX_FILE_BYTES),
            "generation_time_seconds": bad_number(positive=False, high=MAX_SECONDS, none_ok=True),
            "metadata": bad_metadata(none_ok=True),
            "worker_id": OPTIONAL_NAME,
        },
    ),
    "fail": Case(
        lambda s: {
            "generation_id": s.processing,
            "error_message": "boom",
            "retry": True,
            "max_attempts": 3,
            "worker_id": "w",
            "backoff": RetryPolicy(),
        },
        {
            "generation_id": bad_id,
            "error_message": MESSAGE,
            "retry": bad_flag(),
            "max_attempts": ATTEMPTS,
            "worker_id": OPTIONAL_NAME,
            "backoff": BACKOFF,
        },
    ),
    "cancel": Case(
        lambda s: {"generation_id": s.pending, "reason": "not needed"},
        {"generation_id": bad_id, "reason": OPTIONAL_MESSAGE},
    ),
    "requeue_expired": Case(
        lambda s: {"max_attempts": 3, "backoff": None}, {"max_attempts": ATTEMPTS, "backoff": BACKOFF}
    ),
    # the queue (migration 0008)
    "set_owner_limit": Case(
        lambda s: {"owner_key": "user-1", "max_running": 2}, {"owner_key": NAME, "max_running": OWNER_LIMIT}
    ),
    "get_owner_limits": Case(lambda s: {}, {}),
    "queue_depth": Case(lambda s: {}, {}),
    "list_dead_letters": Case(
        lambda s: {"limit": 5, "cursor": None}, {"limit": PAGE_LIMIT, "cursor": bad_cursor}
    ),
    "replay": Case(lambda s: {"generation_id": s.failed}, {"generation_id": bad_id}),
    "replay_all": Case(lambda s: {}, {}),
    "update_generation_status": Case(
        lambda s: {"generation_id": s.pending, "status": "cancelled", "error_message": "r"},
        {"generation_id": bad_id, "status": bad_status_value | st.none(), "error_message": OPTIONAL_MESSAGE},
    ),
    "delete_generation": Case(lambda s: {"generation_id": s.completed}, {"generation_id": bad_id}),
    "reset_database": Case(
        lambda s: {"confirm": RESET_CONFIRMATION}, {"confirm": bad_confirm}, ConfirmationRequired
    ),
    "track_prompt_usage": Case(lambda s: {"prompt": "p"}, {"prompt": PROMPT}),
    "get_prompt_by_text": Case(lambda s: {"prompt": "p"}, {"prompt": PROMPT}),
    "get_most_used_prompts": Case(lambda s: {"limit": 5}, {"limit": PAGE_LIMIT}),
    "create_rendition": Case(
        lambda s: {"generation_id": s.completed, "storage_key": "a/done.streaming.mp3", **_RENDITION},
        {
            "generation_id": bad_id,
            "storage_key": bad_path,
            "settings": BAD_SETTINGS,
            "profile": NAME,
            "target_lufs": bad_level(-70.0, 0.0),
            "ceiling_dbtp": bad_level(-20.0, 0.0),
            "file_size_bytes": bad_int(1, INT64_MAX),
            "duration_seconds": bad_number(positive=True, high=86_400.0),
            "loudness_lufs": bad_level(-1e300, 1e300, silence_ok=True),
            "true_peak_dbtp": bad_level(-1e300, -1.0, silence_ok=True),
            "loudness_status": bad_text(20, blank_ok=True, none_ok=False),
            "checksum": bad_text(80, blank_ok=True, none_ok=False) | st.sampled_from(["A" * 64, "0" * 63]),
        },
    ),
    "get_rendition": Case(lambda s: {"rendition_id": _ID}, {"rendition_id": bad_id}),
    "get_rendition_by_settings": Case(
        lambda s: {"generation_id": s.completed, **{k: _RENDITION[k] for k in _REQUEST}},
        {
            "generation_id": bad_id,
            "settings": BAD_SETTINGS,
            "profile": NAME,
            "target_lufs": bad_level(-70.0, 0.0),
            "ceiling_dbtp": bad_level(-20.0, 0.0),
        },
    ),
    "list_renditions": Case(lambda s: {"generation_id": s.completed}, {"generation_id": bad_id}),
    "merge_metadata": Case(
        lambda s: {"generation_id": s.completed, "values": {"peaks": {"key": "a/done.peaks.256.8.json"}}},
        {"generation_id": bad_id, "values": bad_metadata(none_ok=False) | st.just({})},
    ),
}

HOSTILE = [(name, param) for name, case in CASES.items() for param in case.hostile]


@st.composite
def hostile_calls(draw: st.DrawFn) -> tuple[str, str, Any]:
    """An operation, one of its parameters, and a value that parameter must refuse."""
    name, param = draw(st.sampled_from(HOSTILE))
    return name, param, draw(CASES[name].hostile[param])


def test_the_catalogue_names_every_operation_and_parameter() -> None:
    assert set(CASES) == OPERATION_NAMES
    for name, case in CASES.items():
        params = set(inspect.signature(getattr(ops, name).steps).parameters)
        assert set(case.hostile) == params, name
        assert set(case.valid(Seeded(_ID, _ID, _ID))) == params, name


# --- fixtures and the snapshot -----------------------------------------------------------------------------


def seed(store: Store) -> Seeded:
    """A pending, a processing (worker "w") and a completed generation, with metadata and prompts."""
    made = [
        store.create_generation(f"prompt {n}", model_name="m", duration_seconds=10.0, metadata={"n": n})
        for n in range(3)
    ]
    claimed = store.claim_batch("w", 2)
    store.complete_generation(claimed[0].id, file_path="a/done.wav", file_size_bytes=44, worker_id="w")
    doomed = store.create_generation("prompt 3", model_name="m", duration_seconds=10.0, priority=1)
    assert store.claim_next("w") is not None  # the higher priority: doomed
    store.fail(doomed.id, "broken", retry=False)
    return Seeded(pending=made[2].id, processing=claimed[1].id, completed=claimed[0].id, failed=doomed.id)


def snapshot(store: Store) -> tuple[Any, ...]:
    """Every generation and prompt row, and the running totals."""
    return (
        store.run(ops.generations_after, "", MAX_PAGE),
        store.run(ops.prompts_after, 0, MAX_PAGE),
        store.get_database_stats(),
    )


@pytest.fixture
def seeded_store(db_url: str) -> Iterator[tuple[Store, Seeded]]:
    with Store(db_url, clock=FakeClock()) as store:
        yield store, seed(store)


class _Rollback(Exception):
    pass


def test_the_valid_arguments_are_accepted(seeded_store: tuple[Store, Seeded]) -> None:
    """The catalogue's valid arguments pass every check (else each hostile case would pass vacuously)."""
    store, seeded = seeded_store
    for name, case in CASES.items():
        with pytest.raises(_Rollback), store.transaction() as tx:
            getattr(tx, name)(**case.valid(seeded))
            raise _Rollback


_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_SETTINGS
@given(call=hostile_calls())
def test_a_hostile_argument_raises_a_typed_error_and_changes_nothing(
    seeded_store: tuple[Store, Seeded], call: tuple[str, str, Any]
) -> None:
    store, seeded = seeded_store
    name, param, value = call
    case = CASES[name]
    before = snapshot(store)
    with pytest.raises(case.error):
        getattr(store, name)(**{**case.valid(seeded), param: value})
    assert snapshot(store) == before


@pytest.fixture
def async_seeded(db_url: str) -> Iterator[tuple[asyncio.AbstractEventLoop, AsyncStore, Store, Seeded]]:
    loop = asyncio.new_event_loop()
    with Store(db_url, clock=FakeClock()) as store:
        seeded = seed(store)
        opened = loop.run_until_complete(AsyncStore.open(db_url, clock=FakeClock()))
        try:
            yield loop, opened, store, seeded
        finally:
            loop.run_until_complete(opened.close())
            loop.close()


@settings(_SETTINGS, max_examples=150)
@given(call=hostile_calls())
def test_the_async_store_refuses_the_same_arguments(
    async_seeded: tuple[asyncio.AbstractEventLoop, AsyncStore, Store, Seeded], call: tuple[str, str, Any]
) -> None:
    loop, astore, store, seeded = async_seeded
    name, param, value = call
    case = CASES[name]
    before = snapshot(store)
    with pytest.raises(case.error):
        loop.run_until_complete(getattr(astore, name)(**{**case.valid(seeded), param: value}))
    assert snapshot(store) == before


# --- the store's own arguments, and its clock ---------------------------------------------------------------

STORE_ARGUMENTS: dict[str, st.SearchStrategy[Any]] = {
    "url": st.integers() | _others | st.just("sqlite:///a\x00b.db"),
    "busy_timeout": bad_number(positive=False, high=86_400.0),
    "pool_size": bad_int(1, 1_000),
    "clock": st.integers() | st.text(max_size=3) | st.none(),
}


@settings(_SETTINGS, max_examples=100)
@given(data=st.data())
def test_store_and_async_store_refuse_bad_arguments(db_url: str, data: st.DataObject) -> None:
    param = data.draw(st.sampled_from(sorted(STORE_ARGUMENTS)))
    value = data.draw(STORE_ARGUMENTS[param])
    arguments = {"url": db_url, param: value}
    with pytest.raises(InvalidInput):
        Store(**arguments)
    with pytest.raises(InvalidInput):
        AsyncStore(**arguments)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 1, 1),  # naive
        "2026-01-01T00:00:00Z",
        1_767_225_600,
        None,
    ],
    ids=["naive", "str", "int", "None"],
)
def test_a_clock_that_returns_no_aware_datetime_is_invalid_input(db_url: str, moment: Any) -> None:
    with Store(db_url, clock=FakeClock()) as store:
        before = snapshot(store)
        broken = Store(db_url, clock=lambda: moment)
        try:
            with pytest.raises(InvalidInput, match="clock"):
                broken.create_generation("p", model_name="m", duration_seconds=1.0)
            with pytest.raises(InvalidInput, match="clock"):
                broken.claim_next("w")
        finally:
            broken.close()
        assert snapshot(store) == before


# --- recording: export_generation's arguments, and ExportOptions ---------------------------------------

_not_positive = st.sampled_from([math.nan, math.inf, -math.inf, 0, 0.0, -0.0, -1, -1e-300, 10**400])
SCALE = st.booleans() | st.text(max_size=5) | _others | _not_positive | st.floats(max_value=0.0)
EXPORT_ARGUMENTS: dict[str, st.SearchStrategy[Any]] = {
    "generation": st.none() | st.integers() | st.text(max_size=5) | _others,
    "root": st.none() | st.integers() | st.floats() | _others | st.just("out\x00put"),
    "worker_id": OPTIONAL_NAME,
    "ext": _non_str.filter(lambda v: v is not None)
    | st.text(max_size=8).filter(lambda t: t.lower() not in {"wav", "flac"})
    | st.sampled_from(["wav/../x", "wav\x00", "mp3", ".wav"]),
    "options": st.integers() | st.text(max_size=5) | _others,
    "scale": SCALE,
    "on_error": st.text(max_size=8).filter(lambda t: t not in {"fail", "retry", "raise"}) | _non_str,
    "max_attempts": ATTEMPTS,
    "generation_time_seconds": bad_number(positive=False, high=MAX_SECONDS, none_ok=True),
    "metadata": bad_metadata(none_ok=True),
    "tags": st.integers() | st.text(max_size=5) | _others,  # True, False or None
    "peaks": st.integers() | st.text(max_size=5) | _others,  # a PeaksSpec, True, False or None
}


def test_the_export_catalogue_names_every_parameter() -> None:
    from musicstore.recording import export_generation

    params = set(inspect.signature(export_generation).parameters) - {"store", "audio"}
    assert set(EXPORT_ARGUMENTS) == params


@settings(_SETTINGS, max_examples=150)
@given(data=st.data())
def test_export_generation_refuses_bad_arguments_and_changes_nothing(
    seeded_store: tuple[Store, Seeded], tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    import numpy as np

    from musicstore.recording import export_generation

    store, seeded = seeded_store
    generation = store.get_generation(seeded.processing)
    root = tmp_path_factory.mktemp("root")
    param = data.draw(st.sampled_from(sorted(EXPORT_ARGUMENTS)))
    value = data.draw(EXPORT_ARGUMENTS[param])
    arguments: dict[str, Any] = {"generation": generation, "root": root, param: value}
    before = snapshot(store)
    with pytest.raises(MusicstoreError):
        export_generation(store, audio=np.zeros((2, 3_200), dtype=np.float32), **arguments)
    assert snapshot(store) == before
    assert not list(root.rglob("*")), "nothing is written under the root"


@pytest.mark.parametrize("workers", [0, -1, True, 1.5, "2", 10**30])
def test_export_batch_refuses_a_bad_worker_count(
    seeded_store: tuple[Store, Seeded], tmp_path: Path, workers: Any
) -> None:
    import numpy as np

    from musicstore.recording import export_batch_generations

    store, seeded = seeded_store
    generation = store.get_generation(seeded.processing)
    assert generation is not None
    root = tmp_path / "root"
    root.mkdir()
    before = snapshot(store)
    with pytest.raises(InvalidInput, match="workers"):
        export_batch_generations(
            store, [generation], np.zeros((1, 2, 3_200), dtype=np.float32), root=root, workers=workers
        )
    assert snapshot(store) == before and not list(root.rglob("*"))


_OPTION_NUMBERS = ("target_lufs", "ceiling_dbtp", "max_limiting_db", "max_gain_db", "tolerance_lu")
OPTION_VALUES: dict[str, st.SearchStrategy[Any]] = {
    **{
        name: st.none() | st.booleans() | st.text(max_size=4) | _others | st.sampled_from([math.nan, 10**400])
        for name in _OPTION_NUMBERS
    },
    "normalize": st.none() | st.integers() | st.text(max_size=4) | _others,
    "limiter": st.none() | st.integers() | st.text(max_size=4) | _others,
    "subtype": st.none()
    | st.integers()
    | _others
    | st.text(max_size=8).filter(lambda t: t not in {"PCM_16", "PCM_24", "FLOAT"}),
    "dither_seed": st.booleans() | st.floats() | st.text(max_size=4) | st.integers(max_value=-1) | _others,
}


def test_the_options_catalogue_names_every_field() -> None:
    from dataclasses import fields

    from musicstore.audio import ExportOptions

    assert set(OPTION_VALUES) == {f.name for f in fields(ExportOptions)}


@settings(_SETTINGS, max_examples=200)
@given(data=st.data())
def test_export_options_refuse_bad_values(data: st.DataObject) -> None:
    from musicstore.audio import ExportOptions

    name = data.draw(st.sampled_from(sorted(OPTION_VALUES)))
    with pytest.raises(InvalidInput):
        ExportOptions(**{name: data.draw(OPTION_VALUES[name])})


# --- maintenance and the testing kit ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        {"stale_after_seconds": "1"},
        {"stale_after_seconds": math.nan},
        {"stale_after_seconds": -1},
        {"batch": 0},
        {"batch": 2.0},
        {"batch": 10**30},
        {"max_items": -1},
        {"max_items": None},
    ],
    ids=repr,
)
def test_reconcile_refuses_bad_arguments(
    seeded_store: tuple[Store, Seeded], tmp_path: Path, arguments: dict[str, Any]
) -> None:
    from musicstore.maintenance.reconcile import reconcile

    store, _ = seeded_store
    root = tmp_path / "root"
    root.mkdir()
    before = snapshot(store)
    with pytest.raises(InvalidInput):
        reconcile(store, root, repair=True, **arguments)
    assert snapshot(store) == before


@pytest.mark.parametrize(
    "arguments",
    [
        {"dry_run": 0},
        {"dry_run": "no"},
        {"dry_run": None},
        {"max_items": -1},
        {"max_items": "5"},
        {"max_items": 1.5},
        {"progress": "print"},
    ],
    ids=repr,
)
def test_cleanup_refuses_bad_arguments_and_deletes_nothing(
    seeded_store: tuple[Store, Seeded], tmp_path: Path, arguments: dict[str, Any]
) -> None:
    from musicstore.maintenance.retention import cleanup

    store, _ = seeded_store
    root = tmp_path / "root"
    root.mkdir()
    before = snapshot(store)
    with pytest.raises(InvalidInput):
        cleanup(store, root, statuses=("completed", "failed", "cancelled", "pending"), **arguments)
    assert snapshot(store) == before


@pytest.mark.parametrize(
    "arguments", [{"pages": "x"}, {"pages": 1.5}, {"pages": True}, {"overwrite": "yes"}], ids=repr
)
def test_backup_refuses_bad_arguments_and_writes_nothing(tmp_path: Path, arguments: dict[str, Any]) -> None:
    from musicstore import migrate
    from musicstore.maintenance.backup import backup

    url = f"sqlite:///{tmp_path}/live.db"
    migrate(url)
    with pytest.raises(InvalidInput):
        backup(url, tmp_path / "copy.db", **arguments)
    assert not (tmp_path / "copy.db").exists()


def test_restore_refuses_a_non_bool_overwrite(tmp_path: Path) -> None:
    from musicstore import migrate
    from musicstore.maintenance.backup import backup, restore

    url = f"sqlite:///{tmp_path}/live.db"
    migrate(url)
    backup(url, tmp_path / "copy.db")
    with pytest.raises(InvalidInput, match="overwrite"):
        restore(tmp_path / "copy.db", f"sqlite:///{tmp_path}/other.db", overwrite="yes")  # type: ignore[arg-type]
    assert not (tmp_path / "other.db").exists()


@pytest.mark.parametrize("field", ["generations", "metadata"])
def test_export_batch_refuses_a_non_sequence(
    seeded_store: tuple[Store, Seeded], tmp_path: Path, field: str
) -> None:
    import numpy as np

    from musicstore.recording import export_batch_generations

    store, seeded = seeded_store
    generation = store.get_generation(seeded.processing)
    assert generation is not None
    arguments: dict[str, Any] = {"generations": [generation], "metadata": None}
    arguments[field] = {generation.id: generation} if field == "generations" else iter([{}])
    before = snapshot(store)
    with pytest.raises(InvalidInput, match=field):
        export_batch_generations(
            store, audio_batch=np.zeros((1, 2, 3_200), dtype=np.float32), root=tmp_path, **arguments
        )
    assert snapshot(store) == before and not list(tmp_path.rglob("*.wav"))


@pytest.mark.parametrize(
    "call",
    [
        lambda: FakeClock(datetime(2026, 1, 1)),
        lambda: FakeClock().advance(math.nan),
        lambda: FakeClock().advance("1"),  # type: ignore[arg-type]
        lambda: FakeClock().advance(1e300),
    ],
    ids=["naive start", "advance NaN", "advance str", "advance huge"],
)
def test_the_fake_clock_refuses_bad_values(call: Callable[[], object]) -> None:
    with pytest.raises(InvalidInput):
        call()
