"""Plain dataclasses for rows, built from named columns; the status machine's vocabulary."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

Row = Mapping[str, Any]
"""A database row addressed by column name (sqlite3.Row, psycopg dict_row)."""


class Status(StrEnum):
    """Where a generation stands. ``pending → processing → completed | failed``, ``pending|processing →
    cancelled``, ``processing → pending`` (retry or expired lease)."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """No transition leaves this status."""
        return self in _TERMINAL


_TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})
_STATUS = {status.value: status for status in Status}

TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.PROCESSING, Status.CANCELLED}),
    Status.PROCESSING: frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.PENDING}),
    Status.COMPLETED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
}
"""The status machine: the statuses each status may change to."""


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
        if value.startswith("{") and value.endswith(
            "}"
        ):  # as the library writes it: skip json.loads's checks
            return dict(_raw_decode(value)[0])
        return dict(json.loads(value))
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

    @classmethod
    def from_row(cls, row: Row) -> Generation:
        """Build from a row of ``generations`` by column name."""
        started_at, completed_at, lease = row["started_at"], row["completed_at"], row["lease_expires_at"]
        return cls(  # positional, in field order: the hottest constructor of every read
            row["id"],
            row["prompt"],
            row["model_name"],
            row["model_version"],
            row["duration_seconds"],
            row["sample_rate"],
            row["channels"],
            _STATUS[row["status"]],
            to_datetime(row["created_at"]),
            row["file_path"],
            row["file_size_bytes"],
            None if started_at is None else to_datetime(started_at),
            None if completed_at is None else to_datetime(completed_at),
            row["generation_time_seconds"],
            row["error_message"],
            row["attempts"],
            row["worker_id"],
            None if lease is None else to_datetime(lease),
            _metadata(row["metadata"]),
        )

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
        """Processing, and its worker's lease ran out before ``now``."""
        return self.lease_expires_at is not None and self.is_processing and self.lease_expires_at <= now


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
        return cls(
            id=row["id"],
            text=row["text"],
            used_count=row["used_count"],
            first_used_at=to_datetime(row["first_used_at"]),
            last_used_at=to_datetime(row["last_used_at"]),
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
    def from_rows(cls, rows: list[Row]) -> Stats:
        """Build from the ``totals`` query: one row per status, prompt totals repeated on each."""
        by_status = {status: 0 for status in Status}
        file_bytes, generation_micros, audio_micros = 0, 0, 0
        for row in rows:
            status = _STATUS[row["status"]]
            by_status[status] = row["generations"]
            file_bytes += row["file_bytes"]
            if status is Status.COMPLETED:
                generation_micros = row["generation_micros"]
                audio_micros = row["audio_micros"]
        return cls(
            by_status=by_status,
            total_file_bytes=file_bytes,
            total_generation_seconds=generation_micros / MICROS_PER_SECOND,
            completed_audio_seconds=audio_micros / MICROS_PER_SECOND,
            unique_prompts=rows[0]["prompts"] if rows else 0,
            prompt_uses=rows[0]["uses"] if rows else 0,
        )


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a newest-first list, and the cursor that continues it (None on the last page)."""

    items: list[Generation]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Requeued:
    """What ``requeue_expired`` did: ids put back in the queue, ids failed for good."""

    requeued: list[str]
    failed: list[str]
