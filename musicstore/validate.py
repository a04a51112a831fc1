"""Argument checks shared by every operation: a clear InvalidInput before anything reaches the database."""

from __future__ import annotations

import json
import math
from pathlib import PurePosixPath

from .errors import InvalidInput
from .models import Status

MAX_PROMPT_CHARS = 20_000
"""Longest prompt accepted, in characters (a 10 kB prompt is well inside)."""
MAX_NAME_CHARS = 200
"""Longest model name, model version or worker id."""
MAX_METADATA_BYTES = 1 << 20
"""Largest metadata object, as UTF-8 JSON."""
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8_000, 384_000
MAX_CHANNELS = 8
MAX_DURATION_SECONDS = 86_400.0
MAX_PAGE = 10_000
"""Largest page a list returns at once."""


def prompt(value: object) -> str:
    """A prompt is stored verbatim: any script, quotes, emoji; not blank, no NUL, valid UTF-8."""
    if not isinstance(value, str):
        raise InvalidInput(f"prompt must be a str, got {type(value).__name__}")
    if not value.strip():
        raise InvalidInput("prompt is empty or only whitespace; describe the music to generate")
    if len(value) > MAX_PROMPT_CHARS:
        raise InvalidInput(f"prompt has {len(value)} characters; the maximum is {MAX_PROMPT_CHARS}")
    if "\x00" in value:
        raise InvalidInput("prompt contains a NUL character, which databases cannot store in text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"prompt is not valid Unicode text (lone surrogate at {exc.start})") from None
    return value


def name(value: object, what: str, *, optional: bool = False) -> str | None:
    """A short identifier such as a model name, model version or worker id."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} must be a non-empty str, got {value!r}")
    if len(value) > MAX_NAME_CHARS or "\x00" in value:
        raise InvalidInput(f"{what} must be at most {MAX_NAME_CHARS} characters without NUL")
    return value


def integer(value: object, what: str, low: int, high: int | None = None) -> int:
    """An int (not a bool, not a float) within [low, high]."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"{what} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidInput(f"{what} must be {bounds}, got {value}")
    return value


def number(value: object, what: str, *, positive: bool, high: float | None = None) -> float:
    """A finite real number, > 0 (``positive``) or >= 0, at most ``high``."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidInput(f"{what} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        raise InvalidInput(f"{what} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    if high is not None and number > high:
        raise InvalidInput(f"{what} must be at most {high}, got {value!r}")
    return number


def sample_rate(value: object) -> int:
    return integer(value, "sample_rate (Hz)", MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)


def channels(value: object) -> int:
    return integer(value, "channels", 1, MAX_CHANNELS)


def duration(value: object) -> float:
    return number(value, "duration_seconds", positive=True, high=MAX_DURATION_SECONDS)


def status(value: object) -> Status:
    """A Status, or its string value."""
    try:
        return Status(value)  # type: ignore[arg-type]
    except ValueError:
        valid = ", ".join(s.value for s in Status)
        raise InvalidInput(f"unknown status {value!r}; valid statuses are {valid}") from None


def metadata(value: object, *, checked: bool = False) -> str:
    """Encode a metadata object as compact JSON; it must read back equal (str keys, no tuples, no NaN).

    ``checked=True``: every value was already checked (e.g. a merge of checked dicts); only encode and size.
    """
    if not isinstance(value, dict):
        raise InvalidInput(f"metadata must be a dict (a JSON object), got {type(value).__name__}")
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"metadata is not JSON-serialisable: {exc}") from None
    if len(text) > MAX_METADATA_BYTES:
        raise InvalidInput(f"metadata is {len(text)} characters as JSON; the maximum is {MAX_METADATA_BYTES}")
    if value and not checked and json.loads(text) != value:
        raise InvalidInput(
            "metadata would not read back unchanged: use str keys, lists rather than tuples, "
            "and JSON types only"
        )
    return text


def relative_path(value: object) -> str:
    """A file path relative to the output root that cannot leave it."""
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InvalidInput(f"file_path must be a non-empty str, got {value!r}")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or "\\" in value:
        raise InvalidInput(f"file_path must be relative to the output root without '..', got {value!r}")
    return value


def page(limit: object, offset: object) -> tuple[int, int]:
    return integer(limit, "limit", 1, MAX_PAGE), integer(offset, "offset", 0)
