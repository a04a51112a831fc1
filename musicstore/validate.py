"""Argument checks shared by every operation: a clear InvalidInput before anything reaches the database.

One checker per kind of value (text, name, integer, number, flag, metadata, path, moment...), each
refusing the wrong type as well as the wrong range, so no value reaches a driver that could raise its own
error or store it coerced. ``bool`` is not accepted where an int or a number is expected, nor is an int
where a bool is.
"""

from __future__ import annotations

import json
import json.encoder
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, TypeGuard

from .errors import InvalidInput, shown
from .masking import redact
from .models import Generation, Prompt, Status

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
    """An int (not a bool, not a float) within [low, high]; ``high`` is at most a 64-bit integer's."""
    if type(value) is int and low <= value <= high:
        return value
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"{what} must be an integer, got {shown(value)}")
    if value < low or value > high:
        raise InvalidInput(f"{what} must be between {low} and {high}, got {shown(value)}")
    return int(value)


def number(value: object, what: str, *, positive: bool, high: float | None = None) -> float:
    """A finite real number (int or float, not bool), > 0 (``positive``) or >= 0, at most ``high``, as a
    float; -0.0 as 0.0 (SQLite reads a stored -0.0 back as 0.0, PostgreSQL as -0.0: one value on both)."""
    if (
        (type(value) is float or type(value) is int)
        and high is not None
        and 0 <= value <= high  # not NaN
        and (value or not positive)
    ):
        return float(value) or 0.0  # within [0, high]: finite, no overflow; -0.0 as 0.0
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidInput(f"{what} must be a number, got {shown(value)}")
    try:
        real = float(value)
    except OverflowError:
        real = math.inf
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
        return Status(value)  # type: ignore[arg-type]
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
        raise InvalidInput(f"{what} must be timezone-aware (UTC), got the naive {value!r}")
    try:
        # fold=0 as a read's: astimezone returns a moment already in UTC as itself, fold=1 and all
        return value.astimezone(UTC).replace(fold=0)  # years 1 to 9999 in UTC too
    except OverflowError:
        raise InvalidInput(f"{what} {value.isoformat()} lies outside the years 1 to 9999 in UTC") from None


