"""What opening a store checks (re-exported by ``musicstore.runner``): every migration this version ships
applied, none of a later musicstore (``check_schema``), and this host's clock near the PostgreSQL server's
(``warn_skew``)."""

from __future__ import annotations

import re
import warnings

from ..errors import ClockSkewWarning, MigrationError, NewerSchemaWarning
from ..migrate import shipped_migrations


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
            stacklevel=3,
        )


_NUMBERED = re.compile(r"\d{4}\.")
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
        stacklevel=3,
    )
