"""PostgreSQL: the keys maintenance walks beside a store's listing sort by their bytes (``COLLATE "C"``).

``generations.file_path`` and ``renditions.storage_key`` had the database's default collation. Reconcile,
cleanup and disk usage of an object store (``musicstore.maintenance.bucket``) merge the rows, read in key
order over ``generations_file_path`` and the renditions' unique ``storage_key`` index, with the listing,
which S3 (and a folder) gives in byte order: Python's ``str`` order, UTF-8 bytes and code points agreeing.
In a database created with another collation (``en_US.UTF-8``, an ICU locale) the rows came in that
locale's order (``a_c`` before ``a-c``, ``a/b`` before ``a/B`` before ``aZ``...): no result was wrong, but
each key the merge missed cost a lookup by key or a ``HEAD`` request. ``COLLATE "C"`` makes the index order
byte order whatever the database's collation; the columns keep their type (no table rewrite), and their
indexes (``generations_file_path``, ``renditions_storage_key_key``) are rebuilt, holding both tables' ACCESS
EXCLUSIVE lock while they are. SQLite: no statement (its BINARY collation compares bytes already). The
rollback gives the columns the database's default collation again (indexes rebuilt).
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0016.day-totals-floor"}

dialect_sql_step(__file__)
