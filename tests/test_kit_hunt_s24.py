"""musicstore.testing as a user's project meets it (session 24's hunt): its throwaway servers under a deep
``$TMPDIR``, the rows ``generations()`` and the prompts ``prompts()`` draw, the ``AWS_*`` variables
``musicstore_s3_url`` sets, the sweep of the servers' folders."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis.strategies import SearchStrategy

from musicstore import Generation, Status, Store, processes
from musicstore.models import Prompt
from musicstore.ops import import_rows
from musicstore.processes import OWNER
from musicstore.testing import _pgserver, _scratch, _seaweed
from musicstore.testing import strategies as ms

_T = TypeVar("_T")


def example(strategy: SearchStrategy[_T], condition: Callable[[_T], bool], tries: int) -> _T:
    """A value ``strategy`` draws that meets ``condition`` within ``tries`` draws (hypothesis's ``find``),
    the first found, not shrunk: a test that shows a shape is drawn needs one, not the smallest (shrinking a
    row took 5-12 s a case)."""
    return find(
        strategy, condition, settings=settings(database=None, max_examples=tries, phases=[Phase.generate])
    )


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


# --- generations(): the rows of a retried job are drawn too ---------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "shape"),
    [
        ("pending", lambda row: row.attempts > 0 and row.error_message is not None),
        ("processing", lambda row: row.error_message is not None),
        ("cancelled", lambda row: row.attempts > 0 and row.started_at is None),
    ],
    ids=["pending-requeued", "processing-after-an-error", "cancelled-after-a-requeue"],
)
def test_generations_draw_the_rows_of_a_requeued_job(
    statuses: str, shape: Callable[[Generation], bool]
) -> None:
    """A pending row always had 0 attempts and a processing one no error: the rows of a job that failed an
    attempt and was requeued (fail's retry, an expired lease), as the store keeps them, were never drawn,
    so code reading rows was never tested on them."""
    row = example(ms.generations(statuses=statuses), shape, 500)
    assert shape(row)


@settings(max_examples=200, deadline=None, database=None)
@given(row=ms.generations(statuses=["pending", "cancelled"], max_attempts=3))
def test_a_requeued_row_has_fewer_attempts_than_the_most_and_its_error(row: Generation) -> None:
    assert 0 <= row.attempts < 3 or row.started_at is not None
    if row.status is Status.PENDING and row.attempts:
        assert row.error_message is not None and row.worker_id is None


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(row=ms.generations(statuses=["pending", "processing", "cancelled"]))
def test_requeued_rows_pass_the_schema_and_read_back_equal(store: Store, row: Generation) -> None:
    prompt = Prompt(0, row.prompt, 1, row.created_at, row.created_at)
    assert store.run(import_rows, [prompt], [row]) == 1
    assert store.get_generation(row.id) == row


@settings(max_examples=50, deadline=None, database=None)
@given(row=ms.generations(statuses=["pending", "cancelled"], max_attempts=1))
def test_max_attempts_one_leaves_no_room_for_a_requeue(row: Generation) -> None:
    assert row.attempts == 0 or row.started_at is not None


# --- musicstore_s3_url: code that reads the AWS_* variables reaches the throwaway server ------------------


@pytest.fixture(params=["AWS_ENDPOINT_URL_S3", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"])
def users_endpoint_setting(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's shell naming their own S3 endpoint the way boto3 puts before ``AWS_ENDPOINT_URL``."""
    pytest.importorskip("boto3")
    value = "http://127.0.0.1:9" if request.param == "AWS_ENDPOINT_URL_S3" else "true"
    monkeypatch.setenv(request.param, value)


def test_the_users_endpoint_settings_do_not_lead_a_test_away_from_the_s3_server(
    users_endpoint_setting: None, musicstore_s3_url: str, musicstore_s3_server: Any
) -> None:
    """With the fixture's ``AWS_*`` set, a bare ``boto3.client("s3")`` (the user's code under test) went to
    ``$AWS_ENDPOINT_URL_S3``, or to AWS itself under ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS``."""
    import boto3

    if isinstance(musicstore_s3_server, _seaweed.External):
        pytest.skip("the user's own store keeps the user's settings")
    bucket, _, prefix = musicstore_s3_url.removeprefix("s3://").partition("/")
    client = boto3.client("s3")
    try:
        client.put_object(Bucket=bucket, Key=f"{prefix}a", Body=b"x")
        listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
        assert [item["Key"] for item in listed] == [f"{prefix}a"]
    finally:
        client.close()


# --- prompts(): the longest prompts a narrowing allows are drawn ------------------------------------------


@pytest.mark.parametrize("narrowing", [{"max_size": 20_000}, {"min_size": 1_000, "max_size": 20_000}])
def test_prompts_draw_up_to_their_max_size(narrowing: dict[str, int]) -> None:
    """``prompts(max_size=MAX_PROMPT_CHARS)`` drew one hypothesis text, never much over 4,000 characters:
    the store's limit, the edge a user narrows to it for, was never reached."""
    found = find(
        ms.prompts(**narrowing),
        lambda text: len(text) == narrowing["max_size"],
        settings=settings(database=None, max_examples=500),
    )
    assert len(found) == narrowing["max_size"] and found.strip()


@settings(max_examples=300, deadline=None, database=None)
@given(text=ms.prompts(min_size=990, max_size=1_010))
def test_prompts_around_the_long_prompt_boundary_keep_their_bounds(text: str) -> None:
    assert 990 <= len(text) <= 1_010 and text.strip() and "\x00" not in text


# --- a server's folder is kept by the sweep while its maker runs, where this process cannot see its pid ----


def test_a_live_servers_folder_whose_maker_is_not_seen_is_kept_until_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run in another pid namespace sharing the temp folder (a container's) names a pid this one cannot see
    (or sees as another process): the next server start here removed its live server's folder, data and
    all, and that server shut down (seen with ``unshare --pid``). Now a live run holds its folder's owner
    file locked, and a locked folder is kept."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    child = subprocess.Popen(["true"])  # a pid no process has once reaped: how the other run's pid looks
    child.wait()
    gone_pid = child.pid
    theirs = _scratch.folder("musicstore-pg-")
    try:
        (theirs / OWNER).write_text(f"{gone_pid} 1\n")  # same file: its lock stays
        assert _scratch._stale(theirs) is False
        ours = _scratch.folder("musicstore-pg-")  # sweeps first
        assert theirs.exists() and ours.exists()
    finally:
        _scratch.release(theirs)
    assert _scratch._stale(theirs)  # released (its run ended): a folder of a gone maker, swept
    _scratch.folder("musicstore-pg-")
    assert not theirs.exists() and ours.exists()
    _scratch.release(ours)


def test_a_stopped_server_releases_its_folders_lock() -> None:
    if _pgserver.find_bindir() is None:
        pytest.skip("needs PostgreSQL's server binaries")
    server = _pgserver.start()
    assert processes.held(server.base)
    server.stop()
    assert server.base not in _scratch._held
