"""SQLite's ``encode`` keeps the moment it converted last (an operation's ``now`` bound by several queries is
converted once): whatever moments and parameter dicts follow one another, and whichever objects hold equal
or different moments, each dict is encoded as ``to_micros`` encodes each of its datetimes, and the caller's
dict is never changed."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from musicstore import InvalidInput, Store, validate
from musicstore.backends.sqlite import encode
from musicstore.models import to_micros

moments = st.lists(st.datetimes(timezones=st.timezones()), min_size=1, max_size=4)
values = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.floats(allow_nan=False))


@given(
    moments,
    st.lists(
        st.dictionaries(st.sampled_from("abcde"), st.one_of(values, st.integers(0, 3)), max_size=5),
        min_size=1,
        max_size=6,
    ),
)
def test_encode_binds_each_moment_as_to_micros(pool: list[datetime], drawn: list[dict[str, Any]]) -> None:
    """Integers 0-3 stand for the pool's moments (the same objects again and again, as an operation's
    ``now``); the pool's equal moments in other zones and equal copies are other objects."""
    copies = [moment + timedelta(0) for moment in pool]  # equal, another object (or the same: immaterial)
    for params in drawn:
        given_params = {
            key: pool[value % len(pool)] if type(value) is int and 0 <= value <= 3 and key < "c" else value
            for key, value in params.items()
        }
        given_params["e"] = copies[len(params) % len(copies)]
        before = dict(given_params)
        encoded = encode(given_params)
        assert given_params == before  # the caller's dict is not changed
        expected = {
            key: to_micros(value) if isinstance(value, datetime) else value for key, value in before.items()
        }
        assert encoded == expected
        assert all(type(encoded[key]) is int for key, value in before.items() if isinstance(value, datetime))


def test_create_binds_its_moment_once_for_both_queries(tmp_path: Path) -> None:
    """``create_generation``'s prompt row and generation row get the same instant (the first query's
    conversion serves the second), and a later creation its own."""
    with Store(f"sqlite:///{tmp_path / 'm.db'}", migrate=True) as store:
        first = store.create_generation("rain on a tin roof", model_name="m", duration_seconds=5.0)
        second = store.create_generation("rain on a tin roof", model_name="m", duration_seconds=5.0)
        prompt = store.get_prompt_by_text("rain on a tin roof")
        assert prompt is not None
        assert store.get_generation(first.id) == first
        assert store.get_generation(second.id) == second
        assert prompt.first_used_at == first.created_at
        assert prompt.last_used_at == second.created_at
        assert prompt.used_count == 2


@given(st.one_of(st.none(), values, st.text(max_size=300)), st.booleans())
def test_name_decides_none_as_before(value: Any, optional: bool) -> None:
    """``validate.name`` looks at an optional None first: the same answers as the plain checks first."""

    def reference() -> Any:
        plain = type(value) is str and value.strip() and len(value) <= 200 and value.isascii()
        if plain and "\x00" not in value:
            return value
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise InvalidInput(f"worker_id must be a non-empty str, got {type(value).__name__}")
        return validate.text(value, "worker_id", max_chars=200, blank=False)

    try:
        expected: Any = reference()
    except InvalidInput as exc:
        expected = str(exc)
    try:
        got: Any = validate.name(value, "worker_id", optional=optional)
    except InvalidInput as exc:
        got = str(exc)
    assert got == expected
