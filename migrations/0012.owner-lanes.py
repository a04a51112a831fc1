"""Each owner key's lane, kept by triggers: its processing jobs and its head, in the claim's order of lanes.

``owner_lanes (owner_key, running, head_priority, head_created_at, head_id)`` holds, for every owner key that
has had a pending or processing job, how many of its jobs are processing and its lane's head (its first
pending job in claim order), kept in the same statement as the row's change by triggers on ``generations``
(insert, a change of status, priority or owner key, delete). Jobs without an owner key are not
counted here, so that enqueues and claims of unkeyed jobs never wait for one shared counter row. The index
``owner_lanes_order (head_priority DESC, running, head_created_at, head_id) WHERE head_id IS NOT NULL`` lists
the lanes with a pending job in the order the claim ranks them, so the best keyed lane with room is its first
entry with room. ``generations_queue`` (0010) is dropped: the claim no longer walks it. Applied to a
database with rows, the lanes are taken from them. Each backend's DDL is in sqlite/ or postgres/ beside this
file.
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0010.queue-walk"}

dialect_sql_step(__file__)
