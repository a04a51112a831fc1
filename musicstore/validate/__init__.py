"""Argument checks shared by every operation: a clear InvalidInput before anything reaches the database.

One checker per kind of value (text, name, integer, number, flag, metadata, path, moment...), each
refusing the wrong type as well as the wrong range, so no value reaches a driver that could raise its own
error or store it coerced. ``bool`` is not accepted where an int or a number is expected, nor is an int
where a bool is.
"""

from __future__ import annotations

import math
from pathlib import PurePosixPath

from ..errors import InvalidInput, shown
from ..models import Generation, Prompt
from .metadata_checks import (
    _json_value,
    _plain_size,
    check_metadata,
    metadata,
    plain_metadata,
    stored_metadata,
)
from .paths import NAME_MAX_BYTES, PATH_MAX_BYTES, os_path
from .values import (
    INT64_MAX,
    INT64_MIN,
    MAX_BUSY_TIMEOUT,
    MAX_CHANNELS,
    MAX_DURATION_SECONDS,
    MAX_FILE_BYTES,
    MAX_MESSAGE_CHARS,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_NAME_CHARS,
    MAX_PAGE,
    MAX_PATH_BYTES,
    MAX_PATH_CHARS,
    MAX_POOL_SIZE,
    MAX_PROMPT_CHARS,
    MAX_SAMPLE_RATE,
    MAX_SECONDS,
    MIN_SAMPLE_RATE,
    callback,
    channels,
    duration,
    file_size,
    flag,
    integer,
    message,
    moment,
    name,
    number,
    prompt,
    real_number,
    sample_rate,
    seconds,
    status,
    text,
    whole_number,
)


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
        _finite(
            {
                "duration_seconds": row.duration_seconds,
                "generation_time_seconds": row.generation_time_seconds,
                "progress": row.progress,
            }
        )
        metadata(row.metadata)
        return None if row.file_path is None else relative_path(row.file_path)
    except InvalidInput as exc:
        raise InvalidInput(f"generation {shown(row.id)}: {exc}") from None


def imported(
    kind: str, row_id: object, text: dict[str, object], numbers: dict[str, object] | None = None
) -> None:
    """The fields of another row read from another store (a rendition, where a generation's file lives, an
    owner key's limit): each text field None or a str the databases store as it is (no NUL, which
    PostgreSQL cannot store in text; no lone surrogate), each float field as ``_finite`` checks it; the
    message names the row and the field."""
    try:
        _stored_text(text)
        _finite(numbers or {})
    except InvalidInput as exc:
        raise InvalidInput(f"{kind} {shown(row_id)}: {exc}") from None


def _finite(values: dict[str, object]) -> None:
    """Each of ``values`` (float columns of a row read from another store) None or no float NaN or infinity:
    SQLite would store NULL for a NaN (in a NOT NULL column: a constraint's error naming no NaN), PostgreSQL
    a NaN where a CHECK such as ``quality >= 0`` accepts one (migration 0027 refuses it there too)."""
    for what, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(f"{what} must be a finite number, got {value!r}")


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


def store_options(url: object, busy_timeout: object, pool_size: object, clock: object) -> tuple[float, int]:
    """The arguments of ``Store`` and ``AsyncStore``; the URL is never echoed (it may hold a password). The
    busy timeout and the pool size as a plain float and int (numpy's numbers too)."""
    database_url(url)
    timeout = number(busy_timeout, "busy_timeout", positive=False, high=MAX_BUSY_TIMEOUT)
    size = integer(pool_size, "pool_size", 1, MAX_POOL_SIZE)
    if not callable(clock):
        raise InvalidInput(
            f"clock must be a callable returning an aware datetime, got {type(clock).__name__}"
        )
    return timeout, size


__all__ = [  # with the checkers of one value and of metadata, which live in values.py and metadata_checks.py
    "INT64_MAX",
    "INT64_MIN",
    "MAX_BUSY_TIMEOUT",
    "MAX_CHANNELS",
    "MAX_DURATION_SECONDS",
    "MAX_FILE_BYTES",
    "MAX_MESSAGE_CHARS",
    "MAX_METADATA_BYTES",
    "MAX_METADATA_DEPTH",
    "MAX_NAME_CHARS",
    "MAX_PAGE",
    "MAX_PATH_BYTES",
    "MAX_PATH_CHARS",
    "MAX_POOL_SIZE",
    "MAX_PROMPT_CHARS",
    "MAX_SAMPLE_RATE",
    "MAX_SECONDS",
    "MIN_SAMPLE_RATE",
    "NAME_MAX_BYTES",
    "PATH_MAX_BYTES",
    "_json_value",
    "_plain_size",
    "callback",
    "channels",
    "check_metadata",
    "database_url",
    "duration",
    "file_size",
    "flag",
    "imported",
    "imported_generation",
    "imported_prompt",
    "integer",
    "message",
    "metadata",
    "moment",
    "name",
    "number",
    "os_path",
    "page",
    "plain_metadata",
    "prompt",
    "real_number",
    "relative_path",
    "sample_rate",
    "seconds",
    "status",
    "store_options",
    "stored_metadata",
    "text",
    "whole_number",
]
