"""Progress reports: µs per written and per dropped report, beside the bare read a dropped one makes.

    .venv/bin/python -m benchmarks.progress_reports                     # SQLite, a fresh file
    .venv/bin/python -m benchmarks.progress_reports --backend postgres   # its own durable server

One job is claimed; timed by the thread's CPU clock (``--clock wall`` for PostgreSQL, whose read is a round
trip), alternating in ``--rounds`` rounds of ``--calls`` calls: ``Store.report_progress`` of a new stage each
call (written: one conditional UPDATE), of the same stage (dropped by the coalescer: it reads the job's row,
``ops.progress.still_running``, to raise a cancel as a written report would), and the floor of the dropped
report, the same ``get_generation`` SQL on a bare connection (``benchmarks.bare``) returning a tuple. Median
round and fastest round. Run it against another checkout with ``PYTHONPATH=that/checkout`` to compare.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from musicstore import Store
from musicstore.ops import progress

from .bare import Bare, postgres_bare, sqlite_bare


def _sides(store: Store, bare: Bare, job: str) -> dict[str, Callable[[int], None]]:
    report, sql, execute = store.report_progress, bare.sql("get_generation"), bare.conn.execute
    params = {"id": job}

    def written(calls: int) -> None:
        for i in range(calls):
            report(job, "w", 0.5, f"stage {i}")

    def dropped(calls: int) -> None:
        for _ in range(calls):
            report(job, "w", 0.5, "same")

    def floor(calls: int) -> None:
        for _ in range(calls):
            execute(sql, params).fetchone()

    return {"written": written, "dropped": dropped, "bare read (floor)": floor}


def _measure(url: str, path: Path | None, args: argparse.Namespace) -> dict[str, list[float]]:
    """Each side's µs a call, a figure a round."""
    store = Store(url, migrate=True)
    progress.coalescer(store).interval = 3600.0  # every report of one stage dropped
    bare = sqlite_bare(path) if path is not None else postgres_bare(url)
    tick = time.thread_time if (args.clock or ("cpu" if path else "wall")) == "cpu" else time.perf_counter
    job = store.create_generation("progress bench", model_name="m", duration_seconds=5.0).id
    store.claim_next("w", lease_seconds=3600)
    sides = _sides(store, bare, job)
    for run in sides.values():
        run(100)  # warm
    times: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(args.rounds):
        for name in list(sides)[r % 3 :] + list(sides)[: r % 3]:
            if name == "dropped":
                store.report_progress(job, "w", 0.5, "same")  # written: the stage the side repeats
            start = tick()
            sides[name](args.calls)
            times[name].append((tick() - start) / args.calls * 1e6)
    store.close()
    bare.conn.close()
    return times


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--clock", choices=["cpu", "wall"], default=None)
    args = parser.parse_args()
    server = None
    if args.backend == "postgres":
        from musicstore.testing import _pgserver

        server = _pgserver.start(durable=True)
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "progress.db"
            url = f"sqlite:///{path}" if server is None else server.url()
            times = _measure(url, path if server is None else None, args)
    finally:
        if server is not None:
            server.stop()
    clock = args.clock or ("cpu" if server is None else "wall")
    print(f"{platform.python_version()}, {args.backend}, clock {clock}, {args.rounds} rounds of {args.calls}")
    floor = statistics.median(times["bare read (floor)"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:>18}: {median:8.1f} µs (min {min(values):.1f}), {median / floor:.2f}× the bare read")


if __name__ == "__main__":
    main()
