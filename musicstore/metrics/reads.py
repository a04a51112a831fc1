"""How a snapshot is read: the operations (:func:`metrics_op`, :func:`processing_op`, :func:`recent_op`) that
read it from the running totals and bounded index walks in one read transaction, and :func:`read_metrics`.
Re-exported by :mod:`musicstore.metrics`."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import validate
from ..errors import InvalidInput, shown
from ..models import EPOCH, Status, columns, to_datetime
from ..models.status import status_of
from ..ops import NOW, TOTALS, Call, Steps, reader
from ..ops.progress import COUNT
from ..store import Store, require_store
from .snapshot import (
    DEFAULT_SAMPLE,
    DEFAULT_WINDOW,
    DEFAULT_WINDOW_LIMIT,
    EXPORT_BUCKETS,
    GENERATION_BUCKETS,
    LEASE_EXPIRED,
    LOUDNESS_BUCKETS,
    PENDING_LIMIT,
    PRIORITY_CLASSES,
    PROCESSING_LIMIT,
    TRUE_PEAK_BUCKETS,
    Distribution,
    MetricsSnapshot,
    Window,
    Worker,
)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def priority_class(priority: int | None) -> str:
    """``high`` (above 0), ``normal`` (0 or none), ``low`` (below 0)."""
    if priority is None:
        return "normal"
    whole = validate.whole_number(priority)  # an int at once; numpy's as one; not a bool nor a float
    if whole is None:
        raise InvalidInput(f"priority must be an integer or None, got {shown(priority)}")
    return "normal" if whole == 0 else "high" if whole > 0 else "low"


def _moment(value: Any) -> datetime | None:
    return None if value is None else to_datetime(value)


def _workers(rows: Sequence[dict[str, Any]], now: datetime) -> list[Worker]:
    found: dict[str, Worker] = {}
    for row in rows:
        worker = found.get(row["worker_id"])
        if worker is None:
            worker = found[row["worker_id"]] = Worker(row["worker_id"], 0, 0, None, None)
        worker.claims += 1
        started, lease = row["started_at"], row["lease_expires_at"]
        if lease is not None and lease <= now:
            worker.expired += 1
        if started is not None and (worker.oldest_started_at is None or started < worker.oldest_started_at):
            worker.oldest_started_at = started
        if lease is not None and (worker.next_expiry is None or lease < worker.next_expiry):
            worker.next_expiry = lease
    return sorted(found.values(), key=lambda w: w.worker_id)


_FIGURES = columns("generation_seconds", "export_seconds", "loudness_lufs", "true_peak_dbtp")


def _expired(message: str | None) -> bool:
    return (message or "").startswith(LEASE_EXPIRED)


def _count(window: Window, figures: Sequence[tuple[str, int, bool]]) -> None:
    """Counts rows' (status, attempts, lease expired) into ``window``."""
    try:
        for status, attempts, lease_expired in figures:
            window.generations[status] += 1
            window.claims += attempts
            window.retries += max(attempts - 1, 0)
            window.lease_expiries += bool(lease_expired)
    except KeyError as unknown:  # a status a later musicstore wrote: MigrationError (no cost while known)
        status_of(unknown.args[0])
        raise


Edge = tuple[datetime, str]
"""Where a window starts (``window_edge``): its oldest row's created_at, and the lowest id it takes of that
created_at's rows ("": every one)."""


def window_edge(since: datetime, limit: int) -> Steps[tuple[datetime, str, bool]]:
    """Where the window of the newest ``limit`` rows created since ``since`` (by created_at then id, newest
    first) starts, as (created_at, id): ``(since, "")`` when it holds them all, else its oldest row's; and
    whether more rows were created since ``since`` (truncated). The time index alone, and the ids of the rows
    of the edge's one created_at: no row's contents is read."""
    found = yield Call("metrics_window_edge", {"since": since, "offset": limit - 1})
    if not found:
        return since, "", False
    edge = to_datetime(found[0]["created_at"])
    counts = yield Call("metrics_window_ties", {"edge": edge})
    # the window takes the highest ids of the edge's rows: limit - newer of its ties, so the lowest id it
    # takes is at (ties - (limit - newer)) from the lowest
    offset = int(counts["ties"]) - (limit - int(counts["newer"]))
    row = yield Call("metrics_window_edge_id", {"edge": edge, "offset": max(offset, 0)})
    if row is None:  # run outside a read transaction, rows were written between the reads: every tie counts
        return edge, "", len(found) > 1
    return edge, str(row["id"]), len(found) > 1


