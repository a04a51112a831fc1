"""Database size per 1,000 generations for the shipped SQLite schema and for alternatives to it.

    .venv/bin/python -m benchmarks.size_variants                  # 10,000 generations per variant
    .venv/bin/python -m benchmarks.size_variants --count 2000

A design study behind the size target (≤ 520 KB per 1,000 generations with unique 60-character prompts), not
a benchmark of the library: each variant migrates a fresh file, rewrites ``generations`` as the variant says
(same columns, constraints, indexes and triggers otherwise), then inserts the rows ``create_generation``
writes (the prompt upsert and the row, one transaction each, the metadata ``benchmarks.data`` makes) with bare
sqlite3. The first variant is the shipped schema; its figure matches ``benchmarks.size``'s library-made one.
Sizes are dbstat page bytes after a WAL checkpoint, per 1,000 generations, just created (all pending).

Then what each alternative costs a read (fastest of 5 repeats, bare sqlite3): a get and a page of 50 with and
without the prompts join, a 16-byte id to text and back, and a claim with and without id in the queue index
when 10,000 jobs share one ``created_at``.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import timeit
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from musicstore import migrate
from musicstore.ids import new_id
from musicstore.models import prompt_digest

from .data import create_metadata, make_prompt

ID_COLUMN = "id                      TEXT    PRIMARY KEY CHECK (length(id) = 36)"
QUEUE_INDEX = "generations_status_created_at_id"


@dataclass(frozen=True)
class Variant:
    name: str
    blob_ids: bool = False
    queue_without_id: bool = False
    without_rowid: bool = False


VARIANTS = (
    Variant("shipped schema"),
    Variant("queue index (status, created_at), no id", queue_without_id=True),
    Variant("generations WITHOUT ROWID", without_rowid=True),
    Variant("ids as 16-byte BLOBs", blob_ids=True),
    Variant("16-byte ids + queue index without id", blob_ids=True, queue_without_id=True),
)


def rebuild(conn: sqlite3.Connection, variant: Variant) -> None:
    """Recreate ``generations`` (empty) as the variant says, with its indexes and triggers."""
    objects = conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'generations' AND sql IS NOT NULL"
    ).fetchall()
    table = next(sql for kind, _, sql in objects if kind == "table")
    if variant.blob_ids:
        table = table.replace(ID_COLUMN, "id BLOB PRIMARY KEY CHECK (length(id) = 16)")
    if variant.without_rowid:
        table = table.rstrip().removesuffix(";") + ", WITHOUT ROWID"
    conn.execute("DROP TABLE generations")
    conn.execute(table)
    for kind, name, sql in objects:
        if kind == "table":
            continue
        if name == QUEUE_INDEX and variant.queue_without_id:
            conn.execute(f"CREATE INDEX {QUEUE_INDEX} ON generations (status, created_at)")
        else:
            conn.execute(sql)


def page_bytes(conn: sqlite3.Connection) -> dict[str, int]:
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rows = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
    return {str(name): int(size) for name, size in rows}


def measure(variant: Variant, path: Path, count: int) -> dict[str, float]:
    """KB per 1,000 generations: the whole file, then each table and index that grew."""
    migrate(f"sqlite:///{path}")
    conn = sqlite3.connect(path, isolation_level=None)
    rebuild(conn, variant)
    before = page_bytes(conn)
    rng, now = random.Random(7), 1_764_000_000_000_000
    insert = (
        "INSERT INTO generations (id, prompt, prompt_digest, model_name, model_version, duration_seconds, "
        "sample_rate, channels, created_at, metadata) "
        "VALUES (?, ?, ?, 'musicgen-small', NULL, 30.0, 32000, 2, ?, ?)"
    )
    for i in range(count):
        text, now = make_prompt(rng, f"s{i}"), now + 1000
        metadata = json.dumps(create_metadata(rng), separators=(",", ":"))
        generation_id: str | bytes = uuid.UUID(new_id()).bytes if variant.blob_ids else new_id()
        conn.execute("BEGIN IMMEDIATE")
        digest = prompt_digest(text)
        conn.execute(
            "INSERT INTO prompts (digest, text, used_count, first_used_at, last_used_at) "
            "VALUES (?, ?, 1, ?, ?) "
            "ON CONFLICT (digest) DO UPDATE SET used_count = used_count + 1 RETURNING id",
            (digest, text, now, now),
        ).fetchone()
        conn.execute(insert, (generation_id, text, digest, now, metadata))
        conn.execute("COMMIT")
    after = page_bytes(conn)
    conn.close()
    grown = {name: (size - before.get(name, 0)) / count for name, size in after.items()}
    return {"total": sum(grown.values())} | {name: size for name, size in grown.items() if size > 0}


def best_us(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def read_costs(root: Path) -> None:
    """What 16-byte ids and a queue index without id cost a read."""
    costs: list[tuple[str, float]] = []
    text_id = new_id()
    raw = uuid.UUID(text_id).bytes

    def as_text(value: bytes) -> str:
        h = value.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    costs += [
        ("16-byte id to text", best_us(lambda: as_text(raw), 200_000)),
        ("text id to 16 bytes", best_us(lambda: bytes.fromhex(text_id.replace("-", "")), 200_000)),
    ]
    ties = sqlite3.connect(root / "ties.db", isolation_level=None)
    ties.execute("CREATE TABLE g (id TEXT PRIMARY KEY, status TEXT NOT NULL, created_at INTEGER NOT NULL)")
    ties.executemany("INSERT INTO g VALUES (?, 'pending', 1)", [(new_id(),) for _ in range(10_000)])
    claim = "SELECT id FROM g WHERE status = 'pending' ORDER BY created_at, id LIMIT 1"
    ties.execute("CREATE INDEX q ON g (status, created_at)")
    costs.append(("claim, 10,000 tied jobs, index (status, created_at)", best_us(
        lambda: ties.execute(claim).fetchone(), 20)))  # fmt: skip
    ties.execute("DROP INDEX q")
    ties.execute("CREATE INDEX q ON g (status, created_at, id)")
    costs.append(("claim, 10,000 tied jobs, index (status, created_at, id)", best_us(
        lambda: ties.execute(claim).fetchone(), 2000)))  # fmt: skip
    ties.close()
    print("\nread costs (bare sqlite3, fastest of 5)\n")
    print("| what | µs |\n| --- | ---: |")
    for label, us in costs:
        print(f"| {label} | {us:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="generations per variant")
    args = parser.parse_args()
    print(f"KB per 1,000 generations ({args.count:,} created, unique 60-character prompts), just created\n")
    columns = ("total", "generations", "prompts", "prompts.digest UNIQUE", "queue index", "id index", "other")
    print("| variant | " + " | ".join(columns) + " |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for n, variant in enumerate(VARIANTS):
            sizes = measure(variant, Path(tmp) / f"variant{n}.db", args.count)
            main_parts = {
                "generations": sizes.pop("generations", 0.0),
                "prompts": sizes.pop("prompts", 0.0),
                "unique": sizes.pop("sqlite_autoindex_prompts_1", 0.0),
                "queue": sizes.pop(QUEUE_INDEX, 0.0),
                "id": sizes.pop("sqlite_autoindex_generations_1", 0.0),
            }
            total = sizes.pop("total")
            other = sum(sizes.values())
            cells = [f"{v:.0f}" if v else "–" for v in (*main_parts.values(), other)]
            print(f"| {variant.name} | **{total:.0f}** | " + " | ".join(cells) + " |", flush=True)
        read_costs(Path(tmp))


if __name__ == "__main__":
    main()
