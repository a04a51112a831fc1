"""Progress of a running generation, and what waiting workers and API servers are woken by.

``progress`` (a fraction, 0 to 1), ``stage`` (a short label such as ``"sampling"``) and ``progress_at`` (when
the worker last wrote them): NULL on every existing row. A partial index of completed rows by completion time
makes the throughput behind a queue position's ETA an index range count. On PostgreSQL, a trigger sends
``NOTIFY musicstore_pending`` when a row becomes pending (enqueue, retry, requeue) and ``NOTIFY
musicstore_finished, '<id>'`` when one becomes completed, failed or cancelled, in the writing transaction (a
rolled-back enqueue wakes no one). Each backend's DDL is in sqlite/ or postgres/ beside this file.
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0008.queue-order"}

dialect_sql_step(__file__)
