"""Store benchmark: each musicstore operation beside the same SQL through bare ``sqlite3`` (the floor).

    .venv/bin/python benchmarks/bench_store.py                         # 10k, 100k, 1M rows (full run)
    .venv/bin/python benchmarks/bench_store.py --sizes 10000 --quick   # a fast smoke run
    .venv/bin/python benchmarks/bench_store.py --output docs/performance-store.md

Per operation (create, get by id, list 50 pending, claim, complete, stats) it times batches of the library
call and batches of the floor, alternately, and reports the median batch's time per operation. The floor runs
the very SQL text musicstore loads (``musicstore.queries.load``) on a connection opened like
``musicstore.backends.sqlite.connect`` (WAL, synchronous=NORMAL, foreign_keys=ON, isolation_level=None),
with the same ``BEGIN IMMEDIATE``/``COMMIT`` around writes, parameters prepared ahead and rows fetched as
tuples.

Also: claims per second with 8 processes draining one SQLite file (double claims and lost jobs counted from
the final rows), and database bytes per 1,000 generations created through the library.

Databases of N rows are bulk-built once (executemany in one transaction into a migrated file) and cached under
``--workdir`` keyed by size and schema; every run works on a fresh copy.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import functools
import hashlib
import importlib.util
import io
import itertools
import json
import multiprocessing as mp
import os
import platform
import pstats
import random
import shutil
import sqlite3
import statistics
import sys
import time
import timeit
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if importlib.util.find_spec("musicstore") is None:  # run from a source checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musicstore import Generation, Stats, Status, Store, migrate, ops
from musicstore.backends.sqlite import encode
from musicstore.errors import DatabaseBusy
from musicstore.ids import check_id, new_id
from musicstore.models import prompt_digest, to_datetime, to_micros
from musicstore.ops import NOW, Call
from musicstore.queries import data_dir, execute, load

BUILD_VERSION = 1
QUERIES = load("sqlite", "sqlite3")
WORDS = (
    "lofi",
    "hip",
    "hop",
    "chill",
    "ambient",
    "piano",
    "jazz",
    "drums",
    "warm",
    "vinyl",
    "crackle",
    "dreamy",
    "synthwave",
    "retro",
    "neon",
    "epic",
    "orchestral",
    "cinematic",
    "strings",
    "brass",
    "choir",
    "dark",
    "techno",
    "driving",
    "bass",
    "acid",
    "house",
    "groovy",
    "funk",
    "disco",
    "slap",
    "guitar",
    "acoustic",
    "folk",
    "mellow",
    "rainy",
    "night",
    "coffee",
    "shop",
    "upbeat",
    "pop",
    "catchy",
    "hook",
    "energetic",
    "rock",
    "heavy",
    "riff",
    "metal",
    "soft",
    "lullaby",
    "celtic",
    "harp",
    "flute",
    "tribal",
    "percussion",
    "latin",
    "salsa",
    "reggae",
    "dub",
    "deep",
    "minimal",
    "glitch",
    "trap",
    "808",
    "boom",
    "bap",
    "soulful",
    "gospel",
    "organ",
    "bossa",
    "nova",
    "sunset",
    "beach",
    "tropical).split(",
)
GENRES = ("lofi", "ambient", "jazz", "techno", "orchestral", "rock", "pop", "folk", "house", "trap")
KEYS = ("C major", "A minor", "G major", "E minor", "D major", "B minor", "F major", "D minor")
MODELS = ("musicgen-small", "musicgen-medium", "musicgen-large")
FAR_FUTURE = to_micros(datetime.max.replace(tzinfo=UTC))  # the library's "no cursor" bound


def sql(name: str) -> str:
    """The SQL text musicstore runs for the named query."""
    return QUERIES[name].sql


# --- data --------------------------------------------------------------------------------------------------


def make_prompt(rng: random.Random, key: str) -> str:
    """A 60-character prompt, unique through ``key``."""
    suffix = f" #{key}"
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < 60:
        words.append(rng.choice(WORDS))
    text = " ".join(words)[: 60 - len(suffix)] + suffix
    assert len(text) == 60, text
    return text


def uuid7(millis: int, rng: random.Random) -> str:
    """A UUIDv7 for this Unix millisecond (same layout as ``musicstore.ids.new_id``)."""
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | rng.getrandbits(80)
    value = value & ~(0xF << 76) | 0x7 << 76
    value = value & ~(0x3 << 62) | 0x2 << 62
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def create_metadata(rng: random.Random) -> dict[str, Any]:
    return {"genre": rng.choice(GENRES), "bpm": rng.randrange(60, 180), "seed": rng.getrandbits(31)}


def done_metadata(rng: random.Random) -> dict[str, Any]:
    return {
        "key": rng.choice(KEYS),
        "loudness_lufs": -16.0,
        "true_peak_dbtp": round(-1.0 - rng.random(), 2),
        "gain_db": round(rng.uniform(-6, 12), 2),
        "limited": rng.random() < 0.3,
    }


INSERT_ROW = (
    "INSERT INTO generations (id, prompt, model_name, model_version, duration_seconds, sample_rate, "
    "channels, status, file_path, file_size_bytes, created_at, started_at, completed_at, "
    "generation_time_seconds, error_message, attempts, worker_id, lease_expires_at, metadata, prompt_digest) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_PROMPT = (
    "INSERT INTO prompts (text, used_count, first_used_at, last_used_at, digest) VALUES (?, 1, ?, ?, ?)"
)

PromptRow = tuple[str, int, int]
"""An ``INSERT_PROMPT`` row: text, first_used_at, last_used_at (µs)."""
GenerationRow = tuple[
    str,  # id
    str,  # prompt
    str,  # model_name
    str | None,  # model_version
    float,  # duration_seconds
    int,  # sample_rate
    int,  # channels
    str,  # status
    str | None,  # file_path
    int | None,  # file_size_bytes
    int,  # created_at (µs)
    int | None,  # started_at (µs)
    int | None,  # completed_at (µs)
    float | None,  # generation_time_seconds
    str | None,  # error_message
    int,  # attempts
    str | None,  # worker_id
    int | None,  # lease_expires_at (µs)
    str,  # metadata (JSON)
]
"""An ``INSERT_ROW`` row, its columns in that statement's order."""


