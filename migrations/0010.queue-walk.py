"""The queue's pending jobs in claim order across every lane, for the claim's fast path.

``generations_queue (priority DESC, created_at, id) WHERE status = 'pending'``: the claim walks the first few
ready jobs in this order and, when the first lane with room among them has no job processing (or is the only
lane with pending jobs), takes that lane's head without ranking every lane (docs/queue.md). No column or row
changes. Each backend's DDL is in sqlite/ or postgres/ beside this file.
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0009.progress"}

dialect_sql_step(__file__)
