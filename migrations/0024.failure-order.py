"""An index of the failed generations by when they failed: the dashboard's recent failures.

The overview listed the ten newest failed generations by creation, so a job created long ago that failed just
now (after its retries and their backoff, after a replay, a lease that expired on its last attempt) was not
among them once ten newer-created jobs had failed. ``generations_failed_at (completed_at, id) WHERE status =
'failed'`` (a failed row's ``completed_at`` is when it failed) lets the query ``dashboard_recent_failures``
read the newest failures first, ten index entries. Partial: only failed rows have entries. The rollback drops
it.
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0023.deleted-wakeups"}

dialect_sql_step(__file__)
