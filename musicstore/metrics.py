"""Prometheus metrics of a job store, read from the database and the figures it records: no write per job.

``read_metrics(store)`` takes one snapshot (``MetricsSnapshot``) in a read transaction, from a few named
queries of ``sql/common/metrics.sql`` (``sql/<dialect>/metrics.sql`` for the JSON and time arithmetic):

- the running totals that triggers keep (counts, bytes and seconds by status; counts by model and status;
  prompts): constant time;
- the queue's head (its oldest pending row, one index entry) and the rows being processed (one per claim in
  flight, at most ``PROCESSING_LIMIT``): live and expired leases, workers;
- the rows created in the last ``window`` seconds (at most ``window_limit``, newest first) on the time index:
  what became of them: claims (their attempts), retries (attempts after the first), lease expiries (their
  last error says so), completions and failures;
- the newest ``sample`` completed rows on the queue's index: distributions of the model's time, of the rest
  of the claim (completion − start − model time: export and storage), and of the loudness and true peak the
  export recorded.

``StoreCollector(store)`` is a ``prometheus_client`` collector that takes a snapshot on each scrape;
``metrics_text(store)`` renders one in the Prometheus text format. Labels are statuses, model names,
windows and bucket bounds: never an id, a prompt or a worker. See docs/dashboard.md.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import validate
from .models import EPOCH, Status, columns, to_datetime
from .ops import NOW, TOTALS, Call, Steps, reader
from .ops.progress import COUNT
from .store import Store, require_store

DEFAULT_WINDOW = 3600.0
DEFAULT_WINDOW_LIMIT = 20_000
DEFAULT_SAMPLE = 200
PROCESSING_LIMIT = 10_000
PENDING_LIMIT = 10_000
PRIORITY_CLASSES = ("high", "normal", "low")
"""Priorities as labels: above 0, 0, below 0 (a priority is -32768 to 32767: too many values for labels)."""
LEASE_EXPIRED = "lease expired"
"""How the messages of ``requeue_expired`` (and its last-attempt failure) begin."""

GENERATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
EXPORT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LOUDNESS_BUCKETS = (-30.0, -24.0, -23.0, -20.0, -18.0, -16.5, -16.0, -15.5, -14.0, -12.0, -9.0)
TRUE_PEAK_BUCKETS = (-6.0, -3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 1.0)


@dataclass(slots=True)
class Distribution:
    """Values counted into cumulative buckets (``le`` bounds, then +Inf), with their sum and count."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def add(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1  # the first bound >= value, or +Inf
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, cumulative count)`` pairs, ending with ``+Inf``."""
        out, running = [], 0
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += n
            out.append(("+Inf" if bound == math.inf else _le(bound), float(running)))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"buckets": dict(self.cumulative()), "sum": round(self.total, 6), "count": self.count}


def _le(bound: float) -> str:
    return repr(float(bound))


@dataclass(slots=True)
class Window:
    """What became of the rows created in the last ``seconds`` (``truncated``: more than the limit)."""

    seconds: float
    generations: dict[str, int]
    claims: int = 0
    retries: int = 0
    lease_expiries: int = 0
    truncated: bool = False
    completions: int = 0
    """Completions in the window, whenever their rows were created (the throughput)."""


@dataclass(slots=True)
class Worker:
    """A worker with claims in flight: how many, the oldest start and the soonest lease expiry."""

    worker_id: str
    claims: int
    expired: int
    oldest_started_at: datetime | None
    next_expiry: datetime | None


@dataclass(slots=True)
class MetricsSnapshot:
    """One consistent read of the store's figures (see the module's docstring)."""

    taken_at: datetime
    by_status: dict[str, int]
    file_bytes: dict[str, int]
    generation_seconds: dict[str, float]
    audio_seconds: dict[str, float]
    by_model: dict[tuple[str, str], int]
    prompts: int
    prompt_uses: int
    oldest_pending_age: float | None
    pending_by_priority: dict[str, int]
    pending_truncated: bool
    processing_by_priority: dict[str, int]
    leases_live: int
    leases_expired: int
    workers: list[Worker]
    processing: list[dict[str, Any]]
    window: Window
    recent: list[dict[str, Any]]
    generation_time: Distribution
    export_time: Distribution
    loudness: Distribution
    true_peak: Distribution
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures (no ids, no prompts: the dashboard's API adds those where it shows them)."""
        return {
            "taken_at": self.taken_at.isoformat(),
            "by_status": self.by_status,
            "file_bytes": self.file_bytes,
            "generation_seconds": self.generation_seconds,
            "audio_seconds": self.audio_seconds,
            "by_model": [{"model": m, "status": s, "generations": n} for (m, s), n in self.by_model.items()],
            "prompts": self.prompts,
            "prompt_uses": self.prompt_uses,
            "oldest_pending_age_seconds": self.oldest_pending_age,
            "pending_by_priority": self.pending_by_priority,
            "pending_by_priority_truncated": self.pending_truncated,
            "processing_by_priority": self.processing_by_priority,
            "leases": {"live": self.leases_live, "expired": self.leases_expired},
            "workers": len(self.workers),
            "window": {
                "seconds": self.window.seconds,
                "generations": self.window.generations,
                "claims": self.window.claims,
                "retries": self.window.retries,
                "lease_expiries": self.window.lease_expiries,
                "truncated": self.window.truncated,
                "completions": self.window.completions,
            },
            "generation_time_seconds": self.generation_time.as_dict(),
            "export_time_seconds": self.export_time.as_dict(),
            "loudness_lufs": self.loudness.as_dict(),
            "true_peak_dbtp": self.true_peak.as_dict(),
        }


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def priority_class(priority: int | None) -> str:
    """``high`` (above 0), ``normal`` (0 or none), ``low`` (below 0)."""
    if not priority:
        return "normal"
    return "high" if priority > 0 else "low"


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
    return [
        {
            **row,
            "created_at": _moment(row["created_at"]),
            "started_at": _moment(row["started_at"]),
            "completed_at": _moment(row["completed_at"]),
        }
        for row in (yield Call("metrics_recent", {"since": since, "limit": limit}))
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
    *, window: float = DEFAULT_WINDOW, window_limit: int = DEFAULT_WINDOW_LIMIT, sample: int = DEFAULT_SAMPLE
) -> Steps[MetricsSnapshot]:
    """The figures of ``read_metrics``; run it in a read transaction for one consistent snapshot."""
    seconds, limit, sample = _checked(window, window_limit, sample)
    now: datetime = yield NOW
    totals: list[tuple[Any, ...]] = yield Call("totals", {}, TOTALS)
    by_status = {status.value: 0 for status in Status}
    file_bytes = dict.fromkeys(by_status, 0)
    generation_seconds = dict.fromkeys(by_status, 0.0)
    audio_seconds = dict.fromkeys(by_status, 0.0)
    prompts = uses = 0
    for status, n, nbytes, gen_micros, audio_micros, n_prompts, n_uses in totals:
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
    processing = yield from processing_op.steps(PROCESSING_LIMIT)
    expired = sum(1 for row in processing if row["lease_expires_at"] <= now)
    queue = yield Call("metrics_pending_by_priority", {"limit": PENDING_LIMIT})
    pending_by_priority = {name: int(queue[name]) for name in PRIORITY_CLASSES}
    processing_by_priority = dict.fromkeys(PRIORITY_CLASSES, 0)
    for row in processing:
        processing_by_priority[priority_class(row["priority"])] += 1
    recent = yield from recent_op.steps(now - timedelta(seconds=seconds), limit)
    counted = Window(seconds, dict.fromkeys(by_status, 0), truncated=len(recent) >= limit)
    # the throughput: a range of the completed index, whatever the rows' creation (a backlog older than the
    # window would show none among the rows created in it)
    since = now - timedelta(seconds=seconds)
    counted.completions = int((yield Call("count_completed_since", {"since": since}, COUNT))[0])
    for row in recent:
        counted.generations[row["status"]] += 1
        attempts = int(row["attempts"])
        counted.claims += attempts
        counted.retries += max(attempts - 1, 0)
        if (row["error_message"] or "").startswith(LEASE_EXPIRED):
            counted.lease_expiries += 1
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
    return MetricsSnapshot(
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
        pending_truncated=int(queue["counted"]) >= PENDING_LIMIT,
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
    )


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
) -> MetricsSnapshot:
    """One snapshot of the store's figures, read in one read transaction (they add up)."""
    _check_store(store, "read_metrics")
    started = time.perf_counter()
    with store.transaction(write=False) as tx:
        snapshot = tx.run(metrics_op, window=window, window_limit=window_limit, sample=sample)
    snapshot.seconds = time.perf_counter() - started
    return snapshot


