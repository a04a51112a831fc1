"""Store benchmark on PostgreSQL: each musicstore operation beside the same SQL through bare psycopg.

    .venv/bin/python benchmarks/bench_postgres.py                          # 10k, 100k, 1M rows (full run)
    .venv/bin/python benchmarks/bench_postgres.py --sizes 10000 --quick    # a fast smoke run
    .venv/bin/python benchmarks/bench_postgres.py --synchronous-commit off --sizes 10000 --parts ops,claims
    .venv/bin/python benchmarks/bench_postgres.py --output /tmp/pg.md

The PostgreSQL counterpart of ``bench_store.py`` (same data, plan, alternating batches and median; its helpers
are imported). It starts a throwaway, durable server (``musicstore/testing/pgserver.py``: fsync on,
full_page_writes on, synchronous_commit on unless ``--synchronous-commit off``)
on 127.0.0.1 and talks to it over TCP.

The floor runs the very SQL text musicstore loads
(``musicstore.queries.load("postgres", "psycopg")[name].sql``, already converted by aiosql from ``:name`` to
``%(name)s``) through one plain ``psycopg.connect(url, autocommit=True, row_factory=dict_row)`` connection,
with the same ``with conn.transaction():`` around writes (reads run as single autocommit statements, as the
library runs them) and parameters prepared ahead.

Databases of N rows are bulk-built into a migrated database with ``COPY`` while the tables' triggers are
disabled (the FK check and the totals triggers); the FK is then checked with one anti-join and the running
totals are set from one aggregate (all in shard 0), and the tables are VACUUM ANALYZEd.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("musicstore") is None:  # run from a source checkout without an install
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT))  # musicstore from the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_store, also in spawned children

import bench_store as bs  # noqa: E402
import psycopg  # noqa: E402
from aiosql.adapters.pyformat import PyFormatAdapter  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from musicstore import Store, migrate, ops  # noqa: E402
from musicstore.errors import DatabaseBusy  # noqa: E402
from musicstore.models import EPOCH, Generation, prompt_digest  # noqa: E402
from musicstore.ops import Call  # noqa: E402
from musicstore.queries import execute, load  # noqa: E402
from musicstore.testing import pgserver  # noqa: E402

QUERIES = load("postgres", "psycopg")
FAR_FUTURE = datetime.max.replace(tzinfo=UTC)  # the library's "no cursor" bound
GEN_COLUMNS = (
    "id, prompt, model_name, model_version, duration_seconds, sample_rate, channels, status, file_path, "
    "file_size_bytes, created_at, started_at, completed_at, generation_time_seconds, error_message, "
    "attempts, worker_id, lease_expires_at, metadata, prompt_digest"
)
TIME_COLUMNS = (10, 11, 12, 17)  # created_at, started_at, completed_at, lease_expires_at in bs.rows_for rows


def sql(name: str) -> str:
    """The SQL text musicstore runs for the named query on PostgreSQL: aiosql's psycopg adapter has already
    turned ``:name`` into ``%(name)s`` (converting it again must change nothing)."""
    text = QUERIES[name].sql
    # aiosql's adapters are unannotated (no-untyped-call: the constructor and process_sql)
    assert PyFormatAdapter().process_sql(name, None, text) == text, f"{name}: not converted"  # type: ignore[no-untyped-call]
    return text


def url_of(server: pgserver.Server, dbname: str) -> str:
    return server.url(dbname)


def admin(server: pgserver.Server, *statements: str) -> list[Any]:
    out = []
    with psycopg.connect(server.url(), autocommit=True) as conn:
        for statement in statements:
            cur = conn.execute(statement)
            out.append(cur.fetchall() if cur.description else None)
    return out


# --- data --------------------------------------------------------------------------------------------------


def _ts(micros: int | None) -> datetime | None:
    return None if micros is None else EPOCH + timedelta(0, 0, micros)


def bulk_build(server: pgserver.Server, dbname: str, n: int, *, pending: int, seed: int = 1) -> float:
    """A migrated database ``dbname`` holding ``n`` generations (bench_store's data); returns seconds."""
    t0 = time.perf_counter()
    admin(server, f"DROP DATABASE IF EXISTS {dbname}", f"CREATE DATABASE {dbname}")
    url = url_of(server, dbname)
    migrate(url)
    with psycopg.connect(url) as conn:  # one transaction
        conn.execute("SET synchronous_commit = off")  # the build only; the runs use the server's setting
        conn.execute("SET maintenance_work_mem = '512MB'")
        # Skip the per-row FK check and the totals triggers (superuser); checked and set in bulk below.
        conn.execute("ALTER TABLE generations DISABLE TRIGGER ALL")
        conn.execute("ALTER TABLE prompts DISABLE TRIGGER ALL")
        cur = conn.cursor()
        for prompts, gens in bs.rows_for(n, pending, seed):
            with cur.copy(
                "COPY prompts (text, used_count, first_used_at, last_used_at, digest) FROM STDIN"
            ) as copy:
                for text, first, last in prompts:
                    copy.write_row((text, 1, _ts(first), _ts(last), prompt_digest(text)))
            with cur.copy(f"COPY generations ({GEN_COLUMNS}) FROM STDIN") as copy:
                for row in gens:
                    values: list[Any] = [*row, prompt_digest(row[1])]
                    for i in TIME_COLUMNS:
                        values[i] = _ts(values[i])
                    copy.write_row(values)
        conn.execute("ALTER TABLE generations ENABLE TRIGGER ALL")
        conn.execute("ALTER TABLE prompts ENABLE TRIGGER ALL")
        orphans = conn.execute(
            "SELECT count(*) FROM generations g "
            "WHERE NOT EXISTS "
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
        conn.execute("VACUUM (ANALYZE) generations")
        conn.execute("VACUUM (ANALYZE) prompts")
        conn.execute("CHECKPOINT")
        counted: dict[str, int] = dict(
            conn.execute("SELECT status, count(*) FROM generations GROUP BY status").fetchall()
        )
    with Store(url) as store:
        stats = store.get_database_stats()
    got = {status.value: count for status, count in stats.by_status.items()}
    if any(got.get(s, 0) != c for s, c in counted.items()) or stats.unique_prompts != n:
        raise SystemExit(f"bulk build of {dbname}: totals {got} disagree with counts {counted}")
    if sum(counted.values()) != n:
        raise SystemExit(f"bulk build of {dbname}: {sum(counted.values())} rows, wanted {n}")
    return time.perf_counter() - t0


def bench_analytics(server: pgserver.Server, n: int, rounds: int) -> list[bs.AnalyticsRow]:
    """bench_store's analytics reads on the n-row database (built here unless ``ops`` built it)."""
    dbname = f"rows_{n}"
    if not admin(server, f"SELECT 1 FROM pg_database WHERE datname = '{dbname}'")[0]:
        print(f"building {dbname} ({n:,} generations) ...", flush=True)
        print(f"  built in {bulk_build(server, dbname, n, pending=min(3000, n // 4)):.1f} s", flush=True)
    url = url_of(server, dbname)
    conn = floor_connect(url)
    text = conn.execute(
        "SELECT text FROM prompts WHERE id = %s", (random.Random(n).randint(1, n),)
    ).fetchone()
    assert text is not None
    most, by_text = sql("most_used_prompts"), sql("get_prompt_by_text")
    params = {"digest": prompt_digest(text["text"]), "text": text["text"]}
    with Store(url) as store:
        lib: dict[str, Any] = {
            bs.ANALYTICS[0]: lambda: store.get_most_used_prompts(10),
            bs.ANALYTICS[1]: lambda: store.get_prompt_by_text(text["text"]),
        }
        floor: dict[str, Any] = {
            bs.ANALYTICS[0]: lambda: conn.execute(most, {"limit": 10}).fetchall(),
            bs.ANALYTICS[1]: lambda: conn.execute(by_text, params).fetchone(),
        }
        rows = bs.time_analytics(n, lib, floor, per_batch=50, rounds=rounds)
    conn.close()
    return rows


def database_bytes(server: pgserver.Server, dbname: str) -> int:
    return int(admin(server, f"SELECT pg_database_size('{dbname}')")[0][0][0])


# --- operations --------------------------------------------------------------------------------------------


class PgOpBench(bs.OpBench[psycopg.Connection[Any]]):
    """bench_store's library side unchanged; the floor through one bare psycopg connection."""

    def floor_create(self, k: int) -> bs.Timed:
        conn, track, insert = self.conn, sql("track_prompt"), sql("insert_generation")
        prepared = self.floor_create_params(k, datetime.now(UTC))

        def timed() -> None:
            for prompt_params, row_params in prepared:
                with conn.transaction():
                    conn.execute(track, prompt_params).fetchone()
                    conn.execute(insert, row_params)

        return timed

    def floor_get(self, k: int) -> bs.Timed:
        conn, text = self.conn, sql("get_generation")
        params = [{"id": self.ids[i % len(self.ids)]} for i in range(k)]

        def timed() -> None:
            for p in params:
                conn.execute(text, p).fetchone()

        return timed

    def floor_list(self, k: int) -> bs.Timed:
        conn, text = self.conn, sql("list_generations_by_status")
        params = {
            "status": "pending",
            "before_created_at": FAR_FUTURE,
            "before_id": "~",
            "limit": 50,
            "offset": 0,
        }

        def timed() -> None:
            for _ in range(k):
                conn.execute(text, params).fetchall()

        return timed

    def floor_stats(self, k: int) -> bs.Timed:
        conn, text = self.conn, sql("totals")

        def timed() -> None:
            for _ in range(k):
                conn.execute(text).fetchall()

        return timed

    def floor_claim(self, k: int) -> bs.Timed:
        conn, text, claimed = self.conn, sql("claim_next"), self.claimed
        now = datetime.now(UTC)
        params = {"worker_id": "bench-floor", "now": now, "lease_expires_at": now + timedelta(seconds=300)}

        def timed() -> None:
            for _ in range(k):
                with conn.transaction():
                    row = conn.execute(text, params).fetchone()
                assert row is not None, "ran out of pending generations"
                claimed.append(row["id"])

        return timed

    def floor_complete(self, k: int) -> bs.Timed:
        conn, read, update = self.conn, sql("get_generation_for_update"), sql("complete_generation")
        jobs = self.floor_complete_params(k, datetime.now(UTC))

        def timed() -> None:
            for read_params, update_params in jobs:
                with conn.transaction():
                    conn.execute(read, read_params).fetchone()
                    conn.execute(update, update_params)

        return timed


def floor_connect(url: str) -> psycopg.Connection[Any]:
    """A bare connection opened like the library's pooled ones."""
    return psycopg.connect(url, autocommit=True, row_factory=dict_row)


def bench_size(
    server: pgserver.Server, n: int, plan: bs.Plan, profile: bool
) -> tuple[list[bs.Result], list[str], dict[str, Any]]:
    """Every operation on a freshly built n-row database."""
    pending = min(3000, n // 4)
    dbname = f"rows_{n}"
    print(f"building {dbname} ({n:,} generations) ...", flush=True)
    seconds = bulk_build(server, dbname, n, pending=pending)
    size = database_bytes(server, dbname)
    print(f"  built in {seconds:.1f} s, {size / 1e6:.0f} MB", flush=True)
    url = url_of(server, dbname)
    store = Store(url)
    conn = floor_connect(url)
    ids = [
        r["id"] for r in conn.execute("SELECT id FROM generations ORDER BY random() LIMIT 2000").fetchall()
    ]
    bench = PgOpBench(store, conn, ids, random.Random(n))
    results, profiles = [], []
    for op in bs.OPS:
        batch = plan.sizes[op]
        lib_us, floor_us = bs.time_pair(
            getattr(bench, f"lib_{op}"), getattr(bench, f"floor_{op}"), batch, plan
        )
        r = bs.Result(
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
            profiles.append(bs._profile(n, op, bench, batch))
    extra: dict[str, Any] = {"rows": n, "build_s": seconds, "bytes": size}
    extra["plans"] = {
        name: "\n".join(
            r["QUERY PLAN"]
            for r in conn.execute(
                f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) {sql(name)}", params
            ).fetchall()
        )
        for name, params in (
            (
                "list_generations_by_status",
                {
                    "status": "pending",
                    "before_created_at": FAR_FUTURE,
                    "before_id": "~",
                    "limit": 50,
                    "offset": 0,
                },
            ),
            ("totals", {}),
        )
    }
    store.close()
    conn.close()
    admin(server, f"DROP DATABASE {dbname}")
    return results, profiles, extra


# --- where the library's time goes ------------------------------------------------------------------------


def _only(name: str) -> Any:
    def steps() -> Any:
        return (yield Call(name, {}))

    return steps


def breakdown(server: pgserver.Server) -> str:
    """Component costs around one query (fastest of 7 repeats, in isolation) on a 10k-row database."""
    dbname = "breakdown"
    bulk_build(server, dbname, 10_000, pending=2500)
    url = url_of(server, dbname)
    store = Store(url)
    bare = floor_connect(url)
    gid = bare.execute("SELECT id FROM generations WHERE status = 'completed' LIMIT 1").fetchone()["id"]  # type: ignore[index]
    get_text, totals_text = sql("get_generation"), sql("totals")
    pool = store._connector.pool
    get_query = QUERIES["get_generation"]
    row = bare.execute(get_text, {"id": gid}).fetchone()
    read_totals = ops.reader(_only("totals"))
    write_totals = ops.writer(_only("totals"))

    def empty_tx() -> None:
        with bare.transaction():
            pass

    def tx_totals() -> None:
        with bare.transaction():
            bare.execute(totals_text).fetchall()

    def pooled() -> None:
        pool.putconn(pool.getconn())

    def pooled_get() -> None:
        c = pool.getconn()
        execute(c, get_query, {"id": gid})
        pool.putconn(c)

    n = 2000
    rows = [
        (
            "bare psycopg `execute(get_generation).fetchone()`, dict_row (the floor)",
            lambda: bare.execute(get_text, {"id": gid}).fetchone(),
        ),
        (
            "`musicstore.queries.execute(conn, get_generation, …)` on the bare connection",
            lambda: execute(bare, get_query, {"id": gid}),
        ),
        ("pool `getconn()` + `putconn()` alone", pooled),
        ("pool getconn + `execute` get + putconn", pooled_get),
        ("`Generation.from_row(row)`, a completed row (no database)", lambda: Generation.from_row(row)),  # type: ignore[arg-type]
        ("`store.get_generation(id)`", lambda: store.get_generation(gid)),
        ("bare `execute(totals).fetchall()`", lambda: bare.execute(totals_text).fetchall()),
        ("`store.run(op)`, op = a reader yielding only `totals`", lambda: store.run(read_totals)),
        ("bare `with conn.transaction():` (BEGIN + COMMIT, nothing inside)", empty_tx),
        ("bare `with conn.transaction():` + `totals`", tx_totals),
        ("`store.run(op)`, op = a writer yielding only `totals`", lambda: store.run(write_totals)),
    ]
    lines = [
        "#### Around one query (µs per call, fastest of 7 × 2,000; 10k rows)",
        "",
        "| call | µs |",
        "| --- | ---: |",
    ]
    for label, fn in rows:
        us = bs.best_us(fn, n)
        lines.append(f"| {label} | {us:.1f} |")
        print(f"  breakdown: {label:<80} {us:8.1f} µs", flush=True)
    store.close()
    bare.close()
    admin(server, f"DROP DATABASE {dbname}")
    return "\n".join(lines) + "\n"


# --- processes claiming ------------------------------------------------------------------------------------


def _claimer(url: str, mode: str, worker: str, barrier: Any, results: Any) -> None:
    """Claim until the queue is empty. ``mode``: library (claim_next), batch (claim_batch of 10), floor."""
    ids: list[str] = []
    busy = 0
    if mode in ("library", "batch"):
        store = Store(url)
        if mode == "library":

            def claim() -> list[str]:
                job = store.claim_next(worker)
                return [] if job is None else [job.id]
        else:

            def claim() -> list[str]:
                return [job.id for job in store.claim_batch(worker, 10)]
    else:
        conn = floor_connect(url)
        text = sql("claim_next")

        def claim() -> list[str]:
            now = datetime.now(UTC)
            with conn.transaction():
                row = conn.execute(
                    text, {"worker_id": worker, "now": now, "lease_expires_at": now + timedelta(seconds=300)}
                ).fetchone()
            return [] if row is None else [row["id"]]

    barrier.wait()
    start = time.perf_counter()
    while True:
        try:
            got = claim()
        except (DatabaseBusy, psycopg.errors.OperationalError):
            busy += 1
            continue
        if not got:
            break
        ids += got
    results.put((start, time.perf_counter(), ids, busy))


def claim_race(server: pgserver.Server, jobs: int, processes: int, mode: str, label: str) -> bs.ClaimRun:
    dbname = "queue"
    bulk_build(server, dbname, jobs, pending=jobs)
    url = url_of(server, dbname)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_claimer, args=(url, mode, f"w{i}", barrier, results)) for i in range(processes)
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
    seconds = max(g[1] for g in got) - min(g[0] for g in got)
    claimed = [gid for g in got for gid in g[2]]
    with psycopg.connect(url) as conn:
        processing = {r[0] for r in conn.execute("SELECT id FROM generations WHERE status = 'processing'")}
        reclaimed = conn.execute("SELECT count(*) FROM generations WHERE attempts > 1").fetchone()[0]  # type: ignore[index]
        left = conn.execute("SELECT count(*) FROM generations WHERE status = 'pending'").fetchone()[0]  # type: ignore[index]
    double = len(claimed) - len(set(claimed)) + reclaimed
    lost = jobs - len(processing & set(claimed)) + left
    run = bs.ClaimRun(label, processes, jobs, seconds, double, lost, sum(g[3] for g in got))
    print(
        f"  claims: {label:<30} {processes} proc  {run.per_second:9,.0f} claims/s  double={double} "
        f"lost={lost} errors={run.busy_errors}",
        flush=True,
    )
    admin(server, f"DROP DATABASE {dbname}")
    return run


# --- report ----------------------------------------------------------------------------------------------


def machine(settings: dict[str, str]) -> str:
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
        f"Python {platform.python_version()}, psycopg {psycopg.__version__} ({psycopg.pq.__impl__}, libpq "
        f"{psycopg.pq.version() // 10000}.{psycopg.pq.version() % 100}), "
        f"PostgreSQL {settings.get('server_version', '?')}; "
        "server settings: " + ", ".join(f"{k}={v}" for k, v in settings.items() if k != "server_version")
    )


def verdicts(r: bs.Result) -> str:
    notes = [f"ratio {'✅' if r.ratio <= 1.3 else '❌'}"]
    if r.op == "list" and r.rows >= 1_000_000:
        notes.append(f"≤ 0.5 ms {'✅' if r.lib_us <= 500 else '❌'}")
    if r.op == "stats" and r.rows >= 1_000_000:
        notes.append(f"≤ 1 ms {'✅' if r.lib_us <= 1000 else '❌'}")
    return ", ".join(notes)


def report(
    *,
    results: list[bs.Result],
    claims: list[bs.ClaimRun],
    builds: list[dict[str, Any]],
    command: str,
    plan: bs.Plan,
    settings: dict[str, str],
    components: str,
    profiles: list[str],
) -> str:
    lines = [
        f"Machine: {machine(settings)}.",
        "",
        f"Command: `{command}`",
        "",
        f"Each figure is the median of {plan.batches} batches (library and floor batches alternate); "
        "the spread column is the fastest–slowest batch of the library.",
        "",
    ]
    if results:
        lines += [
            "| rows | operation | musicstore µs/op | floor µs/op | ratio | library batch spread µs "
            "| targets |",
            "| ---: | --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for r in results:
            lines.append(
                f"| {r.rows:,} | {bs.LABELS[r.op]} | {r.lib_us:.1f} | {r.floor_us:.1f} | {r.ratio:.2f}× | "
                f"{r.lib_spread[0]:.1f}–{r.lib_spread[1]:.1f} | {verdicts(r)} |"
            )
        lines.append("")
    if claims:
        lines += [
            "| claimers | processes | jobs | claims/s | double claims | lost jobs | errors retried |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for c in claims:
            target = " ✅" if c.per_second >= 3000 else " ❌"
            lines.append(
                f"| {c.label} | {c.processes} | {c.jobs:,} | {c.per_second:,.0f}"
                f"{target if c.processes == 8 and 'claim_next' in c.label else ''} | {c.double_claims} | "
                f"{c.lost} | {c.busy_errors} |"
            )
        lines.append("")
    if builds:
        lines += ["| rows | bulk build s | database MB |", "| ---: | ---: | ---: |"]
        for b in builds:
            lines.append(f"| {b['rows']:,} | {b['build_s']:.0f} | {b['bytes'] / 1e6:.0f} |")
        lines.append("")
        big = builds[-1]
        for name, plan_text in big.get("plans", {}).items():
            lines += [
                f"`EXPLAIN ANALYZE` of `{name}` at {big['rows']:,} rows:",
                "",
                "```",
                plan_text,
                "```",
                "",
            ]
    if components:
        lines += ["### Where the library's time goes", "", components]
    if profiles:
        lines += ["### cProfile of the library side (top functions by own time)", "", *profiles]
    return "\n".join(lines)


def server_settings(server: pgserver.Server) -> dict[str, str]:
    names = (
        "server_version",
        "fsync",
        "synchronous_commit",
        "full_page_writes",
        "wal_sync_method",
        "shared_buffers",
    )
    with psycopg.connect(server.url(), autocommit=True) as conn:
        return {n: str(conn.execute(f"SHOW {n}").fetchone()[0]) for n in names}  # type: ignore[index]


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated row counts")
    parser.add_argument("--quick", action="store_true", help="fewer, smaller batches; 5,000 claim jobs")
    parser.add_argument(
        "--parts", default="ops,breakdown,claims,analytics", help="any of ops,breakdown,claims,analytics"
    )
    parser.add_argument("--claim-jobs", type=int, default=None, help="pending jobs for the claim race")
    parser.add_argument(
        "--synchronous-commit", choices=("on", "off"), default="on", help="the server's synchronous_commit"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one library batch of each op")
    parser.add_argument("--output", type=Path, help="write the markdown report here")
    args = parser.parse_args(None if argv is None else list(argv))
    plan = bs.QUICK if args.quick else bs.FULL
    parts = set(args.parts.split(","))
    command = " ".join([Path(sys.executable).name, *sys.argv]) if argv is None else " ".join(argv)

    server = pgserver.start(durable=True)
    try:
        if args.synchronous_commit == "off":
            admin(server, "ALTER SYSTEM SET synchronous_commit = off", "SELECT pg_reload_conf()")
        settings = server_settings(server)
        print(machine(settings), flush=True)
        results: list[bs.Result] = []
        profiles: list[str] = []
        builds: list[dict[str, Any]] = []
        if "ops" in parts:
            for n in (int(s) for s in args.sizes.split(",")):
                got, prof, extra = bench_size(server, n, plan, args.profile)
                results += got
                profiles += prof
                builds.append(extra)
        components = breakdown(server) if "breakdown" in parts else ""
        analytics: list[bs.AnalyticsRow] = []
        if "analytics" in parts:
            for n in (int(s) for s in args.sizes.split(",")):
                analytics += bench_analytics(server, n, plan.batches)
        claims: list[bs.ClaimRun] = []
        if "claims" in parts:
            jobs = args.claim_jobs or (5000 if args.quick else 20_000)
            for processes, mode, label in (
                (8, "library", "musicstore claim_next"),
                (8, "floor", "floor (bare psycopg)"),
                (1, "library", "musicstore claim_next"),
                (1, "floor", "floor (bare psycopg)"),
                (8, "batch", "musicstore claim_batch(10)"),
            ):
                claims.append(claim_race(server, jobs, processes, mode, label))
    finally:
        server.stop()
    text = report(
        results=results,
        claims=claims,
        builds=builds,
        command=command,
        plan=plan,
        settings=settings,
        components=components,
        profiles=profiles,
    )
    if analytics:
        text += "\nAnalytics reads (50 calls a batch, µs per call):\n\n" + bs.analytics_table(
            analytics, "psycopg"
        )
    print("\n" + text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
