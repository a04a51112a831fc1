"""Database URLs: one string selects the backend, for the library and for ``yoyo apply`` alike."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import InvalidInput

URL_ENV = "MUSICSTORE_DATABASE_URL"
DEFAULT_URL = "sqlite:///data/generations.db"
"""The embedded default: a SQLite file under ``data/`` in the working directory."""


@dataclass(frozen=True, slots=True)
class DatabaseURL:
    """A parsed database URL: ``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``postgresql://...``."""

    url: str
    dialect: str
    path: Path | None = None
    """SQLite: the file, made absolute against the working directory when the URL was resolved."""

    @property
    def absolute_url(self) -> str:
        """The URL with a SQLite path made absolute: the same database from any working directory."""
        return self.url if self.path is None else f"sqlite:///{self.path}"

    @property
    def yoyo_url(self) -> str:
        """The same database in yoyo's spelling (``postgresql+psycopg://`` for psycopg 3)."""
        if self.dialect == "postgres":
            return "postgresql+psycopg://" + self.url.split("://", 1)[1]
        return self.url


def without_password(url: str) -> str:
    """The URL with its password masked, for messages."""
    scheme, _, rest = url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
    return url


def resolve(url: str | None = None) -> DatabaseURL:
    """Parse ``url``, or ``$MUSICSTORE_DATABASE_URL``, or the SQLite default."""
    text = url or os.environ.get(URL_ENV) or DEFAULT_URL
    scheme = urlsplit(text).scheme
    if scheme == "sqlite":
        if not text.startswith("sqlite:///") or len(text) == len("sqlite:///"):
            raise InvalidInput(
                f"SQLite URLs look like sqlite:///relative/path.db or sqlite:////abs.db, got {text!r}"
            )
        path = text[len("sqlite:///") :].split("?", 1)[0]
        if path == ":memory:":
            raise InvalidInput(
                "an in-memory SQLite database is private to one connection; use a file (a temp dir in tests)"
            )
        return DatabaseURL(text, "sqlite", Path(path).absolute())
    if scheme in {"postgresql", "postgres", "postgresql+psycopg"}:
        return DatabaseURL("postgresql://" + text.split("://", 1)[1], "postgres")
    raise InvalidInput(f"unsupported database URL {text!r}: use sqlite:///path.db or postgresql://...")
