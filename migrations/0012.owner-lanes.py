"""Each owner key's pending and processing jobs, counted by triggers: the claim's ranking of the lanes.

``owner_lanes (owner_key, pending, running)`` holds, for every owner key that has had a pending or
processing job, how many it has of each, kept in the same statement as the row's change by triggers on
``generations`` (insert, a change of status or owner key, delete). Jobs without an owner key are not counted
here (their lane's running jobs are counted in ``generations_lane_running`` as before), so that enqueues and
claims of unkeyed jobs never wait for one shared counter row. The index ``owner_lanes_running (running,
owner_key) WHERE pending > 0`` lists the keys with pending jobs, fewest processing first: a claim finds the
least busy key with work by walking it, instead of counting every key's processing jobs. Applied to a
database with rows, the counts are taken from them. Each backend's DDL is in sqlite/ or postgres/ beside this
file.
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0010.queue-walk"}

dialect_sql_step(__file__)
