"""A throwaway PostgreSQL server on 127.0.0.1 from Debian's ``postgresql`` binaries, for tests and benchmarks.

Also ``External``: the same interface over a server you already run (``$MUSICSTORE_TEST_POSTGRES_URL``).

``initdb`` into a temp dir, then ``postgres`` on a free loopback port as this process's child (not a
``pg_ctl`` daemon), which dies with it however it dies (Linux ``PR_SET_PDEATHSIG``), so a killed test run
leaves no server behind; ``stop`` shuts it down at once and removes the folder. As root (CI), the server
runs as the ``postgres`` system user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from . import _scratch
from ._seaweed import _die_with_parent, fits_socket

START_TIMEOUT = 60.0


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
    process: subprocess.Popen[bytes] | None = None

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

    def log(self) -> str:
        path = self.base / "log"
        return path.read_text(encoding="utf-8", errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGQUIT)  # immediate shutdown: the data is thrown away
                try:
                    self.process.wait(timeout=START_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
            _scratch.release(self.base)


def _admin(url: str, statements: tuple[str, ...]) -> None:
    """Each statement in autocommit; one refused because its source database is still in use is made again
    for up to ``IN_USE_SECONDS``."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            deadline = time.monotonic() + IN_USE_SECONDS
            while True:
                try:
                    conn.execute(statement)
                    break
                except psycopg.errors.ObjectInUse:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)


IN_USE_SECONDS = 120.0
"""How long a ``CREATE DATABASE ... TEMPLATE`` is made again while the template is in use. PostgreSQL waits
5 s for the other sessions on a template to go, then refuses ('source database ... is being accessed by
other users'): right after ``migrate`` on the template, its connections' backends, closed by the client, may
still be exiting on a loaded 2-core host; a test's fixture then failed for that alone."""


@dataclass
class External:
    """A server that already runs; ``admin_url`` names a database the user may CREATE DATABASE from."""

    admin_url: str = field(repr=False)

    def __repr__(self) -> str:
        from ..urls import without_password

        return f"External({without_password(self.admin_url)!r})"  # a failing test's traceback shows it

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


class _PortTaken(RuntimeError):
    """The server could not bind its port: another process took it between its choice and the bind."""


def start(*, durable: bool = False, tries: int = 3) -> Server:
    """Start a server. ``durable=False`` turns fsync off (tests); benchmarks pass True. A port taken between
    choosing it and the server binding it (``initdb`` runs in between: seconds) is retried on another, up to
    ``tries`` ports in all, as ``_seaweed.start`` does."""
    bindir = find_bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries not found: apt-get install postgresql")
    base = _scratch.folder("musicstore-pg-")  # a killed run's folder is removed first
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    server = Server(base, _free_port(), bindir, user)
    settings = ["listen_addresses=127.0.0.1", "max_connections=200", "shared_buffers=256MB"]
    if not durable:
        settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
    try:
        server._run(
            "initdb", "-D", str(base / "data"), "-U", "musicstore", "-A", "trust", "-E", "UTF8", "--no-sync"
        )
        owner = pwd.getpwnam(user) if user else None
        # its Unix socket beside its data, unless that path is too long for one (a deep $TMPDIR): then none,
        # as the server is reached over TCP (it exited, unable to make any)
        sockets = str(base) if fits_socket(base / ".s.PGSQL.65535") else ""
        for attempt in range(tries):
            if attempt:
                server.port = _free_port()
            command = [str(bindir / "postgres"), "-D", str(base / "data"), "-p", str(server.port)]
            command += ["-k", sockets, *(arg for setting in settings for arg in ("-c", setting))]
            with open(base / "log", "ab") as log:
                since = log.tell()
                server.process = subprocess.Popen(
                    command,
                    cwd=base,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    user=owner.pw_uid if owner else None,
                    group=owner.pw_gid if owner else None,
                    extra_groups=[] if owner else None,
                    start_new_session=True,  # a terminal's Ctrl-C is for the tests, whose teardown needs it
                    preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
                )
            try:
                _wait(server, time.monotonic() + START_TIMEOUT, since)
                break
            except _PortTaken:
                if attempt == tries - 1:
                    raise
    except subprocess.CalledProcessError as exc:
        server.stop()
        raise RuntimeError(f"could not start PostgreSQL: {exc.stderr}") from exc
    except BaseException:
        server.stop()
        raise
    return server


def _wait(server: Server, deadline: float, since: int = 0) -> None:
    """Until the server takes connections; RuntimeError with its log if it exits or is not ready in time,
    ``_PortTaken`` if it exited unable to bind its port (its log from byte ``since`` on says so). A server
    that answers on the port but is not this one (another process's, which took the port) is not taken for
    it: this one is about to exit."""
    import psycopg

    assert server.process is not None
    data = (server.base / "data").resolve()
    while True:
        if server.process.poll() is not None:
            log = server.log()
            path = server.base / "log"
            with open(path, "rb") as whole:
                whole.seek(since)
                this_start = whole.read().decode("utf-8", errors="replace")
            if "Address already in use" in this_start:
                raise _PortTaken(f"PostgreSQL could not bind port {server.port}:\n{log}")
            raise RuntimeError(f"PostgreSQL exited with {server.process.returncode}:\n{log}")
        try:
            with psycopg.connect(server.url(), connect_timeout=5) as conn:
                answered = conn.execute("SHOW data_directory").fetchone()
            if answered is not None and Path(answered[0]).resolve() == data:
                return
        except psycopg.Error:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"PostgreSQL was not ready in {START_TIMEOUT:.0f} s:\n{server.log()}"
            ) from None
        time.sleep(0.05)
