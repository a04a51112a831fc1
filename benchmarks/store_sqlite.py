"""The job store on SQLite: every read beside its fair floor, every write beside its bare floor.

    .venv/bin/python -m benchmarks.store_sqlite                          # 100k and 1M rows
    .venv/bin/python -m benchmarks.store_sqlite --sizes 10000 --quick    # a smoke run
    .venv/bin/python -m benchmarks.store_sqlite --ops get,stats --profile

Each size works on a fresh copy of a bulk-built database cached under ``--workdir`` (``benchmarks.data``);
the operations and their floors are ``benchmarks.store_ops``. Targets (issue 12): reads ≤ 1.3× the fair
floor, writes ≤ 1.3× the bare floor; the writes' checked floors (the same checks, clock and results, no
runner) show what of a write's excess any code returning the same objects must pay.
"""

from __future__ import annotations

from pathlib import Path

from musicstore import Store

from .bare import sqlite_bare
from .data import remove_database, sqlite_database
from .harness import finish, load, parser, plan_of, report, table
from .store_ops import run

TARGETS = {"read": 1.3, "write": 1.3}


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__, sizes="100000,1000000")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/musicstore-bench"), help="cached databases")
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: elapsed time; cpu: the benchmark thread's CPU time (SQLite runs in it: on a shared "
        "machine this leaves out what other processes take)",
    )
    args = p.parse_args(argv)
    plan, started = plan_of(args), load()
    only = set(args.ops.split(",")) if args.ops else None
    timings, profiles = [], []
    for rows in (int(s) for s in args.sizes.split(",")):
        path = sqlite_database(args.workdir, rows, pending=min(3000, rows // 4))
        store, bare = Store(f"sqlite:///{path}"), sqlite_bare(path)
        try:
            got, prof = run(store, bare, rows, plan, only=only, profiled=args.profile)
        finally:
            store.close()
            bare.conn.close()
            remove_database(path)
        timings += got
        profiles += prof
    text = report(
        "Job store on SQLite",
        "WAL, synchronous=NORMAL (the library's settings)",
        plan,
        started,
        [table(timings, TARGETS), *profiles],
    )
    finish(text, args.output)


if __name__ == "__main__":
    main()
