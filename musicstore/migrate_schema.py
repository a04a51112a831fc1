"""Where a PostgreSQL migration would put the store's tables, checked before it runs (``musicstore.migrate``).

yoyo creates its tables, and looks for them, in ``current_schema()``: the first schema of ``search_path``
that exists. The store and the check of what is applied find tables through the whole path. With the
default path (``"$user", public``) and a schema named for the role made after the first migration (as
PostgreSQL's secure schema usage pattern has it), yoyo found no table of applied migrations in that schema
and applied every migration again there: a second, empty store, the jobs in ``public`` no longer seen, and
no error. A path naming no schema that exists failed as a read-only database would; a LATIN1 database
refused an emoji.
"""

from __future__ import annotations

from typing import Any

from .errors import MigrationError
from .queries import execute, load


def check_schemas(connection: Any, where: str) -> bool:
    """Whether yoyo's table of applied migrations is found through ``search_path`` on ``connection`` (a
    psycopg one). MigrationError, before anything is written, where the migrations would create tables in
    no schema, or in another schema than the store's, or (for a new store) in a database whose encoding
    cannot hold any text (SQL_ASCII keeps UTF8's bytes as sent, though it counts a name's bytes)."""
    row = execute(connection, load("postgres", "psycopg")["migration_schemas"], {})
    creating, applied, path, encoding = row["creating"], row["applied"], row["search_path"], row["encoding"]
    set_path = "ALTER ROLE or DATABASE ... SET search_path, or the URL's options=-c search_path=..."
    if creating is None or creating.startswith("pg_"):  # pg_catalog: PostgreSQL's own, none may write there
        raise MigrationError(
            f"{where}: no schema on search_path ({path}) exists to create the store's tables in: set it"
            f" ({set_path}) or create the schema"
        )
    if applied is not None and applied != creating:
        raise MigrationError(
            f"{where}: the store's tables are in schema {applied!r}, but its migrations would create tables"
            f" in {creating!r}, the first schema on search_path ({path}) that exists, and make a second,"
            f" empty store there: put {applied!r} first ({set_path})"
        )
    if applied is None and encoding not in ("UTF8", "SQL_ASCII"):
        raise MigrationError(
            f"{where}: the database's encoding is {encoding}, which cannot hold any text (an emoji in a"
            " prompt), as musicstore keeps it: create the database with ENCODING 'UTF8' (createdb -E UTF8"
            " -T template0)"
        )
    return applied is not None
