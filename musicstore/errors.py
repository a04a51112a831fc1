"""The one exception hierarchy of musicstore.

Every error names what was wrong and what to do about it. Nothing is half-done after one is raised:
the transaction is rolled back, no file is left at a final path.
"""

from __future__ import annotations

import sys
from typing import Any

from .masking import redact, scrub


def shown(value: object) -> str:
    """A refused value as a message shows it: its repr, cut when long (a megabyte of input is not echoed),
    and without raising: an int beyond Python's limit on int to str conversion (4,300 digits) is named by
    its size (its repr raises ValueError), any other value whose repr fails by its type."""
    try:
        text = repr(value)
    except Exception:  # an int past the limit (ValueError), or an object whose own repr fails
        if isinstance(value, int):
            return f"an integer of {value.bit_length()} bits"
        return f"a {type(value).__name__}"
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


class MusicstoreError(Exception):
    """Base class of every error musicstore raises on purpose.

    Its message never holds a secret (``musicstore.masking``): database passwords are masked in it, and in the
    exception being handled when it is made (the driver error it wraps, which becomes its cause or context).
    """

    def __init__(self, *args: object) -> None:
        scrub(sys.exc_info()[1])
        super().__init__(*(redact(arg) if isinstance(arg, str) else arg for arg in args))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (a process pool sends a child's exception to the parent so) and copied as itself: its
        message and its fields (``current``, ``existing_id``...), without calling ``__init__`` again, whose
        keyword-only fields the default (``cls(*args)``) left out: IdempotencyConflict could not be remade."""
        return _remade, (type(self), self.args, dict(vars(self)))


def _remade(cls: type[MusicstoreError], args: tuple[Any, ...], fields: dict[str, Any]) -> MusicstoreError:
    """``MusicstoreError.__reduce__``'s rebuild: the error with these ``args`` and attributes."""
    error = cls.__new__(cls, *args)
    super(MusicstoreError, error).__init__(*args)  # the built-in's: args (an OSError's errno, strerror too)
    vars(error).update(fields)
    return error


class InvalidInput(MusicstoreError, ValueError):
    """An argument is out of its documented range (prompt, sample rate, metadata, status...)."""


class NotFound(MusicstoreError, LookupError):
    """No generation (or prompt) with that id exists."""


class InvalidTransition(MusicstoreError):
    """The status machine does not allow this change from the row's current status (``current``; ``owner``:
    the worker id the row keeps, where the error says it)."""

    def __init__(self, message: str, *, current: str | None = None, owner: str | None = None) -> None:
        super().__init__(message)
        self.current = current
        self.owner = owner


class LeaseLost(InvalidTransition):
    """The worker no longer owns the generation (its lease expired and it was requeued or claimed, or it was
    retried or replayed, or never this worker's)."""


class Cancelled(LeaseLost):
    """The generation the worker is running was cancelled (``cancel``): stop work on it and drop the result.

    Raised by the worker's next heartbeat or written progress report after the cancel."""


class IdempotencyConflict(MusicstoreError):
    """An idempotency key was used again for a different request (another prompt, model, length...).

    ``existing_id``: the generation created with the key."""

    def __init__(self, message: str, *, existing_id: str) -> None:
        super().__init__(message)
        self.existing_id = existing_id


class ConfirmationRequired(MusicstoreError):
    """A destructive operation was called without its explicit confirmation argument."""


class DatabaseError(MusicstoreError):
    """The database refused or failed an operation (constraint, lock timeout, connection)."""


class DatabaseBusy(DatabaseError):
    """The database stayed locked by other writers for longer than the busy timeout."""


class WriteConflict(DatabaseBusy):
    """PostgreSQL aborted a transaction to break a deadlock or a serialization conflict with another writer.

    A store operation that is not inside ``Store.transaction`` is retried on its own
    (``runner.CONFLICT_RETRIES`` times, after a short random wait); this reaches the caller when every try
    conflicted, or from inside an explicit transaction, which only its owner can run again.
    """


class CommitUnknown(DatabaseError):
    """PostgreSQL's connection was lost while a transaction's COMMIT was in flight (a restart, a failover,
    ``pg_terminate_backend``, a network cut), or a write's single statement, which commits itself (a claim,
    a heartbeat, a cancel): the transaction may or may not have been committed. Read back what it wrote (a
    row by its id or its idempotency key) before running it again."""


class MigrationError(DatabaseError):
    """The schema is missing, older than this library needs, or a migration failed."""


class InvalidAudio(MusicstoreError, ValueError):
    """Audio data cannot be exported as given (NaN/Inf, empty, wrong rank or dtype, bad rate...)."""


class StorageError(MusicstoreError, OSError):
    """Writing, renaming or removing a file under the output root failed."""


class RenditionFailed(MusicstoreError):
    """A rendition could not be made (no encode kept its profile's true-peak ceiling, or the encoder failed);
    nothing was written."""


class NewerSchemaWarning(UserWarning):
    """The database holds migrations this musicstore does not ship: a later version migrated it (a warning
    when a store opens, not an error, so that a rolling upgrade goes on). This version's answers there can be
    wrong without an error (a version before ``0020`` counts PostgreSQL's totals 16 times): upgrade every
    process that opens the database. See docs/migrations.md."""


class ClockSkewWarning(UserWarning):
    """This host's clock and the PostgreSQL server's differ by more than ``runner.CLOCK_SKEW_SECONDS`` (a
    warning when a store opens, not an error). Leases, retry times and ``requeue_expired``'s cut-off are
    written by each host's clock: hosts sharing a database need synchronised clocks (NTP), and a lease longer
    than the worst skew between any two of them. See docs/operations.md (Clocks)."""
