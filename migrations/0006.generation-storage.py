"""Where each generation's file lives: the storage URL of its root, its object key and its SHA-256.

A completed row records ``storage_url`` (``file:///...`` or ``s3://BUCKET/PREFIX/``), ``storage_key`` (the key
below it) and ``checksum`` (lower-case hex SHA-256 of the bytes), so any host can find and verify the file.
Rows completed before keep ``storage_url`` NULL (a local root the reader knows) and get
``storage_key = file_path``. Each backend's DDL is in sqlite/ or postgres/ beside this file.
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0005.grouped-totals"}

dialect_sql_step(__file__)
