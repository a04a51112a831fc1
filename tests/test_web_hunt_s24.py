"""The truth of the dashboard's and /metrics' numbers (s24 hunt, both backends): the exposition as
Prometheus and OpenMetrics parsers read it, every figure against the store's own API and a recount of the
rows after a random mix of operations (clock skew and scheduled jobs included), one consistent read per
page, and no request that writes."""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("starlette")
pytest.importorskip("jinja2")
pytest.importorskip("prometheus_client")

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as _openmetrics
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from musicstore import RetryPolicy, Store
from musicstore.errors import DatabaseError
from musicstore.testing import FakeClock
from musicstore.web import create_app

GEN: dict[str, Any] = {
    "model_name": "musicgen-small",
    "duration_seconds": 2,
    "sample_rate": 32_000,
    "channels": 2,
}
HOSTILE_MODELS = ['a "quoted"\\model\n', "ünï 😀", "tab\tcr\rend"]
HISTOGRAMS = (
    "musicstore_generation_time_seconds",
    "musicstore_export_time_seconds",
    "musicstore_loudness_lufs",
    "musicstore_true_peak_dbtp",
)
PROMETHEUS_ACCEPT = (  # what Prometheus 2 sends when it scrapes
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def openmetrics_families(text: str) -> list[Metric]:
    """The families of an OpenMetrics exposition, each checked by prometheus_client's parser."""
    return list(_openmetrics(text))  # type: ignore[no-untyped-call]


def _fill(store: Store) -> list[str]:
    """A few rows of each kind, with hostile model names; returns the ids."""
    ids = []
    for i, model in enumerate(HOSTILE_MODELS * 2):
        made = store.create_generation(f"lofi {i}", **{**GEN, "model_name": model}, priority=i % 3 - 1)
        ids.append(made.id)
    for took in (3.0, 45.0):
        claimed = store.claim_next("gpu-0", lease_seconds=60)
        assert claimed is not None
        store.complete_generation(
            claimed.id,
            file_path=f"{claimed.id}.wav",
            file_size_bytes=1000,
            generation_time_seconds=took,
            metadata={"loudness_lufs": -14.0 - took / 10, "true_peak_dbtp": -1.0},
        )
    claimed = store.claim_next("gpu-1", lease_seconds=60)
    assert claimed is not None
    store.fail(claimed.id, "boom", retry=False)
    store.claim_next("gpu-2", lease_seconds=60)
    return ids


def test_metrics_answer_prometheus_in_openmetrics_where_gauge_histograms_keep_their_type(
    store: Store, tmp_path: Path
) -> None:
    # /metrics ignored Accept: Prometheus, which asks for OpenMetrics first, got the text format, which has no
    # gauge histogram: the distributions docs/dashboard.md calls gauge histograms came as TYPE histogram
    # without a _count nor a _sum, beside two stray gauges (_gcount, _gsum) of the same HELP; and the body of
    # the text format 0.0.4 was labelled version=1.0.0
    _fill(store)
    with TestClient(create_app(store, root=tmp_path)) as client:
        scraped = client.get("/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
        plain = client.get("/metrics", headers={"Accept": "text/plain"})
        bare = client.get("/metrics")
        head = client.head("/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert head.status_code == 200 and head.headers["content-type"] == scraped.headers["content-type"]
    families = {f.name: f for f in openmetrics_families(scraped.text)}  # validates the whole exposition
    for name in HISTOGRAMS:
        family = families[name]
        assert family.type == "gaugehistogram", name
        by_suffix: dict[str, list[Any]] = {}
        for sample in family.samples:
            by_suffix.setdefault(sample.name.removeprefix(name), []).append(sample)
        assert set(by_suffix) == {"_bucket", "_gcount", "_gsum"}, name
        counts = [s.value for s in by_suffix["_bucket"]]
        assert counts == sorted(counts) and by_suffix["_bucket"][-1].labels["le"] == "+Inf"
        assert counts[-1] == by_suffix["_gcount"][0].value
        assert not any(n.startswith(name + "_") for n in families), name  # no stray gauges
    assert families["musicstore_generation_time_seconds"].samples[-2].value == 2  # _gcount
    models = {s.labels["model"] for s in families["musicstore_generations_by_model"].samples}
    assert models == set(HOSTILE_MODELS)
    for answer in (plain, bare):  # the text format, labelled with its version
        assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = {f.name: f for f in text_string_to_metric_families(answer.text)}
        assert {s.labels["model"] for s in text["musicstore_generations_by_model"].samples} == models
        for family in text.values():
            assert all(math.isfinite(s.value) for s in family.samples), family.name


def test_the_overview_reads_its_figures_in_one_transaction(db_url: str, tmp_path: Path) -> None:
    # the overview read its snapshot (counts by status, the window) in one read transaction and its hourly
    # bars, days and failures in a second: a job created between the two was in the bars and in no count,
    # so the page's figures did not add up (here: 1 generation by status, 2 in the hour's bar)
    with Store(db_url) as store, Store(db_url) as writer:
        store.create_generation("lofi", **GEN)
        opened = store.transaction

        @contextlib.contextmanager
        def then_a_writer(**options: Any) -> Iterator[Any]:
            with opened(**options) as tx:
                yield tx
            writer.create_generation("written between two reads", **GEN)  # another connection commits

        store.transaction = then_a_writer  # type: ignore[method-assign]
        with TestClient(create_app(store, root=tmp_path)) as client:
            overview = client.get("/api/overview").json()
    hours = dict(overview["charts"]["hours"]["series"])
    total = sum(overview["by_status"].values())
    assert sum(hours["created"]) == sum(overview["window"]["generations"].values()) == total
    days = overview["charts"]["days"]["series"][0][1]
    assert sum(days) == total


def _requests(ids: list[str]) -> list[str]:
    paths = ["/", "/generations", "/generations?status=failed&q=lofi", "/prompts", "/workers", "/metrics"]
    paths += ["/static/app.js", "/login", "/login?token=nope", "/api/overview", "/api/generations"]
    paths += ["/api/prompts", "/api/workers", "/nowhere", "/api/nowhere", "/metrics/"]
    for gid in ids[:3]:
        paths += [f"/generations/{gid}", f"/api/generations/{gid}", f"/api/generations/{gid}/peaks"]
        paths += [f"/audio/{gid}"]
    return paths


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "FOO")


def _hit_every_route(store: Store, root: Path, ids: list[str]) -> None:
    with TestClient(create_app(store, root=root), raise_server_exceptions=False) as client:
        for path in _requests(ids):
            for method in METHODS:
                response = client.request(method, path, follow_redirects=False)
                if method not in ("GET", "HEAD"):
                    assert response.status_code == 405, (method, path)
                    assert response.headers["allow"] == "GET, HEAD"
                    continue
                assert response.status_code < 500, (method, path, response.text)
                if path.endswith("nowhere"):
                    assert response.status_code == 404, (method, path)


def test_no_request_writes_to_a_sqlite_database(sqlite_url: str, tmp_path: Path) -> None:
    with Store(sqlite_url) as store:
        ids = _fill(store)
        database = Path(sqlite_url.removeprefix("sqlite:///"))
        files = sorted(database.parent.glob(database.name + "*"))
        watcher = sqlite3.connect(database)  # its data_version moves when another connection commits
        try:
            version = watcher.execute("PRAGMA data_version").fetchone()[0]
            stamps = {f: (f.stat().st_mtime_ns, f.stat().st_size) for f in files}
            _hit_every_route(store, tmp_path, ids)
            assert watcher.execute("PRAGMA data_version").fetchone()[0] == version
            assert {f: (f.stat().st_mtime_ns, f.stat().st_size) for f in files} == stamps
        finally:
            watcher.close()


def test_no_request_writes_to_a_postgresql_database(postgres_url: str, tmp_path: Path) -> None:
    # the database made read-only for every new session: a request that wrote would fail with a 500
    import psycopg

    with Store(postgres_url) as store:
        ids = _fill(store)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        name = admin.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        try:
            with Store(postgres_url) as store:
                with pytest.raises(DatabaseError, match="read-only"):
                    store.create_generation("refused", **GEN)
                _hit_every_route(store, tmp_path, ids)
        finally:
            admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')


OPERATIONS = (
    "create", "create", "claim", "complete", "fail", "retry", "cancel", "advance", "skew",
    "requeue", "delete", "replay", "progress", "later",
)  # fmt: skip
_OPS = st.lists(
    st.tuples(
        st.sampled_from(OPERATIONS),
        st.integers(0, 11),
    ),
    max_size=40,
)


def _apply(store: Store, clock: FakeClock, op: str, n: int) -> None:
    rows = store.get_all_generations(limit=500)
    processing = [g for g in rows if g.status.value == "processing"]
    pick = rows[n % len(rows)] if rows else None
    claimed = processing[n % len(processing)] if processing else None
    if op == "create":
        run_after = None if n % 3 == 0 else clock.now + timedelta(seconds=(n - 6) * 300)
        store.create_generation(
            f"prompt {n % 4}",
            **{**GEN, "model_name": HOSTILE_MODELS[n % 3]},
            priority=n % 3 - 1,
            run_after=run_after,
            owner_key=None if n % 2 else f"key {n % 3}",
        )
    elif op == "claim":
        store.claim_next(f"gpu-{n % 3}", lease_seconds=30 + 60 * (n % 2))
    elif op == "complete" and claimed is not None:
        store.complete_generation(
            claimed.id,
            file_path=f"{claimed.id}.wav",
            file_size_bytes=1000 + n,
            generation_time_seconds=0.5 * n,
            metadata={"loudness_lufs": -14.0 - n, "true_peak_dbtp": -1.0 + n / 10},
        )
    elif op in ("fail", "retry") and claimed is not None:
        store.fail(claimed.id, f"boom {n}", retry=op == "retry", backoff=RetryPolicy() if n % 2 else None)
    elif op == "cancel" and pick is not None and pick.status.value in ("pending", "processing"):
        store.cancel(pick.id, "no longer wanted")
    elif op == "advance":
        clock.advance(60 * 7 * n)
    elif op == "skew":  # the clock stepped back: rows created "in the future"
        clock.now -= timedelta(minutes=7 * n)
    elif op == "later":
        clock.advance(3600 * n)
    elif op == "requeue":
        store.requeue_expired()
    elif op == "delete" and pick is not None and pick.status.value != "processing":
        store.delete_generation(pick.id)
    elif op == "replay":
        store.replay_all()
    elif op == "progress" and claimed is not None and claimed.worker_id is not None:
        with contextlib.suppress(Exception):  # a lease lost to the clock: not the point here
            store.report_progress(claimed.id, claimed.worker_id, n / 11, f"stage {n}")


def _hour_counts(moments: list[Any], hour0: Any) -> list[int]:
    return [
        sum(m is not None and timedelta(hours=i) <= m - hour0 < timedelta(hours=i + 1) for m in moments)
        for i in range(24)
    ]


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=_OPS)
def test_every_figure_agrees_with_the_store_and_a_recount(
    store: Store, clock: FakeClock, tmp_path: Path, steps: list[Any]
) -> None:
    from musicstore.metrics import read_metrics
    from musicstore.ops.jobs import RESET_CONFIRMATION

    store.reset_database(confirm=RESET_CONFIRMATION)  # each example starts from an empty store
    for op, n in steps:
        _apply(store, clock, op, n)

    snapshot = read_metrics(store)
    now, rows = clock.now, store.get_all_generations(limit=500)
    depth, stats = store.queue_depth(), store.get_database_stats()
    assert snapshot.longest_ready_wait == depth.longest_ready_wait_seconds
    assert snapshot.oldest_pending_age == depth.oldest_pending_age_seconds
    assert snapshot.by_status == {status.value: n for status, n in stats.by_status.items()}
    assert (snapshot.prompts, snapshot.prompt_uses) == (stats.unique_prompts, stats.prompt_uses)
    assert len(store.list_dead_letters(limit=500).items) == snapshot.by_status["failed"]
    with TestClient(create_app(store, root=tmp_path)) as client:
        overview = client.get("/api/overview").json()
        workers = client.get("/api/workers").json()
        prompts = client.get("/api/prompts").json()
        exposition = client.get("/metrics", headers={"Accept": PROMETHEUS_ACCEPT}).text
    families = {f.name: f for f in openmetrics_families(exposition)}
    gauges = {s.labels.get("status"): s.value for s in families["musicstore_generations"].samples}
    assert gauges == snapshot.by_status == overview["by_status"]
    for name in HISTOGRAMS:
        buckets = [s.value for s in families[name].samples if s.name.endswith("_bucket")]
        gcount = next(s.value for s in families[name].samples if s.name.endswith("_gcount"))
        assert buckets == sorted(buckets) and buckets[-1] == gcount
    busy = [g for g in rows if g.status.value == "processing"]
    expired = sum(g.lease_expires_at is not None and g.lease_expires_at <= now for g in busy)
    assert workers["leases"] == overview["leases"] == {"live": len(busy) - expired, "expired": expired}
    assert sorted(w["worker_id"] for w in workers["workers"]) == sorted({g.worker_id for g in busy})  # type: ignore[type-var]
    hour0 = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    hours = dict(overview["charts"]["hours"]["series"])
    assert hours["created"] == _hour_counts([g.created_at for g in rows], hour0)
    done = [g.completed_at for g in rows if g.status.value == "completed"]
    assert hours["completed"] == _hour_counts(done, hour0)
    day = now - timedelta(days=1)
    failed = [g.completed_at for g in rows if g.status.value == "failed" and g.created_at >= day]
    assert hours["failed"] == _hour_counts(failed, hour0)
    assert sum(overview["window"]["generations"].values()) == sum(g.created_at >= day for g in rows)
    trending = Counter(g.prompt for g in rows if g.created_at >= day)
    assert {t["text"]: t["uses"] for t in prompts["trending_day"]} == dict(trending)
    per_day = Counter(g.created_at.date().isoformat() for g in rows)
    labels, series = overview["charts"]["days"]["labels"], overview["charts"]["days"]["series"][0][1]
    assert dict(zip(labels, series, strict=True)) == {label: per_day.get(label, 0) for label in labels}


def test_the_workers_page_says_when_more_claims_are_in_flight_than_it_read(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /workers and /api/workers read at most 10,000 processing rows, as /metrics' leases, which say when more
    # are in flight (musicstore_processing_truncated, /api/overview's processing_truncated): the workers page
    # and its API gave their lower bound as the whole (2 live leases of 3 claims), with nothing to tell
    from musicstore.metrics import reads
    from musicstore.web import reads as web_reads

    monkeypatch.setattr(reads, "PROCESSING_LIMIT", 2)  # the walk's 10,000, made small
    monkeypatch.setattr(web_reads, "PROCESSING_LIMIT", 2)
    with Store(db_url) as store:
        for i in range(3):
            store.create_generation(f"lofi {i}", **GEN)
        with TestClient(create_app(store, root=tmp_path)) as client:
            for claimed in (1, 2, 3):
                store.claim_next(f"gpu-{claimed}", lease_seconds=60)
                workers = client.get("/api/workers").json()
                page = client.get("/workers").text
                overview = client.get("/api/overview").json()
                assert len(workers["processing"]) == min(claimed, 2)
                assert workers["truncated"] is overview["processing_truncated"] is (claimed > 2)
                assert ('id="workers-truncated"' in page) is (claimed > 2)
    assert workers["leases"] == {"live": 2, "expired": 0}  # of the 2 read
