"""The limits of what the store keeps and the checkers of one value each (text, names, integers, numbers,
flags, a status, a moment), shared by every operation through ``musicstore.validate``."""

from __future__ import annotations

import math
import numbers
import operator
from datetime import UTC, datetime
from typing import TypeGuard

from ..errors import InvalidInput, shown
from ..masking import redact
from ..models import Status

MAX_PROMPT_CHARS = 20_000
"""Longest prompt accepted, in characters (a 10 kB prompt is well inside)."""
MAX_NAME_CHARS = 200
"""Longest model name, model version or worker id."""
MAX_MESSAGE_CHARS = 20_000
"""Longest error message (``fail``) or cancel reason, in characters."""
MAX_PATH_BYTES = 1_024
"""Longest ``file_path``, in UTF-8 bytes: it is also the row's storage key, which S3 keeps to 1,024 bytes
(and the schema to 1,024 characters, which a path of 1,024 bytes never exceeds)."""
MAX_PATH_CHARS = MAX_PATH_BYTES
"""The former name of ``MAX_PATH_BYTES``: no longer path can be stored, in characters either."""
MAX_METADATA_BYTES = 1 << 20
"""Largest metadata object: the UTF-8 bytes of its compact JSON text (``json.dumps(..., ensure_ascii=False,
separators=(",", ":"))``, as stored)."""
MAX_METADATA_DEPTH = 64
"""The first nesting depth of objects and arrays refused in metadata: the object itself is depth 1, so
values nest at most 63 deep."""
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
"""Every integer the store keeps, metadata's included, fits in a signed 64-bit integer."""
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8_000, 384_000
MAX_CHANNELS = 8
MAX_DURATION_SECONDS = 86_400.0
MAX_SECONDS = 30 * 86_400.0
"""Longest lease or generation time accepted: 30 days."""
MAX_BUSY_TIMEOUT = 86_400.0
"""Longest ``busy_timeout``: a day."""
MAX_FILE_BYTES = 1 << 40
"""Largest ``file_size_bytes`` (1 TiB: a day of 8-channel 384 kHz float audio fits)."""
MAX_POOL_SIZE = 1_000
MAX_PAGE = 10_000
"""Largest page a list returns at once."""


def _plain(value: object, max_chars: int, blank: bool = True) -> TypeGuard[str]:
    """The common case of ``text``: an ASCII str of at most ``max_chars`` without NUL (and not blank unless
    ``blank``), which passes every check of ``text``; anything else takes the full checks."""
    return (
        type(value) is str
        and len(value) <= max_chars
        and value.isascii()
        and "\x00" not in value
        and (blank or bool(value.strip()))
    )


def text(value: object, what: str, *, max_chars: int, blank: bool = True) -> str:
    """A str the databases store verbatim: no NUL, no lone surrogate, at most ``max_chars`` characters."""
    if _plain(value, max_chars, blank):
        return value  # the checks below say why one fails
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a str, got {type(value).__name__}")
    if not blank and not value.strip():
        raise InvalidInput(f"{what} must be a non-empty str, got {shown(value)}")
    if len(value) > max_chars:
        raise InvalidInput(f"{what} has {len(value)} characters; the maximum is {max_chars}")
    if "\x00" in value:
        raise InvalidInput(f"{what} contains a NUL character, which databases cannot store in text")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInput(f"{what} is not valid Unicode text (lone surrogate at {exc.start})") from None
    return value


def prompt(value: object) -> str:
    """A prompt is stored verbatim: any script, quotes, emoji; not blank, no NUL, valid UTF-8."""
    if _plain(value, MAX_PROMPT_CHARS, blank=False):
        return value
    if isinstance(value, str) and not value.strip():
        raise InvalidInput("prompt is empty or only whitespace; describe the music to generate")
    return text(value, "prompt", max_chars=MAX_PROMPT_CHARS)


def name(value: object, what: str, *, optional: bool = False) -> str | None:
    """A short identifier such as a model name, model version or worker id."""
    if value is None and optional:  # first: an optional name is mostly not given
        return None
    if _plain(value, MAX_NAME_CHARS, blank=False):
        return value
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a non-empty str, got {type(value).__name__}")
    return text(value, what, max_chars=MAX_NAME_CHARS, blank=False)


def message(value: object, what: str, *, optional: bool = False) -> str | None:
    """An error message or cancel reason: any text (blank too) up to ``MAX_MESSAGE_CHARS``, with every known
    secret masked (``masking.redact``: a handler's error may quote a database URL or a presigned URL, and
    the row's message is shown by the dashboard and the CLI)."""
    if value is None and optional:
        return None
    return redact(text(value, what, max_chars=MAX_MESSAGE_CHARS))


def flag(value: object, what: str) -> bool:
    """A bool (not 0/1, not a truthy object)."""
    if not isinstance(value, bool):
        raise InvalidInput(f"{what} must be True or False, got {shown(value)}")
    return value


def callback(value: object, what: str) -> None:
    """A callable or None (a progress callback)."""
    if value is not None and not callable(value):
        raise InvalidInput(f"{what} must be callable or None, got {type(value).__name__}")


