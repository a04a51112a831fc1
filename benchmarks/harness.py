"""The benchmarks' harness: plans, alternating timing of the library and its floors, medians, reports.

Every figure is timed beside its floor in the same run: batches of each side alternate (the order rotates
from batch to batch), and a side's figure is its median batch and its fastest batch, in µs per operation.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import sqlite3
import statistics
import sys
import time
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Timed = Callable[[], object]
Prepare = Callable[[int], Timed]
"""Builds the inputs of ``k`` operations (untimed) and returns the loop over them to time."""

LIBRARY, FAIR, BARE, CHECKED = "musicstore", "fair floor", "bare floor", "checked floor"
"""The sides. The checked floor (writes): the bare floor's SQL in the same transaction, plus what the
operation must do besides it — the same argument checks, the clock, its parameters made from its arguments
(ids, digests, JSON, timestamps), the row count checked and the same result objects — with no runner and no
generator: what any code doing what the operation does costs at least."""


@dataclass(frozen=True)
class Plan:
    batches: int
    warmup: int
    scale: float = 1.0  # of each operation's batch size
    clock: str = "wall"  # "wall": elapsed time; "cpu": the benchmark thread's CPU time (in-process backends)

    def timer(self) -> Callable[[], int]:
        """Nanoseconds: elapsed (``perf_counter_ns``), or this thread's CPU time (``thread_time_ns``), which
        leaves out the time other processes of a shared machine take the core from it."""
        return time.thread_time_ns if self.clock == "cpu" else time.perf_counter_ns

    def batch(self, size: int) -> int:
        return max(1, round(size * self.scale))


FULL = Plan(batches=21, warmup=50)
QUICK = Plan(batches=5, warmup=10, scale=0.25)


def alternate(sides: dict[str, Prepare], batch: int, plan: Plan) -> dict[str, list[float]]:
    """µs per operation of each batch of each side; sides take turns, the first one rotating."""
    names = list(sides)
    for name in names:
        sides[name](plan.warmup)()
    times: dict[str, list[float]] = {name: [] for name in names}
    clock = plan.timer()
    for b in range(plan.batches):
        shift = b % len(names)
        for name in names[shift:] + names[:shift]:
            timed = sides[name](batch)
            t0 = clock()
            timed()
            times[name].append((clock() - t0) / batch / 1000)
    return times


@dataclass
class Timing:
    """One operation at one size: each side's µs per operation, one figure per batch."""

    rows: int
    op: str
    kind: str  # "read" (against the fair floor) or "write" (against the bare floor)
    times: dict[str, list[float]] = field(default_factory=dict)

    def median(self, side: str) -> float:
        return statistics.median(self.times[side])

    def minimum(self, side: str) -> float:
        return min(self.times[side])

    def ratio(self, floor: str) -> tuple[float, float]:
        """The library over a floor: medians, and fastest batches."""
        return self.ratio_of(LIBRARY, floor)

    def ratio_of(self, side: str, floor: str) -> tuple[float, float]:
        """One side over another: medians, and fastest batches."""
        return self.median(side) / self.median(floor), self.minimum(side) / self.minimum(floor)

    @property
    def floor(self) -> str:
        return FAIR if self.kind == "read" else BARE

    def line(self) -> str:
        cells = [f"{side} {self.median(side):8.1f} (min {self.minimum(side):7.1f})" for side in self.times]
        median, fastest = self.ratio(self.floor)
        return (
            f"  {self.rows:>9,} {self.op:<22} " + "  ".join(cells) + f"  ×{median:.2f} (min ×{fastest:.2f})"
        )


