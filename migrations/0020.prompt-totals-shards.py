"""PostgreSQL: the prompts' running totals in 16 shards, as the generations' are, so that creates from many
sessions do not queue on one row.

``prompt_totals`` (distinct prompts, total uses) was one row (``id = 1``) that the trigger on ``prompts``
updated on every new prompt and every use: the row's lock was held until the writing transaction committed,
so every create of a generation from every session (a worker fleet, an API server's pool) waited for the
one before it to commit, its commit's flush included. The trigger now updates the shard of its session,
``mod(pg_backend_pid(), 16)`` as ``generation_totals``' does (16 rows, ``id`` 0 to 15, the existing row
keeping its totals as shard 1); readers (``get_database_stats``) sum the shards. A shard may go negative (a
session deletes what another counted); only the sum means anything, and it is exact: each change adds and
removes whole counts in its own transaction. The table is locked against writes (``prompts`` and
``prompt_totals``) while the function and rows change. SQLite: no statement (one writer at a time: its one
row is no contention). The rollback sums the shards into the row ``id = 1`` and restores the trigger of one
row.
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0019.byte-order-owner-keys"}

dialect_sql_step(__file__)
