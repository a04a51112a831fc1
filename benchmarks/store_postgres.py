"""The job store on PostgreSQL: every read beside its fair floor, every write beside its bare floor.

    .venv/bin/python -m benchmarks.store_postgres                          # 100k and 1M rows
    .venv/bin/python -m benchmarks.store_postgres --sizes 10000 --quick    # a smoke run
    .venv/bin/python -m benchmarks.store_postgres --synchronous-commit off --ops create,claim
    .venv/bin/python -m benchmarks.store_postgres --sizes 100000,1000000 --clock cpu   # on a shared machine

A throwaway **durable** server (``musicstore.testing._pgserver.start(durable=True)``: fsync, full_page_writes
and synchronous_commit on) on 127.0.0.1, reached over TCP; each size is loaded by COPY into its own database
(``benchmarks.data.postgres_database``). The library reads through its pool (``autocommit=True``); the floors
use one bare ``psycopg.connect(url, autocommit=True)`` connection with tuple rows. Targets (issue 12): reads
≤ 1.15× the fair floor, writes ≤ 1.1× the bare floor; single-process ``claim_next`` at parity.

``--clock cpu`` (for a shared machine, where elapsed time mostly measures the other processes): each batch is
charged the CPU time of the benchmark thread (``time.thread_time_ns``) plus the CPU time of the server backend
serving the side's connection (``/proc/<pid>/schedstat``, its first field: ns on a CPU), for the library (its
pool's connection) and the floors alike. Waits are left out: the commit's fsync, the network, the scheduler's
queue. Every batch is also timed by the wall clock, and the report shows the spread of both between batches.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from musicstore import Store
from musicstore.testing import _pgserver

from .bare import Bare, postgres_bare
from .data import postgres_database
from .harness import (
    LIBRARY,
    Plan,
    Prepare,
    Timing,
    finish,
    load,
    parser,
    plan_of,
    profile,
    report,
    table,
)
from .store_ops import reads, run, sides_of, writes

TARGETS = {"read": 1.15, "write": 1.1}
SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_sync_method",
    "TimeZone",
)


def settings(server: Any) -> str:
    import psycopg

    with psycopg.connect(server.url(), autocommit=True) as conn:
        shown = {name: conn.execute(f"SHOW {name}").fetchone() for name in SETTINGS}
    pq = psycopg.pq.version()
    return (
        f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__}, libpq {pq // 10000}.{pq % 100}); PostgreSQL "
        + ", ".join(f"{name}={row[0] if row else '?'}" for name, row in shown.items())
    )


def plans(url: str) -> str:
    """EXPLAIN ANALYZE of the pending page and the totals on the freshly loaded database."""
    import psycopg

    from .bare import FAR_FUTURE, postgres_bare

    bare = postgres_bare(url)
    params = {
        "status": "pending",
        "before_created_at": FAR_FUTURE,
        "before_id": "z",
        "limit": 50,
        "offset": 0,
    }
    out = []
    with psycopg.connect(url, autocommit=True) as conn:
        for name, values in (("list_generations_by_status", params), ("totals", {})):
            rows = conn.execute(
                f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {bare.sql(name)}", values
            ).fetchall()
            out.append(f"`EXPLAIN ANALYZE` of `{name}`:\n\n```\n" + "\n".join(r[0] for r in rows) + "\n```\n")
    bare.conn.close()
    return "\n".join(out)


def schedstat_ns(pid: int) -> int | None:
    """The CPU time of process ``pid`` so far, ns (``/proc/<pid>/schedstat``, first field); None once it is
    gone."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class ServerCPU:
    """A clock (ns): this thread's CPU time plus the CPU time of the server backends serving ``pids()``.

    Backends are read at each tick; one that has gone (a connection the pool replaced) keeps its last reading,
    so the clock never runs backwards. A side's batch is charged its own backend's work, since the other
    sides' backends sit idle meanwhile (they run nothing between their own batches).
    """

    def __init__(self, pids: Callable[[], Iterable[int]], *, thread: bool = True) -> None:
        self.pids = pids
        self.thread = thread  # False: the backends' time only
        self.seen: dict[int, int] = {}

    def __call__(self) -> int:
        seen = self.seen
        for pid in self.pids():
            ns = schedstat_ns(pid)
            if ns is not None:
                seen[pid] = ns
        return (time.thread_time_ns() if self.thread else 0) + sum(seen.values())


