"""Metadata's checks (``musicstore.validate``): JSON that reads back equal, within the depth and size limits,
encoded once as the store keeps it."""

from __future__ import annotations

import json
import json.encoder
import math
import numbers
import operator
import sys
from collections.abc import Callable
from typing import Any

from ..errors import InvalidInput, shown
from .values import INT64_MAX, INT64_MIN, MAX_METADATA_BYTES, MAX_METADATA_DEPTH, text


def _json_value(value: object, where: str, depth: int) -> Any:
    """``value`` in its plain form: itself when it is JSON that reads back equal, within the depth limit; a
    copy when it holds a number of another type (numpy's: ``np.int64`` as an int, ``np.float32`` as the
    float of its value, ``np.bool_`` as a bool; an int or float subclass as a plain one). Else
    InvalidInput."""
    if isinstance(value, str):
        return text(value, f"metadata{where}", max_chars=MAX_METADATA_BYTES)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):  # int, numpy's integers (numpy's bool_ is none)
        whole = operator.index(value)
        if not INT64_MIN <= whole <= INT64_MAX:
            raise InvalidInput(f"metadata{where} is an integer beyond 64 bits; store it as a string")
        return whole
    if isinstance(value, float) or (
        isinstance(value, numbers.Real) and not isinstance(value, numbers.Rational)
    ):
        real = (
            value if type(value) is float else float(value)
        )  # np.float32, np.float16: exact; a long double equal to no float is refused
        if not math.isfinite(real):
            raise InvalidInput(f"metadata{where} is {value!r}; JSON holds only finite numbers")
        if real != value:
            raise InvalidInput(f"metadata{where} is {value!r}, which no float equals; JSON holds a float")
        return real
    if isinstance(value, dict | list):
        if depth >= MAX_METADATA_DEPTH:
            raise InvalidInput(f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels")
        if isinstance(value, list):
            items = [_json_value(item, f"{where}[{index}]", depth + 1) for index, item in enumerate(value)]
            return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
        changed = False
        plain = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(
                    f"metadata{where} has the key {shown(key)}; keys must be str "
                    "(JSON would read back a str key)"
                )
            text(key, f"a metadata{where} key", max_chars=MAX_METADATA_BYTES)
            plain[key] = _json_value(item, f"{where}[{key[:40]!r}]", depth + 1)
            changed = changed or plain[key] is not item
        return plain if changed else value
    numpy = sys.modules.get("numpy")  # a numpy bool_ only where numpy is loaded
    if numpy is not None and isinstance(value, numpy.bool_):
        return bool(value)
    raise InvalidInput(
        f"metadata{where} is a {type(value).__name__}; use JSON types only (dict with str keys, list, "
        "str, int, finite float, bool, None; numpy's numbers as those): a tuple, set, bytes or object "
        "would not read back unchanged"
    )


_STR_BOUND = 6
"""The most UTF-8 bytes compact JSON spends on one ASCII character of a string (a control character is
written ``\\u00XX``)."""
_SCALAR_BOUND = 24
"""The most characters compact JSON spends on an int64 (20), a finite float's repr (24), true, false, null."""


def _plain_size(value: dict[Any, Any] | list[Any], depth: int) -> int:
    """An upper bound on the UTF-8 bytes of ``value``'s compact JSON when it is plain metadata (str keys,
    ASCII strings, int64s, finite floats, bools, None, dicts and lists within the depth limit): then
    ``_json_value`` passes it. -1 when it is not known to be plain: ``_json_value`` decides (and says why).
    The fast path of the metadata check: no exception, no message, no path built per value."""
    if depth >= MAX_METADATA_DEPTH:
        return -1
    size = 2
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) is not str or len(key) > MAX_METADATA_BYTES or not key.isascii() or "\x00" in key:
                return -1
            size += _STR_BOUND * len(key) + 4  # the quotes, the colon, the comma
            kind = type(item)
            if kind is str:
                if len(item) > MAX_METADATA_BYTES or not item.isascii() or "\x00" in item:
                    return -1
                size += _STR_BOUND * len(item) + 2
            elif kind is float:
                if item - item != 0.0:  # inf or NaN
                    return -1
                size += _SCALAR_BOUND
            elif kind is int:
                if not INT64_MIN <= item <= INT64_MAX:
                    return -1
                size += _SCALAR_BOUND
            elif item is None or kind is bool:
                size += _SCALAR_BOUND
            elif kind is dict or kind is list:
                inner = _plain_size(item, depth + 1)
                if inner < 0:
                    return -1
                size += inner
            else:
                return -1
        return size
    for item in value:
        kind = type(item)
        if kind is str:
            if len(item) > MAX_METADATA_BYTES or not item.isascii() or "\x00" in item:
                return -1
            size += _STR_BOUND * len(item) + 3
        elif kind is float:
            if item - item != 0.0:
                return -1
            size += _SCALAR_BOUND + 1
        elif kind is int:
            if not INT64_MIN <= item <= INT64_MAX:
                return -1
            size += _SCALAR_BOUND + 1
        elif item is None or kind is bool:
            size += _SCALAR_BOUND + 1
        elif kind is dict or kind is list:
            inner = _plain_size(item, depth + 1)
            if inner < 0:
                return -1
            size += inner + 1
        else:
            return -1
    return size


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _encoder() -> Callable[[dict[str, Any]], str]:
    """``json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))`` of a dict, with the
    C encoder made once (``JSONEncoder.encode`` makes it on every call: 2.7 -> 1.9 µs for a 3-key dict,
    fastest of 7 by thread CPU time). It keeps no record of the containers it is inside (``markers`` None,
    so no state is shared between calls or threads): metadata reaches it checked to at most
    ``MAX_METADATA_DEPTH`` levels, or decoded from JSON, so no circular value does. Without json's C
    accelerator, ``JSONEncoder.encode``."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython has it
        return _ENCODER.encode
    chunks = make(None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", False, False, False)
    join = "".join

    def encode(value: dict[str, Any]) -> str:
        return join(chunks(value, 0))

    return encode


_ENCODE = _encoder()


def _not_a_dict(value: object) -> InvalidInput:
    return InvalidInput(f"metadata must be a dict (a JSON object), got {type(value).__name__}")


def metadata(value: object, *, checked: bool = False) -> str:
    """Encode a metadata object as compact JSON; it must read back equal (str keys, no tuples, no NaN),
    numpy's numbers written as their plain form (``plain_metadata``).

    ``checked=True``: every value was already checked (e.g. a merge of checked dicts, or what
    ``plain_metadata`` returned); only encode and size.
    """
    if not isinstance(value, dict):
        raise _not_a_dict(value)
    plain: dict[str, Any] = value
    if not checked and _plain_size(value, 1) < 0:
        plain = _json_value(value, "", 1)
    encoded = _ENCODE(plain)
    size = len(encoded) if encoded.isascii() else len(encoded.encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise InvalidInput(f"metadata is {size} bytes as UTF-8 JSON; the maximum is {MAX_METADATA_BYTES}")
    return encoded


def stored_metadata(value: dict[str, Any], encoded: str) -> dict[str, Any]:
    """The metadata a returned row holds for ``value``, stored as ``encoded`` (``metadata(value)``): a copy
    the caller's object shares nothing with, so that changing it afterwards (a template reused, a list
    appended to) does not change the row returned. A flat object's values are immutable: a shallow copy; a
    nested one is read back from its JSON, as a read of the row does."""
    for item in value.values():
        if isinstance(item, dict | list):
            return json.loads(encoded)  # type: ignore[no-any-return]
    return dict(value)


def plain_metadata(value: object) -> dict[str, Any]:
    """``metadata``'s checks without its encoding when it is not needed: raise what ``metadata(value)``
    raises, else return ``value`` in its plain form, what the store keeps and returns: ``value`` itself when
    it holds JSON's own types only (the common case: no copy), else a copy with numpy's numbers (and int or
    float subclasses) as plain ints, floats and bools, at any depth. Its JSON is encoded only when its size
    may exceed the limit."""
    if not isinstance(value, dict):
        raise _not_a_dict(value)
    bound = _plain_size(value, 1)
    plain: dict[str, Any] = value if bound >= 0 else _json_value(value, "", 1)
    if bound < 0 or bound > MAX_METADATA_BYTES:
        metadata(plain, checked=True)
    return plain


def check_metadata(value: object) -> None:
    """``plain_metadata``'s checks, without its result."""
    plain_metadata(value)
