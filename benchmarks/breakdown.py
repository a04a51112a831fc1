"""Where the library's time goes: component costs around one read, in isolation (fastest of 7 repeats).

    .venv/bin/python -m benchmarks.breakdown                       # SQLite, a 10k-row database
    .venv/bin/python -m benchmarks.breakdown --backend postgres    # a durable PostgreSQL server

Three tables: ``get_generation`` step by step (the bare query, the library's row type, ``queries.execute``,
decoding, the runner); the runner alone around the cheapest query (``totals``) as a read and as a write; and
each operation's own logic replaying the answers the runner gave it in one real run (no database, no runner),
beside the cost of building its result objects by hand. For whole operations against their floors see
``benchmarks.store_sqlite``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json
import random
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from musicstore import Generation, Store, ops
from musicstore.ids import check_id
from musicstore.ops import NOW, Call
from musicstore.queries import execute, load

from . import fair
from .bare import FAR_FUTURE, Bare, postgres_bare, sqlite_bare
from .checked_floors import checked_floors as store_checked_floors
from .data import (
    add_jobs,
    create_metadata,
    done_metadata,
    make_prompt,
    postgres_database,
    remove_database,
    sqlite_database,
)
from .harness import best_us, command, finish, machine


def _only(name: str) -> Any:
    def steps() -> Any:
        return (yield Call(name, {}))

    return steps


def recorded(store: Store, op: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """What the library's runner answers each of the operation's queries, recorded from one real run."""
    answers: dict[str, Any] = {}

    def steps() -> Any:
        inner = op.steps(*args, **kwargs)
        try:
            step = next(inner)
            while True:
                value = yield step
                if step is not NOW:  # a copy: the operation may update the object it gets
                    answers[step.name] = copy.copy(value) if type(value) is Generation else value
                step = inner.send(value)
        except StopIteration as done:
            return done.value

    store.run((ops.writer if op.writes else ops.reader)(steps))
    return answers


def canned(store: Store, op: Any, *args: Any, **kwargs: Any) -> Callable[[], None]:
    """Run an operation's own logic with the answers the runner gave it once: no database, no runner."""
    clock, answers = store.clock, recorded(store, op, *args, **kwargs)

    def answer(step: Any) -> Any:
        value = answers[step.name]
        return copy.copy(value) if type(value) is Generation else value  # an operation may update it

    def once() -> None:
        steps = op.steps(*args, **kwargs)
        try:
            step = next(steps)
            while True:
                step = steps.send(clock() if step is NOW else answer(step))
        except StopIteration:
            pass

    return once


TIMER: list[Callable[[], float]] = [time.perf_counter]
"""The clock of every figure (``--clock cpu``: ``time.thread_time``)."""


def timed(fn: Callable[[], object], number: int) -> str:
    """µs per call, or why it cannot be timed (a step of the library's internals that has changed)."""
    try:
        return f"{best_us(fn, number, timer=TIMER[0]):.2f}"
    except Exception as exc:  # the library's internals moved: say so, time the rest
        return f"n/a ({type(exc).__name__}: {exc})"[:80]


def table(title: str, rows: list[tuple[str, Callable[[], object], int]]) -> str:
    lines = [f"#### {title}", "", "| step | µs |", "| --- | ---: |"]
    for label, fn, number in rows:
        us = timed(fn, number)
        print(f"  {label:<78} {us:>9} µs", flush=True)
        lines.append(f"| {label} | {us} |")
    return "\n".join(lines) + "\n"