def rows_for(n: int, pending: int, seed: int) -> Iterator[tuple[list[PromptRow], list[GenerationRow]]]:
    """Chunks of (prompt rows, generation rows): created_at increasing over the past year; the newest
    ``pending`` rows pending, the rest ~90 % completed, 6 % failed, 4 % cancelled."""
    rng = random.Random(seed)
    end = to_micros(datetime.now(UTC) - timedelta(hours=1))
    step = max(1, 365 * 86_400_000_000 // max(n, 1))
    start = end - step * n
    chunk = 20_000
    for base in range(0, n, chunk):
        prompts: list[PromptRow] = []
        gens: list[GenerationRow] = []
        for i in range(base, min(n, base + chunk)):
            created = start + i * step + rng.randrange(step)
            gid = uuid7(created // 1000, rng)
            prompt = make_prompt(rng, f"{seed}-{i}")
            duration = float(rng.choice((10, 15, 30, 30, 30, 60)))
            meta = create_metadata(rng)
            model = rng.choice(MODELS)
            prompts.append((prompt, created, created))
            row: GenerationRow
            if i >= n - pending:
                row = (
                    gid,
                    prompt,
                    model,
                    None,
                    duration,
                    32000,
                    2,
                    "pending",
                    None,
                    None,
                    created,
                    None,
                    None,
                    None,
                    None,
                    0,
                    None,
                    None,
                    json.dumps(meta, separators=(",", ":")),
                )
            else:
                roll = rng.random()
                started = created + rng.randrange(1_000_000, 600_000_000)
                took = rng.uniform(5, 90)
                finished = started + int(took * 1e6)
                worker = f"gpu-{rng.randrange(16)}"
                if roll < 0.90:
                    meta.update(done_metadata(rng))
                    row = (
                        gid,
                        prompt,
                        model,
                        None,
                        duration,
                        32000,
                        2,
                        "completed",
                        f"{datetime.fromtimestamp(created / 1e6, UTC):%Y/%m/%d}/{gid}.wav",
                        int(duration * 32000 * 2 * 2 + 44),
                        created,
                        started,
                        finished,
                        took,
                        None,
                        1,
                        worker,
                        None,
                        json.dumps(meta, separators=(",", ":")),
                    )
                elif roll < 0.96:
                    row = (
                        gid,
                        prompt,
                        model,
                        None,
                        duration,
                        32000,
                        2,
                        "failed",
                        None,
                        None,
                        created,
                        started,
                        finished,
                        None,
                        "CUDA out of memory",
                        3,
                        worker,
                        None,
                        json.dumps(meta, separators=(",", ":")),
                    )
                else:
                    row = (
                        gid,
                        prompt,
                        model,
                        None,
                        duration,
                        32000,
                        2,
                        "cancelled",
                        None,
                        None,
                        created,
                        None,
                        created + rng.randrange(1_000_000, 60_000_000),
                        None,
                        "cancelled by user",
                        0,
                        None,
                        None,
                        json.dumps(meta, separators=(",", ":")),
                    )
            gens.append(row)
        yield prompts, gens


@functools.cache
def schema_key() -> str:
    """A hash of the shipped migrations (taken once per run, so one run uses one schema throughout)."""
    digest = hashlib.sha256(str(BUILD_VERSION).encode())
    root = data_dir("migrations")
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()[:10]


def bulk_build(path: Path, n: int, *, pending: int, seed: int = 1) -> None:
    """Build a migrated database of ``n`` generations at ``path`` (atomically: built aside, renamed)."""
    building = path.with_name(path.name + ".building")
    for leftover in (building, Path(f"{building}-wal"), Path(f"{building}-shm")):
        leftover.unlink(missing_ok=True)
    migrate(f"sqlite:///{building}")
    conn = sqlite3.connect(building, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")  # a cache file: built in one go or thrown away
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1000000")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("BEGIN")
    for prompts, gens in rows_for(n, pending, seed):
        conn.executemany(INSERT_PROMPT, [(*p, prompt_digest(p[0])) for p in prompts])
        conn.executemany(INSERT_ROW, [(*g, prompt_digest(g[1])) for g in gens])
    conn.execute("COMMIT")
    counted = dict(conn.execute("SELECT status, count(*) FROM generations GROUP BY status").fetchall())
    totals = dict(conn.execute("SELECT status, generations FROM generation_totals").fetchall())
    if any(totals[s] != counted.get(s, 0) for s in totals) or sum(counted.values()) != n:
        raise SystemExit(f"bulk build of {path}: totals {totals} disagree with counts {counted}")
    if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
        raise SystemExit(f"{building}: could not switch back to WAL")
    conn.close()
    os.replace(building, path)


def cached_database(workdir: Path, n: int, *, pending: int, tag: str = "rows") -> Path:
    path = workdir / f"{tag}-{n}-p{pending}-{schema_key()}.db"
    if not path.exists():
        t0 = time.perf_counter()
        print(f"building {path.name} ({n:,} generations) ...", flush=True)
        bulk_build(path, n, pending=pending)
        print(f"  built in {time.perf_counter() - t0:.1f} s, {path.stat().st_size / 1e6:.0f} MB", flush=True)
    return path


def working_copy(source: Path, target: Path) -> Path:
    for old in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
        old.unlink(missing_ok=True)
    shutil.copyfile(source, target)
    return target


def floor_connect(path: Path) -> sqlite3.Connection:
    """A bare connection set up like ``musicstore.backends.sqlite.connect`` (but rows are plain tuples)."""
    conn = sqlite3.connect(
        path, timeout=5.0, isolation_level=None, check_same_thread=False, cached_statements=256
    )
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


# --- timing ------------------------------------------------------------------------------------------------


@dataclass
class Plan:
    batches: int
    sizes: dict[str, int]  # ops per batch, per operation
    warmup: int


FULL = Plan(
    batches=21,
    warmup=50,
    sizes={"create": 200, "get": 2000, "list": 200, "claim": 200, "complete": 200, "stats": 2000},
)
QUICK = Plan(
    batches=5,
    warmup=20,
    sizes={"create": 100, "get": 500, "list": 50, "claim": 100, "complete": 100, "stats": 500},
)


@dataclass
class Result:
    rows: int
    op: str
    lib_us: float
    floor_us: float
    lib_spread: tuple[float, float]
    floor_spread: tuple[float, float]

    @property
    def ratio(self) -> float:
        return self.lib_us / self.floor_us


Timed = Callable[[], None]
Prepare = Callable[[int], Timed]
"""Builds the inputs of ``k`` operations (untimed) and returns the timed loop over them."""


def time_pair(lib: Prepare, floor: Prepare, batch: int, plan: Plan) -> tuple[list[float], list[float]]:
    """Per-op µs of each batch, library and floor alternating (who goes first alternates too)."""
    lib(plan.warmup)()
    floor(plan.warmup)()
    lib_us: list[float] = []
    floor_us: list[float] = []
    clock = time.perf_counter_ns
    for b in range(plan.batches):
        pair = ((lib, lib_us), (floor, floor_us))
        for prepare, out in pair if b % 2 == 0 else pair[::-1]:
            timed = prepare(batch)
            t0 = clock()
            timed()
            out.append((clock() - t0) / batch / 1000)
    return lib_us, floor_us


ConnT = TypeVar("ConnT")


@dataclass
class OpBench(Generic[ConnT]):
    """For each operation, the library call and the floor, on one database: ``lib_<op>(k)`` and
    ``floor_<op>(k)`` build the inputs of k operations and return the loop to time. ``conn`` is the floor's
    bare connection: sqlite3 for the ``floor_<op>`` here (bench_postgres overrides them for psycopg)."""

    store: Store
    conn: ConnT
    ids: list[str]
    rng: random.Random
    claimed: list[str] = field(default_factory=list)
    counter: Iterator[int] = field(default_factory=itertools.count)

    # create: a new unique 60-character prompt each time, metadata as an API server would pass it
    def _creates(self, k: int, side: str) -> list[tuple[str, dict[str, Any]]]:
        return [
            (make_prompt(self.rng, f"{side}{next(self.counter)}"), create_metadata(self.rng))
            for _ in range(k)
        ]

    def lib_create(self, k: int) -> Timed:
        create, inputs = self.store.create_generation, self._creates(k, "l")

        def timed() -> None:
            for prompt, meta in inputs:
                create(
                    prompt,
                    model_name="musicgen-small",
                    duration_seconds=30.0,
                    sample_rate=32000,
                    channels=2,
                    metadata=meta,
                )

        return timed

    def floor_create_params(self, k: int, now: object) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """The floor's (track_prompt, insert_generation) parameters for k creates; ``now`` is encoded as the
        backend binds timestamps."""
        return [
            (
                {"digest": prompt_digest(prompt), "text": prompt, "now": now},
                {
                    "prompt_digest": prompt_digest(prompt),
                    "id": new_id(),
                    "prompt": prompt,
                    "model_name": "musicgen-small",
                    "model_version": None,
                    "duration_seconds": 30.0,
                    "sample_rate": 32000,
                    "channels": 2,
                    "created_at": now,
                    "metadata": json.dumps(meta, separators=(",", ":")),
                },
            )
            for prompt, meta in self._creates(k, "f")
        ]

    def floor_create(self: OpBench[sqlite3.Connection], k: int) -> Timed:
        ex, track, insert = self.conn.execute, sql("track_prompt"), sql("insert_generation")
        prepared = self.floor_create_params(k, to_micros(datetime.now(UTC)))

        def timed() -> None:
            for prompt_params, row_params in prepared:
                ex("BEGIN IMMEDIATE")
                ex(track, prompt_params).fetchone()
                ex(insert, row_params)
                ex("COMMIT")

        return timed

    # get by id: a fixed random sample of existing ids, cycled
    def lib_get(self, k: int) -> Timed:
        get, ids = self.store.get_generation, [self.ids[i % len(self.ids)] for i in range(k)]

        def timed() -> None:
            for gid in ids:
                get(gid)

        return timed

    def floor_get(self: OpBench[sqlite3.Connection], k: int) -> Timed:
        ex, text = self.conn.execute, sql("get_generation")
        ids = [self.ids[i % len(self.ids)] for i in range(k)]

        def timed() -> None:
            for gid in ids:
                ex(text, {"id": gid}).fetchone()

        return timed

    # list: the newest page of 50 pending generations
    def lib_list(self, k: int) -> Timed:
        list_generations = self.store.list_generations

        def timed() -> None:
            for _ in range(k):
                list_generations(status="pending", limit=50)

        return timed

    def floor_list(self: OpBench[sqlite3.Connection], k: int) -> Timed:
        ex, text = self.conn.execute, sql("list_generations_by_status")
        params = {
            "status": "pending",
            "before_created_at": FAR_FUTURE,
            "before_id": "~",
            "limit": 50,
            "offset": 0,
        }

        def timed() -> None:
            for _ in range(k):
                ex(text, params).fetchall()

        return timed

    # stats: running totals
    def lib_stats(self, k: int) -> Timed:
        stats = self.store.get_database_stats

        def timed() -> None:
            for _ in range(k):
                stats()

        return timed

    def floor_stats(self: OpBench[sqlite3.Connection], k: int) -> Timed:
        ex, text = self.conn.execute, sql("totals")

        def timed() -> None:
            for _ in range(k):
                ex(text).fetchall()

        return timed

    # claim: the oldest pending generation
    def lib_claim(self, k: int) -> Timed:
        claim, claimed = self.store.claim_next, self.claimed

        def timed() -> None:
            for _ in range(k):
                job = claim("bench-lib")
                assert job is not None, "ran out of pending generations"
                claimed.append(job.id)

        return timed

    def floor_claim(self: OpBench[sqlite3.Connection], k: int) -> Timed:
        ex, text, claimed = self.conn.execute, sql("claim_next"), self.claimed
        now = to_micros(datetime.now(UTC))
        params = {"worker_id": "bench-floor", "now": now, "lease_expires_at": now + 300_000_000}

        def timed() -> None:
            for _ in range(k):
                ex("BEGIN IMMEDIATE")
                row = ex(text, params).fetchone()
                ex("COMMIT")
                assert row is not None, "ran out of pending generations"
                claimed.append(row[0])

        return timed

    # complete: a claimed generation (read for update, then the conditional UPDATE)
    def lib_complete(self, k: int) -> Timed:
        complete, meta = self.store.complete_generation, done_metadata(self.rng)
        jobs = [(gid, f"2026/11/22/{gid}.wav") for gid in self._take_claimed(k)]

        def timed() -> None:
            for gid, path in jobs:
                complete(gid, file_path=path, file_size_bytes=3_840_044, metadata=meta)

        return timed

    def floor_complete_params(self, k: int, now: object) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """The floor's (get_generation_for_update, complete_generation) parameters for k claimed generations;
        ``now`` is encoded as the backend binds timestamps."""
        merged = json.dumps({**create_metadata(self.rng), **done_metadata(self.rng)}, separators=(",", ":"))
        return [
            (
                {"id": gid},
                {
                    "id": gid,
                    "worker_id": None,
                    "now": now,
                    "file_path": f"2026/11/22/{gid}.wav",
                    "file_size_bytes": 3_840_044,
                    "generation_time_seconds": 42.0,
                    "metadata": merged,
                },
            )
            for gid in self._take_claimed(k)
        ]

    def floor_complete(self: OpBench[sqlite3.Connection], k: int) -> Timed:
        ex, read, update = self.conn.execute, sql("get_generation_for_update"), sql("complete_generation")
        jobs = self.floor_complete_params(k, to_micros(datetime.now(UTC)))

        def timed() -> None:
            for read_params, update_params in jobs:
                ex("BEGIN IMMEDIATE")
                ex(read, read_params).fetchone()
                ex(update, update_params)
                ex("COMMIT")

        return timed

    def _take_claimed(self, k: int) -> list[str]:
        if len(self.claimed) < k:
            raise RuntimeError("not enough claimed generations to complete")
        taken, self.claimed[:k] = self.claimed[:k], []
        return taken


OPS = ("create", "get", "list", "claim", "complete", "stats")


def bench_size(n: int, plan: Plan, workdir: Path, profile: bool) -> tuple[list[Result], list[str]]:
    """Every operation on a fresh copy of the cached n-row database."""
    pending = min(3000, n // 4)
    source = cached_database(workdir, n, pending=pending)
    path = working_copy(source, workdir / f"run-{n}.db")
    store = Store(f"sqlite:///{path}")
    conn = floor_connect(path)
    rowids = random.Random(n).sample(range(1, n + 1), min(n, 2000))  # bulk-built: rowids are 1..n
    ids = [conn.execute("SELECT id FROM generations WHERE rowid = ?", (r,)).fetchone()[0] for r in rowids]
    random.Random(0).shuffle(ids)
    bench = OpBench(store, conn, ids, random.Random(n))
    results, profiles = [], []
    for op in OPS:
        batch = plan.sizes[op]
        lib_us, floor_us = time_pair(getattr(bench, f"lib_{op}"), getattr(bench, f"floor_{op}"), batch, plan)
        r = Result(
            n,
            op,
            statistics.median(lib_us),
            statistics.median(floor_us),
            (min(lib_us), max(lib_us)),
            (min(floor_us), max(floor_us)),
        )
        results.append(r)
        print(
            f"  {n:>9,} {op:<9} musicstore {r.lib_us:9.1f} µs   floor {r.floor_us:9.1f} µs   "
            f"ratio {r.ratio:5.2f}",
            flush=True,
        )
        if profile:
            profiles.append(_profile(n, op, bench, batch))
    store.close()
    conn.close()
    for old in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        old.unlink(missing_ok=True)
    return results, profiles


def _profile(n: int, op: str, bench: OpBench[Any], batch: int) -> str:
    if op == "complete":
        bench.lib_claim(batch)()
    timed = getattr(bench, f"lib_{op}")(batch)
    profiler = cProfile.Profile()
    profiler.enable()
    timed()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(14)
    text = out.getvalue()
    print(f"--- cProfile, {op} at {n:,} rows, {batch} calls ---\n{text}", flush=True)
    return f"#### {op} at {n:,} rows ({batch} calls)\n\n```\n{text.strip()}\n```\n"


# --- 8 processes claiming ----------------------------------------------------------------------------------


def _claimer(path: str, mode: str, worker: str, barrier: Any, results: Any) -> None:
    """Claim until the queue is empty. ``mode``: library (claim_next), batch (claim_batch of 10), floor."""
    ids: list[str] = []
    busy = 0
    if mode == "library":
        store = Store(f"sqlite:///{path}")

        def claim() -> list[str]:
            job = store.claim_next(worker)
            return [] if job is None else [job.id]
    elif mode == "batch":
        store = Store(f"sqlite:///{path}")

        def claim() -> list[str]:
            return [job.id for job in store.claim_batch(worker, 10)]
    else:
        conn = floor_connect(Path(path))
        text = sql("claim_next")

        def claim() -> list[str]:
            now = to_micros(datetime.now(UTC))
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    text, {"worker_id": worker, "now": now, "lease_expires_at": now + 300_000_000}
                ).fetchone()
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            return [] if row is None else [row[0]]

    barrier.wait()
    start = time.perf_counter()
    while True:
        try:
            got = claim()
        except (DatabaseBusy, sqlite3.OperationalError):
            busy += 1
            continue
        if not got:
            break
        ids += got
    results.put((start, time.perf_counter(), ids, busy))


@dataclass
class ClaimRun:
    label: str
    processes: int
    jobs: int
    seconds: float
    double_claims: int
    lost: int
    busy_errors: int

    @property
    def per_second(self) -> float:
        return self.jobs / self.seconds


def claim_race(source: Path, workdir: Path, processes: int, mode: str, label: str) -> ClaimRun:
    path = working_copy(source, workdir / "claims.db")
    conn = sqlite3.connect(path)
    jobs = conn.execute("SELECT count(*) FROM generations WHERE status='pending'").fetchone()[0]
    conn.close()
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_claimer, args=(str(path), mode, f"w{i}", barrier, results))
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    seconds = max(g[1] for g in got) - min(g[0] for g in got)
    claimed = [gid for g in got for gid in g[2]]
    conn = sqlite3.connect(path)
    processing = {r[0] for r in conn.execute("SELECT id FROM generations WHERE status='processing'")}
    reclaimed = conn.execute("SELECT count(*) FROM generations WHERE attempts > 1").fetchone()[0]
    conn.close()
    double = len(claimed) - len(set(claimed)) + reclaimed
    lost = jobs - len(processing & set(claimed))
    run = ClaimRun(label, processes, jobs, seconds, double, lost, sum(g[3] for g in got))
    print(
        f"  claims: {label:<28} {processes} proc  {run.per_second:9,.0f} claims/s  double={double} "
        f"lost={lost} busy={run.busy_errors}",
        flush=True,
    )
    for old in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        old.unlink(missing_ok=True)
    return run


# --- where the library's time goes ------------------------------------------------------------------------


def best_us(fn: Callable[[], object], number: int) -> float:
    """Fastest of 7 repeats of ``number`` calls, µs per call (component costs, not end-to-end figures)."""
    best = min(timeit.repeat(fn, number=number, repeat=7))
    return best / number * 1e6


def _fake_driven(store: Store, op: Any, answers: dict[str, Any], *args: Any, **kwargs: Any) -> Timed:
    """Run an operation's own logic with canned query results: no database, no Store.run/_drive."""
    clock = store.clock

    def once() -> None:
        steps = op.steps(*args, **kwargs)
        try:
            step = next(steps)
            while True:
                step = steps.send(clock() if step is NOW else answers[step.name])
        except StopIteration:
            pass

    return once


def breakdown(source: Path, workdir: Path, results: list[Result], rounds: int) -> str:
    """Component costs of each operation, measured in isolation on one database."""
    path = working_copy(source, workdir / "breakdown.db")
    store = Store(f"sqlite:///{path}")
    lconn = floor_connect(path)  # rows as the library's connections give them: sqlite3.Row
    lconn.row_factory = sqlite3.Row
    bare = floor_connect(path)
    get_sql, list_sql, totals_sql = sql("get_generation"), sql("list_generations_by_status"), sql("totals")
    gid = lconn.execute(
        "SELECT id FROM generations WHERE status = 'completed' LIMIT 1 OFFSET 100"
    ).fetchone()[0]
    row = lconn.execute(get_sql, {"id": gid}).fetchone()
    job = store.claim_next("breakdown")
    assert job is not None
    processing = lconn.execute(get_sql, {"id": job.id}).fetchone()
    list_params = {
        "status": "pending",
        "before_created_at": FAR_FUTURE,
        "before_id": "~",
        "limit": 50,
        "offset": 0,
    }
    pending = lconn.execute(list_sql, list_params).fetchall()
    totals = lconn.execute(totals_sql).fetchall()
    prompt = lconn.execute(
        "SELECT id, text, used_count, first_used_at, last_used_at FROM prompts LIMIT 1"
    ).fetchone()
    fields = [f.name for f in dataclasses.fields(Generation)]
    decoded = [getattr(Generation.from_row(row), name) for name in fields]
    kwargs = dict(zip(fields, decoded, strict=True))
    plain = dataclasses.make_dataclass("Plain", fields, slots=True)  # same fields, not frozen
    n = 20_000
    components = [
        (
            "bare sqlite3 execute + fetchone, tuple rows (the floor)",
            lambda: bare.execute(get_sql, {"id": gid}).fetchone(),
        ),
        (
            "the same on the library's connection (sqlite3.Row rows)",
            lambda: lconn.execute(get_sql, {"id": gid}).fetchone(),
        ),
        (
            "`musicstore.queries.execute(conn, get_generation, …)`",
            lambda: execute(lconn, QUERIES["get_generation"], {"id": gid}),
        ),
        ("`Generation.from_row(row)`, a completed row", lambda: Generation.from_row(row)),
        ('· 19 × `row["column"]`', lambda: [row[name] for name in fields]),
        ("· `json.loads` of its metadata", lambda: json.loads(row["metadata"])),
        (
            "· 3 timestamps, `to_datetime`",
            lambda: (
                to_datetime(row["created_at"]),
                to_datetime(row["started_at"]),
                to_datetime(row["completed_at"]),
            ),
        ),
        ("· `Status(value)`", lambda: Status(row["status"])),
        ("· `Generation(**fields)` as `from_row` calls it (frozen, keywords)", lambda: Generation(**kwargs)),
        ("· `Generation(*fields)` (frozen, positional)", lambda: Generation(*decoded)),
        ("· the same 19 fields into a non-frozen slots dataclass", lambda: plain(*decoded)),
        ("`check_id` (regex) + `sqlite.encode`", lambda: encode({"id": check_id(gid)})),
        ("`store.run(ops.get_generation, id)`", lambda: store.run(ops.get_generation, gid)),
        ("`store.get_generation(id)` (through the descriptor)", lambda: store.get_generation(gid)),
    ]
    lines = [
        "#### get by id, component by component (µs per call, fastest of 7 × 20,000)",
        "",
        "| step | µs |",
        "| --- | ---: |",
    ]
    for label, fn in components:
        lines.append(f"| {label} | {best_us(fn, n):.2f} |")
    # the runner alone: an operation that only runs the cheapest query (the totals) and returns its rows
    read_only, write_only = ops.reader(_totals_only), ops.writer(_totals_only)

    def bare_write() -> None:
        bare.execute("BEGIN IMMEDIATE")
        bare.execute(totals_sql).fetchall()
        bare.execute("COMMIT")

    runner = [
        ("bare `execute(totals).fetchall()`", lambda: bare.execute(totals_sql).fetchall(), n),
        ("`store.run(op)`, op = a reader yielding only that query", lambda: store.run(read_only), n),
        ("bare BEGIN IMMEDIATE + the query + COMMIT", bare_write, 2000),
        ("`store.run(op)`, op = a writer yielding only that query", lambda: store.run(write_only), 2000),
    ]
    lines += [
        "",
        "#### the runner (Store.run, _drive, queries.execute, encode, transaction) around one query",
        "",
        "| call | µs |",
        "| --- | ---: |",
    ]
    for label, fn, number in runner:
        lines.append(f"| {label} | {best_us(fn, number):.2f} |")
    rng = random.Random(3)
    meta, done = create_metadata(rng), done_metadata(rng)
    logic = {
        "create": (
            _fake_driven(
                store,
                ops.create_generation,
                {"track_prompt": prompt, "insert_generation": 1},
                make_prompt(rng, "x"),
                model_name="musicgen-small",
                duration_seconds=30.0,
                metadata=meta,
            ),
            2000,
        ),
        "get": (_fake_driven(store, ops.get_generation, {"get_generation": row}, gid), n),
        "list": (
            _fake_driven(
                store,
                ops.list_generations,
                {"list_generations_by_status": pending},
                status="pending",
                limit=50,
            ),
            200,
        ),
        "claim": (_fake_driven(store, ops.claim_next, {"claim_next": processing}, "w"), n),
        "complete": (
            _fake_driven(
                store,
                ops.complete_generation,
                {"get_generation_for_update": processing, "complete_generation": 1},
                job.id,
                file_path=f"2026/11/22/{job.id}.wav",
                file_size_bytes=3_840_044,
                metadata=done,
            ),
            2000,
        ),
        "stats": (_fake_driven(store, ops.get_database_stats, {"totals": totals}), n),
    }
    objects = {
        "create": lambda: Generation(**dict(zip(fields[:9], decoded[:9], strict=True)), metadata=dict(meta)),
        "get": lambda: Generation.from_row(row),
        "list": lambda: [Generation.from_row(r) for r in pending],
        "claim": lambda: Generation.from_row(processing),
        "complete": lambda: dataclasses.replace(Generation.from_row(processing), status=Status.COMPLETED),
        "stats": lambda: Stats.from_rows(totals),
    }
    measured = {r.op: r for r in results}
    lines += [
        "",
        "#### each operation's own logic (canned query results: no database, no runner)",
        "",
        "| operation | musicstore − floor, end to end (median, above) | operation logic alone "
        "| of which building the result objects |",
        "| --- | ---: | ---: | ---: |",
    ]
    for op, (fn, number) in logic.items():
        r = measured.get(op)
        gap = f"{r.lib_us - r.floor_us:.1f}" if r else "–"
        lines.append(
            f"| {LABELS[op]} | {gap} | {best_us(fn, number):.1f} | {best_us(objects[op], number):.1f} |"
        )
    in_situ = OpBench(store, bare, [], random.Random(11))
    lines += ["", create_in_situ(in_situ, rounds, 200)]
    store.close()
    bare.close()
    lconn.close()
    for old in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        old.unlink(missing_ok=True)
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


def create_in_situ(bench: OpBench[sqlite3.Connection], batches: int, batch: int) -> str:
    """create_generation split in situ: the library, the floor, the runner alone (library transaction and
    query calls with parameters prepared ahead), and the operation's logic alone (its generator, driven
    straight onto the floor's SQL). Variants run in shuffled order each round; median µs per create."""
    ex, track, insert = bench.conn.execute, sql("track_prompt"), sql("insert_generation")
    two_calls = ops.writer(_track_and_insert)

    def runner(k: int) -> Timed:
        prepared = []
        for prompt, meta in bench._creates(k, "r"):
            now = to_micros(datetime.now(UTC))
            row = {
                "prompt_digest": prompt_digest(prompt),
                "id": new_id(),
                "prompt": prompt,
                "model_name": "musicgen-small",
                "model_version": None,
                "duration_seconds": 30.0,
                "sample_rate": 32000,
                "channels": 2,
                "created_at": now,
                "metadata": json.dumps(meta, separators=(",", ":")),
            }
            prepared.append(({"digest": prompt_digest(prompt), "text": prompt, "now": now}, row))

        def timed() -> None:
            for prompt_params, row_params in prepared:
                bench.store.run(two_calls, prompt_params, row_params)

        return timed

    def logic(k: int) -> Timed:
        inputs = bench._creates(k, "o")

        def timed() -> None:
            for prompt, meta in inputs:
                steps = ops.create_generation.steps(
                    prompt,
                    model_name="musicgen-small",
                    duration_seconds=30.0,
                    sample_rate=32000,
                    channels=2,
                    metadata=meta,
                )
                step = next(steps)
                ex("BEGIN IMMEDIATE")
                try:
                    while True:
                        if step is NOW:
                            value: Any = datetime.now(UTC)
                        else:
                            # Not NOW, so a Call; narrowed for mypy only, to keep isinstance out of the loop.
                            if TYPE_CHECKING:
                                assert isinstance(step, Call)
                            if step.name == "track_prompt":
                                value = ex(track, encode(step.params)).fetchone()
                            else:
                                value = ex(insert, encode(step.params)).rowcount
                        step = steps.send(value)
                except StopIteration:
                    pass
                ex("COMMIT")

        return timed

    variants: dict[str, Prepare] = {
        "musicstore `create_generation`": bench.lib_create,
        "floor (bare SQL, parameters prepared ahead)": bench.floor_create,
        "runner alone: `store.run` of an op yielding the two prepared calls": runner,
        "operation logic alone: `ops.create_generation` generator driven onto the bare SQL": logic,
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    rng = random.Random(5)
    for _ in range(batches):
        rng.shuffle(order)
        for name in order:
            timed = variants[name](batch)
            t0 = time.perf_counter_ns()
            timed()
            times[name].append((time.perf_counter_ns() - t0) / batch / 1000)
    floor = statistics.median(times["floor (bare SQL, parameters prepared ahead)"])
    lines = [
        f"#### create, split in situ (median of {batches} rounds × {batch}; variants shuffled each round)",
        "",
        "| variant | µs per create | above the floor |",
        "| --- | ---: | ---: |",
    ]
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.1f} | {median - floor:+.1f} |")
    return "\n".join(lines) + "\n"


def _track_and_insert(prompt_params: dict[str, Any], row_params: dict[str, Any]) -> Any:
    yield Call("track_prompt", prompt_params)
    yield Call("insert_generation", row_params)


def _totals_only() -> Any:
    return (yield Call("totals", {}))


# --- analytics: most used prompts, prompt by text ----------------------------------------------------------

ANALYTICS = ("most used prompts (10)", "prompt by text")
AnalyticsRow = tuple[int, str, list[float], list[float]]
"""rows, query, library µs per call (one per batch), floor µs per call (one per batch)."""


def time_analytics(
    n: int,
    lib: dict[str, Callable[[], object]],
    floor: dict[str, Callable[[], object]],
    per_batch: int,
    rounds: int,
) -> list[AnalyticsRow]:
    """Each query's library and floor batches, alternately; µs per call of each batch."""
    rows: list[AnalyticsRow] = []
    for name in ANALYTICS:
        times: tuple[list[float], list[float]] = ([], [])
        for _ in range(rounds):
            for side, fn in enumerate((lib[name], floor[name])):
                start = time.perf_counter()
                for _ in range(per_batch):
                    fn()
                times[side].append((time.perf_counter() - start) / per_batch * 1e6)
        rows.append((n, name, *times))
        print(
            f"  {n:>9,} {name:<22} musicstore median {statistics.median(times[0]):8.1f} "
            f"min {min(times[0]):8.1f} µs   floor median {statistics.median(times[1]):8.1f} "
            f"min {min(times[1]):8.1f} µs",
            flush=True,
        )
    return rows


def analytics_table(rows: list[AnalyticsRow], floor: str) -> str:
    lines = [
        f"| rows | query | musicstore median µs | min µs | floor ({floor}) median µs | min µs |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for n, name, lib_us, floor_us in rows:
        lines.append(
            f"| {n:,} | {name} | {statistics.median(lib_us):.1f} | {min(lib_us):.1f} | "
            f"{statistics.median(floor_us):.1f} | {min(floor_us):.1f} |"
        )
    return "\n".join(lines) + "\n"


def bench_analytics(n: int, workdir: Path, rounds: int) -> list[AnalyticsRow]:
    """get_most_used_prompts(10) and get_prompt_by_text (a random existing prompt) on the n-row file."""
    source = cached_database(workdir, n, pending=min(3000, n // 4))
    path = working_copy(source, workdir / f"analytics-{n}.db")
    conn = floor_connect(path)
    rng = random.Random(n)
    texts = [conn.execute("SELECT text FROM prompts WHERE id = ?", (rng.randint(1, n),)).fetchone()[0]]
    most, by_text = sql("most_used_prompts"), sql("get_prompt_by_text")
    params = {"digest": prompt_digest(texts[0]), "text": texts[0]}
    with Store(f"sqlite:///{path}") as store:
        lib: dict[str, Callable[[], object]] = {
            ANALYTICS[0]: functools.partial(store.get_most_used_prompts, 10),
            ANALYTICS[1]: functools.partial(store.get_prompt_by_text, texts[0]),
        }
        floor: dict[str, Callable[[], object]] = {
            ANALYTICS[0]: lambda: conn.execute(most, {"limit": 10}).fetchall(),
            ANALYTICS[1]: lambda: conn.execute(by_text, params).fetchone(),
        }
        rows = time_analytics(n, lib, floor, per_batch=50, rounds=rounds)
    conn.close()
    for old in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        old.unlink(missing_ok=True)
    return rows


# --- size ------------------------------------------------------------------------------------------------


def database_size(workdir: Path, count: int) -> tuple[dict[str, float], dict[str, float]]:
    """Bytes per 1,000 generations created through the library: just created, and after completing all."""
    path = workdir / "size.db"
    for old in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        old.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    migrate(url)
    rng = random.Random(7)
    conn = sqlite3.connect(path, isolation_level=None)
    empty, empty_parts = _pages(conn), _breakdown(conn)
    with Store(url) as store:
        for i in range(count):
            store.create_generation(
                make_prompt(rng, f"s{i}"),
                model_name="musicgen-small",
                duration_seconds=30.0,
                metadata=create_metadata(rng),
            )
        created = _pages(conn) - empty, _breakdown(conn)
        while (job := store.claim_next("size")) is not None:
            store.complete_generation(
                job.id,
                file_path=f"2026/11/22/{job.id}.wav",
                file_size_bytes=3_840_044,
                metadata=done_metadata(rng),
            )
        completed = _pages(conn) - empty, _breakdown(conn)
    conn.close()

    def per_thousand(total: int, parts: dict[str, float]) -> dict[str, float]:
        grown = {k: v - empty_parts.get(k, 0) for k, v in parts.items()}
        return {"total": total * 1000 / count, **{k: v * 1000 / count for k, v in grown.items() if v > 0}}

    return per_thousand(*created), per_thousand(*completed)


def _pages(conn: sqlite3.Connection) -> int:
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return int(
        conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
    )


def _breakdown(conn: sqlite3.Connection) -> dict[str, float]:
    return dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall())


# --- report ----------------------------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )


def verdicts(r: Result) -> str:
    notes = [f"ratio {'✅' if r.ratio <= 1.3 else '❌'}"]
    if r.op == "get":
        notes.append(f"≤ 15 µs {'✅' if r.lib_us <= 15 else '❌'}")
    if r.op == "list" and r.rows >= 1_000_000:
        notes.append(f"≤ 0.5 ms {'✅' if r.lib_us <= 500 else '❌'}")
    if r.op == "stats" and r.rows >= 1_000_000:
        notes.append(f"≤ 1 ms {'✅' if r.lib_us <= 1000 else '❌'}")
    return ", ".join(notes)


LABELS = {
    "create": "create (own transaction)",
    "get": "get by id",
    "list": "list 50 pending",
    "claim": "claim_next",
    "complete": "complete",
    "stats": "stats",
}


def report(
    *,
    results: list[Result],
    claims: list[ClaimRun],
    size: tuple[dict[str, float], dict[str, float]] | None,
    command: str,
    plan: Plan,
    profiles: list[str],
    components: str,
) -> str:
    lines = [
        f"Machine: {machine()}.",
        "",
        f"Command: `{command}`",
        "",
        f"Each figure is the median of {plan.batches} batches (library and floor batches alternate); "
        "the spread column is the fastest–slowest batch of the library.",
        "",
    ]
    if results:
        lines += [
            "| rows | operation | musicstore µs/op | floor µs/op | ratio | library batch spread µs | "
            "targets |",
            "| ---: | --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for r in results:
            lines.append(
                f"| {r.rows:,} | {LABELS[r.op]} | {r.lib_us:.1f} | {r.floor_us:.1f} | {r.ratio:.2f}× | "
                f"{r.lib_spread[0]:.1f}–{r.lib_spread[1]:.1f} | {verdicts(r)} |"
            )
        lines.append("")
    if claims:
        lines += [
            "| claimers | processes | jobs | claims/s | double claims | lost jobs | busy errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for c in claims:
            lines.append(
                f"| {c.label} | {c.processes} | {c.jobs:,} | {c.per_second:,.0f} | {c.double_claims} | "
                f"{c.lost} | {c.busy_errors} |"
            )
        lines.append("")
    if size:
        created, completed = size
        lines += [
            "| database bytes per 1,000 generations | just created (pending) | after completing all |",
            "| --- | ---: | ---: |",
            f"| **total** (target ≤ 450 KB) | **{created['total'] / 1000:.0f} KB** | "
            f"**{completed['total'] / 1000:.0f} KB** |",
        ]
        for name in [k for k in created if k != "total"]:
            lines.append(
                f"| {name} | {created[name] / 1000:.0f} KB | {completed.get(name, 0) / 1000:.0f} KB |"
            )
        lines.append("")
    if components:
        lines += ["### Where the library's time goes", "", components]
    if profiles:
        lines += ["### cProfile of the library side (top functions by own time)", "", *profiles]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated row counts")
    parser.add_argument("--quick", action="store_true", help="fewer, smaller batches; 5,000 claim jobs")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/musicstore-bench"),
        help="where built databases are cached (keyed by size and schema)",
    )
    parser.add_argument(
        "--parts",
        default="ops,breakdown,claims,size,analytics",
        help="any of ops,breakdown,claims,size,analytics",
    )
    parser.add_argument("--claim-jobs", type=int, default=None, help="pending jobs for the claim race")
    parser.add_argument("--profile", action="store_true", help="cProfile one library batch of each op")
    parser.add_argument("--output", type=Path, help="write the markdown report here")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    parts = set(args.parts.split(","))
    args.workdir.mkdir(parents=True, exist_ok=True)
    command = " ".join([Path(sys.executable).name, *sys.argv]) if argv is None else " ".join(argv)
    print(machine(), flush=True)

    results: list[Result] = []
    profiles: list[str] = []
    if "ops" in parts:
        for n in (int(s) for s in args.sizes.split(",")):
            got, prof = bench_size(n, plan, args.workdir, args.profile)
            results += got
            profiles += prof
    components = ""
    if "breakdown" in parts:
        n = min(int(s) for s in args.sizes.split(","))
        source = cached_database(args.workdir, n, pending=min(3000, n // 4))
        components = breakdown(source, args.workdir, [r for r in results if r.rows == n], plan.batches)
    claims: list[ClaimRun] = []
    if "claims" in parts:
        jobs = args.claim_jobs or (5000 if args.quick else 20_000)
        source = cached_database(args.workdir, jobs, pending=jobs, tag="queue")
        for processes, mode, label in (
            (8, "library", "musicstore claim_next"),
            (8, "floor", "floor (bare sqlite3)"),
            (1, "library", "musicstore claim_next"),
            (1, "floor", "floor (bare sqlite3)"),
            (8, "batch", "musicstore claim_batch(10)"),
        ):
            claims.append(claim_race(source, args.workdir, processes, mode, label))
    size = None
    if "size" in parts:
        size = database_size(args.workdir, 2000 if args.quick else 10_000)
        print(
            f"  size: {size[0]['total'] / 1000:.0f} KB per 1,000 generations just created, "
            f"{size[1]['total'] / 1000:.0f} KB after completing them",
            flush=True,
        )
    analytics: list[AnalyticsRow] = []
    if "analytics" in parts:
        for n in (int(s) for s in args.sizes.split(",")):
            analytics += bench_analytics(n, args.workdir, plan.batches)
    text = report(
        results=results,
        claims=claims,
        size=size,
        command=command,
        plan=plan,
        profiles=profiles,
        components=components,
    )
    if analytics:
        text += "\nAnalytics reads (50 calls a batch, µs per call):\n\n" + analytics_table(
            analytics, "sqlite3"
        )
    print("\n" + text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
