"""PostgreSQL: the running totals by model (``generation_model_totals.model_name``) sort by its bytes
(``COLLATE "C"``), as on SQLite.

``storage_stats().by_model`` (disk usage, the dashboard) and the metrics' counts by model
(``read_metrics``, ``/metrics``) read ``generation_model_totals`` (0005) in its primary key's order,
``(model_name, status, shard)``. The column had the database's default collation, so in a database created
with another one (``en_US.UTF-8``, an ICU locale) the models came in the locale's order (``m_b`` before
``m-b``, ``a`` before ``B``), where SQLite gives byte order: the same figures listed differently by backend.
``COLLATE "C"`` makes the primary key's order byte order whatever the database's collation; the column keeps
its type (no table rewrite) and its rows; the primary key's index is rebuilt, holding the table's ACCESS
EXCLUSIVE lock while it is (writers of generations wait: their trigger upserts here). The triggers' upsert
and the queries are unchanged. SQLite: no statement (its BINARY collation compares bytes already). The
rollback gives the column the database's default collation again (index rebuilt).
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0021.byte-order-rendition-settings"}

dialect_sql_step(__file__)
