"""The benchmarks' data: realistic rows, bulk-built databases (SQLite cached on disk, PostgreSQL by COPY).

A database of N generations holds ~90 % completed, 6 % failed and 4 % cancelled rows, the newest ``pending``
ones pending, one unique 60-character prompt each, UUIDv7 ids and a year of ``created_at``. Rows are written
in bulk (not through the library, which would take minutes at 1M rows); the totals the triggers keep are
checked against a recount after each build.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import shutil
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from musicstore import Generation, Prompt, Status, Store, migrate, ops
from musicstore.ids import new_id
from musicstore.models import EPOCH, prompt_digest, to_micros
from musicstore.queries import data_dir

BUILD_VERSION = 2
WORDS = """lofi hip hop chill ambient piano jazz drums warm vinyl crackle dreamy synthwave retro neon epic
orchestral cinematic strings brass choir dark techno driving bass acid house groovy funk disco slap guitar
acoustic folk mellow rainy night coffee shop upbeat pop catchy hook energetic rock heavy riff metal soft
lullaby celtic harp flute tribal percussion latin salsa reggae dub deep minimal glitch trap 808 boom bap
soulful gospel organ bossa nova sunset beach tropical""".split()  # noqa: SIM905
GENRES = ("lofi", "ambient", "jazz", "techno", "orchestral", "rock", "pop", "folk", "house", "trap")
KEYS = ("C major", "A minor", "G major", "E minor", "D major", "B minor", "F major", "D minor")
MODELS = ("musicgen-small", "musicgen-medium", "musicgen-large")
COLUMNS = (
    "id, prompt, model_name, model_version, duration_seconds, sample_rate, channels, status, file_path, "
    "file_size_bytes, created_at, started_at, completed_at, generation_time_seconds, error_message, "
    "attempts, worker_id, lease_expires_at, metadata, prompt_digest"
)
TIMES = (10, 11, 12, 17)  # created_at, started_at, completed_at, lease_expires_at: µs in a rows_for row
CHUNK = 20_000


def make_prompt(rng: random.Random, key: str) -> str:
    """A 60-character prompt, unique through ``key``."""
    suffix, words = f" #{key}", list[str]()
    while sum(len(w) + 1 for w in words) < 60:
        words.append(rng.choice(WORDS))
    text = " ".join(words)[: 60 - len(suffix)] + suffix
    assert len(text) == 60, text
    return text


def uuid7(millis: int, rng: random.Random) -> str:
    """A UUIDv7 for this Unix millisecond (the layout of ``musicstore.ids.new_id``)."""
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


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


def rows_for(n: int, pending: int, seed: int) -> Iterator[tuple[list[tuple[Any, ...]], list[list[Any]]]]:
    """Chunks of (prompt rows: text, first_used_at, last_used_at; generation rows in ``COLUMNS`` order
    without the digest), timestamps in µs, ``created_at`` increasing over the past year."""
    rng = random.Random(seed)
    end = to_micros(datetime.now(UTC) - timedelta(hours=1))
    step = max(1, 365 * 86_400_000_000 // max(n, 1))
    start = end - step * n
    for base in range(0, n, CHUNK):
        prompts: list[tuple[Any, ...]] = []
        gens: list[list[Any]] = []
        for i in range(base, min(n, base + CHUNK)):
            created = start + i * step + rng.randrange(step)
            gid, prompt = uuid7(created // 1000, rng), make_prompt(rng, f"{seed}-{i}")
            duration, meta = float(rng.choice((10, 15, 30, 30, 30, 60))), create_metadata(rng)
            row: list[Any] = [gid, prompt, rng.choice(MODELS), None, duration, 32000, 2, "pending"]
            row += [None, None, created, None, None, None, None, 0, None, None, meta]
            prompts.append((prompt, created, created))
            if i < n - pending:
                roll, worker = rng.random(), f"gpu-{rng.randrange(16)}"
                started = created + rng.randrange(1_000_000, 600_000_000)
                took = rng.uniform(5, 90)
                finished = started + int(took * 1e6)
                if roll < 0.90:
                    meta.update(done_metadata(rng))
                    path = f"{datetime.fromtimestamp(created / 1e6, UTC):%Y/%m/%d}/{gid}.wav"
                    row[7:10] = ["completed", path, int(duration * 128_000 + 44)]
                    row[11:17] = [started, finished, took, None, 1, worker]
                elif roll < 0.96:
                    row[7], row[11:17] = "failed", [started, finished, None, "CUDA out of memory", 3, worker]
                else:
                    row[7], row[12] = "cancelled", created + rng.randrange(1_000_000, 60_000_000)
                    row[14] = "cancelled by user"
            row[18] = _json(meta)
            gens.append(row)
        yield prompts, gens


@functools.cache
def schema_key() -> str:
    """A hash of the shipped migrations and of this module's build (one schema per run)."""
    digest = hashlib.sha256(str(BUILD_VERSION).encode())
    root = data_dir("migrations")
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()[:10]


