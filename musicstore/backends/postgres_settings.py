"""What each PostgreSQL connection of a store is opened with (``musicstore.backends.postgres``): libpq's TCP
keepalive and user timeout, its connect timeout, and the pool's options, sync and async alike."""

from __future__ import annotations

import configparser
import math
import os
from collections.abc import Mapping
from typing import Any

from . import POOL_NAME

RECONNECT_SECONDS = 2.0
"""How long a pool tries in the background to replace a lost connection (psycopg_pool's
``reconnect_timeout``, 5 minutes by default) before it leaves that to the next operation, which connects at
once. Its tries back off (1, 2, 4, 8... s apart), so after an outage of a minute, left to itself, its next
try came up to a minute after the server was back, and every operation until then failed after
``busy_timeout`` with ``DatabaseBusy`` ('no pooled connection came free in time; raise pool_size')."""
TCP_DEFAULTS = {
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "tcp_user_timeout": "60000",
}
"""libpq settings for a TCP connection the URL does not set itself: a connection cut without a word reaching
this host (a network cut, a host gone) is found dead within about a minute, idle (keepalive probes: 30 s, then
3 unanswered 10 s apart) or with data unacknowledged (60 s), where the operating system's defaults take two
hours or forever. A server busy with a long statement still answers them. Unix sockets ignore them."""


_ENVIRONMENT = {"connect_timeout": "PGCONNECT_TIMEOUT"}
"""libpq's variables for the settings above: one set (not blank) is the user's, as a URL's own setting is."""
SYSTEM_SERVICES = "/etc/postgresql-common"
"""Where libpq looks for ``pg_service.conf`` without ``PGSYSCONFDIR``: the folder psycopg-binary's libpq was
built with, as Debian's."""


def _unset(url: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """The ``defaults`` that neither ``url`` nor libpq's environment (``_ENVIRONMENT``) sets (none for a URL
    that libpq cannot read)."""
    import psycopg.conninfo

    try:
        given = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return {}
    return unset(given, defaults)


def unset(given: Mapping[str, object], defaults: dict[str, Any]) -> dict[str, Any]:
    """The ``defaults`` that neither ``given`` (a URL's parameters) nor libpq's environment (``_ENVIRONMENT``)
    sets."""
    taken = {*given, *(key for key, name in _ENVIRONMENT.items() if os.environ.get(name, "").strip())}
    taken.update(service_settings(given))
    return {key: value for key, value in defaults.items() if key not in taken}


def service_settings(given: Mapping[str, object]) -> set[str]:
    """The settings the connection service of ``given`` (its ``service``, else ``PGSERVICE``) has in libpq's
    service files, which libpq takes where the URL sets none: the user's own, as the URL's are (the store's
    defaults passed over them). As libpq: ``servicefile``, ``PGSERVICEFILE`` or ``~/.pg_service.conf``,
    then, without the service there, ``pg_service.conf`` in ``PGSYSCONFDIR`` (else ``SYSTEM_SERVICES``).
    A file that cannot be read counts as none here: libpq says what is wrong with it when it connects."""
    name = str(given.get("service") or os.environ.get("PGSERVICE", ""))
    if not name:
        return set()
    own = given.get("servicefile") or os.environ.get("PGSERVICEFILE")
    own = own or os.path.expanduser("~/.pg_service.conf")
    system = os.path.join(os.environ.get("PGSYSCONFDIR") or SYSTEM_SERVICES, "pg_service.conf")
    for path in (str(own), system):
        parser = configparser.ConfigParser(interpolation=None, strict=False, delimiters=("=",))
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        if parser.has_section(name):
            return set(parser.options(name))
    return set()


def with_defaults(given: Mapping[str, Any], connect_timeout: int) -> dict[str, Any]:
    """``given`` (a connection's parameters) with the ``TCP_DEFAULTS`` and the ``connect_timeout`` that
    neither it nor libpq's environment sets (``musicstore.migrate``'s connections)."""
    return {**unset(given, {**TCP_DEFAULTS, "connect_timeout": str(connect_timeout)}), **given}


def pool_settings(url: str, timeout: float) -> dict[str, Any]:
    """The keyword arguments of each connection a store's pool makes (sync and async): ``autocommit``, the
    ``TCP_DEFAULTS`` and libpq's connect timeout (``_connect_timeout``) that ``url`` does not set itself.
    Without a connect timeout psycopg waits 130 s for a connection that is accepted and never answered (a
    hung server or proxy, a dead load balancer): the pool's few threads each stuck in one, it made no
    connection for up to that long after the server answered again, and every operation meanwhile failed
    after ``busy_timeout`` with ``DatabaseBusy`` ('raise pool_size')."""
    return {"autocommit": True, **connect_settings(url, timeout)}  # autocommit: rows as tuples, by position


def pool_options(url: str, pool_size: int, timeout: float) -> dict[str, Any]:
    """What a store's pool is made with, sync and async alike (their connection class and ``configure``
    aside): 1 to ``pool_size`` connections, each with ``pool_settings``, waited for ``timeout`` seconds, the
    pool named ``POOL_NAME`` (``QuietPoolFailures``)."""
    size = {"name": POOL_NAME, "min_size": 1, "max_size": pool_size, "timeout": timeout}
    return {**size, "reconnect_timeout": RECONNECT_SECONDS, "kwargs": pool_settings(url, timeout)}


def connect_settings(url: str, timeout: float | None) -> dict[str, Any]:
    """The ``TCP_DEFAULTS`` and libpq's connect timeout for ``timeout`` (``_connect_timeout``; None: none)
    that ``url`` does not set itself, for every connection of a store: its pool's, the reachability check's
    and the wait hub's (a URL's own ``connect_timeout`` wins in all three; the check and the hub set theirs
    over it before)."""
    defaults = dict(TCP_DEFAULTS)
    if timeout is not None:
        defaults["connect_timeout"] = str(_connect_timeout(timeout))
    return _unset(url, defaults)


def _connect_timeout(timeout: float) -> int:
    """libpq's connect_timeout: whole seconds, at least 2 (it treats smaller values as 2)."""
    return max(2, math.ceil(timeout))


def session_refused(exc: BaseException) -> str:
    """Why ``exc``, raised by a new connection's first statements (its session settings), was: blank unless
    it was the reset of ``session_replication_role`` or a ``statement_timeout`` that cancelled them."""
    if getattr(exc, "sqlstate", None) == "57014":  # query_canceled
        return (
            "; a statement_timeout set for this role or database (ALTER ROLE or DATABASE ... SET, PGOPTIONS)"
            " cancelled the session's first statement: raise it"
        )
    if "session_replication_role" not in str(exc):
        return ""
    return (
        "; session_replication_role is not 'origin' for this role or database (ALTER ROLE or DATABASE ..."
        " SET, PGOPTIONS), which fires none of the store's triggers, and this role may not set it back:"
        " RESET it there, or connect as a role that may set it"
    )
