"""Database URLs: one string selects the backend, for the library and for ``yoyo apply`` alike."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlencode, urlsplit

from . import validate
from .errors import InvalidInput
from .masking import MASK, SECRET_PARAMETER, redact, register

URL_ENV = "MUSICSTORE_DATABASE_URL"
DEFAULT_URL = "sqlite:///data/generations.db"
"""The embedded default: a SQLite file under ``data/`` in the working directory."""


@dataclass(frozen=True, slots=True)
class DatabaseURL:
    """A parsed database URL: ``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``postgresql://...``."""

    url: str = field(repr=False)
    dialect: str
    path: Path | None = None
    """SQLite: the file, made absolute against the working directory when the URL was resolved."""

    def __repr__(self) -> str:
        return f"DatabaseURL({self.masked!r}, dialect={self.dialect!r})"

    @property
    def masked(self) -> str:
        """The URL with its password masked: for messages and output."""
        return without_password(self.url)

    @property
    def absolute_url(self) -> str:
        """The URL with a SQLite path made absolute (``sqlite_url``): the same database from any working
        directory."""
        return self.url if self.path is None else sqlite_url(self.path)

    @property
    def yoyo_url(self) -> str:
        """The same database in yoyo's spelling (``postgresql+psycopg://`` for psycopg 3; a SQLite file by its
        absolute path percent-encoded, since yoyo decodes the path and ends it at a ``#``: the file the
        store opens, whatever its name holds)."""
        if self.dialect == "postgres":
            return _for_yoyo("postgresql+psycopg://" + self.url.split("://", 1)[1], self.url)
        assert self.path is not None
        return sqlite_url(self.path)