def remove_database(path: Path) -> None:
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        name.unlink(missing_ok=True)


def _sqlite_build(path: Path, n: int, pending: int, seed: int) -> None:
    building = path.with_name(path.name + ".building")
    remove_database(building)
    migrate(f"sqlite:///{building}")
    conn = sqlite3.connect(building, isolation_level=None)
    for pragma in ("journal_mode = OFF", "synchronous = OFF", "cache_size = -1000000", "foreign_keys = ON"):
        conn.execute(f"PRAGMA {pragma}")  # a cache file: built in one go or thrown away
    conn.execute("BEGIN")
    marks = ", ".join("?" * 20)
    for prompts, gens in rows_for(n, pending, seed):
        conn.executemany(
            "INSERT INTO prompts (text, used_count, first_used_at, last_used_at, digest) "
            "VALUES (?, 1, ?, ?, ?)",
            [(*p, prompt_digest(p[0])) for p in prompts],
        )
        conn.executemany(
            f"INSERT INTO generations ({COLUMNS}) VALUES ({marks})", [(*g, prompt_digest(g[1])) for g in gens]
        )
    conn.execute("COMMIT")
    counted = dict(conn.execute("SELECT status, count(*) FROM generations GROUP BY status").fetchall())
    conn.close()
    _check_totals(f"sqlite:///{building}", counted, n)
    conn = sqlite3.connect(building, isolation_level=None)
    if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
        raise SystemExit(f"{building}: could not switch back to WAL")
    conn.close()
    os.replace(building, path)


def _check_totals(url: str, counted: dict[str, int], n: int) -> None:
    """The library's stats (trigger-kept totals) must equal a recount of the rows."""
    with Store(url) as store:
        stats = store.get_database_stats()
    got = {status.value: count for status, count in stats.by_status.items() if count}
    if got != counted or sum(counted.values()) != n or stats.unique_prompts != n:
        raise SystemExit(f"bulk build of {url}: totals {got} disagree with counts {counted} ({n} rows)")


def sqlite_database(workdir: Path, n: int, *, pending: int, seed: int = 1) -> Path:
    """A fresh working copy of the cached n-row SQLite database (built once per size and schema)."""
    cached = workdir / f"rows-{n}-p{pending}-s{seed}-{schema_key()}.db"
    if not cached.exists():
        t0 = time.perf_counter()
        print(f"building {cached.name} ({n:,} generations) ...", flush=True)
        workdir.mkdir(parents=True, exist_ok=True)
        _sqlite_build(cached, n, pending, seed)
        print(
            f"  built in {time.perf_counter() - t0:.1f} s, {cached.stat().st_size / 1e6:.0f} MB", flush=True
        )
    copy = workdir / f"work-{os.getpid()}-{n}-p{pending}.db"
    remove_database(copy)
    shutil.copyfile(cached, copy)
    return copy