def table(timings: Sequence[Timing], targets: dict[str, float]) -> str:
    """Markdown: medians and minimums of every side, the ratio to the target's floor, and the verdict."""
    checked = any(CHECKED in t.times for t in timings)  # a column only where some write has one
    sides = (LIBRARY, FAIR, BARE, CHECKED) if checked else (LIBRARY, FAIR, BARE)
    lines = [
        "| rows | operation | musicstore µs median (min) | fair floor µs median (min) | × fair | "
        "bare floor µs median (min) | × bare | "
        + ("checked floor µs median (min) | checked × bare | musicstore × checked | " if checked else "")
        + "target |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | "
        + ("---: | ---: | ---: | " if checked else "")
        + "--- |",
    ]
    for t in timings:
        cells = [f"{t.rows:,}", t.op]
        for side in sides:
            if side not in t.times:
                cells += ["–"] * (1 if side == LIBRARY else 3 if side == CHECKED else 2)
                continue
            cells.append(f"{t.median(side):.1f} ({t.minimum(side):.1f})")
            if side == CHECKED:
                median, fastest = t.ratio_of(CHECKED, BARE)
                cells.append(f"{median:.2f}× ({fastest:.2f}×)")
                median, fastest = t.ratio(CHECKED)
                cells.append(f"{median:.2f}× ({fastest:.2f}×)")
            elif side != LIBRARY:
                median, fastest = t.ratio(side)
                cells.append(f"{median:.2f}× ({fastest:.2f}×)")
        limit = targets[t.kind]
        met = t.ratio(t.floor)[0] <= limit
        cells.append(f"≤ {limit}× {t.floor.split()[0]} {'✅' if met else '❌'}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def best_us(
    fn: Callable[[], object], number: int, repeat: int = 7, timer: Callable[[], float] = time.perf_counter
) -> float:
    """Fastest of ``repeat`` runs of ``number`` calls, µs per call (component costs in isolation); ``timer``:
    ``time.thread_time`` counts this thread's CPU time only."""
    return min(timeit.repeat(fn, number=number, repeat=repeat, timer=timer)) / number * 1e6


def profile(timed: Timed, title: str, top: int = 14) -> str:
    """cProfile one batch: the top functions by own time, as a markdown section."""
    profiler = cProfile.Profile()
    profiler.enable()
    timed()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    text = out.getvalue().strip()
    print(f"--- cProfile, {title} ---\n{text}", flush=True)
    return f"#### {title}\n\n```\n{text}\n```\n"


def machine() -> str:
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
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )


def load() -> str:
    """The load average now (1, 5, 15 minutes): other work on the machine during the run."""
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def command() -> str:
    """The command line that ran this benchmark, as one would type it from the repository root."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    python = os.path.relpath(sys.executable)
    python = sys.executable if python.startswith("..") else python
    return " ".join([python, "-m", spec.name if spec else sys.argv[0], *sys.argv[1:]])


def parser(doc: str | None, *, sizes: str) -> argparse.ArgumentParser:
    """The options every store benchmark takes."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    p.add_argument("--sizes", default=sizes, help=f"comma-separated row counts (default {sizes})")
    p.add_argument("--quick", action="store_true", help="5 batches of a quarter of the size: a smoke run")
    p.add_argument("--batches", type=int, help="batches per side (default 21; 5 with --quick)")
    p.add_argument("--ops", help="only these operations (comma-separated names as in the table)")
    p.add_argument("--profile", action="store_true", help="cProfile one library batch of each operation")
    p.add_argument("--output", type=Path, help="also write the markdown report here")
    return p


def plan_of(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else FULL
    batches = plan.batches if args.batches is None else args.batches
    return Plan(batches, plan.warmup, plan.scale, getattr(args, "clock", "wall"))


def report(title: str, setting: str, plan: Plan, started_load: str, sections: Sequence[str]) -> str:
    """The markdown report: machine, command, method line, load before and after, then the sections."""
    head = [
        f"### {title}",
        "",
        f"Machine: {machine()}; {setting}.",
        f"Load: {started_load} at the start, {load()} at the end.",
        "",
        f"    {command()}",
        "",
        f"{plan.batches} batches per side, library and floors alternating; µs per operation, median batch "
        "(fastest batch); ratios are medians over medians (fastest over fastest)"
        + ("; times are the benchmark thread's CPU time (time.thread_time)." if plan.clock == "cpu" else "."),
        "",
    ]
    return "\n".join(head + [s for s in sections if s])


def finish(text: str, output: Path | None) -> None:
    print("\n" + text)
    if output is not None:
        output.write_text(text + "\n")
