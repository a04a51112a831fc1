"""The argument checks' fast paths decide as their full checks do: the same value returned, or the same
``InvalidInput`` with the same message (``musicstore.validate``'s common cases skip the full checks).

Each full check is reached here by a value of a ``str``/``int``/``float``/``dict`` subclass (which no fast
path takes) or through ``_json_value`` itself, and compared with the public check on the plain value.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from musicstore import InvalidInput, Status, validate


class _Str(str):
    """A str no fast path takes (they test ``type(value) is str``): the full check runs."""


class _Float(float):
    pass


class _Int(int):
    pass


def outcome(check: Callable[[], object]) -> tuple[str, object]:
    try:
        return "ok", check()
    except InvalidInput as exc:
        return "error", str(exc)


def same(fast: Callable[[], object], full: Callable[[], object]) -> None:
    got, want = outcome(fast), outcome(full)
    assert got == want
    if got[0] == "ok":
        assert type(got[1]) is type(want[1]) or type(want[1]) in (_Str, _Float, _Int)


texts = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=" \t\n\x00a./\\é", max_size=8),
    st.sampled_from(["", " ", "a", "a/b.wav", "./a//b.wav", "/a", "a/../b", "a/", "x" * 201]),
)


@given(value=texts, blank=st.booleans(), max_chars=st.integers(0, 10))
def test_text_decides_as_its_full_check(value: str, blank: bool, max_chars: int) -> None:
    same(
        lambda: validate.text(value, "field", max_chars=max_chars, blank=blank),
        lambda: validate.text(_Str(value), "field", max_chars=max_chars, blank=blank),
    )


@given(value=texts)
def test_name_prompt_and_path_decide_as_their_full_checks(value: str) -> None:
    same(lambda: validate.name(value, "worker_id"), lambda: validate.name(_Str(value), "worker_id"))
    same(lambda: validate.prompt(value), lambda: validate.prompt(_Str(value)))
    same(lambda: validate.relative_path(value), lambda: validate.relative_path(_Str(value)))


@given(value=texts)
def test_a_path_the_fast_path_takes_is_already_canonical(value: str) -> None:
    try:
        path = validate.relative_path(value)
    except InvalidInput:
        return
    assert path == PurePosixPath(value).as_posix()


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**30), 10**30),
    st.sampled_from([0, 0.0, -0.0, 1, validate.MAX_SECONDS, validate.MAX_SECONDS + 1e-9, 2**63, 2**1100]),
)


@given(value=numbers, positive=st.booleans())
def test_number_and_seconds_decide_as_their_full_checks(value: float, positive: bool) -> None:
    plain: Any = _Float(value) if isinstance(value, float) else _Int(value)
    for high in (validate.MAX_SECONDS, None):
        same(
            functools.partial(validate.number, value, "n", positive=positive, high=high),
            functools.partial(validate.number, plain, "n", positive=positive, high=high),
        )
    same(
        lambda: validate.seconds(value, "s", positive=positive),
        lambda: validate.seconds(plain, "s", positive=positive),
    )


@given(value=st.integers(-(2**70), 2**70), low=st.integers(-5, 5))
def test_integer_decides_as_its_full_check(value: int, low: int) -> None:
    same(lambda: validate.integer(value, "i", low), lambda: validate.integer(_Int(value), "i", low))
    same(lambda: validate.integer(value, "i", low, 7), lambda: validate.integer(_Int(value), "i", low, 7))


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**66), 2**66),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.text(alphabet='\x00\x01"\\a', max_size=4),
    st.tuples(st.integers()),
    st.binary(max_size=2),
)
keys = st.one_of(st.text(max_size=5), st.integers(0, 3), st.none())
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=20,
)


def full_metadata(value: Any) -> str:
    """``validate.metadata`` through its full walk (no fast path)."""
    if not isinstance(value, dict):
        raise InvalidInput(f"metadata must be a dict (a JSON object), got {type(value).__name__}")
    validate._json_value(value, "", 1)
    return validate.metadata(value, checked=True)


plain_keys = st.text(alphabet="ab\x00\x01é", max_size=3)
"""Mostly str keys, so that most drawn objects reach their values (a non-str key refuses the whole object)."""
strings = st.text(alphabet='a\x00\x01"\\é\ud800', max_size=4)
plain_json = st.recursive(
    st.one_of(scalars, strings),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(plain_keys, inner, max_size=3)),
    max_leaves=12,
)


@settings(max_examples=400)
@given(
    value=st.one_of(
        st.dictionaries(keys, json_like, max_size=5),
        st.dictionaries(plain_keys, plain_json, max_size=4),
        json_like,
    )
)
@example({"a": "\x00"})
@example({"a": ["\x00"]})
@example({"\x00": 1})
@example({"a": {"b": "\ud800"}})
@example({"a": [2**63]})
@example({"a": {"b": math.nan}})
@example({"a": (1,)})
@example({"a": {1: 2}})
def test_metadata_decides_as_its_full_walk(value: Any) -> None:
    same(lambda: validate.metadata(value), lambda: full_metadata(value))
    result = outcome(lambda: validate.metadata(value))
    checked = outcome(lambda: validate.check_metadata(value))
    assert checked == (result if result[0] == "error" else ("ok", None))
    if result[0] == "ok" and isinstance(value, dict):
        bound = validate._plain_size(value, 1)
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        assert result[1] == encoded
        assert bound == -1 or len(encoded.encode("utf-8")) <= bound


def test_check_metadata_refuses_what_metadata_refuses_for_its_size() -> None:
    big = {"a": "x" * (validate.MAX_METADATA_BYTES // 6), "b": "y" * 10}  # a bound over the limit
    assert validate._plain_size(big, 1) > validate.MAX_METADATA_BYTES
    validate.check_metadata(big)  # its JSON is under the limit: encoded to find out, accepted
    huge = {"a": "x" * validate.MAX_METADATA_BYTES}
    assert outcome(lambda: validate.check_metadata(huge)) == outcome(lambda: validate.metadata(huge))
    assert outcome(lambda: validate.check_metadata(huge))[0] == "error"
    deep: Any = {}
    for _ in range(validate.MAX_METADATA_DEPTH + 1):
        deep = {"k": deep}
    assert outcome(lambda: validate.check_metadata(deep)) == outcome(lambda: full_metadata(deep))
    assert outcome(lambda: validate.check_metadata([1])) == outcome(lambda: validate.metadata([1]))
    assert outcome(lambda: validate.check_metadata({"f": math.inf}))[0] == "error"


@given(
    st.one_of(
        st.sampled_from(list(Status)),
        st.sampled_from([s.value for s in Status]),
        st.text(max_size=12),
        st.none(),
        st.integers(),
        st.lists(st.text(max_size=3), max_size=2),  # unhashable: never looked up
    )
)
def test_status_decides_as_the_enum_does(value: Any) -> None:
    """``validate.status`` looks a plain str or a Status up in a dict; the enum's call decides the rest, and
    the same member or the same message comes back either way."""
    full = outcome(lambda: validate.status(_Str(value) if type(value) is str else value))
    fast = outcome(lambda: validate.status(value))
    assert fast == full
    if fast[0] == "ok":
        assert fast[1] is Status(value) and type(fast[1]) is Status
