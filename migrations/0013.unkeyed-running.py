"""SQLite: the claim of a keyed job no longer moves an index entry of generations_lane_running.

Since 0012 each owner key's processing jobs are counted in ``owner_lanes.running`` (kept by triggers), so on
SQLite the full index ``generations_lane_running (status, coalesce(owner_key, ''))``, which every claim,
finish, requeue and enqueue kept (for a keyed job: one entry deleted and one inserted in that key's range),
is replaced by ``generations_unkeyed_running (status) WHERE status = 'processing' AND owner_key IS NULL``:
the processing jobs without a key, which no lane row counts. A keyed job never has an entry in it; an
unkeyed claim inserts one and its finish deletes it (no entry for pending rows). The SQLite queries that
counted a key's processing jobs in the old index read ``owner_lanes.running`` (sql/sqlite/). PostgreSQL is
unchanged (its claim reads the counts under row locks and its planner keeps the full index, docs/schema.md):
its step runs no statement.
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0012.owner-lanes"}

dialect_sql_step(__file__)
