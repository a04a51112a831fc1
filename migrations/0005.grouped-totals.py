"""Running totals by model (and status) and by UTC day of creation, kept by triggers and filled from the rows;
the queue's partial index.

``count_generations(model_name=..)`` and ``storage_stats()``'s figures by model and by day read these few rows
instead of grouping every generation; and, on PostgreSQL, a partial index of the pending rows in the queue's
order. Each
backend's DDL is in sqlite/ or postgres/ beside this file.
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0004.prompt-digests-exact-totals"}

dialect_sql_step(__file__)
