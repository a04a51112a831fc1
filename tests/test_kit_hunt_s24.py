"""musicstore.testing as a user's project meets it (session 24's hunt): its throwaway servers under a deep
``$TMPDIR``, ..."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from musicstore.testing import _pgserver, _seaweed

# --- a deep $TMPDIR: the servers' Unix sockets do not fit in their folders ------------------------------


@pytest.fixture
def deep_temp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temp folder whose servers' folders are too deep for a Unix socket path (107 bytes): a CI's or a
    build tool's ``$TMPDIR`` (Bazel's, Nix's) often is. Outside pytest's (private) folder: as root, the
    server runs as ``postgres``, which must reach it."""
    top = Path(tempfile.mkdtemp(prefix="musicstore-deep-"))
    top.chmod(0o755)
    deep = top / ("t" * max(1, 100 - len(str(top))))
    deep.mkdir(mode=0o755)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    try:
        yield deep
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_postgres_starts_under_a_temp_folder_too_deep_for_its_socket(deep_temp: Path) -> None:
    """The server exited ("Unix-domain socket path ... is too long"), failing every PostgreSQL test."""
    if _pgserver.find_bindir() is None:
        pytest.skip("needs PostgreSQL's server binaries")
    server = _pgserver.start()
    try:
        assert server.base.parent == deep_temp
        with psycopg.connect(server.url(), autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()
    assert not server.base.exists()


def test_seaweedfs_starts_under_a_temp_folder_too_deep_for_its_sockets(deep_temp: Path) -> None:
    """weed exited ("listen unix .../filer.sock: bind: invalid argument"), failing every S3 test; its local
    sockets go to /tmp then, as its gRPC ones do, and are removed with them."""
    pytest.importorskip("boto3")
    if _seaweed.find_weed() is None:
        pytest.skip("needs SeaweedFS's weed binary")
    server = _seaweed.start()
    try:
        assert server.base.parent == deep_temp
        client = server.client()
        client.put_object(Bucket=server.bucket, Key="a", Body=b"x")
        assert client.get_object(Bucket=server.bucket, Key="a")["Body"].read() == b"x"
        local = [path for path in server.sockets if "-grpc-" not in path.name]
        assert len(local) == 2 and all(path.is_socket() for path in local)
        assert all(_seaweed._SOCKET_NAME.fullmatch(str(path)) for path in server.sockets)
    finally:
        server.stop()
    assert not server.base.exists() and not any(path.exists() for path in server.sockets)
