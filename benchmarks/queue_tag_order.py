"""A fair order considered for PostgreSQL's claim and not taken: start-time fair queuing (``TAGS_CLAIM`` in
``benchmarks.queue_claims_sides``), against today's plain claim and the library's claim_next.

    .venv/bin/python -m benchmarks.queue_tag_order --rounds 3              # 8 processes, 2,000 jobs
    .venv/bin/python -m benchmarks.queue_tag_order --backlog 0 1000 10000  # one process, a key at its limit

The tag order reaches issue 15's rate (>= 0.8x the plain claim, 8 processes) because its index entries
never move once made: a claim walks one index of the pending jobs, as the plain claim does, and bumps one
counter row. Its price is the part 2 measures: a key at its limit keeps its pending jobs in that order, at
the tags they were given, and every claim steps over those of them whose tags are below the others' heads.

1. ``--rounds N``: 8 processes from a barrier (``queue_claims_race.race``), each round the plain claim,
   then the tag order's claim on a queue ``_spread`` over 50 keys and 3 priorities (``TAGS_SCHEMA``: the
   tags given as enqueues would give them; no limit binds). Rates and CPU a claim as ``queue_claims``
   reports them, each run's ratio to the plain run of its round.
2. ``--backlog B ...``: CPU per claim (this process and the server backends behind its store), one process,
   blocks of 100 claims alternated, on two copies of one queue: 2,000 jobs over 50 keys, and a key ``heavy``
   with 2 jobs processing, its limit 2, and B pending jobs. In the tag order the heavy key's B jobs come first
   (the other keys' tags start after them: they have been served B rounds since the heavy key reached its
   limit); the library keeps the lanes' heads in ``owner_lanes_order`` and steps over one entry a lane at its
   limit.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime
from typing import Any

from musicstore import Store

from .data import postgres_database
from .harness import command, finish, load, machine
from .queue_claims_cpu import _backend_seconds
from .queue_claims_race import Race, _cpu_per_claim, race, server_cpu
from .queue_claims_sides import TAGS_SCHEMA, _register, _spread, tags_claim_next

HEAVY = (
    "UPDATE generations SET priority = 0 WHERE status = 'pending'",
    "UPDATE generations SET owner_key = 'heavy' WHERE id IN (SELECT id FROM generations"
    " WHERE status = 'pending' ORDER BY created_at, id LIMIT %(heavy)s)",
    "UPDATE generations SET status = 'processing', worker_id = 'w-heavy', started_at = now(),"
    " lease_expires_at = now() + interval '1 hour', attempts = 1 WHERE id IN (SELECT id FROM generations"
    " WHERE owner_key = 'heavy' AND status = 'pending' ORDER BY created_at, id LIMIT 2)",
)
"""The heavy key: the queue's oldest B + 2 jobs, 2 of them processing; one priority for all."""
HEAVY_TAGS = (
    "UPDATE generations AS g SET fair_tag = g.fair_tag + %(backlog)s WHERE owner_key <> 'heavy'",
    "UPDATE tag_lanes SET max_running = 2 WHERE owner_key = 'heavy'",
    "ANALYZE generations",
)
"""The tag order's copy: the other keys' tags after the heavy key's, its limit 2."""


