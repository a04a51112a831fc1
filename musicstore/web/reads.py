"""The dashboard's own reads: pages of generations with filters (``sql/common/dashboard.sql``).

Newest first with keyset paging by ``(created_at, id)``; filters by status and model use the indexes of the
library's own lists, a day bounds the walk below, and a prompt text search walks one window of
``SEARCH_WINDOW`` rows of the time index per page (a rare text costs a window per page, never a table scan):
a page holds the matches of its window, and its cursor continues below the window. Also what a request asks
for (``_filters``, ``_limit``, ``_picked_model``), the models the running totals hold (``read_models``) and
the claims in flight with their workers (``workers_op``).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from .. import validate
from ..errors import InvalidInput
from ..metrics import PROCESSING_LIMIT, processing_op, workers_of
from ..metrics.reads import Edge
from ..models import Generation, columns, to_datetime
from ..ops import GENERATION, NOW, Call, Steps, reader
from ..ops.reads import FIRST_PAGE, encode_cursor
from ..ops.reads import decode_cursor as keyset_cursor
from ..runner import CLOCK, utcnow
from ..store import Store

SEARCH_WINDOW = 5000
MAX_SEARCH_CHARS = 200


@dataclass(frozen=True, slots=True)
class Filters:
    """What a page of the generations table shows: each filter optional."""

    status: str | None = None
    model_name: str | None = None
    text: str | None = None
    day: str | None = None  # YYYY-MM-DD, UTC

    def query(self) -> dict[str, str]:
        """The filters as URL query parameters (the ones set)."""
        pairs = {"status": self.status, "model": self.model_name, "q": self.text, "day": self.day}
        return {k: v for k, v in pairs.items() if v}


@dataclass(frozen=True, slots=True)
class TablePage:
    items: list[Generation]
    next_cursor: str | None
    scanned_window: bool  # a text search: the page holds the matches of one window


def decode_cursor(cursor: str | None) -> tuple[datetime, str]:
    """The (created_at, id) below which a page starts; InvalidInput for anything this did not hand out."""
    if cursor is None or cursor == "":
        return FIRST_PAGE
    found = keyset_cursor(cursor) if isinstance(cursor, str) else None
    if found is None:
        raise InvalidInput("cursor: not one this dashboard handed out")
    return found


def parse_day(day: str | None) -> tuple[datetime, datetime] | None:
    """The UTC bounds [start, end) of a ``YYYY-MM-DD`` day."""
    if not day:
        return None
    try:  # ASCII digits first: strptime's take other scripts' (٢٠٢٤) and a space before a one-digit day
        if not re.fullmatch(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}", day):
            raise ValueError(day)
        start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    except (ValueError, TypeError):
        raise InvalidInput("day must be a date, YYYY-MM-DD") from None
    if start.date() == datetime.max.date():  # the last day datetime holds: its end is the top
        return start, FIRST_PAGE[0]
    return start, start + timedelta(days=1)


def like_pattern(text: str) -> str:
    """A lower-case ``LIKE`` pattern matching ``text`` anywhere (escape character ``!``)."""
    escaped = text.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%{escaped}%"


def _cases(char: str) -> str:
    """``char`` and its cases: an ASCII letter's two; a non-ASCII letter's whole class of letters that lower,
    upper, title case or case folding lead to or from (Σ σ ς, ǅ ǆ Ǆ, ß ẞ), where each is one character:
    its lower and upper case alone missed ς for Σ and ǅ for ǆ."""
    if char.isascii():
        return "".join(dict.fromkeys((char, char.lower(), char.upper())))
    return "".join(dict.fromkeys((char, *sorted(_case_classes().get(char, ())))))


@functools.cache
def _case_classes() -> dict[str, frozenset[str]]:
    """Every letter with another case, mapped to its class (linked by lower, upper, title and case folding
    where each gives one character): built once, on the first search for a non-ASCII text."""
    linked: dict[str, set[str]] = {}
    for point in range(0x20000):  # no letter above U+1FFFF has another case (CJK, tags, private use)
        char = chr(point)
        for other in (char.lower(), char.upper(), char.title(), char.casefold()):
            if len(other) == 1 and other != char:
                linked.setdefault(char, set()).add(other)
                linked.setdefault(other, set()).add(char)
    classes: dict[str, frozenset[str]] = {}
    for start in linked:
        if start not in classes:
            seen, todo = {start}, [start]
            while todo:
                for other in linked[todo.pop()] - seen:
                    seen.add(other)
                    todo.append(other)
            for member in seen:
                classes[member] = frozenset(seen)
    return classes


def glob_pattern(text: str) -> str:
    """A SQLite ``GLOB`` pattern matching ``text`` anywhere, each letter in either case: SQLite's ``lower()``
    and ``LIKE`` fold ASCII letters only, so "CAFÉ" would not find "CAFÉ DEL MAR"."""
    parts = []
    for char in text:
        cases = _cases(char)
        if len(cases) > 1:
            parts.append(f"[{cases}]")
        elif char in "*?[":
            parts.append(f"[{char}]")
        else:
            parts.append(char)
    return "*" + "".join(parts) + "*"


def regex_pattern(text: str) -> str:
    """A PostgreSQL regular expression matching ``text`` anywhere, each letter in either case: its
    ``lower()`` follows the server's locale, and under ``C`` folds ASCII letters only."""
    parts = []
    for char in text:
        cases = _cases(char)
        if len(cases) > 1:
            parts.append(f"[{cases}]")
        else:  # a backslash before any other character than a letter or digit takes it literally
            parts.append(char if char.isalnum() else "\\" + char)
    return "".join(parts)


