"""SQLite: a moment in the last fraction of a second before a UTC midnight before 1970 counts on its own day.

0005's triggers on SQLite bucketed ``created_at`` (integer microseconds since the epoch) by
``date(created_at / 1000000, 'unixepoch')``: SQLite's integer division truncates toward zero, so a negative
moment less than a second before midnight (1969-12-31T23:59:59.5Z: -500000) was put on the next day
(1970-01-01). The triggers now floor (``created_at / 1000000 - (created_at % 1000000 < 0)``), as
PostgreSQL's ``CAST(created_at AT TIME ZONE 'UTC' AS DATE)`` and Python's ``created_at.date()`` do. Only
moments before 1970-01-01T00:00:00Z can move, and only between days up to 1970-01-01: the totals of the days
up to 1970-01-01 are recounted from the rows created before 1970-01-02 (a range of the ``created_at``
index), every other day is left as it is. PostgreSQL: no statement (its day was right). The rollback
restores 0005's triggers and recounts those days as they bucket them, so their deletes find their rows.
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0015.lane-served-at"}

dialect_sql_step(__file__)
