"""Prometheus metrics of a job store, read from the database and the figures it records: no write per job.

``read_metrics(store)`` takes one snapshot (``MetricsSnapshot``) in a read transaction, from a few named
queries of ``sql/common/metrics.sql`` (``sql/<dialect>/metrics.sql`` for the JSON and time arithmetic):

- the running totals that triggers keep (counts, bytes and seconds by status; counts by model and status;
  prompts): constant time;
- the queue's head (its oldest pending row, one index entry; the longest ready wait, from its first
  ``PENDING_LIMIT`` rows by creation) and the rows being processed (one per claim in flight, at most
  ``PROCESSING_LIMIT``): live and expired leases, workers;
- the rows created in the last ``window`` seconds (at most ``window_limit``, newest first) on the time index:
  what became of them: claims (their attempts), retries (attempts after the first), lease expiries (their
  last error says so), completions and failures;
- the newest ``sample`` completed rows on the queue's index: distributions of the model's time, of the rest
  of the claim (completion − start − model time: export and storage), and of the loudness and true peak the
  export recorded.

``StoreCollector(store)`` is a ``prometheus_client`` collector that takes a snapshot on each scrape;
``metrics_text(store)`` renders one in the Prometheus text format. Labels are statuses, model names,
windows and bucket bounds: never an id, a prompt or a worker. See docs/dashboard.md.

By concern: ``snapshot`` (what a snapshot holds), ``reads`` (how it is read), ``exposition`` (its
Prometheus families, collector and text format); this package re-exports their names.
"""

from __future__ import annotations

from .exposition import StoreCollector, families, metrics_text
from .reads import metrics_op, priority_class, processing_op, read_metrics, recent_op, workers_of
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

__all__ = [
    "DEFAULT_SAMPLE",
    "DEFAULT_WINDOW",
    "DEFAULT_WINDOW_LIMIT",
    "EXPORT_BUCKETS",
    "GENERATION_BUCKETS",
    "LEASE_EXPIRED",
    "LOUDNESS_BUCKETS",
    "PENDING_LIMIT",
    "PRIORITY_CLASSES",
    "PROCESSING_LIMIT",
    "TRUE_PEAK_BUCKETS",
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
