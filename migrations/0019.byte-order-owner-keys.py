"""PostgreSQL: owner keys sort by their bytes (``COLLATE "C"``), as on SQLite.

``generations.owner_key``, ``owner_limits.owner_key`` and ``owner_lanes.owner_key`` had the database's default
collation. The queue's depth by owner key (``queue_depth``: its levels and running counts), the owner keys'
limits (``get_owner_limits``, paged by key) and so ``musicstore queue`` and the API behind it list keys in the
order of ``generations_lane_queue``, ``generations_lane_running`` and ``owner_limits``' primary key: in a
database created with another collation (``en_US.UTF-8``, an ICU locale) that was the locale's order (``a_c``
before ``a-c``, ``a`` before ``B``), where SQLite gives byte order: the same queue read differently by
backend. ``COLLATE "C"`` makes the indexes' order byte order (Python's ``str`` order) whatever the database's
collation; the columns keep their type (no table rewrite); the indexes on them are rebuilt, holding the three
tables' ACCESS EXCLUSIVE lock while they are (claims wait). The queries and their plans are unchanged (the
expressions ``coalesce(owner_key, '')`` and the parameters take the column's collation). SQLite: no statement
(its BINARY collation compares bytes already). The rollback gives the columns the database's default
collation again (indexes rebuilt).
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0018.rendition-settings-values"}

dialect_sql_step(__file__)
