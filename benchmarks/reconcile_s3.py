"""Reconcile of a bucket against a bare paginated listing, and its memory at two sizes (SeaweedFS, SQLite).

    .venv/bin/python -m benchmarks.reconcile_s3                      # 10,000 and 100,000 objects
    .venv/bin/python -m benchmarks.reconcile_s3 --sizes 2000 20000   # smaller

Starts a throwaway SeaweedFS (``weed mini`` on 127.0.0.1) and, for each size N, puts N tiny objects (64 bytes,
parallel PUTs) under their own prefix in the ``YYYY/MM/DD/<id>.wav`` layout over ~100 days and a SQLite store
with the N completed generations recording them (``storage_url`` the prefix), 100 of whose objects are
missing, plus 100 orphan objects. Each measurement runs in a fresh process: ``reconcile(store, 's3://…')``
(report only: the listing merged with the rows) and the floor, a bare ``list_objects_v2`` paginator (1000
keys a page) over the same prefix that counts the keys and sums their sizes; the two alternate, ``--repeat``
times; median (fastest) seconds and the peak RSS (``VmHWM``) of each process. Target: reconcile ≤ 1.3× the
listing, peak RSS flat from the smaller size to the larger.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from musicstore import Generation, Prompt, Status, Store, ops
from musicstore.ops.storage import import_storage

BAD = 100  # missing objects and orphan objects: each
BODY = b"\0" * 64
CHECKSUM = "f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a92759fb4b"  # sha256 of BODY


def build(server: Any, workdir: Path, rows: int) -> tuple[str, str]:
    """A store of ``rows`` generations in s3://BUCKET/bench-<rows>/ and their objects (put in parallel)."""
    url = f"sqlite:///{workdir / f'store-{rows}.db'}"
    prefix = f"bench-{rows}/"
    storage_url = f"s3://{server.bucket}/{prefix}"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    prompt = Prompt(0, "benchmark prompt", rows, start, start)
    keys: list[str] = []
    with Store(url, migrate=True) as store:
        batch: list[Generation] = []
        located: list[tuple[str, str | None, str | None, str | None]] = []
        for n in range(rows):
            gid = str(uuid.uuid4())
            created = start + timedelta(seconds=n * 100 * 86_400 / rows)
            key = f"{created:%Y/%m/%d}/{gid}.wav"
            if n % (rows // BAD) != 0:  # else a dangling row: its object is missing
                keys.append(key)
            batch.append(
                Generation(
                    id=gid, prompt=prompt.text, model_name="bench", model_version=None,
                    duration_seconds=30.0, sample_rate=32_000, channels=2, status=Status.COMPLETED,
                    created_at=created, file_path=key, file_size_bytes=len(BODY), started_at=created,
                    completed_at=created, generation_time_seconds=1.0, attempts=1,
                )
            )  # fmt: skip
            located.append((gid, storage_url, key, CHECKSUM))
            if len(batch) == 5000:
                with store.transaction() as tx:
                    tx.run(ops.import_rows, [prompt], batch)
                    tx.run(import_storage, located)
                batch, located = [], []
        if batch:
            with store.transaction() as tx:
                tx.run(ops.import_rows, [prompt], batch)
                tx.run(import_storage, located)
    keys += [f"{start + timedelta(days=n):%Y/%m/%d}/{uuid.uuid4()}.wav" for n in range(BAD)]  # orphans
    client = server.client()
    bucket = server.bucket

    def put(key: str) -> None:
        client.put_object(Bucket=bucket, Key=prefix + key, Body=BODY, Metadata={"sha256": CHECKSUM})

    with ThreadPoolExecutor(max_workers=32) as pool:
        for _ in pool.map(put, keys):
            pass
    return url, storage_url


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(url: str, storage_url: str, mode: str) -> dict[str, Any]:
    """In a fresh process (the ``AWS_*`` variables set): one reconcile or one bare listing."""
    import boto3

    from musicstore.maintenance.reconcile import reconcile

    before = peak_rss_mb()
    if mode == "floor":
        bucket, _, prefix = storage_url.removeprefix("s3://").partition("/")
        client = boto3.client("s3")
        started = time.perf_counter()
        count = size = 0
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": 1000}
        )
        for page in pages:
            for item in page.get("Contents", []):
                count += 1
                size += item["Size"]
        result: dict[str, Any] = {"objects": count}
    else:
        started = time.perf_counter()
        with Store(url) as store:
            report = reconcile(store, storage_url)
        result = {
            "objects": report.files_scanned,
            "rows": report.rows_checked,
            "orphans": report.orphan_count,
            "dangling": report.dangling_count,
        }
    seconds = time.perf_counter() - started
    return {"mode": mode, "seconds": seconds, "maxrss_mb": peak_rss_mb(), "rss_before_mb": before, **result}


def run(url: str, storage_url: str, mode: str, environ: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.reconcile_s3", "--measure", url, storage_url, mode],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, **environ},
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--measure", nargs=3, metavar=("URL", "STORAGE_URL", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    from musicstore.testing._seaweed import start

    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    server = start()
    try:
        with tempfile.TemporaryDirectory(prefix="musicstore-bench-s3-") as work:
            summary = []
            for rows in args.sizes:
                t = time.perf_counter()
                url, storage_url = build(server, Path(work), rows)
                print(f"{rows:,} rows and {rows:,} objects ready in {time.perf_counter() - t:.1f} s")
                runs: dict[str, list[dict[str, Any]]] = {"floor": [], "reconcile": []}
                for _ in range(args.repeat):
                    for mode in ("floor", "reconcile"):
                        runs[mode].append(run(url, storage_url, mode, server.environ))
                rec, flo = runs["reconcile"], runs["floor"]
                med = {m: statistics.median(r["seconds"] for r in runs[m]) for m in runs}
                low = {m: min(r["seconds"] for r in runs[m]) for m in runs}
                rss = {m: max(r["maxrss_mb"] for r in runs[m]) for m in runs}
                found = rec[0]
                print(
                    f"  listing (floor): {med['floor']:.2f} s ({low['floor']:.2f}), "
                    f"peak RSS {rss['floor']:.0f} MB"
                )
                print(
                    f"  reconcile:       {med['reconcile']:.2f} s ({low['reconcile']:.2f}), "
                    f"peak RSS {rss['reconcile']:.0f} MB (after imports {found['rss_before_mb']:.0f} MB)"
                )
                print(f"  ratio {med['reconcile'] / med['floor']:.2f}x "
                      f"({low['reconcile'] / low['floor']:.2f}x); found {found['objects']:,} objects, "
                      f"{found['rows']:,} rows, {found['orphans']} orphans, {found['dangling']} dangling; "
                      f"the listing saw {flo[0]['objects']:,}")  # fmt: skip
                summary.append((rows, med["reconcile"] / med["floor"], rss["reconcile"]))
            for rows, ratio, peak in summary:
                print(f"{rows:>9,} objects: reconcile {ratio:.2f}x the listing, peak RSS {peak:.0f} MB")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
