"""Reconcile benchmark: 100k files / 100k rows on SQLite, time and peak memory, beside a floor.

    .venv/bin/python -m benchmarks.reconcile                      # 100,000 rows and files
    .venv/bin/python -m benchmarks.reconcile --rows 10000         # a quick run

Builds (once per size, cached under ``--workdir``) a migrated SQLite store with N completed generations
(bulk-imported with ``import_rows``) and their N files in the ``YYYY/MM/DD/<id>.wav`` layout over ~100 days,
plus 100 orphan files, 100 rows whose file is missing and 100 stale temp files. Each measurement runs in a
fresh process: ``reconcile`` (report only) timed and its peak RSS (``VmHWM``) and peak Python
allocations (``tracemalloc``, a separate run as it slows Python down) recorded; the *floor* is the same work
done bare (one ``os.scandir`` walk with a stat per entry, one ``sqlite3`` read of every completed row with a
``stat`` of its file). The target: under 10 s and 200 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from musicstore import Generation, Prompt, Status, Store, ops

BAD = 100  # orphans, missing files, stale temp files: each


def build(workdir: Path, rows: int) -> tuple[str, Path]:
    from musicstore.audio import layout_path  # numpy & co.: kept out of the measured processes

    base = workdir / f"reconcile-{rows}"
    url, root = f"sqlite:///{base / 'store.db'}", base / "audio"
    if (base / "done").exists():
        return url, root
    shutil.rmtree(base, ignore_errors=True)
    root.mkdir(parents=True)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    now = start + timedelta(days=100)
    prompt = Prompt(0, "benchmark prompt", rows, start, now)
    old = time.time() - 86_400
    with Store(url, migrate=True) as store:
        batch: list[Generation] = []
        for n in range(rows):
            gid = str(uuid.uuid4())
            created = start + timedelta(seconds=n * 100 * 86_400 / rows)
            path = layout_path(root, gid, when=created)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\0" * 64)
            size = 64
            if n % (rows // BAD) == 0:
                path.unlink()  # a dangling row: its file is missing
            rel = path.relative_to(root).as_posix()
            batch.append(
                Generation(
                    id=gid, prompt=prompt.text, model_name="bench", model_version=None,
                    duration_seconds=30.0, sample_rate=32_000, channels=2, status=Status.COMPLETED,
                    created_at=created, file_path=rel, file_size_bytes=size, started_at=created,
                    completed_at=created, generation_time_seconds=1.0, attempts=1,
                )
            )  # fmt: skip
            if len(batch) == 5000:
                store.run(ops.import_rows, [prompt], batch)
                batch = []
        if batch:
            store.run(ops.import_rows, [prompt], batch)
    for n in range(BAD):
        day = start + timedelta(days=n % 100)
        orphan = layout_path(root, str(uuid.uuid4()), when=day)
        orphan.write_bytes(b"\0" * 64)
        temp = orphan.with_name(f".{uuid.uuid4()}.wav.tmp{n:05d}.tmp")
        temp.write_bytes(b"\0" * 10)
        os.utime(temp, (old, old))
    (base / "done").touch()
    return url, root


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). ``ru_maxrss`` would not do: Linux carries it over from
    the parent across fork and exec, so a child would report the builder's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: an upper bound


def measure(url: str, root: str, mode: str) -> dict[str, Any]:
    """Run in a fresh process: one reconcile (or the floor), its time and peak memory."""
    import tracemalloc

    from musicstore.maintenance.reconcile import reconcile

    before = peak_rss_mb()
    if mode == "tracemalloc":
        tracemalloc.start()
    started = time.perf_counter()
    if mode == "floor":
        result = floor(url, Path(root))
    else:
        with Store(url) as store:
            report = reconcile(store, root)
        result = {
            "rows_checked": report.rows_checked,
            "files_scanned": report.files_scanned,
            "orphans": report.orphan_count,
            "dangling": report.dangling_count,
            "stale_temp": report.stale_temp_count,
        }
    seconds = time.perf_counter() - started
    peak_traced = tracemalloc.get_traced_memory()[1] if mode == "tracemalloc" else None
    after = peak_rss_mb()
    return {
        "mode": mode,
        "seconds": seconds,
        "maxrss_mb": after,
        "rss_before_mb": before,
        "traced_peak_mb": None if peak_traced is None else peak_traced / 2**20,
        **result,
    }


def floor(url: str, root: Path) -> dict[str, Any]:
    """The same work bare: every completed row's file stat'ed, every entry under the root stat'ed."""
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    rows = missing = 0
    for _gid, rel, size in conn.execute(
        "SELECT id, file_path, file_size_bytes FROM generations WHERE status = 'completed'"
    ):
        rows += 1
        try:
            if os.stat(root / rel).st_size != size:
                missing += 1
        except FileNotFoundError:
            missing += 1
    conn.close()
    files, stack = 0, [str(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    entry.stat(follow_symlinks=False)
                    files += 1
    return {"rows_checked": rows, "files_scanned": files, "dangling": missing}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/musicstore-bench"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--measure", nargs=3, metavar=("URL", "ROOT", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    t = time.perf_counter()
    url, root = build(args.workdir, args.rows)
    print(f"store and tree ready in {time.perf_counter() - t:.1f} s: {args.rows:,} rows, {root}")
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"SQLite {sqlite3.sqlite_version}"
    )
    results: dict[str, list[dict[str, Any]]] = {"reconcile": [], "floor": [], "tracemalloc": []}
    for _ in range(args.repeat):
        for mode in ("floor", "reconcile"):
            results[mode].append(run(url, root, mode))
    results["tracemalloc"].append(run(url, root, "tracemalloc"))
    best = {mode: min(runs, key=lambda r: r["seconds"]) for mode, runs in results.items()}
    rec, flo, traced = best["reconcile"], best["floor"], best["tracemalloc"]
    print(
        f"reconcile: {rec['seconds']:.2f} s (best of {args.repeat}), peak RSS {rec['maxrss_mb']:.0f} MB "
        f"(after imports {rec['rss_before_mb']:.0f} MB), "
        f"peak Python allocations {traced['traced_peak_mb']:.1f} MB"
    )
    print(f"  found: {rec['rows_checked']:,} rows, {rec['files_scanned']:,} files, {rec['orphans']} orphans, "
          f"{rec['dangling']} dangling, {rec['stale_temp']} stale temp")  # fmt: skip
    print(f"floor:     {flo['seconds']:.2f} s, peak RSS {flo['maxrss_mb']:.0f} MB")
    ok = rec["seconds"] < 10 and rec["maxrss_mb"] < 200
    print(f"target (< 10 s, < 200 MB): {'met' if ok else 'MISSED'}")
    if not ok:
        sys.exit(1)


def run(url: str, root: Path, mode: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.reconcile", "--measure", url, str(root), mode],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    return result


if __name__ == "__main__":
    main()
