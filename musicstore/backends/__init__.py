"""Database backends: a connector per database (SQLite, PostgreSQL), sync and async."""

import logging

from ..errors import InvalidInput


def closed_store() -> InvalidInput:
    """The error for an operation on a store after ``close()`` (its connector opens no connection again)."""
    return InvalidInput("the store is closed; open a new one")


POOL_NAME = "musicstore"
"""The name of every psycopg_pool pool a store opens (sync and async): the pool's log records quote it."""

_POOL_FAILURES = frozenset(
    (
        "error connecting in %r: %s",
        "reconnection attempt in pool %r failed after %s sec",
        "discarding broken connection: %s",
        "discarding closed connection: %s",
        "closing returned connection: %s",
    )
)
"""psycopg_pool's WARNING records of a connection it could not make or lost (psycopg_pool 3.2, 3.3), or was
given back mid-statement and closed (an operation interrupted by Ctrl-C, which raises KeyboardInterrupt)."""
_ROLLBACK_FAILED = "error ignored in rollback of %s: %s"
"""psycopg's WARNING record of a transaction block whose ROLLBACK failed, its connection lost (the block's
own error is raised): an ``AsyncStore.transaction`` on a connection the server ended (``Store``'s: none)."""


_QUIET = _POOL_FAILURES | {_ROLLBACK_FAILED}


class QuietPoolFailures(logging.Filter):
    """Logs at DEBUG, not WARNING, psycopg_pool's records of a connection that a store's pool could not make
    or lost (``_POOL_FAILURES``): the operation that needed it raises the typed error (``DatabaseError``
    'cannot connect to the database', ``DatabaseBusy``), which says the same once. They were printed on top of
    it, two to four at each failed open (on stderr with no logging configured: Python's last-resort handler),
    more while the server was down. Shown again by ``logging.getLogger("psycopg").setLevel(logging.DEBUG)``.
    Records of other pools (no ``POOL_NAME``, a connection of another class) are left as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg, args = record.msg, record.args
        if not isinstance(msg, str) or msg not in _QUIET or not isinstance(args, tuple) or not args:
            return True
        subject = args[0] if msg != _ROLLBACK_FAILED else getattr(args[0], "connection", None)
        if subject != POOL_NAME and not type(subject).__module__.startswith(__name__):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def quiet_pool_failures() -> None:
    """Add ``QuietPoolFailures`` to psycopg_pool's and psycopg's transactions' loggers, once, first among
    their filters (before ``masking.RedactingFilter``, which merges a masked record's arguments into its
    message)."""
    for name in ("psycopg.pool", "psycopg.transaction"):
        logger = logging.getLogger(name)
        if not any(isinstance(each, QuietPoolFailures) for each in logger.filters):
            logger.filters.insert(0, QuietPoolFailures())
