"""Prompts unique by the SHA-256 of their text, an index-ordered most-used list, totals in microseconds.

Each backend's DDL is in sqlite/ or postgres/ beside this file. SQLite has no SHA-256 in SQL, so a first step
registers ``musicstore_sha256`` (the library's ``prompt_digest``) on the migration's connection; the SQLite
script fills the digests of existing rows with it. PostgreSQL uses its built-in ``sha256``.
"""

from typing import Any

from yoyo import step

from musicstore.migrate import dialect_sql_step
from musicstore.models import prompt_digest

__depends__ = {"0003.keyset-indexes"}


def register_sha256(conn: Any) -> None:
    if type(conn).__module__.startswith("sqlite3"):
        conn.create_function("musicstore_sha256", 1, prompt_digest, deterministic=True)


step(register_sha256, register_sha256)
dialect_sql_step(__file__)
