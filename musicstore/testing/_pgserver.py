"""A throwaway PostgreSQL server on 127.0.0.1 from Debian's ``postgresql`` binaries, for tests and benchmarks.

Also ``External``: the same interface over a server you already run (``$MUSICSTORE_TEST_POSTGRES_URL``).

``initdb`` into a temp dir, ``pg_ctl start`` on a free loopback port, ``pg_ctl stop`` at the end. As root
(CI), the server runs as the ``postgres`` system user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL server binaries (Debian layout), or those on PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running server; ``url(name)`` addresses one database on it."""

    base: Path
    port: int
    bindir: Path
    user: str | None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://musicstore@127.0.0.1:{self.port}/{database}"

    def admin(self, *statements: str) -> None:
        """Run statements (CREATE/DROP DATABASE...) on the maintenance database, in autocommit."""
        _admin(self.url(), statements)

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.base / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def _admin(url: str, statements: tuple[str, ...]) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@dataclass
class External:
    """A server that already runs; ``admin_url`` names a database the user may CREATE DATABASE from."""

    admin_url: str

    def url(self, database: str = "postgres") -> str:
        """The admin URL with ``database`` as its path: its host, user and query (``sslmode``, a socket
        folder in ``host``...) kept."""
        parts = urlsplit(self.admin_url)
        query = f"?{parts.query}" if parts.query else ""
        return f"{parts.scheme}://{parts.netloc}/{database}{query}"  # '//' kept with no host (a socket)

    def admin(self, *statements: str) -> None:
        _admin(self.admin_url, statements)

    def stop(self) -> None:
        """Nothing to stop: the server is not ours."""


def start(*, durable: bool = False) -> Server:
    """Start a server. ``durable=False`` turns fsync off (tests); benchmarks pass True."""
    bindir = find_bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries not found: apt-get install postgresql")
    base = Path(tempfile.mkdtemp(prefix="musicstore-pg-"))
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    server = Server(base, _free_port(), bindir, user)
    settings = [
        "-c listen_addresses=127.0.0.1",
        f"-p {server.port}",
        f"-k {base}",
        "-c max_connections=200",
        "-c shared_buffers=256MB",
    ]
    if not durable:
        settings += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
    try:
        server._run(
            "initdb", "-D", str(base / "data"), "-U", "musicstore", "-A", "trust", "-E", "UTF8", "--no-sync"
        )
        server._run(
            "pg_ctl",
            "-D",
            str(base / "data"),
            "-l",
            str(base / "log"),
            "-o",
            " ".join(settings),
            "-w",
            "start",
        )
    except subprocess.CalledProcessError as exc:
        log = (base / "log").read_text(encoding="utf-8", errors="replace") if (base / "log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {exc.stderr}\n{log}") from exc
    return server
