"""Tables, indexes and totals triggers: each backend's own DDL, from sqlite/ or postgres/ beside this file."""

from musicstore.migrate import dialect_sql_step

__depends__ = {"0001.journal-mode"}

dialect_sql_step(__file__)
