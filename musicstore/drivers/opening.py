"""What opening a store checks (re-exported by ``musicstore.runner``): every migration this version ships
applied, none of a later musicstore (``check_schema``), and this host's clock near the PostgreSQL server's
(``warn_skew``); a missing SQLite file refused before anything is created (``refuse_missing_file``); the
connector for a URL (``sync_connector``, ``async_connector``) and what ``AsyncStore.open`` returns
(``_Opening``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import warnings
from collections.abc import Generator
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..backends.sqlite import MISSING_REMEDY, refuse_unmigrated
from ..errors import ClockSkewWarning, MigrationError, NewerSchemaWarning
from ..migrate import shipped_migrations
from ..urls import DatabaseURL

if TYPE_CHECKING:
    from ..aio import AsyncStore


def check_schema(url: str, applied: set[str]) -> None:
    """Raise MigrationError unless every migration this version ships has been applied; warn
    (``NewerSchemaWarning``) when the database holds musicstore migrations (``NNNN.name``) numbered past the
    newest this version ships: a later musicstore migrated it."""
    shipped = shipped_migrations()
    missing = sorted(set(shipped) - applied)
    if missing:
        raise MigrationError(
            f"{url} lacks migrations {', '.join(missing)}; run `musicstore migrate` "
            "(or `yoyo apply`, or musicstore.migrate(url)), or open the store with migrate=True"
        )
    newest = max(shipped)[:4]
    later = sorted(name for name in applied if _NUMBERED.match(name) and name[:4] > newest)
    if later:
        warnings.warn(
            NewerSchemaWarning(
                f"{url} holds migrations this musicstore does not ship ({', '.join(later)}): a later "
                "musicstore migrated it, and this version's answers there can be wrong; upgrade every "
                "process that opens the database"
            ),
            stacklevel=_caller_level(),
        )


_NUMBERED = re.compile(r"[0-9]{4}\.")
"""A musicstore migration's id: four digits, a dot, its name (a user's own migrations in yoyo's table are not
compared)."""


CLOCK_SKEW_SECONDS = 5.0
"""How far this host's clock may be from the PostgreSQL server's before opening a store warns
(``ClockSkewWarning``): NTP keeps clocks within milliseconds; seconds mean a clock that is not kept."""


def warn_skew(url: str, offset: float) -> None:
    """Warn (``ClockSkewWarning``) when the server's clock is more than ``CLOCK_SKEW_SECONDS`` from this
    host's (``offset``: seconds the server is ahead, ``ops.server_clock_offset``)."""
    if abs(offset) <= CLOCK_SKEW_SECONDS:
        return
    where = "behind" if offset > 0 else "ahead of"
    warnings.warn(
        ClockSkewWarning(
            f"this host's clock is {abs(offset):.0f} s {where} the clock of the PostgreSQL server at {url}: "
            "leases, retry times and requeue_expired's cut-off are written by each host's clock, so hosts "
            "sharing the database take back each other's live jobs (or see leases run out early) by that "
            "much; synchronise the clocks (NTP), and keep lease_seconds well above the worst difference"
        ),
        stacklevel=_caller_level(),
    )


_INSIDE = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,  # musicstore
    os.path.dirname(os.path.abspath(asyncio.__file__)) + os.sep,
    os.path.abspath(contextlib.__file__),
)


def _caller_level() -> int:
    """The ``stacklevel`` of ``check_schema``'s and ``warn_skew``'s warnings: the first frame outside
    musicstore (and asyncio, contextlib), so that a warning points at the line that opened the store:
    ``Store(url)``, or an ``AsyncStore``'s first operation, several frames down (``AsyncStore._first_use``).
    3 (their caller's caller) where every frame is inside."""
    try:
        frame: FrameType | None = sys._getframe(3)
    except ValueError:  # a shallower stack
        return 3
    level = 3
    while frame is not None and frame.f_code.co_filename.startswith(_INSIDE):
        frame, level = frame.f_back, level + 1
    return 3 if frame is None else level


def async_connector(target: DatabaseURL, *, busy_timeout: float, pool_size: int) -> Any:
    """The async connector for a URL's backend (no I/O: connections open on first use)."""
    if target.dialect == "postgres":
        from ..backends.postgres_async import AsyncPostgresConnector

        return AsyncPostgresConnector(target.url, pool_size=pool_size, timeout=busy_timeout)
    from ..backends.sqlite_async import AsyncSQLiteConnector

    assert target.path is not None
    return AsyncSQLiteConnector(target.path, busy_timeout=busy_timeout, pool_size=pool_size)


class _Opening:
    """What ``AsyncStore.open`` returns: await it for the store, or use it as ``async with``."""

    def __init__(self, store: AsyncStore, *, migrate: bool) -> None:
        self._store = store
        self._migrate = migrate

    def __await__(self) -> Generator[Any, None, AsyncStore]:
        return self._open().__await__()

    async def _open(self) -> AsyncStore:
        await self._store._start(migrate=self._migrate)
        return self._store

    async def __aenter__(self) -> AsyncStore:
        return await self._open()

    async def __aexit__(self, *exc: object) -> None:
        await self._store.close()


def refuse_missing_file(target: DatabaseURL, remedy: str = MISSING_REMEDY) -> None:
    """MigrationError for a SQLite file that does not exist, or lacks the schema, before anything is made or
    changed (``backends.sqlite.refuse_unmigrated``): opening it left an empty database behind a mistyped
    path, or another program's in WAL mode. ``remedy`` ends the first (the CLI names its command)."""
    if target.path is not None:
        refuse_unmigrated(target.path, remedy)


def sync_connector(target: DatabaseURL, *, busy_timeout: float, pool_size: int) -> Any:
    """The sync connector for a URL's backend."""
    if target.dialect == "postgres":
        from ..backends.postgres import PostgresConnector

        return PostgresConnector(target.url, pool_size=pool_size, timeout=busy_timeout)
    from ..backends.sqlite import SQLiteConnector

    assert target.path is not None
    return SQLiteConnector(target.path, busy_timeout=busy_timeout)
