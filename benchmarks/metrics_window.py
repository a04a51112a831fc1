"""A scrape of ``/metrics`` when the window is busy: the window's figures alone (``read_metrics(rows=False)``,
what ``metrics_text`` and ``StoreCollector`` read) against the same snapshot read with the window's rows
(``rows=True``, as every scrape read it before), alternating, on SQLite.

    .venv/bin/python -m benchmarks.metrics_window                 # 20,000 rows in the last hour
    .venv/bin/python -m benchmarks.metrics_window --rows 5000 --batches 11

The database (made afresh in a temporary folder: its rows must be in the last hour) holds ``--rows``
generations created over the last 50 minutes (the default window is an hour, its row limit 20,000): a quarter
completed, a tenth failed (half of them by a lease's expiry), the rest pending, each with a 160-character
prompt; those claimed (created with priority 1, 7 in every 20) spread over the whole window, the failures
among the newest. Each side is timed in batches of ``--per-batch`` scrapes (the snapshot and its metric
families) that take turns; the figure is ms a scrape, median batch (fastest batch).

``--dashboard`` times the dashboard's reads of that busy window through the whole app instead (Starlette's
TestClient, as ``benchmarks.dashboard``): ``/metrics``, the overview ``/`` and ``/api/overview`` (its day
holds every row: up to 50,000 counted), each path a side. ``--database PATH`` keeps the database there (made
when it is missing), so that two versions of the library are timed on the same rows:

    .venv/bin/python -m benchmarks.metrics_window --rows 100000 --dashboard --database /tmp/busy.db
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from musicstore import Store
from musicstore.metrics import metrics_text, read_metrics
from musicstore.metrics.exposition import families
from musicstore.testing import FakeClock

from .harness import Plan, Prepare, alternate, command, load, machine


def _fill(url: str, rows: int) -> None:
    clock = FakeClock(datetime.now(UTC) - timedelta(minutes=50))
    with Store(url, migrate=True, clock=clock) as store:
        with store.transaction() as tx:
            for i in range(rows):
                prompt = f"lofi hip hop {i}, rain on the window, a slow jazz piano " * 3
                # the jobs claimed below (7 in 20) are spread over the window: the claims take them first
                priority = 1 if i % 20 < 7 else 0
                tx.create_generation(prompt, model_name="m", duration_seconds=30.0, priority=priority)
                clock.advance(2400.0 / rows)
        for i in range(rows // 4 + rows // 10):
            job = store.claim_next("gpu-0", lease_seconds=1)
            assert job is not None
            if i < rows // 4:
                store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=1)
            elif i % 2:
                store.fail(job.id, "out of memory", retry=False)
            else:
                clock.advance(2.0)
                store.requeue_expired(max_attempts=1)


def _dashboard(url: str, batches: int, per_batch: int) -> None:
    """ms a request of /metrics, / and /api/overview, median batch (fastest batch)."""
    from starlette.testclient import TestClient

    from musicstore.web import create_app

    with Store(url) as store, TestClient(create_app(store)) as client:
        window = client.get("/api/overview").json()["window"]

        def request(path: str) -> Prepare:
            def prepare(k: int) -> Callable[[], None]:
                def run() -> None:
                    for _ in range(k):
                        assert client.get(path).status_code == 200

                return run

            return prepare

        times = alternate({p: request(p) for p in PATHS}, per_batch, Plan(batches, 1))
    counted = sum(window["generations"].values())
    print(f"the overview's day: {counted:,} rows counted (truncated: {window['truncated']});")
    print("ms a request, median batch (fastest batch):")
    for path, values in times.items():
        print(f"  {path:<14} {statistics.median(values) / 1000:7.1f} ({min(values) / 1000:.1f})")


PATHS = ("/metrics", "/", "/api/overview")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--rows", type=int, default=20_000, help="generations in the window (default 20,000)")
    p.add_argument("--batches", type=int, default=21, help="batches per side (default 21)")
    p.add_argument("--per-batch", type=int, default=3, help="scrapes per batch (default 3)")
    p.add_argument("--dashboard", action="store_true", help="time /metrics, / and /api/overview instead")
    p.add_argument("--database", type=Path, help="keep the database here (made when missing)")
    args = p.parse_args(argv)
    started = load()
    if args.dashboard:
        with tempfile.TemporaryDirectory() as folder:
            path = args.database or Path(folder) / "metrics.db"
            if not path.exists():
                _fill(f"sqlite:///{path}", args.rows)
            print(f"Machine: {machine()}. Load: {started} at the start.\n\n    {command()}\n")
            _dashboard(f"sqlite:///{path}", args.batches, args.per_batch)
        print(f"Load: {load()} at the end.")
        return
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'metrics.db'}"
        _fill(url, args.rows)
        with Store(url) as store:
            window = read_metrics(store, rows=False).window
            assert window == read_metrics(store).window  # the same figures either way
            counted = sum(window.generations.values())
            assert counted == min(args.rows, 20_000) and window.lease_expiries > 0, window

            def scrapes(rows: bool) -> Prepare:
                return lambda k: lambda: [list(families(read_metrics(store, rows=rows))) for _ in range(k)]

            sides = {"figures alone": scrapes(False), "with the rows": scrapes(True)}
            times = alternate(sides, args.per_batch, Plan(args.batches, 1))
            assert metrics_text(store)  # what /metrics answers: the figures alone
    print(f"Machine: {machine()}. Load: {started} at the start, {load()} at the end.\n\n    {command()}\n")
    print(f"{counted:,} rows in the window; ms a scrape, median batch (fastest batch):")
    for side, values in times.items():
        print(f"  {side:<14} {statistics.median(values) / 1000:7.1f} ({min(values) / 1000:.1f})")
    lean, whole = times["figures alone"], times["with the rows"]
    ratio, fastest = statistics.median(whole) / statistics.median(lean), min(whole) / min(lean)
    print(f"  with the rows / figures alone: {ratio:.2f}x (fastest {fastest:.2f}x)")


if __name__ == "__main__":
    main()
