"""PostgreSQL: a keyed lane's head is recomputed from a snapshot taken once the lane's row is held.

The trigger ``musicstore_owner_lanes`` recomputed a lane's head (its first pending job) in one UPDATE of
``owner_lanes`` when a keyed job left pending or processing: a cancel, a delete, a retry, an expired lease. If
an enqueue of the same lane held the lane's row, the UPDATE waited for it and then wrote the head from the
snapshot its statement took before the enqueue committed: the new job stayed pending and no claim took it
(claims read only lanes with a head) until the lane changed again. The function now locks the lane's row in
a statement of its own first (a claim holds it already: it locks the row before its job, 79309fc). SQLite has
one writer at a time: nothing to do there. The rollback puts 0015's function back.
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0024.failure-order"}

dialect_sql_step(__file__)
