"""Running totals of the renditions: how many rows and the bytes of their files, kept by triggers on
``renditions`` (insert, delete -- a generation's delete cascades to its renditions and fires them too -- and a
change of ``file_size_bytes``) in the writing transaction, so that storage statistics count the renditions
without reading their table. Applied to a database with renditions, the totals are taken from them. Each
backend's DDL is in sqlite/ or postgres/ beside this file (PostgreSQL keeps 16 shards, as the generations'
totals do).
"""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0010.queue-walk"}

dialect_sql_step(__file__)
