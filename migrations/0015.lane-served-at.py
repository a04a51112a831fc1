"""Round robin among equal lanes: each lane ranks by when it was last served after its running jobs.

Lanes tied on their head's priority and their running jobs used to rank by their head's age alone, so a
worker that finished each job before claiming the next (every lane then has none running) served an older
key's whole backlog before a newer key's single job. ``owner_lanes.served_at`` is when the lane's last job
was claimed (its ``started_at``; the epoch for a lane never served), set by the lanes' triggers in the
claim's own statement, and ``owner_lanes_order`` becomes ``(head_priority DESC, running, served_at,
head_created_at, head_id)``: among equals, the lane served longest ago goes first, the head's age breaking
ties. The lane without a key keeps no row (its claims share no counter row); its last service is the
latest ``started_at`` of its jobs, one probe of the new partial index ``generations_unkeyed_served``.
Applied to a database with rows, each lane's ``served_at`` is its jobs' latest ``started_at``. Each
backend's DDL is in sqlite/ or postgres/ beside this file.
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0014.lane-head-run-after"}

dialect_sql_step(__file__)
