"""``queue_claims``' race: 8 processes claim from one queue from a barrier on, each in its own process
(``_claimer``, importable by its module path for ``spawn``); its rate, the CPU a claim took (the claimers'
own and, on PostgreSQL, the server's from /proc), double claims and jobs left."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicstore import Store

from .queue_claims_sides import KEYS, FloorLanes, _register, plain_claim_next, tags_claim_next


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
