"""Fair floors' decoding: the library's objects built by hand from a bare driver's tuples, as fast as can be.

A fair floor runs the library's SQL text on a bare connection (tuple rows) and returns the same objects the
library returns (``Generation`` with aware UTC datetimes, ``Status`` and decoded metadata; ``Page`` with its
cursor; ``Stats``; ``Prompt``), built positionally with no validation. ``same`` is the check the benchmarks
make before timing: equal, and with the same ``repr`` (so a datetime in another timezone, or a ``str`` for
a ``Status``, fails it).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from musicstore import Generation, Page, Prompt, Stats, Status
from musicstore.models import EPOCH

GENERATION_COLUMNS = (
    "id", "prompt", "model_name", "model_version", "duration_seconds", "sample_rate", "channels", "status",
    "file_path", "file_size_bytes", "created_at", "started_at", "completed_at", "generation_time_seconds",
    "error_message", "attempts", "worker_id", "lease_expires_at", "metadata", "prompt_digest", "storage_url",
    "storage_key", "checksum", "priority", "run_after", "owner_key", "idempotency_key", "progress", "stage",
    "progress_at",
)  # fmt: skip
"""The columns of ``SELECT * FROM generations`` on a database built by the migrations, in order: the fair
floors decode every field a ``Generation`` has (a floor that left the queue's or progress's fields at their
defaults would return other objects for rows that set them)."""
PROMPT_COLUMNS = ("id", "text", "used_count", "first_used_at", "last_used_at")
TOTALS_COLUMNS = (
    "status",
    "generations",
    "file_bytes",
    "generation_micros",
    "audio_micros",
    "prompts",
    "uses",
)
STATUS = {status.value: status for status in Status}
_decode = json.JSONDecoder().raw_decode
_MICRO = timedelta(microseconds=1)

Decode = Callable[[Sequence[Any]], Any]


def check_columns(description: Sequence[Sequence[Any]] | None, expected: tuple[str, ...]) -> None:
    """The positional decoders below read columns by position: the query must return them in this order."""
    got = tuple(column[0] for column in description or ())
    if got[: len(expected)] != expected:
        raise SystemExit(f"fair floor: the query's columns are {got}, the decoder expects {expected}")


def same(library: object, floor: object, what: str) -> None:
    """The floor returned the same object as the library, or the benchmark stops."""
    if library != floor or repr(library) != repr(floor):
        raise SystemExit(f"fair floor of {what} differs from the library:\n  {library!r}\n  {floor!r}")


def _metadata(text: str) -> dict[str, Any]:
    return {} if text == "{}" else _decode(text)[0]


def generation_sqlite(r: Sequence[Any]) -> Generation:
    """A ``generations`` row from bare sqlite3: timestamps are integer µs since the epoch."""
    s, c, lease, at, after = r[11], r[12], r[17], r[29], r[24]
    return Generation(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], STATUS[r[7]], EPOCH + timedelta(0, 0, r[10]), r[8], r[9],
        None if s is None else EPOCH + timedelta(0, 0, s), None if c is None else EPOCH + timedelta(0, 0, c),
        r[13], r[14], r[15], r[16], None if lease is None else EPOCH + timedelta(0, 0, lease),
        _metadata(r[18]), r[27], r[28], None if at is None else EPOCH + timedelta(0, 0, at), r[23],
        None if after is None else EPOCH + timedelta(0, 0, after), r[25], r[26],
    )  # fmt: skip


def generation_postgres(r: Sequence[Any]) -> Generation:
    """A ``generations`` row from bare psycopg on a UTC session: timestamps arrive as aware UTC datetimes."""
    return Generation(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], STATUS[r[7]], r[10], r[8], r[9], r[11], r[12], r[13], r[14],
        r[15], r[16], r[17], _metadata(r[18]), r[27], r[28], r[29], r[23], r[24], r[25], r[26],
    )  # fmt: skip


def generation_postgres_zoned(r: Sequence[Any]) -> Generation:
    """The same on a session in another timezone: each datetime converted to UTC, as the library does."""
    s, c, lease, at, after = r[11], r[12], r[17], r[29], r[24]
    return Generation(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], STATUS[r[7]], r[10].astimezone(UTC), r[8], r[9],
        None if s is None else s.astimezone(UTC), None if c is None else c.astimezone(UTC), r[13], r[14],
        r[15], r[16], None if lease is None else lease.astimezone(UTC), _metadata(r[18]), r[27], r[28],
        None if at is None else at.astimezone(UTC), r[23], None if after is None else after.astimezone(UTC),
        r[25], r[26],
    )  # fmt: skip


def prompt_sqlite(r: Sequence[Any]) -> Prompt:
    return Prompt(r[0], r[1], r[2], EPOCH + timedelta(0, 0, r[3]), EPOCH + timedelta(0, 0, r[4]))


def prompt_postgres(r: Sequence[Any]) -> Prompt:
    """A prompt from bare psycopg on a UTC session."""
    return Prompt(r[0], r[1], r[2], r[3], r[4])


def prompt_postgres_zoned(r: Sequence[Any]) -> Prompt:
    return Prompt(r[0], r[1], r[2], r[3].astimezone(UTC), r[4].astimezone(UTC))


def stats(rows: Sequence[Sequence[Any]]) -> Stats:
    """``Stats`` from the ``totals`` rows (one per status, the prompt totals repeated on each)."""
    by_status = dict.fromkeys(Status, 0)
    file_bytes = generation = audio = 0
    for status, generations, nbytes, micros, audio_micros, _, _ in rows:
        by_status[STATUS[status]] = generations
        file_bytes += nbytes
        if status == "completed":
            generation, audio = micros, audio_micros
    first = rows[0] if rows else (0,) * 7
    return Stats(by_status, file_bytes, generation / 1_000_000, audio / 1_000_000, first[5], first[6])


def count(rows: Sequence[Sequence[Any]], status: str) -> int:
    """One status's count from the ``totals`` rows."""
    for row in rows:
        if row[0] == status:
            return int(row[1])
    return 0


def cursor_of(item: Generation) -> str:
    """The keyset cursor the library hands out for the last item of a full page."""
    micros = (item.created_at - EPOCH) // _MICRO
    return base64.urlsafe_b64encode(f"{micros}:{item.id}".encode()).decode().rstrip("=")


def page(rows: Sequence[Any], limit: int, decode: Callable[[Any], Generation]) -> Page:
    """The library's page from the SQL's ``limit + 1`` rows (the one past the page says whether a next page
    exists), only the page's own rows decoded."""
    items = [decode(row) for row in rows[:limit]]
    return Page(items, cursor_of(items[-1]) if len(rows) > limit else None)


def cursor_bounds(cursor: str) -> tuple[int, str]:
    """A cursor's (created_at µs, id): what the next page's query binds."""
    micros, gid = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(":", 1)
    return int(micros), gid


def as_datetime(micros: int) -> datetime:
    return EPOCH + timedelta(0, 0, micros)