def postgres_database(server: Any, dbname: str, n: int, *, pending: int, seed: int = 1) -> str:
    """A migrated database ``dbname`` on ``server`` holding the same rows, loaded by COPY; its URL.

    The tables' triggers (the FK check, the totals) are disabled during the load (superuser); the FK is then
    checked with one anti-join and the totals set from one aggregate (shard 0), and the tables vacuumed.
    """
    import psycopg

    server.admin(f"DROP DATABASE IF EXISTS {dbname}", f"CREATE DATABASE {dbname}")
    url: str = server.url(dbname)
    migrate(url)
    with psycopg.connect(url) as conn:  # one transaction
        conn.execute("SET synchronous_commit = off")  # the build only; the runs use the server's setting
        conn.execute("SET maintenance_work_mem = '512MB'")
        for table in ("generations", "prompts"):
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
        cur = conn.cursor()
        for prompts, gens in rows_for(n, pending, seed):
            columns = "text, used_count, first_used_at, last_used_at, digest"
            with cur.copy(f"COPY prompts ({columns}) FROM STDIN") as copy:
                for text, first, last in prompts:
                    copy.write_row((text, 1, _ts(first), _ts(last), prompt_digest(text)))
            with cur.copy(f"COPY generations ({COLUMNS}) FROM STDIN") as copy:
                for row in gens:
                    for i in TIMES:
                        row[i] = _ts(row[i])
                    copy.write_row([*row, prompt_digest(row[1])])
        for table in ("generations", "prompts"):
            conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER ALL")
        orphans = conn.execute(
            "SELECT count(*) FROM generations g WHERE NOT EXISTS "
            "(SELECT 1 FROM prompts p WHERE p.digest = g.prompt_digest AND p.text = g.prompt)"
        ).fetchone()
        if orphans is None or orphans[0]:
            raise SystemExit(f"bulk build of {dbname}: {orphans} generations without their prompt")
        conn.execute(
            "UPDATE generation_totals t SET generations = a.generations, file_bytes = a.file_bytes, "
            "generation_micros = a.generation_micros, audio_micros = a.audio_micros "
            "FROM (SELECT status, count(*) AS generations, coalesce(sum(file_size_bytes), 0) AS file_bytes, "
            "coalesce(sum(musicstore_micros(generation_time_seconds)), 0) AS generation_micros, "
            "sum(musicstore_micros(duration_seconds)) AS audio_micros FROM generations GROUP BY status) a "
            "WHERE t.status = a.status AND t.shard = 0"
        )
        conn.execute(
            "UPDATE prompt_totals SET prompts = (SELECT count(*) FROM prompts), "
            "uses = (SELECT coalesce(sum(used_count), 0) FROM prompts) WHERE id = 1"
        )
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in ("VACUUM (ANALYZE) generations", "VACUUM (ANALYZE) prompts", "CHECKPOINT"):
            conn.execute(statement)
        counted: dict[str, int] = dict(
            conn.execute("SELECT status, count(*) FROM generations GROUP BY status").fetchall()
        )
    _check_totals(url, counted, n)
    return url


def _ts(micros: int | None) -> datetime | None:
    return None if micros is None else EPOCH + timedelta(0, 0, micros)


QUEUE_PROMPT = Prompt(0, "benchmark queue: one prompt for the jobs the write benchmarks add", 1, EPOCH, EPOCH)


def add_jobs(store: Store, k: int, *, worker: str | None = None) -> list[str]:
    """Insert k fresh generations through the library (untimed set-up for writes): pending, or processing
    by ``worker`` (claimed a moment ago, lease 300 s); returns their ids."""
    now = datetime.now(UTC)
    rows = [
        Generation(
            id=new_id(), prompt=QUEUE_PROMPT.text, model_name="musicgen-small", model_version=None,
            duration_seconds=30.0, sample_rate=32_000, channels=2,
            status=Status.PENDING if worker is None else Status.PROCESSING, created_at=now,
            started_at=None if worker is None else now, attempts=0 if worker is None else 1, worker_id=worker,
            lease_expires_at=None if worker is None else now + timedelta(seconds=300),
            metadata={"genre": "lofi", "bpm": 90, "seed": 7},
        )
        for _ in range(k)
    ]  # fmt: skip
    prompt = Prompt(0, QUEUE_PROMPT.text, 1, now, now)
    for start in range(0, k, 5000):
        store.run(ops.import_rows, [prompt], rows[start : start + 5000])
    return [row.id for row in rows]
