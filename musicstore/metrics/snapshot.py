"""A snapshot of a store's figures (:class:`MetricsSnapshot`), its parts (:class:`Distribution`,
:class:`Window`, :class:`Worker`), the defaults and limits of its reads and the histograms' buckets.
Re-exported by :mod:`musicstore.metrics`."""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .. import validate
from ..errors import InvalidInput, shown

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
        self.bounds = _bounds(self.bounds)
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def add(self, value: float) -> None:
        """Count ``value`` (a real number, not NaN) in its bucket."""
        if type(value) is not float or math.isnan(value):  # NaN: in no bucket; an int beyond floats: ±inf
            number = validate.real_number(value)
            if number is None or math.isnan(number):
                raise InvalidInput(f"a distribution's value must be a number (not NaN), got {shown(value)}")
            value = number
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


def _bounds(given: object) -> tuple[float, ...]:
    """A distribution's bucket bounds as plain floats: finite and increasing, else ``InvalidInput``."""
    plain = [validate.real_number(b) for b in given] if isinstance(given, tuple | list) else [None]
    bounds = tuple(b for b in plain if b is not None and math.isfinite(b))
    if len(bounds) != len(plain) or any(b >= c for b, c in itertools.pairwise(bounds)):
        raise InvalidInput(f"bounds must be increasing finite numbers, got {shown(given)}")
    return bounds


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
    longest_ready_wait: float | None = None
    """How long the longest-waiting ready pending generation has waited since it became ready to claim (the
    later of its creation and its ``run_after``; None: none is ready), of the queue's first ``PENDING_LIMIT``
    by creation. Unlike ``oldest_pending_age``, a job scheduled for later or backing off before a retry does
    not count until its ``run_after``: the figure to alert on when workers stop claiming."""
    processing_truncated: bool = False
    """More claims were in flight than the ``PROCESSING_LIMIT`` rows read (any of them): the leases, workers
    and processing by priority are then a lower bound (the running totals count every processing row)."""

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
            "longest_ready_wait_seconds": self.longest_ready_wait,
            "pending_by_priority": self.pending_by_priority,
            "pending_by_priority_truncated": self.pending_truncated,
            "processing_by_priority": self.processing_by_priority,
            "processing_truncated": self.processing_truncated,
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
