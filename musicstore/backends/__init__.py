"""Database backends: a connector per database (SQLite, PostgreSQL), sync and async."""

from ..errors import InvalidInput


def closed_store() -> InvalidInput:
    """The error for an operation on a store after ``close()`` (its connector opens no connection again)."""
    return InvalidInput("the store is closed; open a new one")
