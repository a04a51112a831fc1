"""The reading operations on generations: one by id, pages, the queue, counts and statistics."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .. import validate
from ..errors import InvalidInput, shown
from ..ids import check_id
from ..models import TOTALS_COLUMNS, Generation, Page, Stats, Status, columns, to_datetime, to_micros
from .steps import NOW, Call, Params, Plan, Steps, reader, reads_all, reads_one, reads_planned

GENERATION = Generation.reader
"""Rows of ``generations`` as ``Generation`` objects."""
TOTALS = columns(*TOTALS_COLUMNS)
"""Rows of the ``totals`` query as the tuples ``Stats.from_totals`` reads."""

FIRST_PAGE = (datetime.max.replace(tzinfo=UTC), "z")
"""The first page's cursor: after every row. "z" sorts after every id (lower-case hex digits and hyphens) in
byte order and in a locale's collation (ICU, glibc) alike, where a symbol such as "~" sorts before digits."""


@reads_one("get_generation", GENERATION)
def get_generation(generation_id: str) -> Params:
    """The generation with this id, or None if there is none."""
    return {"id": check_id(generation_id)}


def encode_cursor(created_at: datetime, generation_id: str) -> str:
    """A keyset cursor: the (created_at, id) of the last row of a page, below which the next page starts."""
    raw = f"{to_micros(created_at)}:{generation_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str] | None:
    """The (created_at, id) of a cursor ``encode_cursor`` made; None for any other text (one that decodes to
    the same values but is written otherwise, `` 12:…`` or ``+12:…``, included: it is encoded again and
    compared)."""
    if len(cursor) > 200:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, generation_id = raw.split(":", 1)
        found = to_datetime(int(micros)), check_id(generation_id)
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError, InvalidInput):
        return None
    return found if encode_cursor(*found) == cursor else None


def _decode_cursor(cursor: str | None) -> tuple[datetime, str]:
    if cursor is None:
        return FIRST_PAGE
    if not isinstance(cursor, str):
        raise InvalidInput(
            f"cursor must be None or a str this store handed out (Page.next_cursor), got {shown(cursor)}"
        )
    found = decode_cursor(cursor)
    if found is None:
        raise InvalidInput(f"cursor {shown(cursor)} is not one this store handed out (use Page.next_cursor)")
    return found


def _page(limit: int) -> Callable[[list[Generation]], Page]:
    """The page from the query's ``limit + 1`` rows: the one past the page says that a next page exists, so
    the last page (a full one too) has no cursor."""

    def page(items: list[Generation]) -> Page:
        if len(items) > limit:
            del items[limit:]
            return Page(items, encode_cursor(items[-1].created_at, items[-1].id))
        return Page(items, None)

    return page


@reads_planned
def list_generations(
    *,
    status: Status | str | None = None,
    model_name: str | None = None,
    limit: int = 50,
    offset: int = 0,
    cursor: str | None = None,
) -> Plan[Page]:
    """A page of generations, newest first, optionally of one status and/or model.

    Pass the previous page's ``next_cursor`` to continue (keyset paging: constant time at any depth);
    ``offset`` skips rows after the cursor and costs time proportional to its size.
    """
    limit, offset = validate.page(limit, offset)
    before_created_at, before_id = _decode_cursor(cursor)
    params = {"before_created_at": before_created_at, "before_id": before_id, "limit": limit + 1}
    params["offset"] = offset
    name = "list_generations"
    if status is not None:
        params["status"] = validate.status(status).value
        name += "_by_status"
    if model_name is not None:
        params["model_name"] = validate.name(model_name, "model_name")
        name += "_and_model" if status is not None else "_by_model"
    return name, params, GENERATION, _page(limit)


def _items(page: Page) -> list[Generation]:
    return page.items


@reads_planned
def get_all_generations(
    *,
    status: Status | str | None = None,
    model_name: str | None = None,
    limit: int = 50,
    offset: int = 0,
    cursor: str | None = None,
) -> Plan[list[Generation]]:
    """``list_generations``'s page items alone (the 0.1 compatibility spelling), newest first."""
    name, params, rows, page = list_generations.plan(  # type: ignore[misc]
        status=status, model_name=model_name, limit=limit, offset=offset, cursor=cursor
    )
    return name, params, rows, lambda items: page(items).items


@reads_all("list_pending", GENERATION)
def get_pending_generations(limit: int = 10) -> Params:
    """The pending generations, oldest first (creation time, then id): the order ``claim_next`` takes them in
    while none has a priority, an owner key or a ``run_after``, not otherwise (docs/queue.md: the claim takes
    the highest priority first and shares the workers among owner keys)."""
    return {"limit": validate.integer(limit, "limit", 1, validate.MAX_PAGE)}


def _total(rows: list[tuple[str, int]]) -> int:
    return sum(row[1] for row in rows)


def _count_of(status: Status) -> Callable[[list[tuple[str, int]]], int]:
    def count(rows: list[tuple[str, int]]) -> int:
        for row in rows:
            if row[0] == status:
                return row[1]
        return 0

    return count


def _n(row: dict[str, Any]) -> int:
    return int(row["n"])


_NO_PARAMS: Params = {}
_ALL: Plan[int] = ("totals", _NO_PARAMS, TOTALS, _total)
_OF_STATUS: dict[Status, Plan[int]] = {s: ("totals", _NO_PARAMS, TOTALS, _count_of(s)) for s in Status}
"""The plans of the counts that read the totals, made once."""


@reads_planned
def count_generations(*, status: Status | str | None = None, model_name: str | None = None) -> Plan[int]:
    """How many generations there are, optionally of one status and/or model."""
    if model_name is None:
        return _ALL if status is None else _OF_STATUS[validate.status(status)]
    model = validate.name(model_name, "model_name")
    if status is None:
        return "count_by_model", {"model_name": model}, None, _n
    params = {"status": validate.status(status).value, "model_name": model}
    return "count_by_status_and_model", params, None, _n


@reads_all("totals", TOTALS, Stats.from_totals)
def get_database_stats() -> Params:
    """Counts by status, bytes, generation time and prompt usage, from running totals."""
    return {}


def _ids(rows: list[tuple[Any, ...]]) -> set[str]:
    return {row[0] for row in rows}


@reads_all("applied_migrations", columns("migration_id"), _ids)
def applied_migrations() -> Params:
    """The ids of the yoyo migrations applied to this database."""
    return {}


@reader
def server_clock_offset() -> Steps[float]:
    """Seconds the database server's clock is ahead of the store's clock (negative: behind it), 0.0 when the
    server's reading lies between the store's readings before and after the query (PostgreSQL only: the
    ``server_clock`` query; SQLite has no server)."""
    before: datetime = yield NOW
    row = yield Call("server_clock", {})
    after: datetime = yield NOW
    server: datetime = row["now"]
    if server < before:
        return (server - before).total_seconds()
    if server > after:
        return (server - after).total_seconds()
    return 0.0
