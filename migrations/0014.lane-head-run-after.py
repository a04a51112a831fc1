"""PostgreSQL: each owner key's lane keeps its head's ``run_after`` beside the head.

``owner_lanes.head_run_after`` is the head's ``run_after`` (NULL: ready at once), kept by the same trigger
and in the same statement as the head (0012). ``claim_fast`` tells a lane whose head waits for its
``run_after`` from the lane's row alone: it no longer joins each lane it reads in ``owner_lanes_order`` to
its head's row of ``generations`` (one primary-key probe per lane read; under 8 concurrent claimers a claim
reads several lanes, those the others hold being skipped), and a lane whose row another claim changed after
the statement began is taken in its newest version, as a job is, instead of being skipped for a head that
no longer matches. Applied to a database with rows, the column is taken from the heads. SQLite: no
statement (its claim runs under the writer lock and reads one lane; the step runs nothing).
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0013.unkeyed-running"}

dialect_sql_step(__file__)
