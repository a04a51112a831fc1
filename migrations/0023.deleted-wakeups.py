"""PostgreSQL: deleting a pending or processing generation wakes its ``wait_for`` at once.

Migration 0009's triggers send ``NOTIFY musicstore_finished, '<id>'`` when a row becomes completed, failed or
cancelled, which wakes the waits for that job (``wait_for``). A row deleted while it was pending or
processing (``delete_generation``, ``reset_database``, ``cleanup`` of pending rows, a DELETE by hand) sent
nothing, so a waiter found it gone, and raised ``NotFound``, only at its next periodic re-try
(``RECHECK_SECONDS``, 1 s). Now the same notification, with the row's id, is sent for each such deleted row,
in the deleting transaction (delivered at its commit, none for a rolled-back delete). Deleting finished
rows (retention's usual work) sends nothing: their waits were woken when they finished. It is sent by the
totals' row trigger ``generations_count`` (after each inserted, deleted or updated row, since 0002), whose
function (0004's) gains the notification: the triggers on ``generations`` stay as they are. SQLite: no
statement (its waits poll ``PRAGMA data_version``, which a delete changes). The rollback restores 0004's
function.
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0022.byte-order-models"}

dialect_sql_step(__file__)
