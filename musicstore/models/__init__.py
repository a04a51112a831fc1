"""Plain dataclasses for rows and how to build them from a query's columns; the status machine's vocabulary
(``Status``, ``TRANSITIONS``), which lives in ``models.status``, re-exported here.

A query's rows arrive as tuples. A *row reader* (``RowReader``) is given the query's column names once (its
cursor description) and returns the function that builds one object from one tuple by position:
``Generation.reader``, ``Prompt.reader``, ``columns(...)`` (chosen columns as a tuple) and ``as_dict`` (a
dict by column name, for queries an operation reads by name).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any, TypeVar

from ..errors import DatabaseError, InvalidInput, shown
from .queue import QueueDepth, QueueLevel, Requeued, RetryPolicy
from .status import _STATUS, TRANSITIONS, Status, status_of

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

Row = Mapping[str, Any]
"""A database row addressed by column name."""
R = TypeVar("R")
RowReader = Callable[[Sequence[str]], Callable[[Sequence[Any]], R]]
"""Given a query's column names, the function that builds one object (an ``R``) from one of its rows."""


def as_dict(names: Sequence[str]) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """Rows as dicts by column name."""
    keys = tuple(names)
    return lambda row: dict(zip(keys, row, strict=True))


def columns(*wanted: str) -> RowReader[tuple[Any, ...]]:
    """A row reader that picks these columns, in this order, as a tuple."""

    def reader(names: Sequence[str]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
        where = [list(names).index(name) for name in wanted]
        if where == list(range(len(names))):
            return tuple
        if len(where) == 1:
            return lambda row: (row[where[0]],)
        return itemgetter(*where)

    return reader


def to_micros(moment: datetime) -> int:
    """Encode an aware datetime as integer microseconds since the Unix epoch (exact)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: musicstore stores UTC, pass an aware datetime")
    return (moment - EPOCH) // _MICROSECOND


def to_datetime(value: int | datetime) -> datetime:
    """Decode a stored timestamp (integer microseconds, or a driver's aware datetime) as aware UTC."""
    if isinstance(value, int):
        return EPOCH + timedelta(0, 0, value)
    return value.astimezone(UTC)


_raw_decode = json.JSONDecoder().raw_decode


def _metadata(value: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, str):
        if value == "{}":
            return {}
        try:
            if value.startswith("{") and value.endswith("}"):  # as the schema keeps it: raw_decode alone
                decoded = _raw_decode(value)
                if decoded[1] == len(value):  # one object, nothing after it: a new dict of its own
                    return decoded[0]  # type: ignore[no-any-return]
            found = json.loads(value)  # not as the schema keeps it: checked whole
            if not isinstance(found, dict):  # dict() made one of an array of pairs, [] or ""
                raise TypeError(f"JSON {type(found).__name__}")
            return found
        except (ValueError, TypeError, RecursionError) as exc:  # the schema keeps an object: damaged bytes
            raise DatabaseError(
                f"a row's metadata is not a JSON object ({type(exc).__name__}: {exc}): the database file is "
                "damaged (restore a backup)"
            ) from None
    return dict(value)


@dataclass(slots=True)
class Generation:
    """One requested piece of audio and everything recorded about it: a snapshot of its row when read."""

    id: str
    prompt: str
    model_name: str
    model_version: str | None
    duration_seconds: float
    sample_rate: int
    channels: int
    status: Status
    created_at: datetime
    file_path: str | None = None
    file_size_bytes: int | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    generation_time_seconds: float | None = None
    error_message: str | None = None
    attempts: int = 0
    worker_id: str | None = None
    lease_expires_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    progress: float | None = None
    """The fraction done (0 to 1) its worker last reported (``Store.report_progress``); None before."""
    stage: str | None = None
    """The stage its worker last reported (a short label such as ``"sampling"``)."""
    progress_at: datetime | None = None
    """When the worker wrote ``progress`` and ``stage`` (reports in between are coalesced away)."""
    priority: int = 0
    """Higher is claimed first (-32768 to 32767); ties go by ``created_at``, then ``id``."""
    run_after: datetime | None = None
    """Not claimed before this moment (None: at once); a retry sets it to the end of its backoff."""
    owner_key: str | None = None
    """The user or tenant it runs for: claims are fair across keys and a key's limit caps its running jobs."""
    idempotency_key: str | None = None
    """Unique among all generations: creating with it again returns this generation."""

    @classmethod
    def from_row(cls, row: Row) -> Generation:
        """Build from a row of ``generations`` addressed by column name."""
        return _generation(tuple(row[name] for name in _GENERATION_FIELDS))

    @staticmethod
    def reader(names: Sequence[str]) -> Callable[[Sequence[Any]], Generation]:
        """The row reader of ``generations`` rows with these columns (``SELECT *``, ``RETURNING *``): one
        function that reads each field at its column's position (``_positional_reader``)."""
        return _positional_reader(names)

    @property
    def is_pending(self) -> bool:
        return self.status is Status.PENDING

    @property
    def is_processing(self) -> bool:
        return self.status is Status.PROCESSING

    @property
    def is_completed(self) -> bool:
        return self.status is Status.COMPLETED

    @property
    def is_failed(self) -> bool:
        return self.status is Status.FAILED

    @property
    def is_cancelled(self) -> bool:
        return self.status is Status.CANCELLED

    @property
    def is_finished(self) -> bool:
        """Completed, failed or cancelled: nothing will change it any more."""
        return self.status.is_terminal

    def lease_expired(self, now: datetime) -> bool:
        """Processing, and its worker's lease ran out before ``now`` (a timezone-aware datetime)."""
        if not isinstance(now, datetime) or now.utcoffset() is None:
            raise InvalidInput(f"now must be a timezone-aware datetime, got {shown(now)}")
        return self.lease_expires_at is not None and self.is_processing and self.lease_expires_at <= now


_GENERATION_FIELDS = tuple(Generation.__dataclass_fields__)
_TIMESTAMPS = frozenset(
    {"created_at", "started_at", "completed_at", "lease_expires_at", "progress_at", "run_after"}
)
"""The fields stored as timestamps (integer µs on SQLite, timestamptz on PostgreSQL); only created_at is
never NULL."""
_REALS = frozenset({"duration_seconds", "generation_time_seconds", "progress"})
"""The fields stored as REAL / double precision, read as float: SQLite (3.40) hands an integral one over as
an int from an ``UPDATE ... RETURNING`` (a claim's row), where a SELECT gives a float; only duration_seconds
is never NULL."""


def _real(value: float | None) -> float | None:
    """A stored REAL as a float (None as None)."""
    return value if value is None or value.__class__ is float else float(value)


def repeating_reader(*kept: str) -> RowReader[Generation]:
    """``Generation.reader`` for rows that repeat the timestamps ``kept`` from one row to the next (a claim
    batch's start and lease end): the datetime last decoded for each is given again for the same stored
    value (SQLite's integer µs; datetimes are immutable), not made again."""
    fields = frozenset(kept)
    return lambda names: _positional_reader(names, fields)


def _positional_reader(
    names: Sequence[str], kept: frozenset[str] = frozenset()
) -> Callable[[Sequence[Any]], Generation]:
    """A function built for these columns that makes a ``Generation`` of a row (a tuple) by position.

    The hot constructor of every read: each field is the row's item at its column's position, the status
    looked up, the metadata decoded, each timestamp decoded inline as ``to_datetime`` would (integer µs
    on SQLite; an aware datetime on PostgreSQL, kept as is when already in UTC), and each REAL a float
    (``_REALS``). Its source is made here
    from the column positions alone (as ``dataclasses`` makes ``__init__``), so it does no per-row look-up
    of names or positions.
    """
    where = {name: i for i, name in enumerate(names)}
    missing = [name for name in _GENERATION_FIELDS if name not in where]
    if missing:
        raise ValueError(f"a generations row lacks the columns {', '.join(missing)}")
    lines, args = ["def build(r):"], []
    for name in _GENERATION_FIELDS:
        at = where[name]
        if name in kept:  # the last (value, datetime) in a one-item list, replaced whole (threads)
            lines += [
                f"    {name} = r[{at}]",
                f"    if {name}.__class__ is int:",
                f"        last = _K_{name}[0]",
                f"        if {name} != last[0]:",
                f"            last = _K_{name}[0] = ({name}, _E + _T(0, 0, {name}))",
                f"        {name} = last[1]",
                f"    elif {name} is not None:",
                f"        {name} = _Z({name})",
            ]
            args.append(name)
        elif name in _TIMESTAMPS:
            lines.append(f"    {name} = r[{at}]")
            value = f"(_E + _T(0, 0, {name}) if {name}.__class__ is int else _Z({name}))"
            args.append(value if name == "created_at" else f"None if {name} is None else {value}")
        elif name in _REALS:
            lines.append(f"    {name} = r[{at}]")
            value = f"({name} if {name}.__class__ is float else float({name}))"
            args.append(value if name == "duration_seconds" else f"None if {name} is None else {value}")
        elif name == "status":  # one a later musicstore wrote: MigrationError (no cost while it is known)
            lines += [f"    try:\n        status = _S[r[{at}]]", f"    except KeyError:\n        _U(r[{at}])"]
            args.append("status")
        elif name == "metadata":
            lines.append(f"    metadata = r[{at}]")
            args.append("{} if metadata == '{}' else _M(metadata)")
        else:
            args.append(f"r[{at}]")
    lines.append(f"    return _G({', '.join(args)})")
    scope = {"_E": EPOCH, "_T": timedelta, "_Z": _utc, "_S": _STATUS, "_U": status_of, "_M": _metadata}
    scope["_G"] = Generation
    scope.update({f"_K_{name}": [(None, None)] for name in kept})
    exec("\n".join(lines), scope)  # the source made above from column positions alone: no input text
    build: Callable[[Sequence[Any]], Generation] = scope["build"]  # type: ignore[assignment]
    return build


def _utc(value: datetime) -> datetime:
    """A driver's aware datetime in UTC (the same object when it is already)."""
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _generation(values: tuple[Any, ...]) -> Generation:
    """A ``Generation`` from its stored column values in field order (the hot constructor of every read)."""
    (
        id_, prompt, model_name, model_version, duration, sample_rate, channels, status, created_at,
        file_path, file_size, started_at, completed_at, generation_time, error, attempts, worker, lease,
        metadata, progress, stage, progress_at, priority, run_after, owner_key,
        idempotency_key,
    ) = values  # fmt: skip
    return Generation(
        id_,
        prompt,
        model_name,
        model_version,
        duration if duration.__class__ is float else float(duration),
        sample_rate,
        channels,
        status_of(status),
        to_datetime(created_at),
        file_path,
        file_size,
        None if started_at is None else to_datetime(started_at),
        None if completed_at is None else to_datetime(completed_at),
        _real(generation_time),
        error,
        attempts,
        worker,
        None if lease is None else to_datetime(lease),
        _metadata(metadata),
        _real(progress),
        stage,
        None if progress_at is None else to_datetime(progress_at),
        priority,
        None if run_after is None else to_datetime(run_after),
        owner_key,
        idempotency_key,
    )


def prompt_digest(text: str) -> bytes:
    """The key prompts are unique by: SHA-256 of the text's UTF-8 bytes (32 bytes; texts are compared too)."""
    return hashlib.sha256(text.encode("utf-8")).digest()


MICROS_PER_SECOND = 1_000_000
"""Totals of seconds are kept as integer microseconds (each row's value rounded), so they never drift."""


@dataclass(frozen=True, slots=True)
class Prompt:
    """A distinct prompt text and its usage."""

    id: int
    text: str
    used_count: int
    first_used_at: datetime
    last_used_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> Prompt:
        """Build from a row of ``prompts`` addressed by column name."""
        return _prompt(tuple(row[name] for name in _PROMPT_FIELDS))

    @staticmethod
    def reader(names: Sequence[str]) -> Callable[[Sequence[Any]], Prompt]:
        """The row reader of ``prompts`` rows with these columns."""
        where = [list(names).index(name) for name in _PROMPT_FIELDS]
        if where == list(range(len(names))):  # the columns of the prompts queries, in field order
            return _prompt
        pick = itemgetter(*where)
        return lambda row: _prompt(pick(row))


_PROMPT_FIELDS = ("id", "text", "used_count", "first_used_at", "last_used_at")


def _prompt(values: Sequence[Any]) -> Prompt:
    """A ``Prompt`` from its stored column values in field order, each timestamp decoded inline as
    ``to_datetime`` would (integer µs on SQLite; a driver's aware datetime, in UTC)."""
    id_, text, used_count, first, last = values
    return Prompt(
        id_,
        text,
        used_count,
        EPOCH + timedelta(0, 0, first) if first.__class__ is int else _utc(first),
        EPOCH + timedelta(0, 0, last) if last.__class__ is int else _utc(last),
    )


@dataclass(frozen=True, slots=True)
class Stats:
    """Store-wide figures, read from running totals (constant time at any size).

    Each total equals a recount of the rows. Seconds are sums of each row's value rounded to the microsecond
    (the totals are integer microseconds), converted to float seconds here.
    """

    by_status: dict[Status, int]
    total_file_bytes: int
    total_generation_seconds: float
    completed_audio_seconds: float
    unique_prompts: int
    prompt_uses: int

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def average_generation_seconds(self) -> float | None:
        """Mean generation time of completed generations (None before the first)."""
        done = self.by_status[Status.COMPLETED]
        return self.total_generation_seconds / done if done else None

    @classmethod
    def from_rows(cls, rows: Sequence[Row]) -> Stats:
        """Build from the ``totals`` query's rows addressed by column name."""
        return cls.from_totals([tuple(row[name] for name in TOTALS_COLUMNS) for row in rows])

    @classmethod
    def from_totals(cls, rows: Sequence[Sequence[Any]]) -> Stats:
        """Build from ``totals`` rows (``TOTALS_COLUMNS``): one per status, the prompt totals on each."""
        by_status = dict.fromkeys(Status, 0)
        file_bytes, generation_micros, audio_micros = 0, 0, 0
        for status_value, generations, status_bytes, status_generation, status_audio, _, _ in rows:
            status = status_of(status_value)
            by_status[status] = generations
            file_bytes += status_bytes
            if status is Status.COMPLETED:
                generation_micros, audio_micros = status_generation, status_audio
        return cls(
            by_status,
            file_bytes,
            generation_micros / MICROS_PER_SECOND,
            audio_micros / MICROS_PER_SECOND,
            rows[0][5] if rows else 0,
            rows[0][6] if rows else 0,
        )


TOTALS_COLUMNS = (
    *("status", "generations", "file_bytes", "generation_micros", "audio_micros"),
    *("prompts", "uses"),
)
"""The ``totals`` query's columns, in the order ``Stats.from_totals`` reads them."""

EXPORT_METADATA = frozenset(
    {
        *("sample_rate", "channels", "frames", "duration_seconds", "format", "subtype", "peaks"),
        *("loudness_before_lufs", "loudness_lufs", "true_peak_dbtp", "sample_peak_dbfs", "gain_db"),
        *("limiter_max_reduction_db", "limiter_fraction", "target_reached", "loudness_status"),
        *("short_clip", "clipped_samples"),
    }
)
"""The metadata names an export writes into its generation's as it completes it (``ExportResult.as_metadata``
and, where it makes them, the ``peaks`` file's record), over a request's own value under one: an idempotent
retry of a completed request does not compare them (``ops.creation``). A request's own ``peaks`` that an
export with ``peaks=False`` leaves is not a record: the dashboard reads only a file of the generation's own
(``web.audio_peaks``), as maintenance does."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a newest-first list, and the cursor that continues it (None on the last page)."""

    items: list[Generation]
    next_cursor: str | None


__all__ = [  # with the queue's figures and RetryPolicy, which live in models/queue.py
    "EPOCH",
    "EXPORT_METADATA",
    "MICROS_PER_SECOND",
    "TOTALS_COLUMNS",
    "TRANSITIONS",
    "Generation",
    "Page",
    "Prompt",
    "QueueDepth",
    "QueueLevel",
    "Requeued",
    "RetryPolicy",
    "Row",
    "RowReader",
    "Stats",
    "Status",
    "as_dict",
    "columns",
    "prompt_digest",
    "repeating_reader",
    "to_datetime",
    "to_micros",
]