def check_filters(filters: Filters) -> Filters:
    status = None if not filters.status else validate.status(filters.status).value
    model = None if not filters.model_name else validate.name(filters.model_name, "model")
    text = filters.text.strip() if filters.text else None
    if text is not None and len(text) > MAX_SEARCH_CHARS:
        raise InvalidInput(f"q: at most {MAX_SEARCH_CHARS} characters")
    if text:  # no NUL (PostgreSQL refuses it; SQLite cut the pattern there and matched every row)
        validate.text(text, "q", max_chars=MAX_SEARCH_CHARS)
    bounds = parse_day(filters.day)  # its canonical form: strptime reads "2024-1-5", <input type="date"> not
    day = None if bounds is None else bounds[0].date().isoformat()
    return Filters(status, model, text or None, day)


@reader
def table_page(filters: Filters, *, cursor: str | None = None, limit: int = 50) -> Steps[TablePage]:
    """A page of the generations table: newest first, filtered, below ``cursor``."""
    filters = check_filters(filters)
    limit = validate.integer(limit, "limit", 1, 500)
    before_created_at, before_id = decode_cursor(cursor)
    bounds = parse_day(filters.day)
    after = datetime.min.replace(tzinfo=UTC)  # rows before 1970 too (a store's clock may be anywhere)
    if bounds is not None:
        after = bounds[0]
        if bounds[1] <= before_created_at:
            before_created_at, before_id = bounds[1], ""
    # limit + 1 rows: the one past the page says that a next page exists (the last page has no cursor)
    params = {"after": after, "before_created_at": before_created_at, "before_id": before_id}
    params["limit"] = limit + 1
    if filters.text is None:
        name = "dashboard_page"
        if filters.status is not None:
            params["status"] = filters.status
            name += "_by_status"
        if filters.model_name is not None:
            params["model_name"] = filters.model_name
            name += "_and_model" if filters.status is not None else "_by_model"
        items: list[Generation] = yield Call(name, params, GENERATION)
        if len(items) > limit:
            del items[limit:]
            return TablePage(items, encode_cursor(items[-1].created_at, items[-1].id), False)
        return TablePage(items, None, False)
    end = yield Call(
        "dashboard_scan_end",
        {
            "after": after,
            "before_created_at": before_created_at,
            "before_id": before_id,
            "offset": SEARCH_WINDOW - 1,
        },
    )
    low_created_at, low_id = (after, "") if end is None else (to_datetime(end["created_at"]), end["id"])
    items = yield Call(
        "dashboard_search",
        {
            "pattern": like_pattern(filters.text),
            # a text beyond ASCII (lower() may fold ASCII only): SQLite's and PostgreSQL's patterns of both
            # cases; an ASCII text keeps lower() LIKE (GLOB costs SQLite 2-4x LIKE)
            "glob": None if filters.text.isascii() else glob_pattern(filters.text),
            "regex": None if filters.text.isascii() else regex_pattern(filters.text),
            "status": filters.status,
            "model_name": filters.model_name,
            "low_created_at": low_created_at,
            "low_id": low_id,
            "before_created_at": before_created_at,
            "before_id": before_id,
            "limit": limit + 1,
        },
        GENERATION,
    )
    if len(items) > limit:
        del items[limit:]
        return TablePage(items, encode_cursor(items[-1].created_at, items[-1].id), True)
    if end is None:
        return TablePage(items, None, True)
    # the window's far end is its last row: the next window starts just below it
    return TablePage(items, encode_cursor(low_created_at, low_id), True)


