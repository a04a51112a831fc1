"""Database size on SQLite: bytes per 1,000 generations created through the library, by table and index.

    .venv/bin/python -m benchmarks.size                    # 10,000 generations
    .venv/bin/python -m benchmarks.size --count 2000       # quick

N generations with unique 60-character prompts are created through ``Store.create_generation`` (one
transaction each) into a fresh migrated file; sizes are ``dbstat`` page bytes after a WAL checkpoint, minus
the empty schema's. Three columns: just created (all pending; target ≤ 520 KB per 1,000), then a realistic
status mix reached through the library (the newest 3 % left pending; of the others, in claim order, ~90 %
completed with a file and metadata, 6 % failed, 4 % cancelled), then the same file after ``VACUUM``.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
from pathlib import Path

from musicstore import Store, migrate

from .data import create_metadata, done_metadata, make_prompt
from .harness import command, finish, load, machine

TARGET_KB = 520


def pages(conn: sqlite3.Connection) -> dict[str, int]:
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())


def measure(path: Path, count: int) -> list[dict[str, float]]:
    """KB per 1,000 generations, by object: just created, realistic mix, after VACUUM."""
    url = f"sqlite:///{path}"
    migrate(url)
    conn = sqlite3.connect(path, isolation_level=None)
    empty = pages(conn)
    rng = random.Random(7)
    snapshots = []
    with Store(url) as store:
        for i in range(count):
            prompt, meta = make_prompt(rng, f"s{i}"), create_metadata(rng)
            store.create_generation(prompt, model_name="musicgen-small", duration_seconds=30.0, metadata=meta)
        snapshots.append(pages(conn))
        keep_pending = count * 3 // 100
        for _ in range(count - keep_pending):
            job = store.claim_next("size")
            assert job is not None
            roll = rng.random()
            if roll < 0.90:
                path_ = f"2026/11/22/{job.id}.wav"
                store.complete_generation(
                    job.id, file_path=path_, file_size_bytes=3_840_044, metadata=done_metadata(rng)
                )
            elif roll < 0.96:
                store.fail(job.id, "CUDA out of memory", retry=False)
            else:
                store.cancel(job.id, "cancelled by user")
        snapshots.append(pages(conn))
    conn.execute("VACUUM")
    snapshots.append(pages(conn))
    conn.close()
    out = []
    for snapshot in snapshots:
        grown = {name: (size - empty.get(name, 0)) / count for name, size in snapshot.items()}
        out.append({"total": sum(grown.values()), **{k: v for k, v in grown.items() if v > 0}})
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--count", type=int, default=10_000, help="generations to create (default 10,000)")
    p.add_argument("--output", type=Path, help="also write the markdown report here")
    args = p.parse_args(argv)
    started = load()
    with tempfile.TemporaryDirectory() as tmp:
        created, mixed, vacuumed = measure(Path(tmp) / "size.db", args.count)
    lines = [
        "### Database size (SQLite)",
        "",
        f"Machine: {machine()}. Load: {started}.",
        "",
        f"    {command()}",
        "",
        f"| KB per 1,000 generations ({args.count:,} created) | just created (pending) | realistic mix "
        "| realistic mix after VACUUM |",
        "| --- | ---: | ---: | ---: |",
    ]
    verdict = "✅" if created["total"] <= TARGET_KB else "❌"
    totals = " | ".join(f"**{s['total']:.0f}**" for s in (created, mixed, vacuumed))
    lines.append(f"| **total** (target ≤ {TARGET_KB} KB just created {verdict}) | {totals} |")
    for name in sorted(set(created) | set(mixed), key=lambda k: -mixed.get(k, 0)):
        if name != "total":
            cells = " | ".join(f"{s.get(name, 0):.0f}" for s in (created, mixed, vacuumed))
            lines.append(f"| `{name}` | {cells} |")
    finish("\n".join(lines) + "\n", args.output)


if __name__ == "__main__":
    main()
