"""The job store on PostgreSQL: every read beside its fair floor, every write beside its bare floor.

    .venv/bin/python -m benchmarks.store_postgres                          # 100k and 1M rows
    .venv/bin/python -m benchmarks.store_postgres --sizes 10000 --quick    # a smoke run
    .venv/bin/python -m benchmarks.store_postgres --synchronous-commit off --ops create,claim

A throwaway **durable** server (``musicstore.testing._pgserver.start(durable=True)``: fsync, full_page_writes
and synchronous_commit on) on 127.0.0.1, reached over TCP; each size is loaded by COPY into its own database
(``benchmarks.data.postgres_database``). The library reads through its pool (``autocommit=True``); the floors
use one bare ``psycopg.connect(url, autocommit=True)`` connection with tuple rows. Targets (issue 12): reads
≤ 1.15× the fair floor, writes ≤ 1.1× the bare floor; single-process ``claim_next`` at parity.
"""

from __future__ import annotations

from typing import Any

from musicstore import Store
from musicstore.testing import _pgserver

from .data import postgres_database
from .harness import finish, load, parser, plan_of, report, table
from .store_ops import postgres_bare, run

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

    from .store_ops import FAR_FUTURE, postgres_bare

    bare = postgres_bare(url)
    params = {
        "status": "pending",
        "before_created_at": FAR_FUTURE,
        "before_id": "~",
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


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__, sizes="100000,1000000")
    p.add_argument("--synchronous-commit", choices=("on", "off"), default="on", help="the server's setting")
    args = p.parse_args(argv)
    plan, started = plan_of(args), load()
    only = set(args.ops.split(",")) if args.ops else None
    timings, profiles, explained = [], [], ""
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
                got, prof = run(store, bare, rows, plan, only=only, profiled=args.profile)
            finally:
                store.close()
                bare.conn.close()
            server.admin(f"DROP DATABASE rows_{rows}")
            timings += got
            profiles += prof
    finally:
        server.stop()
    text = report(
        "Job store on PostgreSQL", setting, plan, started, [table(timings, TARGETS), explained, *profiles]
    )
    finish(text, args.output)


if __name__ == "__main__":
    main()