def library_pids(store: Store) -> Callable[[], list[int]]:
    """The pids of the server backends behind the library's connections, read from its connector's spare
    (``PostgresConnector.acquire``) and its pool's idle connections (``psycopg_pool``'s ``_pool`` deque):
    between batches every connection the benchmark thread used is back in one of them (the pool may have
    opened another meanwhile: the spare goes back through it every ``SPARE_SECONDS``)."""
    connector = store._connector
    idle = connector.pool._pool  # psycopg_pool's idle connections (private; no public accessor)

    def pids() -> list[int]:
        spare = getattr(connector, "_spare", ())
        return [conn.info.backend_pid for conn in (*spare, *idle)]

    store.count_generations()  # a connection opened and given back
    return pids


def backend_pids(store: Store, bare: Bare) -> Callable[[], list[int]]:
    """The pids of the server backends behind the library's connections and the floors' connection."""
    library = library_pids(store)
    floor = bare.conn.info.backend_pid

    def pids() -> list[int]:
        return [floor, *library()]

    if len(pids()) < 2:
        raise SystemExit("--clock cpu: no idle connection of the library's to read its backend from")
    return pids


def both_clocks(
    sides: dict[str, Prepare], batch: int, plan: Plan, cpu: Callable[[], int]
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """``harness.alternate`` timing each batch twice: µs per operation of server+thread CPU, and of wall."""
    names = list(sides)
    for name in names:
        sides[name](plan.warmup)()
    on_cpu: dict[str, list[float]] = {name: [] for name in names}
    wall: dict[str, list[float]] = {name: [] for name in names}
    elapsed = time.perf_counter_ns
    for b in range(plan.batches):
        shift = b % len(names)
        for name in names[shift:] + names[:shift]:
            timed = sides[name](batch)
            c0 = cpu()
            w0 = elapsed()
            timed()
            w1 = elapsed()
            c1 = cpu()
            on_cpu[name].append((c1 - c0) / batch / 1000)
            wall[name].append((w1 - w0) / batch / 1000)
    return on_cpu, wall


def spread(times: list[float]) -> tuple[float, float]:
    """Between batches: the interquartile range over the median, and the slowest over the fastest."""
    q1, _, q3 = statistics.quantiles(times, n=4)
    return (q3 - q1) / statistics.median(times), max(times) / min(times)


def run_cpu(
    store: Store, bare: Bare, rows: int, plan: Plan, *, only: set[str] | None, profiled: bool
) -> tuple[list[Timing], list[Timing], list[str]]:
    """``store_ops.run`` on the server+thread CPU clock; the same batches' wall times beside them."""
    cpu = ServerCPU(backend_pids(store, bare))
    on_cpu, on_wall, profiles = [], [], []
    for op in reads(store, bare, rows) + writes(store, bare):
        if only and op.key not in only:
            continue
        if op.check is not None:
            op.check()
        c, w = both_clocks(sides_of(op), plan.batch(op.batch), plan, cpu)
        timing, walled = Timing(rows, op.label, op.kind, c), Timing(rows, op.label, op.kind, w)
        print(timing.line(), "| wall", walled.line().split(op.label, 1)[1].strip(), flush=True)
        on_cpu.append(timing)
        on_wall.append(walled)
        if profiled:
            profiles.append(profile(op.library(plan.batch(op.batch)), f"{op.label} at {rows:,} rows"))
    return on_cpu, on_wall, profiles


def spreads(on_cpu: list[Timing], on_wall: list[Timing]) -> str:
    """Markdown: each operation's spread between batches on both clocks (the same batches), and the ratios."""
    lines = [
        "Spread between batches, the same batches on both clocks: interquartile range / median "
        "(slowest / fastest batch), library | floor; and the ratio to the floor by each clock.",
        "",
        "| rows | operation | CPU: library | CPU: floor | wall: library | wall: floor | "
        "× floor CPU | × floor wall |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    iqr: dict[str, list[float]] = {"cpu": [], "wall": []}
    for c, w in zip(on_cpu, on_wall, strict=True):
        cells = [f"{c.rows:,}", c.op]
        for clock, t in (("cpu", c), ("wall", w)):
            for side in (LIBRARY, t.floor):
                q, r = spread(t.times[side])
                iqr[clock].append(q)
                cells.append(f"{q:.0%} ({r:.2f}×)")
        cells += [f"{c.ratio(c.floor)[0]:.2f}×", f"{w.ratio(w.floor)[0]:.2f}×"]
        lines.append("| " + " | ".join(cells) + " |")
    if iqr["cpu"]:
        lines += [
            "",
            f"Median interquartile range / median over all operations and sides: CPU "
            f"{statistics.median(iqr['cpu']):.0%}, wall {statistics.median(iqr['wall']):.0%}.",
        ]
    return "\n".join(lines) + "\n"


def joined_sizes(argv: list[str]) -> list[str]:
    """``--sizes 100000 1000000`` read as ``--sizes 100000,1000000`` (the harness takes one value)."""
    out: list[str] = []
    for arg in argv:
        if len(out) >= 2 and out[-2] == "--sizes" and arg.replace(",", "").isdigit():
            out[-1] += "," + arg
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__, sizes="100000,1000000")
    p.add_argument("--synchronous-commit", choices=("on", "off"), default="on", help="the server's setting")
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: elapsed time; cpu: the benchmark thread's CPU time plus that of the server backend "
        "serving the side's connection (/proc/<pid>/schedstat), waits left out: steadier on a shared machine",
    )
    args = p.parse_args(joined_sizes(sys.argv[1:] if argv is None else argv))
    plan, started = plan_of(args), load()
    only = set(args.ops.split(",")) if args.ops else None
    timings, walled, profiles, explained = [], [], [], ""
    server = _pgserver.start(durable=True)
    try:
        if args.synchronous_commit == "off":
            server.admin("ALTER SYSTEM SET synchronous_commit = off", "SELECT pg_reload_conf()")
        setting = settings(server)
        print(setting, flush=True)
        for rows in (int(s) for s in args.sizes.split(",")):
            print(f"loading {rows:,} generations ...", flush=True)
            url = postgres_database(server, f"rows_{rows}", rows, pending=min(3000, rows // 4))
            explained = plans(url)
            store, bare = Store(url), postgres_bare(url)
            try:
                if plan.clock == "cpu":
                    got, wall, prof = run_cpu(store, bare, rows, plan, only=only, profiled=args.profile)
                    walled += wall
                else:
                    got, prof = run(store, bare, rows, plan, only=only, profiled=args.profile)
            finally:
                store.close()
                bare.conn.close()
            server.admin(f"DROP DATABASE rows_{rows}")
            timings += got
            profiles += prof
    finally:
        server.stop()
    sections = [table(timings, TARGETS), spreads(timings, walled) if walled else "", explained, *profiles]
    text = report("Job store on PostgreSQL", setting, plan, started, sections)
    if plan.clock == "cpu":
        text = text.replace(
            "the benchmark thread's CPU time (time.thread_time).",
            "the benchmark thread's CPU time (time.thread_time) plus the CPU time of the server backend "
            "serving the side's connection (/proc/<pid>/schedstat); waits (the commit's fsync, the network, "
            "the run queue) are left out.",
        )
    finish(text, args.output)


if __name__ == "__main__":
    main()
