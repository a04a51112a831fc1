"""A snapshot as Prometheus metric families (:func:`families`), the collector that reads one on each scrape
(:class:`StoreCollector`) and the text format (:func:`metrics_text`). Re-exported by
:mod:`musicstore.metrics`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..store import Store
from .reads import _check_store, _checked, read_metrics
from .snapshot import (
    DEFAULT_SAMPLE,
    DEFAULT_WINDOW,
    DEFAULT_WINDOW_LIMIT,
    PENDING_LIMIT,
    PROCESSING_LIMIT,
    Distribution,
    MetricsSnapshot,
)


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


def _seconds(seconds: float) -> str:
    """A window's exact seconds: 1209600, 2.5 (":g" kept six digits: two weeks read "1.2096e+06")."""
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


def families(snapshot: MetricsSnapshot) -> Iterator[Metric]:
    """The snapshot as Prometheus metric families."""
    s = snapshot
    window = [(f"{_seconds(s.window.seconds)}s",)]
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
        "Pending generations by priority class (high: above 0, normal: 0, low: below 0), of the first "
        f"{PENDING_LIMIT:,} in the queue's lane index (by owner key, then priority).",
        ["priority"],
        [((k,), v) for k, v in s.pending_by_priority.items()],
    )
    yield _gauge(
        "musicstore_queue_depth_by_priority_truncated",
        f"1 when more generations were pending than the {PENDING_LIMIT:,} counted by priority (the counts "
        "by priority are then a lower bound; musicstore_queue_depth counts every one).",
        [],
        [((), int(s.pending_truncated))],
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
        "musicstore_longest_ready_wait_seconds",
        "How long the longest-waiting claimable pending generation has waited since it became ready (the "
        "later of its creation and its run_after; 0: none is ready). Jobs scheduled for later or backing off "
        f"before a retry do not count: alert on this one. Of the first {PENDING_LIMIT:,} by creation.",
        [],
        [((), s.longest_ready_wait or 0.0)],
    )
    yield _gauge(
        "musicstore_leases", "Claims in flight by lease state (expired: not yet requeued).", ["state"],
        [(("live",), s.leases_live), (("expired",), s.leases_expired)],
    )  # fmt: skip
    yield _gauge("musicstore_workers", "Workers with a claim in flight.", [], [((), len(s.workers))])
    yield _gauge(
        "musicstore_processing_truncated",
        f"1 when more claims were in flight than the {PROCESSING_LIMIT:,} read (leases, workers and "
        "processing by priority are then a lower bound).",
        [],
        [((), int(s.processing_truncated))],
    )
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
            self.store, window=self.window, window_limit=self.window_limit, sample=self.sample, rows=False
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
