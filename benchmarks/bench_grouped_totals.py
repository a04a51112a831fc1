"""Counts by model and storage statistics by model and day (migration 0005's running totals) at 10k-1M rows.

Standalone: ``python benchmarks/bench_grouped_totals.py --sizes 10000,100000``. For each size it migrates a
fresh SQLite file with the library (``musicstore.migrate``), writes that many generations in one bulk
transaction with ``sqlite3`` (the library creates rows one at a time, minutes at 1M), which the migrated
triggers count as they would the library's (three models, a year of creation days, ~90 % completed, 6 %
failed, 4 % cancelled, the newest 1 % pending; one prompt per row), checks through the library that the
totals equal a recount of the rows, then times three calls in alternating batches against the same SQL
through bare ``sqlite3`` (the floor, tuples only, on one open connection):

- ``store.count_generations(model_name=…)`` against the query ``count_by_model``;
- ``store.count_generations(status=…, model_name=…)`` against ``count_by_status_and_model``;
- ``storage_stats(store)`` against its four queries (span, by status, by model, by day) in one read
  transaction.

It prints µs per call, median and fastest batch, for both sides and their ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from musicstore import Store, migrate
from musicstore.maintenance.usage import storage_stats
from musicstore.queries import load

MODELS = ("musicgen-small", "musicgen-medium", "musicgen-large")
YEAR_MICROS = 365 * 86_400 * 1_000_000
START = 1_767_225_600 * 1_000_000  # 2026-01-01 UTC, µs
# The bulk writes: the migrated schema's own columns (the library's create path writes rows one at a time).
PROMPT_INSERT = (
    "INSERT INTO prompts (text, used_count, first_used_at, last_used_at, digest) VALUES (?, 1, ?, ?, ?)"
)
GENERATION_INSERT = (
    "INSERT INTO generations (id, prompt, prompt_digest, model_name, duration_seconds, sample_rate, channels,"
    " status, file_path, file_size_bytes, created_at, started_at, completed_at, generation_time_seconds,"
    " attempts) VALUES (?, ?, ?, ?, 30.0, 32000, 2, ?, ?, ?, ?, ?, ?, ?, ?)"
)
STATS_QUERIES = (
    "maintenance_storage_span",
    "maintenance_storage_by_status",
    "maintenance_storage_by_model",
    "maintenance_storage_by_day",
)


def build(path: Path, size: int, seed: int = 0) -> None:
    """Migrate ``path`` and write ``size`` generations in one transaction (the triggers keep the totals)."""
    migrate(f"sqlite:///{path}")
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    pending_from = size - max(1, size // 100)
    for i in range(size):
        text = f"prompt {i} {rng.getrandbits(64):016x}"
        digest = hashlib.sha256(text.encode()).digest()
        created = START + i * (YEAR_MICROS // size)
        conn.execute(PROMPT_INSERT, (text, created, created, digest))
        roll = rng.random()
        status = (
            "pending"
            if i >= pending_from
            else "completed"
            if roll < 0.90
            else "failed"
            if roll < 0.96
            else "cancelled"
        )
        done = status == "completed"
        ident = f"{i:036d}"
        conn.execute(
            GENERATION_INSERT,
            (
                ident,
                text,
                digest,
                MODELS[rng.randrange(3)],
                status,
                f"{ident}.wav" if done else None,
                rng.randrange(1_000_000, 6_000_000) if done else None,
                created,
                None if status == "pending" else created + 1_000_000,
                None if status == "pending" else created + 20_000_000,
                rng.uniform(5, 60) if done else None,
                0 if status == "pending" else 1,
            ),
        )
    conn.execute("COMMIT")
    conn.close()


def check(store: Store, path: Path) -> None:
    """The totals the benchmark reads equal a recount of the rows (GROUP BY over generations, bare)."""
    conn = sqlite3.connect(path)
    try:
        recount = dict(conn.execute("SELECT model_name, count(*) FROM generations GROUP BY 1").fetchall())
    finally:
        conn.close()
    stats = storage_stats(store)
    assert {m: b.generations for m, b in stats.by_model.items()} == recount, (stats.by_model, recount)
    assert sum(b.generations for b in stats.by_day.values()) == sum(recount.values())
    assert all(store.count_generations(model_name=m) == n for m, n in recount.items())


def batches(
    library: Callable[[], Any], floor: Callable[[], Any], calls: int, repeats: int
) -> tuple[list[float], list[float]]:
    """µs per call of ``repeats`` batches of ``calls`` calls, library and floor alternating."""
    lib: list[float] = []
    bare: list[float] = []
    for _ in range(repeats):
        for fn, out in ((library, lib), (floor, bare)):
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            out.append((time.perf_counter() - start) / calls * 1e6)
    return lib, bare


def measure(path: Path, calls: int, repeats: int) -> list[tuple[str, list[float], list[float]]]:
    queries = load("sqlite", "sqlite3")
    floor = sqlite3.connect(path, isolation_level=None)
    floor.execute("PRAGMA query_only = ON")

    def one(name: str, params: dict[str, Any]) -> Callable[[], Any]:
        sql = queries[name].sql
        return lambda: floor.execute(sql, params).fetchone()

    def stats_floor() -> Any:
        floor.execute("BEGIN")
        try:
            return [floor.execute(queries[name].sql).fetchall() for name in STATS_QUERIES]
        finally:
            floor.execute("COMMIT")

    results = []
    with Store(f"sqlite:///{path}") as store:
        check(store, path)
        model = MODELS[0]
        cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
            (
                "count_generations(model_name=…)",
                lambda: store.count_generations(model_name=model),
                one("count_by_model", {"model_name": model}),
            ),
            (
                "count_generations(status=…, model_name=…)",
                lambda: store.count_generations(status="completed", model_name=model),
                one("count_by_status_and_model", {"status": "completed", "model_name": model}),
            ),
            ("storage_stats(store)", lambda: storage_stats(store), stats_floor),
        ]
        for label, library, bare in cases:
            library(), bare()  # warm caches
            lib, flo = batches(library, bare, calls, repeats)
            results.append((label, lib, flo))
    floor.close()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated row counts")
    parser.add_argument("--calls", type=int, default=50, help="calls per batch")
    parser.add_argument("--repeats", type=int, default=21, help="batches per side")
    parser.add_argument("--dir", type=Path, default=None, help="where to build the databases (default: temp)")
    args = parser.parse_args(argv)
    print("| rows | call | musicstore median µs | min µs | floor (sqlite3) median µs | min µs | ratio |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            path = Path(tmp) / f"grouped-{size}.db"
            build(path, size)
            for label, lib, flo in measure(path, args.calls, args.repeats):
                lib_med, flo_med = statistics.median(lib), statistics.median(flo)
                print(
                    f"| {size:,} | {label} | {lib_med:.1f} | {min(lib):.1f} | {flo_med:.1f} | {min(flo):.1f}"
                    f" | {lib_med / flo_med:.2f} |",
                    flush=True,
                )
            path.unlink()


if __name__ == "__main__":
    main()