def breakdown(store: Store, bare: Bare, named: Any, quick: bool) -> list[str]:
    """``named``: a connection of the library's own kind (named rows), for what the library gets back."""
    n = 2000 if quick else 20_000
    w = n // 10
    queries = load(bare.dialect, "sqlite3" if bare.dialect == "sqlite" else "psycopg")
    get_sql, totals_sql = bare.sql("get_generation"), bare.sql("totals")
    some = store.list_generations(status="completed", limit=1).items[0].id
    row = named.execute(get_sql, {"id": some}).fetchone()
    plain = bare.conn.execute(get_sql, {"id": some}).fetchone()
    ex = bare.conn.execute
    get = [
        (
            "bare execute + fetchone, tuple row (the bare floor)",
            lambda: ex(get_sql, {"id": some}).fetchone(),
            n,
        ),
        (
            "the same, and the fair floor's decoding (the fair floor)",
            lambda: bare.generation(ex(get_sql, {"id": some}).fetchone()),
            n,
        ),
        ("· the fair floor's decoding alone", lambda: bare.generation(plain), n),
        (
            "execute + fetchone on the library's kind of connection (named rows)",
            lambda: named.execute(get_sql, {"id": some}).fetchone(),
            n,
        ),
        (
            "`musicstore.queries.execute(conn, get_generation, …)`",
            lambda: execute(named, queries["get_generation"], {"id": some}),
            n,
        ),
        ("`Generation.from_row(row)`, a completed row", lambda: Generation.from_row(row), n),
        ("· `json.loads` of its metadata", lambda: json.loads(row["metadata"]), n),
        ("`check_id` + the connector's `encode`", lambda: store._connector.encode({"id": check_id(some)}), n),
        ("`store.run(ops.get_generation, id)`", lambda: store.run(ops.get_generation, some), n),
        ("`store.get_generation(id)`", lambda: store.get_generation(some), n),
    ]
    read_only, write_only = ops.reader(_only("totals")), ops.writer(_only("totals"))
    bare_write = bare.writer(lambda _: ex(totals_sql).fetchall())
    runner = [
        ("bare `execute(totals).fetchall()`", lambda: bare.conn.execute(totals_sql).fetchall(), n),
        ("`store.run(op)`, op = a reader yielding only that query", lambda: store.run(read_only), n),
        ("bare write transaction around the same query", lambda: bare_write(None), w),
        ("`store.run(op)`, op = a writer yielding only that query", lambda: store.run(write_only), w),
    ]
    checked = checked_floors(store, bare, w)
    rng = random.Random(3)
    job = store.claim_next("breakdown")
    assert job is not None
    some_row = bare.conn.execute(get_sql, {"id": some}).fetchone()
    page = bare.conn.execute(bare.sql("list_generations"), {"before_created_at": bare.stamp(FAR_FUTURE),
                             "before_id": "z", "limit": 50, "offset": 0}).fetchall()  # fmt: skip
    totals = bare.conn.execute(totals_sql).fetchall()
    decode = bare.generation
    logic = [
        ("create", canned(store, ops.create_generation, make_prompt(rng, "x"), model_name="m",
                          duration_seconds=30.0, metadata=create_metadata(rng)),
         lambda: dataclasses.replace(job), w),
        ("get by id", canned(store, ops.get_generation, some), lambda: decode(some_row), n),
        ("list newest 50", canned(store, ops.list_generations, limit=50),
         lambda: [decode(r) for r in page], w // 10),
        ("claim_next", canned(store, ops.claim_next, "w"), lambda: decode(some_row), n),
        ("complete", canned(store, ops.complete_generation, job.id, file_path="a/b.wav", file_size_bytes=1,
                            metadata=done_metadata(rng)), lambda: decode(some_row), w),
        ("stats", canned(store, ops.get_database_stats), lambda: fair.stats(totals), n),
    ]  # fmt: skip
    lines = [
        "| operation | its logic alone | building its result objects by hand (the fair floor's decoding) |",
        "| --- | ---: | ---: |",
    ]
    for label, fn, objects, number in logic:
        lines.append(f"| {label} | {timed(fn, number)} | {timed(objects, number)} |")
    return [
        table(f"get by id, step by step (µs per call, fastest of 7 × {n:,})", get),
        table("the runner around one query", runner),
        table(
            "writes with floors under 40 µs: the bare floor, the same with the library's argument checks, "
            "clock and result (no runner, no generator), the library",
            checked,
        ),
        "#### each operation's own logic (the runner's answers replayed: no database, no runner; µs)\n\n"
        + "\n".join(lines)
        + "\n",
    ]


class _Later:
    """A datetime that ``+ n`` moves on by n µs (the bare heartbeat's new lease on PostgreSQL)."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __add__(self, micros: int) -> datetime:
        return self.moment + timedelta(microseconds=micros)


def checked_floors(store: Store, bare: Bare, number: int) -> list[tuple[str, Callable[[], object], int]]:
    """Heartbeat and requeue_expired three ways: what any code doing what they do must at least cost."""
    ex, heartbeat = bare.conn.execute, bare.sql("heartbeat")
    requeue, fail_expired = bare.sql("requeue_expired"), bare.sql("fail_expired")
    gid = add_jobs(store, 1, worker="bench")[0]
    lease: Any = bare.stamp(datetime.now(UTC) + timedelta(seconds=300))
    if not isinstance(lease, int):  # PostgreSQL binds datetimes: a µs more each time
        lease = _Later(lease)
    no_delay = {"base_seconds": 0.0, "cap_seconds": 0.0, "jitter": 0.0}
    tick = itertools.count(1)  # a new lease each time, as every heartbeat writes
    bare_heartbeat = bare.writer(
        lambda _: ex(heartbeat, {"id": gid, "worker_id": "bench", "lease_expires_at": lease + next(tick)})
    )

    checked = store_checked_floors(bare, {})  # the store benchmark's checked floors

    def checked_heartbeat() -> object:
        return checked["heartbeat"](gid)

    now = bare.stamp(datetime.now(UTC))
    requeue_params, expired_params = (
        {"now": now, "max_attempts": 3, **no_delay},
        {"now": now, "max_attempts": 3},
    )
    bare_requeue = bare.writer(
        lambda _: (ex(requeue, requeue_params).fetchall(), ex(fail_expired, expired_params).fetchall())
    )

    def checked_requeue() -> object:
        return checked["requeue_expired"](None)

    return [
        ("heartbeat: bare floor", lambda: bare_heartbeat(None), number),
        ("heartbeat: + check_id, name, seconds, the clock, the rowcount check", checked_heartbeat, number),
        ("heartbeat: the library", lambda: store.heartbeat(gid, "bench"), number),
        ("requeue_expired (none due): bare floor", lambda: bare_requeue(None), number),
        ("requeue_expired: + integer check, the clock, `Requeued` of sorted ids", checked_requeue, number),
        ("requeue_expired: the library", store.requeue_expired, number),
    ]


def async_get(store: Store, url: str, quick: bool) -> str:
    """``get_generation`` on ``AsyncStore`` (its direct read, and the same through ``run`` and the
    generator) beside the sync store's, by process CPU time: aiosqlite runs SQLite on a thread of its own,
    which a thread's CPU time would leave out. Batches alternate; µs per call, median batch (fastest)."""
    import asyncio
    import statistics

    from musicstore.aio import AsyncStore

    n, batches = (200, 5) if quick else (1000, 11)
    gid = store.list_generations(status="completed", limit=1).items[0].id

    async def measure() -> dict[str, list[float]]:
        async with AsyncStore.open(url) as astore:
            assert await astore.get_generation(gid) == store.get_generation(gid)

            async def direct() -> None:
                for _ in range(n):
                    await astore.get_generation(gid)

            async def generator() -> None:
                for _ in range(n):
                    await astore.run(ops.get_generation, gid)

            async def sync() -> None:
                for _ in range(n):
                    store.get_generation(gid)

            sides = {
                "`Store.get_generation` (sync, direct read)": sync,
                "`AsyncStore.get_generation` (direct read)": direct,
                "`AsyncStore.run(ops.get_generation, id)` (the generator)": generator,
            }
            times: dict[str, list[float]] = {label: [] for label in sides}
            for side in sides.values():
                await side()  # warm-up
            for b in range(batches):
                order = list(sides)[b % 3 :] + list(sides)[: b % 3]
                for label in order:
                    t0 = time.process_time()
                    await sides[label]()
                    times[label].append((time.process_time() - t0) / n * 1e6)
            return times

    times = asyncio.run(measure())
    lines = [
        f"#### get by id, sync and async (process CPU time, {batches} batches of {n:,} alternating)",
        "",
        "| call | µs median (min) |",
        "| --- | ---: |",
    ]
    for label, values in times.items():
        line = f"{statistics.median(values):.2f} ({min(values):.2f})"
        print(f"  {label:<78} {line}", flush=True)
        lines.append(f"| {label} | {line} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--quick", action="store_true", help="a tenth of the calls")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/musicstore-bench"), help="cached SQLite files")
    p.add_argument("--output", type=Path, help="also write the markdown report here")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="cpu: this thread's CPU time")
    args = p.parse_args(argv)
    if args.clock == "cpu":
        TIMER[0] = time.thread_time
    server = None
    if args.backend == "sqlite":
        path = sqlite_database(args.workdir, args.rows, pending=args.rows // 4)
        url, bare = f"sqlite:///{path}", sqlite_bare(path)
        named = sqlite_bare(path).conn
        named.row_factory = sqlite3.Row
    else:
        import psycopg
        from psycopg.rows import dict_row

        from musicstore.testing import _pgserver

        server = _pgserver.start(durable=True)
        url = postgres_database(server, "breakdown", args.rows, pending=args.rows // 4)
        bare, named = postgres_bare(url), psycopg.connect(url, autocommit=True, row_factory=dict_row)
    try:
        with Store(url) as store:
            sections = breakdown(store, bare, named, args.quick)
            sections.append(async_get(store, url, args.quick))
    finally:
        bare.conn.close()
        named.close()
        if server is not None:
            server.stop()
        else:
            remove_database(path)
    head = (
        f"### Where the library's time goes ({args.backend}, {args.rows:,} rows)\n\nMachine: {machine()}.\n"
    )
    head += f"\n    {command()}\n"
    finish("\n".join([head, *sections]), args.output)


if __name__ == "__main__":
    main()
