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
import statistics
from datetime import datetime
from pathlib import Path

from .data import postgres_database, remove_database, sqlite_database
from .harness import command, finish, load, machine
from .queue_claims_cpu import cpu_main
from .queue_claims_race import Race, _cpu_per_claim, race, server_cpu
from .queue_claims_sides import _spread, floor_miscounted

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
