"""PostgreSQL: a rendition's request key (``renditions.settings``) sorts by its bytes (``COLLATE "C"``).

``list_renditions`` gives a generation's renditions in the order of ``UNIQUE (generation_id, format,
settings)``: by format, then by the key's text. The column had the database's default collation, so in a
database created with another one (``en_US.UTF-8``, an ICU locale) the keys came in the locale's order
(``a_c`` before ``a-c``, ``a`` before ``B``), where SQLite gives byte order: the same renditions listed
differently by backend. ``COLLATE "C"`` makes the index's order byte order whatever the database's collation;
the column keeps its type (no table rewrite) and values; the unique index is rebuilt, holding the table's
ACCESS EXCLUSIVE lock while it is. Lookups by key (equality) and the plans are unchanged. SQLite: no
statement (its BINARY collation compares bytes already). The rollback gives the column the database's
default collation again (index rebuilt).
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0020.prompt-totals-shards"}

dialect_sql_step(__file__)