def _gauge(
    name: str, doc: str, labels: Sequence[str], values: Iterable[tuple[Sequence[str], float]]
) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    for label_values, value in values:
        family.add_metric(list(label_values), value)
    return family


def _histogram(name: str, doc: str, dist: Distribution) -> Metric:
    family = GaugeHistogramMetricFamily(name, doc)
    family.add_metric([], dist.cumulative(), gsum_value=dist.total)
    return family


def families(snapshot: MetricsSnapshot) -> Iterator[Metric]:
    """The snapshot as Prometheus metric families."""
    s = snapshot
    window = [(f"{s.window.seconds:g}s",)]
    yield _gauge(
        "musicstore_generations", "Generations by status (running totals).", ["status"],
        [((k,), v) for k, v in s.by_status.items()],
    )  # fmt: skip
    yield _gauge(
        "musicstore_generations_by_model", "Generations by model and status (running totals).",
        ["model", "status"], [((m, st), v) for (m, st), v in s.by_model.items()],
    )  # fmt: skip
    yield _gauge(
        "musicstore_file_bytes", "Bytes of the files generations record, by status.", ["status"],
        [((k,), v) for k, v in s.file_bytes.items()],
    )  # fmt: skip
    yield _gauge(
        "musicstore_generation_seconds", "Model time recorded, summed by status.", ["status"],
        [((k,), v) for k, v in s.generation_seconds.items()],
    )  # fmt: skip
    yield _gauge(
        "musicstore_audio_seconds", "Requested audio duration, summed by status.", ["status"],
        [((k,), v) for k, v in s.audio_seconds.items()],
    )  # fmt: skip
    yield _gauge("musicstore_prompts", "Distinct prompts.", [], [((), s.prompts)])
    yield _gauge(
        "musicstore_prompt_uses", "Prompt uses (one per generation created).", [], [((), s.prompt_uses)]
    )
    yield _gauge(
        "musicstore_queue_depth", "Generations waiting (pending).", [], [((), s.by_status["pending"])]
    )
    yield _gauge(
        "musicstore_queue_depth_by_priority",
        "Pending generations by priority class (high: above 0, normal: 0, low: below 0), of the queue's "
        f"first {PENDING_LIMIT:,} in time order.",
        ["priority"],
        [((k,), v) for k, v in s.pending_by_priority.items()],
    )
    yield _gauge(
        "musicstore_processing_by_priority",
        "Claims in flight by priority class.",
        ["priority"],
        [((k,), v) for k, v in s.processing_by_priority.items()],
    )
    yield _gauge(
        "musicstore_oldest_pending_age_seconds", "Age of the oldest pending generation (0: none).", [],
        [((), s.oldest_pending_age or 0.0)],
    )  # fmt: skip
    yield _gauge(
        "musicstore_leases", "Claims in flight by lease state (expired: not yet requeued).", ["state"],
        [(("live",), s.leases_live), (("expired",), s.leases_expired)],
    )  # fmt: skip
    yield _gauge("musicstore_workers", "Workers with a claim in flight.", [], [((), len(s.workers))])
    yield _gauge(
        "musicstore_window_generations",
        "Generations created in the trailing window, by their status now.", ["window", "status"],
        [((window[0][0], k), v) for k, v in s.window.generations.items()],
    )  # fmt: skip
    for name, doc, value in (
        ("completions", "Completions in the trailing window, whenever their generations were created.",
         s.window.completions),
        ("claims", "Claims (attempts) of the generations created in the trailing window.", s.window.claims),
        ("retries", "Claims after the first, of the generations created in the trailing window.",
         s.window.retries),
        ("lease_expiries", "Generations created in the trailing window whose last error is a lease expiry.",
         s.window.lease_expiries),
        ("truncated", "1 when the window held more rows than were read (its figures are a lower bound).",
         int(s.window.truncated)),
    ):  # fmt: skip
        yield _gauge(f"musicstore_window_{name}", doc, ["window"], [(window[0], value)])
    yield _histogram(
        "musicstore_generation_time_seconds",
        "Model time of the newest completed generations.",
        s.generation_time,
    )
    yield _histogram(
        "musicstore_export_time_seconds",
        "Claim time outside the model (completion - start - model time) of the newest completed generations.",
        s.export_time,
    )
    yield _histogram(
        "musicstore_loudness_lufs", "Integrated loudness of the newest completed files.", s.loudness
    )
    yield _histogram("musicstore_true_peak_dbtp", "True peak of the newest completed files.", s.true_peak)
    yield _gauge("musicstore_scrape_seconds", "Time this snapshot took to read.", [], [((), s.seconds)])