def _connection(url: str) -> dict[str, str] | None:
    """What libpq connects with for ``url`` (its ``PQconninfoParse``), or None if it cannot read it."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        return {key: str(value) for key, value in conninfo_to_dict(url).items() if value not in (None, "")}
    except Exception:  # psycopg missing, or libpq refuses the URL: it says why when connecting
        return None


def yoyo_connection(yoyo_url: str) -> dict[str, str]:
    """What yoyo's psycopg backend connects with for ``yoyo_url`` (``PostgresqlBackend.connect``): the
    path's database, the query's parameters (``parse_qsl``: ``+`` is a space), then the URL's user,
    password, port and host (lower-cased, not percent-decoded) over them."""
    from yoyo.connections import parse_uri

    parsed = parse_uri(yoyo_url)
    found: dict[str, object] = {"dbname": parsed.database, **parsed.args}
    for key, value in (("user", parsed.username), ("password", parsed.password), ("port", parsed.port)):
        if value is not None:
            found[key] = value
    if parsed.hostname is not None:
        found["host"] = parsed.hostname
    return {key: str(value) for key, value in found.items() if value not in (None, "")}


def _same_host(connection: dict[str, str]) -> dict[str, str]:
    """``connection`` with a host name (not a socket folder, which starts with /) in lower case, as DNS
    reads it, and without a port of no number (``,``: libpq's for ``h1,h2``, each host's default)."""
    host = connection.get("host")
    same = {key: value for key, value in connection.items() if key != "port" or value.strip(",")}
    return same if host is None or "/" in host else {**same, "host": host.lower()}


def _for_yoyo(spelled: str, url: str) -> str:
    """``spelled`` (the URL as yoyo's scheme spells it) when yoyo connects with what libpq reads from ``url``;
    else every setting as a query parameter, which yoyo passes to libpq as given. yoyo reads a host and a
    database name without percent-decoding them (a socket folder ``%2Frun%2Fpg``, a name ``my%20db``), a
    ``+`` in a parameter as a space, and the URL's user, password, host and port over the query's, where
    libpq does the opposite."""
    libpq = _connection(url)
    if libpq is None or _same_host(yoyo_connection(spelled)) == _same_host(libpq):
        return spelled
    return spelled.split("://", 1)[0] + ":///?" + urlencode(libpq, quote_via=quote)


def sqlite_url(path: str | os.PathLike[str]) -> str:
    """The URL of the SQLite file at ``path`` (relative to the working directory unless absolute), its path
    percent-encoded, so that any name (``?``, ``#``, ``%``, spaces, any byte) reads back as that file:
    ``resolve(sqlite_url(p)).path == Path(p).absolute()``."""
    text = validate.os_path(path, "a SQLite file's path")  # a non-empty str path the OS takes (no NUL)
    return "sqlite:///" + quote(text, errors="surrogateescape")


def without_password(url: str) -> str:
    """The URL (or any text naming one) with its password masked, for messages and output."""
    register(url)
    text = SECRET_PARAMETER.sub(lambda match: match[1] + MASK, url)
    scheme, separator, rest = text.partition("://")
    userinfo, _, host = rest.rpartition("@")
    if separator and ":" in userinfo:
        text = f"{scheme}://{userinfo.partition(':')[0]}:{MASK}@{host}"
    return redact(text)


def _postgres(text: str) -> str:
    """A PostgreSQL URL with its userinfo percent-encoded: libpq, which ends the userinfo at its first ``@``,
    and yoyo, which ends it at the last, then read the same user and password."""
    try:  # libpq reads the URL, its %-escapes decoded, as UTF-8 (a byte the shell passed undecoded is not)
        unquote(text, errors="strict").encode("utf-8")
    except UnicodeError:
        raise InvalidInput(
            f"{_shown(text)} is not a valid URL: it holds a byte that is not UTF-8 (raw or %-encoded)"
        ) from None
    rest = text.split("://", 1)[1]
    netloc = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    try:
        urlsplit("postgresql://" + rest).port  # noqa: B018  what yoyo reads; raises if a / ? # cut it short
    except ValueError:
        userinfo_cut = "@" in rest[len(netloc) :] or any(c in netloc.rpartition("@")[0] for c in "[]")
        hosts = netloc.rpartition("@")[2]
        if not userinfo_cut and "," in hosts:
            raise InvalidInput(_several_hosts(text, netloc)) from None
        if not userinfo_cut and hosts.count("[") != hosts.count("]"):
            raise InvalidInput(
                f"{without_password(text)} is not a valid URL: its host has a [ without its ]"
            ) from None
        if not userinfo_cut:  # the host's port is what urllib refused
            port = hosts.rpartition("]")[2].rpartition(":")[2]
            raise InvalidInput(
                f"{without_password(text)} is not a valid URL: its port {port!r} is not a number from 0 "
                "to 65535"
            ) from None
        raise InvalidInput(
            f"{without_password(text)} is not a valid URL: percent-encode / ? # [ ] in a user name or "
            "password (%2F %3F %23 %5B %5D)"
        ) from None
    userinfo, at, host = netloc.rpartition("@")
    if "," in host and any(c in host for c in ":["):  # hosts with ports: yoyo reads one host and one port
        raise InvalidInput(_several_hosts(text, netloc))
    if at:
        user, colon, password = userinfo.partition(":")
        userinfo = quote(unquote(user), safe="") + colon + quote(unquote(password), safe="")
        rest = f"{userinfo}@{host}{rest[len(netloc) :]}"
    return "postgresql://" + rest


def _several_hosts(text: str, netloc: str) -> str:
    """The message for libpq's ``host1:port1,host2:port2``, which yoyo (the migrations) cannot read: the same
    hosts as ``host=`` and ``port=`` parameters, which both read."""
    userinfo, at, hosts = netloc.rpartition("@")
    names, ports = [], []
    for each in hosts.split(","):
        name, _, port = each.rpartition(":") if each.rpartition("]")[2].count(":") else (each, "", "")
        names.append(name.removeprefix("[").removesuffix("]"))
        ports.append(port)
    rest = text.split("://", 1)[1][len(netloc) :]
    path, _, query = rest.partition("?")
    params = f"host={','.join(names)}" + (f"&port={','.join(ports)}" if any(ports) else "")
    rewritten = f"postgresql://{userinfo}{at}{path or '/'}?{query}{'&' if query else ''}{params}"
    return (
        f"{without_password(text)} names several hosts, which the migrations (yoyo) cannot read; give them "
        f"as parameters, which libpq and yoyo both read: {without_password(rewritten)}"
    )


def from_environment() -> str | None:
    """``$MUSICSTORE_DATABASE_URL``, or None when it is not set. Set but empty (or blank) is InvalidInput,
    never read as unset: ``"$(cat /run/secrets/db-url)"`` of a missing file, a compose file's ``${DB_URL}``
    not set, put every job in the local default SQLite file instead."""
    value = os.environ.get(URL_ENV)
    if value is not None and not value.strip():
        raise InvalidInput(
            f"${URL_ENV} is set but empty: set it to a database URL, or unset it for the default "
            f"{DEFAULT_URL}"
        )
    return value


def resolve(url: str | None = None) -> DatabaseURL:
    """Parse ``url``, or ``$MUSICSTORE_DATABASE_URL``, or the SQLite default (``InvalidInput`` for a value
    that is not a str, and for the variable set but blank: ``MUSICSTORE_DATABASE_URL=$UNSET`` is refused as
    ``url=""`` is, never read as the default, which migrated and opened a local SQLite file instead)."""
    validate.database_url(url)
    text = url or from_environment() or DEFAULT_URL
    register(text)
    if text != text.strip():
        raise InvalidInput(  # not echoed: it may hold a password
            "a database URL has no space, newline or tab at its ends: a secret file's last newline, say "
            "(sqlite:///jobs.db\\n was a file of that name); percent-encode one that ends a name (%0A, %20)"
        )
    scheme = text.partition(":")[0].lower()
    if scheme == "sqlite":
        if not text.startswith("sqlite:///") or len(text) == len("sqlite:///"):
            raise InvalidInput(
                f"SQLite URLs look like sqlite:///relative/path.db or sqlite:////abs.db, got {_shown(text)}"
            )
        path, query = text[len("sqlite:///") :].partition("?")[::2]  # a ? in a name is %3F
        if query or text.endswith("?"):
            raise InvalidInput(
                "SQLite URLs take no parameters: musicstore opens the file read-write with its own settings "
                f"(got ?{query}, which it would have ignored)"
            )
        path = unquote(path, errors="surrogateescape")  # as yoyo reads it: the same URL, the same file
        if "\x00" in path:
            raise InvalidInput(f"{_shown(text)}: a file's path cannot hold a NUL character (%00)")
        if path == ":memory:":
            raise InvalidInput(
                "an in-memory SQLite database is private to one connection; use a file (a temp dir in tests)"
            )
        return DatabaseURL(text, "sqlite", Path(path).absolute())
    if scheme in {"postgresql", "postgres", "postgresql+psycopg"} and "://" in text:
        return DatabaseURL(_postgres(text), "postgres")
    raise InvalidInput(f"unsupported database URL {_shown(text)}: use sqlite:///path.db or postgresql://...")


def _shown(text: str) -> str:
    """A URL that could not be parsed, for a message: not shown at all where it may hold a password.

    Without a parse, where a password ends is a guess (an unescaped ``?``, ``#`` or ``@`` in it, a quoted
    ``key=value``), so a URL with userinfo or a secret parameter is named but never echoed.
    """
    if "@" in text or SECRET_PARAMETER.search(text):
        return "(not shown: it may hold a password)"
    return repr(without_password(text))
