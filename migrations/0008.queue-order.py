"""The queue's order, fairness, limits, idempotency and retry time.

``generations`` gains ``priority`` (higher first, default 0), ``run_after`` (not claimed before; NULL: at
once; a retry sets it to the end of its backoff), ``owner_key`` (the user or tenant a job runs for; NULL:
none) and ``idempotency_key`` (unique among all generations where set). ``owner_limits`` holds the keys given
a limit of their own on jobs processing at once. Two partial indexes by owner key (NULL as '') serve the
claim: pending jobs in claim order (priority DESC, created_at, id), and processing jobs, counted against a
key's limit. Existing rows keep priority 0 and no key. Each backend's DDL is in sqlite/ or postgres/ beside
this file.
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0007.renditions"}

dialect_sql_step(__file__)