class StoreCollector(Collector):
    """A ``prometheus_client`` collector: each scrape reads one snapshot of ``store``.

    ``registry.register(StoreCollector(store))`` adds the store's figures to an application's own metrics.
    """

    def __init__(
        self,
        store: Store,
        *,
        window: float = DEFAULT_WINDOW,
        window_limit: int = DEFAULT_WINDOW_LIMIT,
        sample: int = DEFAULT_SAMPLE,
    ) -> None:
        self.store = _check_store(store, "StoreCollector")
        _checked(window, window_limit, sample)  # here, not at every scrape
        self.window = window
        self.window_limit = window_limit
        self.sample = sample

    def collect(self) -> Iterator[Metric]:
        snapshot = read_metrics(
            self.store, window=self.window, window_limit=self.window_limit, sample=self.sample
        )
        yield from families(snapshot)

    def describe(self) -> list[Metric]:
        return []  # no read at registration


def metrics_text(store: Store, **options: Any) -> bytes:
    """The store's metrics in the Prometheus text format (version 0.0.4)."""
    collector = StoreCollector(_check_store(store, "metrics_text"), **options)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)


__all__ = [
    "Distribution",
    "MetricsSnapshot",
    "StoreCollector",
    "Window",
    "Worker",
    "families",
    "metrics_op",
    "metrics_text",
    "priority_class",
    "processing_op",
    "read_metrics",
    "recent_op",
    "workers_of",
]
