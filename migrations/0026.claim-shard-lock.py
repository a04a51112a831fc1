"""PostgreSQL: ``musicstore_lock_shard()``, the claim's lock of its session's totals shard, as a function.

A claim locks its session's shard of ``generation_totals`` (``mod(pg_backend_pid(), 16)``: the ``processing``
row, then the ``pending`` one, FOR NO KEY UPDATE) before any lane's row (fd7a72f: an enqueue and a claim of
one owner key on one shard deadlocked). Written as two locking sub-selects in ``claim_fast`` and
``queue_decide``, the lock cost about 20-60 us of CPU a claim, also when no lane was locked (their plans'
locking sub-plans set up at each run); the same two statements in a plpgsql function, whose plans the
session keeps, cost the claim nothing measurable. SQLite has one writer at a time: nothing to do there. The
rollback drops the function (a claim of this library then fails there: migrate again).
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0025.lane-head-locked"}

dialect_sql_step(__file__)