def integer(value: object, what: str, low: int, high: int = INT64_MAX) -> int:
    """An integer (an int, or any ``numbers.Integral`` such as numpy's ``np.int64``; not a bool, not a float)
    within [low, high], as a plain int; ``high`` is at most a 64-bit integer's."""
    if type(value) is int and low <= value <= high:
        return value
    whole = whole_number(value)
    if whole is None:
        raise InvalidInput(f"{what} must be an integer, got {shown(value)}")
    if whole < low or whole > high:
        raise InvalidInput(f"{what} must be between {low} and {high}, got {shown(value)}")
    return whole


def whole_number(value: object) -> int | None:
    """``value`` as a plain int when it is an integer (any ``numbers.Integral``: int, numpy's integers; not a
    bool, numpy's bool_ is no ``Integral``), else None."""
    if type(value) is int:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    return operator.index(value)


def real_number(value: object, *, fractions: bool = False) -> float | None:
    """``value`` as a plain float when it is a real number: an int, a float, or another ``numbers.Real`` in
    binary (numpy's ``np.float32``, ``np.int64``...); else None. Not a bool (numpy's ``bool_`` neither), not a
    ``Decimal``, not a str, not an exact fraction (``fractions.Fraction``: a float would round it) unless
    ``fractions``: the audio side's levels, scales and qualities (``ExportOptions``, ``LoudnessProfile``,
    ``RenditionSpec``, ``RenditionOptions``, ``as_audio``'s scale, the synthesizers) take one as its nearest
    float. An int (or fraction) beyond any float as ±inf."""
    if type(value) is float:
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        whole = operator.index(value)
        try:
            return float(whole)
        except OverflowError:  # an int beyond any float
            return math.inf if whole > 0 else -math.inf
    if not isinstance(value, numbers.Real) or (isinstance(value, numbers.Rational) and not fractions):
        return None
    try:
        return float(value)
    except OverflowError:  # a fraction beyond any float
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]  # a Rational: comparable


def number(value: object, what: str, *, positive: bool, high: float | None = None) -> float:
    """A finite real number (int, float or any ``numbers.Real`` such as ``np.float32``; not bool), > 0
    (``positive``) or >= 0, at most ``high``, as a plain float; -0.0 as 0.0 (SQLite reads a stored -0.0 back
    as 0.0, PostgreSQL as -0.0: one value on both)."""
    if (
        (type(value) is float or type(value) is int)
        and high is not None
        and 0 <= value <= high  # not NaN
        and (value or not positive)
    ):
        return float(value) or 0.0  # within [0, high]: finite, no overflow; -0.0 as 0.0
    real = real_number(value)
    if real is None:
        raise InvalidInput(f"{what} must be a number, got {shown(value)}")
    if not math.isfinite(real) or real < 0 or (positive and real == 0):
        raise InvalidInput(
            f"{what} must be a finite number {'> 0' if positive else '>= 0'}, got {shown(value)}"
        )
    if high is not None and real > high:
        limit = int(high) if high.is_integer() else high
        raise InvalidInput(f"{what} must be at most {limit:,}, got {shown(value)}")
    return real or 0.0


def seconds(value: object, what: str, *, positive: bool = True) -> float:
    """A span of seconds such as a lease or a generation time: finite, at most ``MAX_SECONDS`` (30 days)."""
    if type(value) is float and 0.0 < value <= MAX_SECONDS:
        return value  # the common case: a positive float in range (not NaN)
    return number(value, what, positive=positive, high=MAX_SECONDS)


def sample_rate(value: object) -> int:
    return integer(value, "sample_rate (Hz)", MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)


def channels(value: object) -> int:
    return integer(value, "channels", 1, MAX_CHANNELS)


def duration(value: object) -> float:
    return number(value, "duration_seconds", positive=True, high=MAX_DURATION_SECONDS)


def file_size(value: object) -> int:
    return integer(value, "file_size_bytes", 0, MAX_FILE_BYTES)


_STATUSES = {status.value: status for status in Status}


def status(value: object) -> Status:
    """A Status, or its string value."""
    if value.__class__ is str or value.__class__ is Status:  # hashable: a look-up, not the enum's call
        found = _STATUSES.get(value)
        if found is not None:
            return found
    try:
        if not isinstance(value, str):  # the enum's own error quoted its repr (a deep list: RecursionError)
            raise ValueError
        return Status(value)
    except ValueError:
        valid = ", ".join(s.value for s in Status)
        raise InvalidInput(f"unknown status {shown(value)}; valid statuses are {valid}") from None


def moment(value: object, what: str) -> datetime:
    """A timezone-aware datetime, as the same instant in UTC: what the store keeps and its reads return, so
    what a write returns (a clock's moment, a ``run_after``) equals what a read of it returns, zone and all
    (a naive one would be read in some local zone: refused)."""
    if not isinstance(value, datetime):
        raise InvalidInput(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{what} must be timezone-aware (UTC), got {value}, a naive datetime")
    try:
        # fold=0 as a read's: astimezone returns a moment already in UTC as itself, fold=1 and all
        return value.astimezone(UTC).replace(fold=0)  # years 1 to 9999 in UTC too
    except OverflowError:
        raise InvalidInput(f"{what} {value.isoformat()} lies outside the years 1 to 9999 in UTC") from None
