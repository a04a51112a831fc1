"""The dashboard's server time on SQLite: its pages, its API and /metrics at a given table size.

    .venv/bin/python -m benchmarks.dashboard                    # 100k rows
    .venv/bin/python -m benchmarks.dashboard --rows 1000000     # the issue's size (built once, cached)

Each request goes through the whole ASGI app in process (Starlette's TestClient: routing, the reads in their
read transaction, the template or JSON, the security headers), so the figure is the server's time plus the
test client's own small cost; there is no network. The database is a fresh copy of the bulk-built one of
``benchmarks.data`` (~90 % completed, the newest 3,000 pending, a year of rows). Each path is requested
``--repeat`` times after two warm-up requests; the median and the 95th percentile are reported. Targets
(issue 16): overview and table pages ≤ 50 ms, ``/metrics`` ≤ 20 ms at 1M rows.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from musicstore import Store

from .data import remove_database, sqlite_database
from .harness import command, load, machine

TARGETS_MS = {"/": 50.0, "/generations": 50.0, "/metrics": 20.0}


def _paths(store: Store) -> list[tuple[str, str]]:
    """(label, path) pairs: every page and API, filters, a deep page, one generation."""
    from musicstore.web.reads import Filters, table_page

    newest = store.list_generations(limit=1).items[0]
    completed = store.list_generations(status="completed", limit=1).items[0]
    pages = max(1, min(200, store.count_generations() // 1000))  # a cursor up to 100,000 rows down
    with store.transaction(write=False) as tx:
        page = tx.run(table_page, Filters(), limit=500)
        for _ in range(pages - 1):
            assert page.next_cursor is not None
            page = tx.run(table_page, Filters(), cursor=page.next_cursor, limit=500)
    deep = page.next_cursor
    day = newest.created_at.strftime("%Y-%m-%d")
    return [
        ("overview", "/"),
        ("table", "/generations"),
        ("table, status=failed", "/generations?status=failed"),
        ("table, model", "/generations?model=musicgen-small"),
        ("table, status and model", "/generations?status=completed&model=musicgen-large"),
        ("table, day", f"/generations?day={day}"),
        ("table, prompt text (common)", "/generations?q=lofi"),
        ("table, prompt text (absent)", "/generations?q=no+such+words"),
        (f"table, {pages * 500:,} rows down (cursor)", f"/generations?cursor={deep}"),
        ("generation", f"/generations/{completed.id}"),
        ("prompts", "/prompts"),
        ("workers", "/workers"),
        ("/metrics", "/metrics"),
        ("api: overview", "/api/overview"),
        ("api: generations", "/api/generations"),
    ]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--rows", type=int, default=100_000, help="generations in the database (default 100,000)")
    p.add_argument("--repeat", type=int, default=20, help="requests per path (default 20)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/musicstore-bench"), help="cached databases")
    p.add_argument("--output", type=Path, help="also write the markdown report here")
    p.add_argument(
        "--database",
        type=Path,
        help="read this migrated SQLite file instead of a built one (left as it is: the app only reads)",
    )
    args = p.parse_args(argv)
    started = load()
    from starlette.testclient import TestClient

    from musicstore.web import create_app

    given = args.database
    path = given or sqlite_database(args.workdir, args.rows, pending=min(3000, args.rows // 4))
    lines = [
        "### Dashboard on SQLite",
        "",
        f"Machine: {machine()}. Load: {started} at the start, "
        + "{load} at the end. Median and 95th percentile of "
        + f"{args.repeat} requests per path, in process (TestClient).",
        "",
        f"    {command()}",
        "",
        "| path | median ms | p95 ms | target |",
        "| --- | --- | --- | --- |",
    ]
    try:
        with Store(f"sqlite:///{path}") as store:
            lines[0] = f"### Dashboard on SQLite, {store.count_generations():,} generations"
            paths = _paths(store)
            with TestClient(create_app(store, root=args.workdir / "audio")) as client:
                for label, url in paths:
                    for _ in range(2):
                        assert client.get(url).status_code == 200, url
                    times = []
                    for _ in range(args.repeat):
                        t0 = time.perf_counter()
                        response = client.get(url)
                        times.append((time.perf_counter() - t0) * 1000)
                        assert response.status_code == 200, url
                    times.sort()
                    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
                    target = TARGETS_MS.get(label if label.startswith("/") else url.split("?")[0])
                    if label not in ("overview", "table", "/metrics"):
                        target = None
                    verdict = (
                        ""
                        if target is None
                        else f"≤ {target:g} ms "
                        + ("met" if statistics.median(times) <= target else "**not met**")
                    )
                    lines.append(f"| {label} | {statistics.median(times):.1f} | {p95:.1f} | {verdict} |")
                    print(lines[-1], flush=True)
    finally:
        if given is None:
            remove_database(path)
    text = "\n".join(lines).replace("{load}", load()) + "\n"
    print(text)
    if args.output is not None:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