def before(now: datetime, delta: timedelta) -> datetime:
    """``now - delta``, or the calendar's start where that falls before the year 1 (a clock in its first
    days), as ``read_metrics`` and ``queue_position`` count their windows: not an OverflowError (a 500)."""
    try:
        return now - delta
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def clock_now(store: Store) -> datetime:
    """The store's clock now, as an operation reads it (no query); the wall clock where that clock fails (a
    page saying why is still shown: every read of the store raises it)."""
    clock = store.clock
    try:
        return datetime.now(UTC) if clock is utcnow else validate.moment(clock(), CLOCK)
    except Exception:
        return datetime.now(UTC)


@reader
def now_op() -> Steps[datetime]:
    """The store's clock, which stamped the rows: a page compares their times (leases, windows) with it, as
    the metrics do, not with the wall clock."""
    now: datetime = yield NOW
    return now


@reader
def workers_op() -> Steps[dict[str, Any]]:
    """The claims in flight, of at most ``PROCESSING_LIMIT`` read (``truncated``: more were in flight, as the
    metrics' ``processing_truncated``: the page's leases and workers are then a lower bound), their workers,
    and how many leases expired, against the store's clock (``taken_at``), as the metrics' leases."""
    now: datetime = yield NOW
    processing = yield from processing_op.steps(PROCESSING_LIMIT + 1)  # one more: more are in flight
    truncated = len(processing) > PROCESSING_LIMIT
    del processing[PROCESSING_LIMIT:]
    workers = workers_of(processing, now)
    expired = sum(w.expired for w in workers)
    return {
        "taken_at": now,
        "processing": processing,
        "workers": workers,
        "expired": expired,
        "truncated": truncated,
    }


@reader
def recent_prompts_op(since: datetime, limit: int) -> Steps[list[str]]:
    """The prompts of the rows created since ``since`` (at most ``limit``, newest first)."""
    since = validate.moment(since, "since")
    limit = validate.integer(limit, "limit", 1, 1_000_000)
    rows = yield Call("dashboard_recent_prompts", {"since": since, "limit": limit}, _PROMPTS)
    return [row[0] for row in rows]


_PROMPTS = columns("prompt")


@reader
def completions_by_hour_op(since: datetime) -> Steps[list[int]]:
    """Completions in each of the 24 hours from ``since``, whenever their rows were created."""
    since = validate.moment(since, "since")
    row = yield Call("dashboard_completions_by_hour", {"since": since})
    return [int(row[f"h{hour:02d}"]) for hour in range(24)]


@reader
def recent_failures_op(limit: int) -> Steps[list[Generation]]:
    """The newest ``limit`` failed generations by when they failed (their ``completed_at``), newest first."""
    limit = validate.integer(limit, "limit", 1, validate.MAX_PAGE)
    rows: list[Generation] = yield Call("dashboard_recent_failures", {"limit": limit}, GENERATION)
    return rows