def _window(seconds: float, since: datetime, limit: int) -> Steps[tuple[Window, Edge]]:
    """The window's figures (``completions`` left at 0) of the newest ``limit`` rows created since ``since``,
    counted in the database (``metrics_window``: one aggregate over the rows from the window's edge on), as
    ``metrics_op`` counts them from its rows, and that edge; no row's contents is read."""
    start, after_id, truncated = yield from window_edge(since, limit)
    asked = {"since": start, "after_id": after_id, "lease_expired": LEASE_EXPIRED}
    window = Window(seconds, {status.value: 0 for status in Status}, truncated=truncated)
    for row in (yield Call("metrics_window", asked)):
        status = status_of(row["status"]).value  # one a later musicstore wrote: MigrationError
        window.generations[status] += int(row["generations"])
        window.claims += int(row["claims"])
        window.retries += int(row["retries"])
        window.lease_expiries += int(row["lease_expiries"])
    return window, (start, after_id)


@reader
def processing_op(limit: int = PROCESSING_LIMIT) -> Steps[list[dict[str, Any]]]:
    """The claims in flight (at most ``limit``, by start): id, model, worker, attempts, start, lease,
    priority and the progress last reported."""
    limit = validate.integer(limit, "limit", 1, 1_000_000)
    rows = [
        {
            **row,
            "started_at": _moment(row["started_at"]),
            "lease_expires_at": _moment(row["lease_expires_at"]),
        }
        for row in (yield Call("metrics_processing", {"limit": limit}))
    ]
    return sorted(rows, key=lambda row: (row["started_at"] or EPOCH, row["id"]))


def workers_of(processing: Sequence[dict[str, Any]], now: datetime) -> list[Worker]:
    """The workers holding these claims."""
    return _workers(processing, now)


@reader
def recent_op(since: datetime, limit: int) -> Steps[list[dict[str, Any]]]:
    """The rows created since ``since`` (at most ``limit``, newest first): prompt, status, attempts, last
    error and times (no id)."""
    since = validate.moment(since, "since")
    limit = validate.integer(limit, "limit", 1, 1_000_000)
    return _recent_rows((yield Call("metrics_recent", {"since": since, "limit": limit})))


def _recent_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            **row,
            "created_at": _moment(row["created_at"]),
            "started_at": _moment(row["started_at"]),
            "completed_at": _moment(row["completed_at"]),
        }
        for row in rows
    ]


def _checked(window: object, window_limit: object, sample: object) -> tuple[float, int, int]:
    """The options of a snapshot (``InvalidInput``): the window's seconds, its row limit, the sample size."""
    return (
        validate.number(window, "window", positive=True, high=366 * 86_400.0),
        validate.integer(window_limit, "window_limit", 1, 1_000_000),
        validate.integer(sample, "sample", 1, 100_000),
    )


@reader
def metrics_op(
    *,
    window: float = DEFAULT_WINDOW,
    window_limit: int = DEFAULT_WINDOW_LIMIT,
    sample: int = DEFAULT_SAMPLE,
    rows: bool = True,
) -> Steps[MetricsSnapshot]:
    """The figures of ``read_metrics``; run it in a read transaction for one consistent snapshot."""
    snapshot, _ = yield from _snapshot(window, window_limit, sample, rows)
    return snapshot


@reader
def metrics_edge_op(
    *, window: float = DEFAULT_WINDOW, window_limit: int = DEFAULT_WINDOW_LIMIT, sample: int = DEFAULT_SAMPLE
) -> Steps[tuple[MetricsSnapshot, Edge]]:
    """``metrics_op(rows=False)``, and where its window starts: for a read of the same transaction that counts
    the window's rows again (the dashboard's failures per hour) without finding its edge a second time."""
    snapshot, edge = yield from _snapshot(window, window_limit, sample, False)
    assert edge is not None  # counted in the database: the edge was found
    return snapshot, edge


