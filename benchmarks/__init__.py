"""musicstore's benchmarks, each beside a floor measured in the same run; run from the repository root.

    .venv/bin/python -m benchmarks.store_sqlite --sizes 100000        # the store's reads and writes on SQLite
    .venv/bin/python -m benchmarks.store_postgres --sizes 100000      # the same on a durable PostgreSQL

``harness`` (plans, alternating timing, medians and minimums, markdown) and ``data`` (rows, bulk-built
databases) serve every benchmark; ``fair`` decodes the fair floors' rows; ``bare`` opens the floors'
connections; ``store_ops`` defines the store's operations and their floors for both backends (the writes'
checked floors in ``checked_floors``). benchmarks/README.md describes each benchmark.
"""
