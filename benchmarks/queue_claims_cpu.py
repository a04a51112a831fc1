"""``queue_claims --cpu``: the CPU time a claim costs in one process (this process's, plus on PostgreSQL the
server backends'), blocks of claims alternated between the sides of ``CPU_SIDES``, each on its own queue."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from musicstore import Store

from .data import postgres_database, remove_database, sqlite_database
from .queue_claims_sides import FloorLanes, _register, _spread, plain_claim_next

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
