"""musicstore.metrics: the figures read from the database (both backends), their Prometheus form, and the
buckets of the distributions."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families

from musicstore import Store
from musicstore.errors import InvalidInput
from musicstore.metrics import (
    GENERATION_BUCKETS,
    Distribution,
    StoreCollector,
    metrics_text,
    read_metrics,
)
from musicstore.testing import FakeClock

GEN: dict[str, Any] = {
    "model_name": "musicgen-small",
    "duration_seconds": 10,
    "sample_rate": 32_000,
    "channels": 2,
}


def _complete(store: Store, worker: str, *, took: float, loudness: Any, peak: Any) -> str:
    claimed = store.claim_next(worker, lease_seconds=60)
    assert claimed is not None
    store.complete_generation(
        claimed.id,
        file_path=f"{claimed.id}.wav",
        file_size_bytes=1000,
        generation_time_seconds=took,
        metadata={"loudness_lufs": loudness, "true_peak_dbtp": peak},
        worker_id=worker,
    )
    return claimed.id


def test_figures_follow_the_rows(store: Store, clock: FakeClock) -> None:
    empty = read_metrics(store)
    assert empty.by_status == dict.fromkeys(("pending", "processing", "completed", "failed", "cancelled"), 0)
    assert empty.oldest_pending_age is None and empty.workers == [] and empty.generation_time.count == 0

    for i in range(6):
        store.create_generation(f"prompt {i}", **GEN)
        clock.advance(10)
    _complete(store, "gpu-0", took=4.0, loudness=-16.0, peak=-1.2)
    _complete(store, "gpu-0", took=40.0, loudness=-14.5, peak=None)  # a missing figure is left out
    _complete(store, "gpu-1", took=700.0, loudness="loud", peak=-0.4)  # so is one that is not a number
    failing = store.claim_next("gpu-1", lease_seconds=60)
    assert failing is not None
    store.fail(failing.id, "CUDA out of memory", retry=True, worker_id="gpu-1")  # back to pending, retried
    store.claim_next("gpu-2", lease_seconds=60)  # the retried one again (attempt 2)
    store.claim_next("gpu-3", lease_seconds=30)
    clock.advance(45)  # gpu-3's lease has expired, gpu-2's has not

    s = read_metrics(store)
    assert s.by_status == {"pending": 1, "processing": 2, "completed": 3, "failed": 0, "cancelled": 0}
    assert s.by_model == {
        ("musicgen-small", "completed"): 3,
        ("musicgen-small", "pending"): 1,
        ("musicgen-small", "processing"): 2,
    }
    assert s.prompts == 6 and s.prompt_uses == 6
    assert s.oldest_pending_age == pytest.approx(45 + 10)  # the newest row is the only one pending
    assert (s.leases_live, s.leases_expired) == (1, 1)
    assert [(w.worker_id, w.claims, w.expired) for w in s.workers] == [("gpu-2", 1, 0), ("gpu-3", 1, 1)]
    assert s.window.generations == s.by_status and not s.window.truncated
    assert s.window.claims == 3 + 2 + 1 and s.window.retries == 1 and s.window.lease_expiries == 0
    assert s.generation_time.count == 3 and s.generation_time.total == pytest.approx(744.0)
    assert s.generation_time.cumulative()[-1] == ("+Inf", 3.0)
    assert dict(s.generation_time.cumulative())["5.0"] == 1.0
    assert s.loudness.count == 2 and s.loudness.total == pytest.approx(-30.5)
    assert s.true_peak.count == 2 and s.true_peak.total == pytest.approx(-1.6)
    assert s.export_time.count == 3

    store.requeue_expired()
    after = read_metrics(store)
    assert after.window.lease_expiries == 1 and after.leases_expired == 0


def test_the_window_counts_only_recent_rows_and_says_when_it_is_cut(store: Store, clock: FakeClock) -> None:
    for i in range(5):
        store.create_generation(f"old {i}", **GEN)
    clock.advance(7200)
    for i in range(3):
        store.create_generation(f"new {i}", **GEN)
    s = read_metrics(store, window=3600)
    assert sum(s.window.generations.values()) == 3 and not s.window.truncated
    cut = read_metrics(store, window=3600, window_limit=2)
    assert sum(cut.window.generations.values()) == 2 and cut.window.truncated
    with pytest.raises(InvalidInput):
        read_metrics(store, window=0)
    with pytest.raises(InvalidInput):
        read_metrics(store, sample=0)


def test_prometheus_text_parses_and_carries_no_ids(store: Store, clock: FakeClock) -> None:
    for i in range(3):
        store.create_generation(f"lofi {i}", **GEN)
    _complete(store, "gpu-7", took=12.0, loudness=-16.0, peak=-1.0)
    store.claim_next("gpu-8", lease_seconds=60)
    text = metrics_text(store).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {s.labels["status"]: s.value for s in families["musicstore_generations"].samples}["completed"] == 1
    assert families["musicstore_leases"].samples[0].labels == {"state": "live"}
    assert families["musicstore_workers"].samples[0].value == 1
    assert families["musicstore_window_claims"].samples[0].labels == {"window": "3600s"}
    histogram = families["musicstore_generation_time_seconds"]
    assert histogram.type == "histogram"
    buckets = [s for s in histogram.samples if s.name.endswith("_bucket")]
    assert len(buckets) == len(GENERATION_BUCKETS) + 1 and buckets[-1].value == 1
    uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")
    for family in families.values():
        for sample in family.samples:
            assert all(
                not uuid.search(v) and "gpu" not in v and "lofi" not in v for v in sample.labels.values()
            )


def test_the_collector_registers_in_an_application_registry(store: Store) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(StoreCollector(store))
    store.create_generation("a prompt", **GEN)
    assert b"musicstore_queue_depth 1.0" in generate_latest(registry)


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=50))
def test_a_distribution_is_cumulative_and_counts_every_value(values: list[float]) -> None:
    dist = Distribution(GENERATION_BUCKETS)
    for v in values:
        dist.add(v)
    pairs = dist.cumulative()
    counts = [c for _, c in pairs]
    assert counts == sorted(counts) and counts[-1] == len(values) == dist.count
    for le, c in pairs[:-1]:
        assert c == sum(1 for v in values if v <= float(le))
    assert math.isclose(dist.total, math.fsum(values), rel_tol=1e-9, abs_tol=1e-6)