def _tag_queue(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for statement in TAGS_SCHEMA:
            conn.execute(statement)


def races(server: Any, jobs: int, rounds: int) -> list[str]:
    """Part 1: the markdown table of the 8-process runs."""
    got: dict[str, list[Race]] = {"plain": [], "tags": []}
    for _ in range(rounds):
        for mode, results in got.items():
            url = postgres_database(server, "tags", jobs, pending=jobs, seed=3)
            if mode == "tags":
                _spread(url, "postgres")
                _tag_queue(url)
            label = "plain claim (before 0008)" if mode == "plain" else "tag order, 50 keys, 3 priorities"
            result = race(url, (mode, 1_000_000, False), label, server_cpu(server))
            assert result.double == 0 and result.left == 0, result
            results.append(result)
            server.admin("DROP DATABASE tags")
    lines = [
        "| run (8 processes) | claims/s, median (min) | vs plain, median (min) "
        "| CPU vs plain, median (min) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for results in got.values():
        rates = [r.rate for r in results]
        ratios = [r.rate / p.rate for r, p in zip(results, got["plain"], strict=True)]
        cpu = [_cpu_per_claim(p) / _cpu_per_claim(r) for r, p in zip(results, got["plain"], strict=True)]
        lines.append(
            f"| {results[0].label} | {statistics.median(rates):,.0f} ({min(rates):,.0f}) "
            f"| {statistics.median(ratios):.2f}x ({min(ratios):.2f}x) "
            f"| {statistics.median(cpu):.2f}x ({min(cpu):.2f}x) |"
        )
    return lines


def backlogs(server: Any, backlog: list[int], claims: int, block: int) -> list[str]:
    """Part 2: the markdown table of CPU per claim with a key at its limit holding ``backlog`` jobs."""
    import psycopg

    lines = [
        "| heavy key's pending jobs | claim_next, µs a claim, median (min) "
        "| tag order, µs a claim, median (min) |",
        "| ---: | ---: | ---: |",
    ]
    for size in backlog:
        urls = {}
        for side in ("library", "tags"):
            url = postgres_database(server, side, 2_000 + size + 2, pending=2_000 + size + 2, seed=3)
            _spread(url, "postgres")
            with psycopg.connect(url, autocommit=True) as conn:
                for statement in HEAVY:
                    conn.execute(statement, {"heavy": size + 2})
            if side == "tags":
                _tag_queue(url)
                with psycopg.connect(url, autocommit=True) as conn:
                    for statement in HEAVY_TAGS:
                        conn.execute(statement, {"backlog": size})
            urls[side] = url
        stores = {side: Store(url) for side, url in urls.items()}
        stores["library"].set_owner_limit("heavy", 2)
        _register(stores["tags"])
        seconds = {side: _backend_seconds(store) for side, store in stores.items()}
        times: dict[str, list[float]] = {side: [] for side in stores}
        try:
            for _ in range(claims // block):
                for side, store in stores.items():
                    before = time.process_time() + seconds[side]()
                    for _ in range(block):
                        if side == "library":
                            job = store.claim_next("w", owner_limit=1_000_000)
                        else:
                            job = store.run(tags_claim_next, "w", 1_000_000)
                        assert job is not None and job.owner_key != "heavy", job
                    times[side].append((time.process_time() + seconds[side]() - before) / block * 1e6)
        finally:
            for store in stores.values():
                store.close()
            for side in urls:
                server.admin(f"DROP DATABASE {side}")
        lib, tags = times["library"], times["tags"]
        print(
            f"  backlog {size:>6}: claim_next {statistics.median(lib):7.0f} us,"
            f" tags {statistics.median(tags):7.0f} us"
        )
        lines.append(
            f"| {size:,} | {statistics.median(lib):,.0f} ({min(lib):,.0f}) "
            f"| {statistics.median(tags):,.0f} ({min(tags):,.0f}) |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=0, help="part 1: rounds of 8-process runs")
    p.add_argument("--jobs", type=int, default=2_000, help="part 1: pending jobs a run (default 2,000)")
    p.add_argument("--backlog", type=int, nargs="*", default=[], help="part 2: the heavy key's pending jobs")
    p.add_argument("--claims", type=int, default=1_000, help="part 2: claims a side (default 1,000)")
    args = p.parse_args(argv)
    from musicstore.testing import _pgserver

    started = load()
    server = _pgserver.start(durable=True)
    sections: list[str] = []
    try:
        if args.rounds:
            sections += [
                "",
                f"8 processes, {args.jobs:,} jobs a run, {args.rounds} rounds:",
                "",
                *races(server, args.jobs, args.rounds),
            ]
        if args.backlog:
            sections += [
                "",
                "One process, CPU a claim (client + server backends):",
                "",
                *backlogs(server, args.backlog, args.claims, 100),
            ]
    finally:
        server.stop()
    text = "\n".join(
        [
            "### The tag order (PostgreSQL)",
            "",
            f"Machine: {machine()}. Load: {started} at the start, {load()} at the end. "
            f"At {datetime.now().strftime('%Y-%m-%d %H:%M')}.",
            "",
            f"    {command()}",
            *sections,
        ]
    )
    finish(text + "\n", None)


if __name__ == "__main__":
    main()