def _json_value(value: object, where: str, depth: int) -> None:
    """Raise InvalidInput unless ``value`` is JSON that reads back equal, within the depth limit."""
    if isinstance(value, str):
        text(value, f"metadata{where}", max_chars=MAX_METADATA_BYTES)
    elif value is None or isinstance(value, bool):
        pass
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidInput(f"metadata{where} is an integer beyond 64 bits; store it as a string")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"metadata{where} is {value!r}; JSON holds only finite numbers")
    elif isinstance(value, dict | list):
        if depth >= MAX_METADATA_DEPTH:
            raise InvalidInput(f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels")
        if isinstance(value, list):
            for index, item in enumerate(value):
                _json_value(item, f"{where}[{index}]", depth + 1)
            return
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(
                    f"metadata{where} has the key {shown(key)}; keys must be str "
                    "(JSON would read back a str key)"
                )
            text(key, f"a metadata{where} key", max_chars=MAX_METADATA_BYTES)
            _json_value(item, f"{where}[{key[:40]!r}]", depth + 1)
    else:
        raise InvalidInput(
            f"metadata{where} is a {type(value).__name__}; use JSON types only (dict with str keys, list, "
            "str, int, finite float, bool, None): a tuple, set, bytes or object would not read back unchanged"
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
    """Encode a metadata object as compact JSON; it must read back equal (str keys, no tuples, no NaN).

    ``checked=True``: every value was already checked (e.g. a merge of checked dicts); only encode and size.
    """
    if not isinstance(value, dict):
        raise _not_a_dict(value)
    if not checked and _plain_size(value, 1) < 0:
        _json_value(value, "", 1)
    encoded = _ENCODE(value)
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


def check_metadata(value: object) -> None:
    """``metadata``'s checks without its encoding when it is not needed: raise what ``metadata(value)``
    raises, else return (its JSON is encoded only when its size may exceed the limit)."""
    if not isinstance(value, dict):
        raise _not_a_dict(value)
    bound = _plain_size(value, 1)
    if bound < 0 or bound > MAX_METADATA_BYTES:
        metadata(value)


def relative_path(value: object) -> str:
    """A file path relative to the output root that cannot leave it, in canonical form: ``.`` and empty
    segments dropped (``./a//b.wav`` is stored as ``a/b.wav``, the form maintenance compares); at most
    ``MAX_PATH_BYTES`` UTF-8 bytes (an S3 key's limit). A folder or file name is not held to a file system's
    255 bytes here (a bucket's key takes more; 0.1 took a 1,018-character name): a local store refuses one
    before it writes (``filestore.folder``)."""
    if (
        type(value) is str
        and value
        and len(value) <= MAX_PATH_BYTES  # ASCII: a character is a byte
        and value.isascii()
        and "\x00" not in value
        and "\\" not in value
        and value[0] != "/"
    ):
        parts = value.split("/")
        if "" not in parts and "." not in parts and ".." not in parts:
            return value  # relative, already canonical: what ``PurePosixPath(value).as_posix()`` gives
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"file_path must be a non-empty str, got {shown(value)}")
    text(value, "file_path", max_chars=len(value))  # a str without NUL or lone surrogate; its size, in bytes:
    size = len(value) if value.isascii() else len(value.encode("utf-8"))
    if size > MAX_PATH_BYTES:
        raise InvalidInput(
            f"file_path is {size:,} bytes as UTF-8 ({len(value):,} characters); the maximum is "
            f"{MAX_PATH_BYTES:,} bytes (an S3 key's limit)"
        )
    path = PurePosixPath(value)
    if "\\" in value:
        raise InvalidInput(f"file_path must separate folders with '/', not '\\', got {shown(value)}")
    if path.is_absolute() or ".." in path.parts:
        raise InvalidInput(f"file_path must be relative to the output root without '..', got {shown(value)}")
    if not path.parts:
        raise InvalidInput(
            f"file_path must name a file under the output root, not the root, got {shown(value)}"
        )
    return path.as_posix()


def imported_prompt(row: Prompt) -> str:
    """A prompt's text read from another store (``copy_store``, ``import_rows``), checked as
    ``create_generation`` checks it; the message names the row."""
    try:
        return prompt(row.text)
    except InvalidInput as exc:
        raise InvalidInput(f"prompt {shown(row.id)}: {exc}") from None


def imported_generation(row: Generation) -> str | None:
    """The text fields of a generation read from another store, checked as the operations that write them
    check them (create, claim, fail, cancel, complete); the message names the row and the field (an old
    SQLite row may hold a NUL, which PostgreSQL cannot store in text). Returns the canonical ``file_path``."""
    try:
        text(row.id, "id", max_chars=MAX_NAME_CHARS, blank=False)
        prompt(row.prompt)
        name(row.model_name, "model_name")
        name(row.model_version, "model_version", optional=True)
        name(row.worker_id, "worker_id", optional=True)
        message(row.error_message, "error_message", optional=True)
        name(row.owner_key, "owner_key", optional=True)
        _stored_text({"stage": row.stage, "idempotency_key": row.idempotency_key})
        metadata(row.metadata)
        return None if row.file_path is None else relative_path(row.file_path)
    except InvalidInput as exc:
        raise InvalidInput(f"generation {shown(row.id)}: {exc}") from None


def imported_text(kind: str, row_id: object, values: dict[str, object]) -> None:
    """The text fields of another row read from another store (a rendition, where a generation's file
    lives, an owner key's limit): each None or a str the databases store as it is (no NUL, which PostgreSQL
    cannot store in text; no lone surrogate); the message names the row and the field."""
    try:
        _stored_text(values)
    except InvalidInput as exc:
        raise InvalidInput(f"{kind} {shown(row_id)}: {exc}") from None


def _stored_text(values: dict[str, object]) -> None:
    """Each of ``values`` None or text the databases store (any length: the schema bounds lengths)."""
    for what, value in values.items():
        if value is not None:
            text(value, what, max_chars=1 << 62)


def page(limit: object, offset: object) -> tuple[int, int]:
    return integer(limit, "limit", 1, MAX_PAGE), integer(offset, "offset", 0)


def database_url(url: object) -> None:
    """A database URL argument: None (the environment's, else the default) or a non-empty str without NUL;
    the URL is never echoed (it may hold a password). An empty one (an unset variable's value) is refused,
    as the CLI's ``-d ""`` is, never read as "the default": that wrote to a local SQLite file instead."""
    if url is not None and (not isinstance(url, str) or "\x00" in url):
        raise InvalidInput(f"the database URL must be a str without NUL, got a {type(url).__name__}")
    if url is not None and not url.strip():
        raise InvalidInput(
            "the database URL is empty; pass None for $MUSICSTORE_DATABASE_URL, else the default "
            "sqlite:///data/generations.db"
        )


def store_options(url: object, busy_timeout: object, pool_size: object, clock: object) -> None:
    """The arguments of ``Store`` and ``AsyncStore``; the URL is never echoed (it may hold a password)."""
    database_url(url)
    number(busy_timeout, "busy_timeout", positive=False, high=MAX_BUSY_TIMEOUT)
    integer(pool_size, "pool_size", 1, MAX_POOL_SIZE)
    if not callable(clock):
        raise InvalidInput(
            f"clock must be a callable returning an aware datetime, got {type(clock).__name__}"
        )