@reader
def failed_after_edge_op(edge: Edge, hour0: datetime) -> Steps[list[int]]:
    """Of the rows of the window whose edge is known (``metrics_edge_op``'s, in this read), the failed ones
    in each of the 24 hours from ``hour0`` by when they failed (their ``completed_at``), counted in the
    database."""
    hour0 = validate.moment(hour0, "hour0")
    row = yield Call("dashboard_failed_by_hour", {"since": edge[0], "after_id": edge[1], "hour0": hour0})
    return [int(row[f"h{hour:02d}"]) for hour in range(24)]


@reader
def created_by_hour_op(since: datetime) -> Steps[list[int]]:
    """Generations created in each of the 24 hours from ``since``."""
    since = validate.moment(since, "since")
    row = yield Call("dashboard_created_by_hour", {"since": since})
    return [int(row[f"h{hour:02d}"]) for hour in range(24)]


@reader
def days_op(since: str) -> Steps[list[tuple[str, int]]]:
    """Generations created per UTC day from ``since`` (``YYYY-MM-DD``) on, from the running totals by day."""
    parse_day(since)
    rows = yield Call("dashboard_days", {"since": since})
    return [(str(row["day"]), int(row["generations"])) for row in rows]


def read_models(store: Store) -> list[tuple[str, str]]:
    """The (model, status) keys the running totals hold."""
    from ..ops import Call, reader

    @reader
    def models() -> Steps[list[tuple[str, str]]]:
        rows = yield Call("metrics_model_totals", {})
        return [(row["model_name"], row["status"]) for row in rows]

    with store.transaction(write=False) as tx:
        return tx.run(models)


def _filters(request: Request) -> tuple[Filters, str | None]:
    q = request.query_params
    filters = Filters(
        status=q.get("status") or None,
        model_name=q.get("model") or None,
        text=q.get("q") or None,
        day=q.get("day") or None,
    )
    return filters, q.get("cursor") or None


def asked(request: Request) -> tuple[Filters, str | None, int]:
    """The table's filters (checked: a day in its canonical form), cursor and page size as ``request`` asks
    for them; a bad value is a ``400`` with its reason, raised here: an ``InvalidInput`` of the reads that
    follow is then the store's, not the request's (its clock giving a naive moment: a ``500``, logged)."""
    try:
        filters, cursor = _filters(request)
        filters, limit = check_filters(filters), _limit(request)
        decode_cursor(cursor)
    except InvalidInput as exc:
        raise HTTPException(400, str(exc)) from None
    return filters, cursor, limit


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _picked_model(filters: Filters, models: set[str]) -> Filters:
    """``filters`` with the model picked in the form: a browser sends an option's value with each line break
    as CRLF (a form's urlencoded submission), so a model named with a newline (or a CR) came as a name no
    row holds. An exact name wins; else the one model that a form would send so."""
    sent = filters.model_name
    if sent is None or "\r" not in sent or sent in models:
        return filters
    matches = [model for model in models if _LINE_BREAK.sub("\r\n", model) == sent]
    return dataclasses.replace(filters, model_name=matches[0]) if len(matches) == 1 else filters


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "50")
    # "²" is a digit int() refuses, and int() refuses a str of more than 4,300 digits (a ValueError: a 500)
    digits = raw.lstrip("0")
    if not (raw.isascii() and raw.isdigit()) or len(digits) > 3 or not 1 <= int(digits or "0") <= 500:
        raise InvalidInput("limit must be a whole number from 1 to 500")
    return int(digits)


__all__ = [
    "SEARCH_WINDOW",
    "Filters",
    "TablePage",
    "_filters",
    "_limit",
    "_picked_model",
    "asked",
    "before",
    "check_filters",
    "completions_by_hour_op",
    "created_by_hour_op",
    "days_op",
    "decode_cursor",
    "encode_cursor",
    "glob_pattern",
    "now_op",
    "read_models",
    "recent_failures_op",
    "recent_prompts_op",
    "regex_pattern",
    "table_page",
    "workers_op",
]
