"""Claims in the queue's order (priority, fairness across owner keys, per-key limits) against today's plain
claim (oldest pending first, the claim before migration 0008), 8 processes, on SQLite and PostgreSQL.

    .venv/bin/python -m benchmarks.queue_claims                      # both backends, 2,000 jobs a run
    .venv/bin/python -m benchmarks.queue_claims --backend sqlite --jobs 5000

Runs, each from a fresh queue of N pending jobs (``benchmarks.data``), 8 processes starting at a barrier:

1. plain: the claim as it was before 0008 (one UPDATE of the oldest pending row, ``FOR UPDATE SKIP LOCKED``
   on PostgreSQL), run through the library's own driver as ``claim_next`` is (one autocommit statement on
   PostgreSQL since 9b8a76e): today's claim rate;
2. claim_next, jobs without owner keys (one lane);
3. claim_next, the jobs spread over 50 owner keys and 3 priorities, ``owner_limit`` high enough not to bind
   (the ranking of the lanes, the fairness and the limit's count are all paid);
4. the floor of a claim with per-key limits on run 3's queue: the least such a claim does beyond the plain
   claim. The library's lane bookkeeping (0012's triggers) is dropped from that queue's copy; a table of one
   counter row per key stands in for it, bumped by a trigger in the claiming statement (on PostgreSQL a
   plpgsql function of one ``UPDATE``), and the claim is one UPDATE of the head of a lane in
   ``generations_lane_queue`` (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), its counter checked against the
   limit in the same statement (on PostgreSQL read ``FOR UPDATE``: the newest committed count, so two claimers
   cannot both take the last place). The lane is picked by the client, each process in turn over the keys it
   has not yet found empty: no decision and no ranking, so the order is not the queue's (priorities are only
   kept within a lane); what it keeps of a fair claim is that jobs leave each lane's queue in the lane's
   order, not the oldest first, and that a counter row per key is written. After the run every counter is
   checked against its key's processing jobs (``floor_miscounted``);
5. and 6. a worker's loop, claim then complete, plain against claim_next with 50 keys, 3 priorities and
   ``owner_limit=2`` (binding: 8 workers, at most 2 jobs of a key at once).

Each run also reports the CPU a claim took, less moved than a rate by other processes on the machine (the
time they take the cores is not counted): the claiming processes' own from the barrier to their last claim
and, on PostgreSQL, the server's (all its processes, from /proc); "CPU vs plain" is the plain run's CPU a
claim over the run's, what the rates' ratio would be if the claims were bound by CPU alone (8 claimers and
their server on 2 cores mostly are; the commits' fsync and the lock waits are not counted). Each run checks
that no job was claimed twice and none was left. ``--rounds N`` repeats the runs N times
in turn (plain, then each claim_next run, then again) and reports each run's ratio to the plain run of its
round: the median (and the minimum) over the rounds, so that a change of the machine's load between rounds
moves both sides of a ratio.

``--cpu`` measures instead, in one process, the CPU time a claim costs (this process's, plus on PostgreSQL the
server backends', read from /proc): blocks of claims alternated between the plain claim, claim_next without
owner keys, claim_next with 50 keys and 3 priorities and the floor of run 4, each on its own queue; the
median (and minimum) of the blocks. Less moved by the machine's load than a race's rate, and without the
contention of 8 processes.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sqlite3
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from musicstore import Generation, Store
from musicstore.ops import NOW, Call, Steps, writer_alone
from musicstore.ops.jobs import _fast, _Undecided
from musicstore.ops.reads import GENERATION
from musicstore.queries import Query

from .data import postgres_database, remove_database, sqlite_database
from .harness import command, finish, load, machine

# The claim before migration 0008 (sql/*/claim.sql at 7f50a59~4), for the baseline.
PLAIN = {
    "sqlite": "UPDATE generations SET status = 'processing', worker_id = :worker_id, started_at = :now,"
    " lease_expires_at = :lease_expires_at, attempts = attempts + 1"
    " WHERE id = (SELECT id FROM generations WHERE status = 'pending' ORDER BY created_at, id LIMIT 1)"
    " RETURNING *",
    "postgres": "UPDATE generations SET status = 'processing', worker_id = %(worker_id)s,"
    " started_at = %(now)s, lease_expires_at = %(lease_expires_at)s, attempts = attempts + 1"
    " WHERE id = (SELECT id FROM generations WHERE status = 'pending' ORDER BY created_at, id LIMIT 1"
    " FOR UPDATE SKIP LOCKED) RETURNING *",
}
# The floor's claim (run 4): the head of the lane the client names, while the lane's counter is under the
# limit; the counter row is bumped by the floor's trigger (FLOOR_SCHEMA) in the same statement.
FLOOR = {
    "sqlite": "UPDATE generations SET status = 'processing', worker_id = :worker_id, started_at = :now,"
    " lease_expires_at = :lease_expires_at, attempts = attempts + 1"
    " WHERE id = (SELECT g.id FROM generations AS g INDEXED BY generations_lane_queue"
    " WHERE coalesce(g.owner_key, '') = :owner_key AND g.status = 'pending'"
    " AND (g.run_after IS NULL OR g.run_after <= :now) ORDER BY g.priority DESC, g.created_at, g.id LIMIT 1)"
    " AND (SELECT c.running FROM floor_lanes AS c WHERE c.owner_key = :owner_key) < :max_running"
    " RETURNING *",
    "postgres": "WITH lane AS (SELECT c.running FROM floor_lanes AS c WHERE c.owner_key = %(owner_key)s"
    " FOR UPDATE SKIP LOCKED),"
    " claimed AS (UPDATE generations SET status = 'processing', worker_id = %(worker_id)s,"
    " started_at = %(now)s, lease_expires_at = %(lease_expires_at)s, attempts = attempts + 1"
    " WHERE id = (SELECT g.id FROM generations AS g"
    " WHERE EXISTS (SELECT 1 FROM lane WHERE lane.running < %(max_running)s)"
    " AND coalesce(g.owner_key, '') = %(owner_key)s AND g.status = 'pending'"
    " AND (g.run_after IS NULL OR g.run_after <= %(now)s)"
    " ORDER BY g.priority DESC, g.created_at, g.id LIMIT 1 FOR UPDATE SKIP LOCKED)"
    " RETURNING generations.*)"
    " SELECT * FROM claimed UNION ALL SELECT (NULL::generations).* WHERE NOT EXISTS (SELECT 1 FROM lane)"
    " AND EXISTS (SELECT 1 FROM floor_lanes AS c WHERE c.owner_key = %(owner_key)s)",
}
"""On PostgreSQL the counter row is locked ``FOR UPDATE SKIP LOCKED`` as the library's lane row is (a lane
another claimer holds is skipped, not waited for: its lock lasts to that claim's commit), and read in its
newest committed version; a row of NULLs says the lane was held (the client goes on to the next key and keeps
this one), no row that it was empty or at its limit (or has no counter row: a key without jobs)."""
KEYS, PRIORITIES = 50, 3
FLOOR_SCHEMA = {
    "sqlite": (
        *(
            f"DROP TRIGGER generations_lanes_{event}"
            for event in ("insert", "move", "finish", "update", "delete")
        ),
        "CREATE TABLE floor_lanes (owner_key TEXT PRIMARY KEY, running INTEGER NOT NULL)"
        " STRICT, WITHOUT ROWID",
        "INSERT INTO floor_lanes SELECT DISTINCT owner_key, 0 FROM generations WHERE owner_key IS NOT NULL",
        "CREATE TRIGGER floor_lanes_claim AFTER UPDATE OF status ON generations"
        " WHEN NEW.owner_key IS NOT NULL AND OLD.status = 'pending' AND NEW.status = 'processing'"
        " BEGIN UPDATE floor_lanes SET running = running + 1 WHERE owner_key = NEW.owner_key; END",
    ),
    "postgres": (
        *(
            f"DROP TRIGGER generations_lanes_{event} ON generations"
            for event in ("insert", "update", "delete")
        ),
        "CREATE TABLE floor_lanes (owner_key text PRIMARY KEY, running integer NOT NULL)",
        "INSERT INTO floor_lanes SELECT DISTINCT owner_key, 0 FROM generations WHERE owner_key IS NOT NULL",
        "CREATE FUNCTION floor_lanes_claim() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " UPDATE floor_lanes SET running = running + 1 WHERE owner_key = NEW.owner_key; RETURN NULL; END $$",
        "CREATE TRIGGER floor_lanes_claim AFTER UPDATE OF status ON generations FOR EACH ROW"
        " WHEN (NEW.owner_key IS NOT NULL AND OLD.status = 'pending' AND NEW.status = 'processing')"
        " EXECUTE FUNCTION floor_lanes_claim()",
    ),
}
"""The floor's lane bookkeeping in place of the library's: one counter row per key, bumped at a claim."""
FLOOR_MISCOUNTED = (
    "SELECT count(*) FROM floor_lanes AS c WHERE c.running <> (SELECT count(*) FROM generations AS g"
    " WHERE g.owner_key = c.owner_key AND g.status = 'processing')"
)
"""The floor's counters that differ from their key's processing jobs (0 after a correct run)."""
TAGS_CLAIM = (
    "UPDATE generations SET status = 'processing', worker_id = %(worker_id)s, started_at = %(now)s,"
    " lease_expires_at = %(lease_expires_at)s, attempts = attempts + 1"
    " WHERE id = (SELECT g.id FROM generations AS g WHERE g.status = 'pending'"
    " AND (g.run_after IS NULL OR g.run_after <= %(now)s)"
    " AND EXISTS (SELECT 1 FROM tag_lanes AS c WHERE c.owner_key = g.owner_key"
    " AND c.running < coalesce(c.max_running, %(max_running)s) FOR UPDATE SKIP LOCKED)"
    " ORDER BY g.priority DESC, g.fair_tag, g.created_at, g.id LIMIT 1 FOR UPDATE OF g SKIP LOCKED)"
    " RETURNING *"
)
"""PostgreSQL, ``benchmarks.queue_tag_order`` (a fair order considered, not the library's): start-time fair
queuing. Each job has a tag given at enqueue (its rank among its key's jobs of its priority), and the claim
takes the first pending job in (priority, tag, age) order whose key's counter row (``tag_lanes``) is under
its limit and free (``SKIP LOCKED``): one walk of one index, whose entries never move once made."""
TAGS_SCHEMA = (
    *(f"DROP TRIGGER generations_lanes_{event} ON generations" for event in ("insert", "update", "delete")),
    "ALTER TABLE generations ADD COLUMN fair_tag bigint",
    "UPDATE generations AS g SET fair_tag = r.n FROM (SELECT id, row_number() OVER (PARTITION BY owner_key,"
    " priority ORDER BY created_at, id) AS n FROM generations WHERE status = 'pending') AS r"
    " WHERE r.id = g.id",
    "CREATE INDEX generations_tag_order ON generations (priority DESC, fair_tag, created_at, id)"
    " WHERE status = 'pending'",
    "CREATE TABLE tag_lanes (owner_key text PRIMARY KEY, running integer NOT NULL, max_running integer)",
    "INSERT INTO tag_lanes SELECT owner_key, count(*) FILTER (WHERE status = 'processing'), NULL"
    " FROM generations WHERE owner_key IS NOT NULL GROUP BY owner_key",
    "CREATE FUNCTION tag_lanes_claim() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " UPDATE tag_lanes SET running = running + 1 WHERE owner_key = NEW.owner_key; RETURN NULL; END $$",
    "CREATE TRIGGER tag_lanes_claim AFTER UPDATE OF status ON generations FOR EACH ROW"
    " WHEN (NEW.owner_key IS NOT NULL AND OLD.status = 'pending' AND NEW.status = 'processing')"
    " EXECUTE FUNCTION tag_lanes_claim()",
    "ANALYZE generations",
    "ANALYZE tag_lanes",
)
"""The tag order's schema on a queue ``_spread`` made (every pending job keyed): the library's lane triggers
dropped, the tags given as enqueues would have given them, the order's index and one counter row per key."""
RUNS = (
    ("plain", False, None, False, "plain claim (before 0008)"),
    ("queue", False, None, False, "claim_next, no owner keys"),
    ("queue", True, 1_000_000, False, "claim_next, 50 keys, 3 priorities"),
    ("floor", True, 1_000_000, False, "floor: a named lane's head + 1 counter row"),
    ("plain", False, None, True, "loop: plain claim + complete"),
    ("queue", True, 2, True, "loop: claim_next(owner_limit=2) + complete"),
)
LOOP_BASE = 4
"""The run the loops (``complete``) are compared with; the others are compared with run 0."""


@writer_alone  # one statement: sent as claim_next's first statement is (Operation.alone)
def plain_claim_next(worker_id: str) -> Steps[Generation | None]:
    now = yield NOW
    params = {"worker_id": worker_id, "now": now, "lease_expires_at": now + timedelta(seconds=300)}
    claimed: Generation | None = yield Call("plain_claim_next", params, GENERATION)
    return claimed


@writer_alone
def floor_claim_next(
    worker_id: str, owner_key: str, max_running: int
) -> Steps[Generation | _Undecided | None]:
    now = yield NOW
    params = {"worker_id": worker_id, "now": now, "lease_expires_at": now + timedelta(seconds=300)}
    lane = {**params, "owner_key": owner_key, "max_running": max_running}
    claimed: Generation | _Undecided | None = yield Call("floor_claim_lane", lane, _fast)
    return claimed


@writer_alone
def tags_claim_next(worker_id: str, max_running: int) -> Steps[Generation | None]:
    now = yield NOW
    params = {"worker_id": worker_id, "now": now, "lease_expires_at": now + timedelta(seconds=300)}
    claimed: Generation | None = yield Call("tags_claim", {**params, "max_running": max_running}, GENERATION)
    return claimed


class FloorLanes:
    """The floor's choice of lane: the keys in turn, from ``start``, each dropped once found empty (a lane
    another claimer holds, on PostgreSQL, is kept for its next turn)."""

    def __init__(self, start: int) -> None:
        self.keys = [f"user-{(start + k) % KEYS}" for k in range(KEYS)]
        self.turn = 0

    def claim(self, store: Store, worker: str, limit: int) -> Generation | None:
        while self.keys:
            self.turn %= len(self.keys)
            job = store.run(floor_claim_next, worker, self.keys[self.turn], limit)
            if isinstance(job, _Undecided):
                self.turn += 1  # held by another claimer: its next turn
                continue
            if job is not None:
                self.turn += 1
                return job
            del self.keys[self.turn]  # empty, or at its limit
        return None


def _register(store: Store) -> None:
    """The benchmark's own statements, run through the store's driver as its queries are."""
    store._queries["plain_claim_next"] = Query("plain_claim_next", PLAIN[store._connector.dialect], "one")
    store._queries["floor_claim_lane"] = Query("floor_claim_lane", FLOOR[store._connector.dialect], "one")
    if store._connector.dialect == "postgres":
        store._queries["tags_claim"] = Query("tags_claim", TAGS_CLAIM, "one")


def _claimer(url: str, run: tuple[str, int | None, bool], worker: str, barrier: Any, results: Any) -> None:
    mode, limit, complete = run
    ids: list[str] = []
    store = Store(url, busy_timeout=60)
    _register(store)
    lanes = FloorLanes(int(worker.removeprefix("w")) * (KEYS // 8))
    barrier.wait()
    start, cpu = time.perf_counter(), time.process_time()
    while True:
        if mode == "plain":
            job = store.run(plain_claim_next, worker)
        elif mode == "floor":
            assert limit is not None
            job = lanes.claim(store, worker, limit)
        elif mode == "tags":
            assert limit is not None
            job = store.run(tags_claim_next, worker, limit)
        else:
            job = store.claim_next(worker, owner_limit=limit)
        if job is None:
            if complete and store.count_generations(status="pending"):
                continue  # the keys with work are at their limit until a job completes
            break
        ids.append(job.id)
        if complete:
            store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=1, worker_id=worker)
    results.put((start, time.perf_counter(), ids, time.process_time() - cpu))
    store.close()


@dataclass
class Race:
    label: str
    jobs: int
    seconds: float
    double: int
    left: int
    client_cpu: float = 0.0
    """The claiming processes' CPU seconds from the barrier to their last claim, all together."""
    server_cpu: float | None = None
    """PostgreSQL: the server's CPU seconds over the race (every process of it), None where unknown."""

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds

    def per_claim(self, seconds: float | None) -> float | None:
        """CPU microseconds a claim."""
        return None if seconds is None or not self.jobs else seconds / self.jobs * 1e6


def _cpu_per_claim(result: Race) -> float:
    """A race's CPU microseconds a claim, its claimers' and (PostgreSQL) its server's."""
    return (result.per_claim(result.client_cpu + (result.server_cpu or 0.0))) or float("inf")


def server_cpu(server: Any) -> Callable[[], float] | None:
    """The CPU seconds used so far by a server ``musicstore.testing._pgserver`` started (its postmaster,
    the children it has reaped and those still running, from /proc), or None for a server not started here.
    Less moved by other processes on the machine than a rate: the time they take the cores is not counted."""
    base = getattr(server, "base", None)
    if base is None or not Path("/proc/self/stat").exists():
        return None
    postmaster = int((Path(base) / "data" / "postmaster.pid").read_text().split()[0])
    ticks = os.sysconf("SC_CLK_TCK")

    def fields(pid: str) -> list[str]:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()

    def seconds() -> float:
        total = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                stat = fields(pid)
            except OSError:  # gone meanwhile: its time is in its parent's reaped children
                continue
            if int(pid) == postmaster:  # its own time and its reaped children's
                total += sum(int(field) for field in stat[11:15])
            elif int(stat[1]) == postmaster:
                total += int(stat[11]) + int(stat[12])
        return total / ticks

    return seconds


def race(
    url: str, run: tuple[str, int | None, bool], label: str, server: Callable[[], float] | None = None
) -> Race:
    """8 processes claim from ``url`` from a barrier on; ``server``: the server's CPU seconds so far
    (``server_cpu``), read when the barrier opens and once every claimer has closed its store."""
    ctx = mp.get_context("spawn")
    processes = 8
    barrier, results = ctx.Barrier(processes + 1), ctx.Queue()
    procs = [
        ctx.Process(target=_claimer, args=(url, run, f"w{i}", barrier, results)) for i in range(processes)
    ]
    for p in procs:
        p.start()
    barrier.wait()
    server_before = None if server is None else server()
    got = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    server_used = None
    if server is not None and server_before is not None:
        time.sleep(0.2)  # the claimers' backends exit and are reaped
        server_used = server() - server_before
    claimed = [gid for g in got for gid in g[2]]
    with Store(url) as store:
        left = store.count_generations(status="pending")
    seconds = max(g[1] for g in got) - min(g[0] for g in got)
    result = Race(
        label,
        len(claimed),
        seconds,
        len(claimed) - len(set(claimed)),
        left,
        client_cpu=sum(g[3] for g in got),
        server_cpu=server_used,
    )
    cpu = f"client CPU {result.per_claim(result.client_cpu):5.0f} us/claim"
    if server_used is not None:
        cpu += f", server {result.per_claim(server_used):5.0f} us/claim"
    print(
        f"  {label:<44} {result.rate:8,.0f} claims/s  {cpu}  double={result.double} left={left}", flush=True
    )
    return result


def floor_miscounted(url: str) -> int:
    """How many of the floor's counters differ from their key's processing jobs (FLOOR_MISCOUNTED)."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return int(conn.execute(FLOOR_MISCOUNTED).fetchone()[0])
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(FLOOR_MISCOUNTED).fetchone()
        return int(row[0]) if row else -1


def _spread(url: str, dialect: str, floor: bool = False) -> None:
    """Give the pending jobs owner keys and priorities at random (50 keys, 3 priorities); ``floor``: and
    replace the library's lane bookkeeping with the floor's counter rows (FLOOR_SCHEMA)."""
    if dialect == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute(
                f"UPDATE generations SET owner_key = 'user-' || (abs(random()) % {KEYS}),"
                f" priority = abs(random()) % {PRIORITIES} WHERE status = 'pending'"
            )
            for statement in FLOOR_SCHEMA[dialect] if floor else ():
                conn.execute(statement)
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"UPDATE generations SET owner_key = 'user-' || floor(random() * {KEYS})::int,"
            f" priority = floor(random() * {PRIORITIES})::int WHERE status = 'pending'"
        )
        for statement in FLOOR_SCHEMA[dialect] if floor else ():
            conn.execute(statement)
        conn.execute("ANALYZE generations")


CPU_SIDES = (
    ("plain", False, "plain claim (before 0008)"),
    ("queue", False, "claim_next, no owner keys"),
    ("queue", True, "claim_next, 50 keys, 3 priorities"),
    ("floor", True, "floor: a named lane's head + 1 counter row"),
)


def _backend_seconds(store: Store) -> Callable[[], float]:
    """The CPU seconds used so far by the PostgreSQL backends behind the store's connections
    (``store_postgres.ServerCPU``: ns from ``/proc/<pid>/schedstat``, every connection its pool opened)."""
    from .store_postgres import ServerCPU, library_pids

    clock = ServerCPU(library_pids(store), thread=False)
    return lambda: clock() / 1e9


def cpu_per_claim(urls: list[str], jobs: int, block: int) -> list[tuple[str, list[float]]]:
    """CPU seconds per claim of each side in CPU_SIDES (on its own queue at ``urls[i]``), per block."""
    sides = CPU_SIDES[: len(urls)]
    stores = [Store(url) for url in urls]
    server: list[Callable[[], float]] = []
    lanes = FloorLanes(0)
    for store in stores:
        _register(store)
        if store._connector.dialect == "postgres":
            server.append(_backend_seconds(store))
        else:
            server.append(lambda: 0.0)
    blocks: list[list[float]] = [[] for _ in stores]
    try:
        for _ in range(jobs // block):
            for i, ((mode, _keyed, _label), store) in enumerate(zip(sides, stores, strict=True)):
                before = time.process_time() + server[i]()
                for _ in range(block):
                    if mode == "plain":
                        job = store.run(plain_claim_next, "w")
                    elif mode == "floor":
                        job = lanes.claim(store, "w", 1_000_000)
                    else:
                        job = store.claim_next("w", owner_limit=1_000_000)
                    assert job is not None
                blocks[i].append((time.process_time() + server[i]() - before) / block)
    finally:
        for store in stores:
            store.close()
    return [(label, b) for (*_, label), b in zip(sides, blocks, strict=True)]


def cpu_main(args: argparse.Namespace, backends: tuple[str, ...]) -> list[str]:
    sections = []
    for backend in backends:
        print(f"{backend}:", flush=True)
        server = None
        paths: list[Path] = []
        urls = []
        if backend == "postgres":
            from musicstore.testing import _pgserver

            server = _pgserver.start(durable=True)
        try:
            for n, (mode, keyed, _label) in enumerate(CPU_SIDES):
                if server is None:
                    copy = sqlite_database(args.workdir, args.jobs, pending=args.jobs, seed=3)
                    paths.append(copy.rename(copy.with_name(f"cpu{n}-{copy.name}")))  # one queue a side
                    urls.append(f"sqlite:///{paths[-1]}")
                else:
                    urls.append(postgres_database(server, f"cpu{n}", args.jobs, pending=args.jobs, seed=3))
                if keyed:
                    _spread(urls[-1], backend, floor=mode == "floor")
            measured = cpu_per_claim(urls, args.jobs, args.block)
        finally:
            for path in paths:
                remove_database(path)
            if server is not None:
                server.stop()
        what = "this process" if server is None else "this process and its server backends"
        lines = [
            f"#### {backend}: CPU per claim ({what}), one process, blocks of {args.block}",
            "",
            "| claim | µs per claim, median (min) | vs plain, median (min) |",
            "| --- | ---: | ---: |",
        ]
        base = measured[0][1]
        for label, b in measured:
            print(f"  {label:<44} {statistics.median(b) * 1e6:7.0f} us", flush=True)
            lines.append(
                f"| {label} | {statistics.median(b) * 1e6:,.0f} ({min(b) * 1e6:,.0f}) "
                f"| {statistics.median(base) / statistics.median(b):.2f}x ({min(base) / min(b):.2f}x) |"
            )
        sections.append("\n".join(lines))
    return sections


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--jobs", type=int, default=2_000, help="pending jobs in each run's queue (default 2,000)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/musicstore-bench"), help="cached SQLite files")
    p.add_argument("--output", type=Path, help="also write the markdown report here")
    p.add_argument("--rounds", type=int, default=1, help="repeat the runs this many times (default 1)")
    p.add_argument("--cpu", action="store_true", help="CPU time per claim, one process (see above)")
    p.add_argument("--block", type=int, default=100, help="claims per block with --cpu (default 100)")
    args = p.parse_args(argv)
    started = load()
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    sections = cpu_main(args, backends) if args.cpu else []
    for backend in () if args.cpu else backends:
        print(f"{backend}:", flush=True)
        rounds: list[dict[int, Race]] = []
        server = None
        if backend == "postgres":
            from musicstore.testing import _pgserver

            server = _pgserver.start(durable=True)
        try:
            for _ in range(args.rounds):
                results: dict[int, Race] = {}
                for n, (mode, keyed, limit, complete, label) in enumerate(RUNS):
                    if server is None:
                        path = sqlite_database(args.workdir, args.jobs, pending=args.jobs, seed=3)
                        url = f"sqlite:///{path}"
                    else:
                        url = postgres_database(server, f"queue{n}", args.jobs, pending=args.jobs, seed=3)
                    if keyed:
                        _spread(url, backend, floor=mode == "floor")
                    results[n] = race(url, (mode, limit, complete), label, server_cpu(server))
                    assert results[n].double == 0 and results[n].left == 0, results[n]
                    if mode == "floor":
                        assert floor_miscounted(url) == 0, f"{label}: a counter differs from its key's jobs"
                    if server is None:
                        remove_database(path)
                    else:
                        server.admin(f"DROP DATABASE queue{n}")
                rounds.append(results)
        finally:
            if server is not None:
                server.stop()
        lines = [
            f"#### {backend} ({len(rounds)} round{'s' if len(rounds) > 1 else ''})",
            "",
            "| run (8 processes) | claims/s, median (min) | vs plain, median (min) "
            "| CPU µs/claim, client + server, median | CPU vs plain, median (min) |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for i, (*_, complete, label) in enumerate(RUNS):
            if i not in rounds[0]:
                continue
            base = LOOP_BASE if complete else 0
            rates = [results[i].rate for results in rounds]
            ratios = [results[i].rate / results[base].rate for results in rounds]
            cpu = [_cpu_per_claim(results[i]) for results in rounds]
            cpu_ratios = [_cpu_per_claim(results[base]) / c for results, c in zip(rounds, cpu, strict=True)]
            client = statistics.median(
                results[i].per_claim(results[i].client_cpu) or 0.0 for results in rounds
            )
            server_side = ""
            if server is not None:
                used = [results[i].per_claim(results[i].server_cpu) or 0.0 for results in rounds]
                server_side = f" + {statistics.median(used):,.0f}"
            lines.append(
                f"| {label} | {statistics.median(rates):,.0f} ({min(rates):,.0f}) "
                f"| {statistics.median(ratios):.2f}x ({min(ratios):.2f}x) "
                f"| {client:,.0f}{server_side} "
                f"| {statistics.median(cpu_ratios):.2f}x ({min(cpu_ratios):.2f}x) |"
            )
        sections.append("\n".join(lines))
    text = "\n".join(
        [
            f"### Queue claims ({args.jobs:,} jobs a run)",
            "",
            f"Machine: {machine()}. Load: {started} at the start, {load()} at the end. "
            f"At {datetime.now().strftime('%Y-%m-%d %H:%M')}.",
            "",
            f"    {command()}",
            "",
            *sections,
        ]
    )
    finish(text + "\n", args.output)


if __name__ == "__main__":
    main()