def _snapshot(
    window: object, window_limit: object, sample: object, rows: object
) -> Steps[tuple[MetricsSnapshot, Edge | None]]:
    """``metrics_op``'s snapshot, and its window's edge where it was found (``rows`` False)."""
    seconds, limit, sample = _checked(window, window_limit, sample)
    validate.flag(rows, "rows")
    now: datetime = yield NOW
    totals: list[tuple[Any, ...]] = yield Call("totals", {}, TOTALS)
    by_status = {status.value: 0 for status in Status}
    file_bytes = dict.fromkeys(by_status, 0)
    generation_seconds = dict.fromkeys(by_status, 0.0)
    audio_seconds = dict.fromkeys(by_status, 0.0)
    prompts = uses = 0
    for value, n, nbytes, gen_micros, audio_micros, n_prompts, n_uses in totals:
        status = status_of(value).value  # one a later musicstore wrote: MigrationError, not a bare KeyError
        by_status[status] += int(n)
        file_bytes[status] += int(nbytes)
        generation_seconds[status] += int(gen_micros) / 1e6
        audio_seconds[status] += int(audio_micros) / 1e6
        prompts, uses = int(n_prompts), int(n_uses)
    by_model = {
        (row["model_name"], row["status"]): int(row["generations"])
        for row in (yield Call("metrics_model_totals", {}))
    }
    head = yield Call("metrics_oldest_pending", {})
    oldest = _moment(head["oldest"]) if head is not None else None
    ready = yield Call("metrics_longest_ready", {"now": now, "limit": PENDING_LIMIT})
    ready_since = _moment(ready["ready_since"]) if ready is not None else None
    processing = yield from processing_op.steps(PROCESSING_LIMIT)
    expired = sum(1 for row in processing if row["lease_expires_at"] <= now)
    queue = yield Call("metrics_pending_by_priority", {"limit": PENDING_LIMIT})
    pending_by_priority = {name: int(queue[name]) for name in PRIORITY_CLASSES}
    processing_by_priority = dict.fromkeys(PRIORITY_CLASSES, 0)
    for row in processing:
        processing_by_priority[priority_class(row["priority"])] += 1
    try:
        since = now - timedelta(seconds=seconds)
    except OverflowError:  # a clock in the first days of the year 1: the window starts with the calendar
        since = datetime.min.replace(tzinfo=UTC)
    if rows:  # the rows themselves (prompts, messages, times), the window's figures from them
        # one row past the limit says that the window held more (a window of exactly the limit is whole)
        recent = _recent_rows((yield Call("metrics_recent", {"since": since, "limit": limit + 1})))
        counted = Window(seconds, dict.fromkeys(by_status, 0), truncated=len(recent) > limit)
        del recent[limit:]
        edge = None
        _count(counted, [(r["status"], r["attempts"], _expired(r["error_message"])) for r in recent])
    else:  # the figures alone, counted in the database: a bounded cost at any rate of creation
        recent = []
        counted, edge = yield from _window(seconds, since, limit)
    # the throughput: a range of the completed index, whatever the rows' creation (a backlog older than the
    # window would show none among the rows created in it)
    counted.completions = int((yield Call("count_completed_since", {"since": since}, COUNT))[0])
    generation_time = Distribution(GENERATION_BUCKETS)
    export_time = Distribution(EXPORT_BUCKETS)
    loudness = Distribution(LOUDNESS_BUCKETS)
    true_peak = Distribution(TRUE_PEAK_BUCKETS)
    into = (generation_time, export_time, loudness, true_peak)
    for row in (yield Call("metrics_recent_completed", {"limit": sample}, _FIGURES)):
        for value, dist in zip(row, into, strict=True):
            number = _number(value)
            if number is not None:
                dist.add(max(number, 0.0) if dist is export_time else number)
    snapshot = MetricsSnapshot(
        taken_at=now,
        by_status=by_status,
        file_bytes=file_bytes,
        generation_seconds=generation_seconds,
        audio_seconds=audio_seconds,
        by_model=by_model,
        prompts=prompts,
        prompt_uses=uses,
        oldest_pending_age=None if oldest is None else max((now - oldest).total_seconds(), 0.0),
        pending_by_priority=pending_by_priority,
        # the running totals know the queue's length: a queue of exactly the walk's limit was counted whole
        pending_truncated=by_status["pending"] > int(queue["counted"]),
        processing_by_priority=processing_by_priority,
        leases_live=len(processing) - expired,
        leases_expired=expired,
        workers=_workers(processing, now),
        processing=processing,
        window=counted,
        recent=recent,
        generation_time=generation_time,
        export_time=export_time,
        loudness=loudness,
        true_peak=true_peak,
        longest_ready_wait=None if ready_since is None else max((now - ready_since).total_seconds(), 0.0),
        # as the queue's walk: the running totals know how many claims are in flight
        processing_truncated=by_status["processing"] > len(processing),
    )
    return snapshot, edge


def _check_store(store: object, what: str) -> Store:
    """``store`` if it is a ``Store`` (an ``AsyncStore`` failed with a bare TypeError, at each scrape)."""
    return require_store(
        store,
        f"{what} takes a musicstore Store",
        "from asyncio code: `async with astore.transaction(write=False) as tx: await tx.run(metrics_op)`",
    )


def read_metrics(
    store: Store,
    *,
    window: float = DEFAULT_WINDOW,
    window_limit: int = DEFAULT_WINDOW_LIMIT,
    sample: int = DEFAULT_SAMPLE,
    rows: bool = True,
) -> MetricsSnapshot:
    """One snapshot of the store's figures, read in one read transaction (they add up). ``rows=False``: the
    window's figures without its rows (``recent`` empty), as ``/metrics`` reads them."""
    _check_store(store, "read_metrics")
    started = time.perf_counter()
    with store.transaction(write=False) as tx:
        snapshot = tx.run(metrics_op, window=window, window_limit=window_limit, sample=sample, rows=rows)
    snapshot.seconds = time.perf_counter() - started
    return snapshot
