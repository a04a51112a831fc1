"""musicstore.testing and the dashboard as a user's project meets them (session 25): a malformed
``$MUSICSTORE_TEST_S3_URL``, the browser's processes on a Ctrl-C and after a killed run, the queue's columns
in ``generations()``' rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore import Generation, InvalidInput, Prompt, Status, StorageError, Store
from musicstore.ops import import_rows
from musicstore.testing import FakeClock, _browser, _pgserver, _seaweed, plugin
from musicstore.testing import strategies as ms
from tests.test_kit_hunt_s24 import example

# --- $MUSICSTORE_TEST_S3_URL: checked before any test uses it, never echoed ---------------------------------

_SECRET = "Sup3rS3cretValue"
_BAD_S3_URLS = [
    f"s3://AKIAEXAMPLE:{_SECRET}@my-bucket/prefix",  # credentials in the URL
    f"s3://AKIAEXAMPLE:{_SECRET}/prefix",  # credentials without the '@'
    f"http://AKIAEXAMPLE:{_SECRET}@127.0.0.1:8333/my-bucket",  # the endpoint's URL, not the bucket's
    "https://s3.example.com/my-bucket",
    "my-bucket/prefix",  # no scheme
    "s3://",  # no bucket
    "s3:///prefix",
    "s3://my-bucket/prefix?versionId=1",
    "s3://my-bucket/prefix#part",
    "s3://Not_A_Bucket/prefix",
    "s3://my-bucket/a//b",
    "s3://my-bucket/a/../b",
]


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("boto3")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "another-secret-key")


@pytest.mark.parametrize("url", _BAD_S3_URLS)
def test_a_malformed_test_s3_url_is_refused_without_echoing_it(aws_environment: None, url: str) -> None:
    """The value was split by ``urlsplit`` and used as it came: credentials became the bucket's name (shown in
    the ``External`` of every traceback, then refused deep in botocore: "Invalid bucket name"), an
    ``http://`` endpoint's host became the bucket, a query or a legacy bucket reached the server."""
    with pytest.raises(InvalidInput, match=r"^\$MUSICSTORE_TEST_S3_URL") as caught:
        _seaweed.External.from_environment(url)
    assert _SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("AWS_ENDPOINT_URL", f"http://user:{_SECRET}@not a host"), ("AWS_REGION", "no such region!")],
)
def test_a_malformed_endpoint_or_region_beside_the_test_s3_url_is_refused(
    aws_environment: None, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(StorageError, match=r"^\$MUSICSTORE_TEST_S3_URL") as caught:
        _seaweed.External.from_environment("s3://my-bucket/prefix")
    assert _SECRET not in str(caught.value)


def test_a_good_test_s3_url_names_its_bucket_and_prefix(aws_environment: None) -> None:
    server = _seaweed.External.from_environment("s3://my-bucket/some/prefix")
    assert (server.bucket, server.prefix, server.endpoint_url) == (
        "my-bucket",
        "some/prefix/",
        "http://127.0.0.1:9",
    )
    assert _seaweed.External.from_environment("S3://my-bucket").prefix == ""


def test_the_endpoints_password_is_masked_in_the_servers_repr(
    aws_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing test's traceback shows the fixture's value (``musicstore_s3_server = External(...)``)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://user:{_SECRET}@127.0.0.1:9")
    server = _seaweed.External.from_environment("s3://my-bucket/prefix")
    assert server.endpoint_url == f"http://user:{_SECRET}@127.0.0.1:9"
    assert _SECRET not in repr(server) and "my-bucket" in repr(server)


def test_the_fixture_fails_with_the_reason_alone(aws_environment: None, tmp_path: Path) -> None:
    """A test using the S3 fixtures under a malformed value errs at setup with the reason, never the value
    (``-l`` shows a traceback's locals: the fixture's ``external`` held it)."""
    (tmp_path / "test_user.py").write_text(
        "def test_put(musicstore_s3_files):\n    musicstore_s3_files.put('a', b'x')\n"
    )
    env = {**os.environ, "MUSICSTORE_TEST_S3_URL": f"s3://AKIAEXAMPLE:{_SECRET}@my-bucket/p"}
    command = [sys.executable, "-m", "pytest", "-q", "-l", "-p", "no:randomly", "-p", "no:cacheprovider"]
    command += ["--rootdir", str(tmp_path), str(tmp_path / "test_user.py")]
    done = subprocess.run(
        command, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert "ERROR at setup of test_put" in output and "an s3:// URL takes no credentials" in output
    assert _SECRET not in output and "botocore" not in output


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"postgresql://admin:{_SECRET}@127.0.0.1:1/postgres", "Connection refused"),  # nothing listens
        (f"postgresql://admin:{_SECRET}@127.0.0.1:99999/postgres", "is not a number from 0 to 65535"),
        (f"mysql://admin:{_SECRET}@127.0.0.1/postgres", "unsupported database URL"),
        ("sqlite:///an/admin.db", "must be a postgresql:// URL"),
    ],
    ids=["unreachable", "bad-port", "another-database", "sqlite"],
)
def test_the_postgres_fixture_fails_without_the_admin_urls_password(
    tmp_path: Path, url: str, reason: str
) -> None:
    """A ``$MUSICSTORE_TEST_POSTGRES_URL`` that cannot serve erred at setup with psycopg's traceback, whose
    frames show their arguments: ``conninfo = 'user=admin password=...'``, the password in every CI log."""
    pytest.importorskip("psycopg")
    (tmp_path / "test_user.py").write_text("def test_db(musicstore_postgres_url):\n    pass\n")
    env = {**os.environ, "MUSICSTORE_TEST_POSTGRES_URL": url}
    command = [sys.executable, "-m", "pytest", "-q", "-l", "-p", "no:randomly", "-p", "no:cacheprovider"]
    command += ["--rootdir", str(tmp_path), str(tmp_path / "test_user.py")]
    done = subprocess.run(
        command, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert "ERROR at setup of test_db" in output and "$MUSICSTORE_TEST_POSTGRES_URL" in output, output[-3000:]
    assert reason in output and _SECRET not in output, output[-3000:]


def test_the_postgres_admin_urls_password_is_masked_in_the_servers_repr() -> None:
    server = _pgserver.External(f"postgresql://admin:{_SECRET}@db.example:5432/postgres?sslmode=require")
    assert _SECRET not in repr(server) and "db.example" in repr(server)
    assert server.url("x") == f"postgresql://admin:{_SECRET}@db.example:5432/x?sslmode=require"


# --- the browser: out of the terminal's Ctrl-C, ended by quit() and by the next start after a kill ----------


@pytest.fixture
def browser_here() -> None:
    reason = _browser.browser_missing()
    if reason:
        plugin.unavailable("browser", "MUSICSTORE_TEST_BROWSER", reason)


def _theirs(folder: str) -> list[int]:
    """The processes carrying the browser folder's name (chromedriver, Chromium, its crash handlers)."""
    mark = f"\0{_browser._MARK}={folder}\0"
    return [pid for pid, _, environ in _browser._processes() if mark in f"\0{environ}\0"]


def _wait_gone(pids: list[int], seconds: float = 30.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while True:
        left = [pid for pid in pids if _running(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


_BROWSER_CHILD = textwrap.dedent(
    """
    import sys, time
    from musicstore.testing._browser import start_browser

    driver = start_browser()
    try:  # the interrupt may come as soon as the line is out
        print("ready", driver.service.process.pid, getattr(driver, "musicstore_folder", "-"), flush=True)
        time.sleep(120)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    driver.get("data:text/html,<title>after the interrupt</title>")
    print("title", driver.title, flush=True)
    driver.quit()
    print("quit", flush=True)
    """
)


def _start_child(tmp_path: Path) -> tuple[subprocess.Popen[str], list[str]]:
    """A test run of its own (its own process group, as a terminal's foreground job) with a browser."""
    script = tmp_path / "child.py"
    script.write_text(_BROWSER_CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline().split()
    if not line or line[0] != "ready":
        child.kill()
        pytest.fail(f"the browser did not start: {line} {child.communicate(timeout=60)[0][-3000:]}")
    return child, line


def test_a_ctrl_c_leaves_the_browser_to_the_teardown(browser_here: None, tmp_path: Path) -> None:
    """chromedriver ran in the test run's process group: a terminal's Ctrl-C killed it with the tests, and
    the teardown's ``quit()`` (or any use of the driver before it) failed ("Connection reset by peer")."""
    child, (_, driver_pid, folder) = _start_child(tmp_path)
    try:
        assert os.getpgid(int(driver_pid)) != child.pid
        os.killpg(child.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: its foreground group
        output = child.communicate(timeout=120)[0]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, output[-3000:]
    assert "title after the interrupt" in output and "quit" in output
    assert not Path(folder).exists() and _wait_gone(_theirs(folder)) == []


def test_quit_ends_every_process_of_the_browser_and_removes_its_folder(browser_here: None) -> None:
    """Chromium's profile and sockets went to /tmp (an ``org.chromium.Chromium.*`` folder left per run)."""
    driver = _browser.start_browser()
    folder = str(driver.musicstore_folder)
    try:
        started = _theirs(folder)
        assert int(driver.service.process.pid) in started and len(started) >= 2
        driver.get("data:text/html,<title>t</title>")
        made = [path.name for path in Path(folder).iterdir()]
        assert any(name.startswith(".org.chromium") or name.startswith("org.chromium") for name in made), made
    finally:
        driver.quit()
    assert not Path(folder).exists()
    assert _wait_gone(started) == []


def test_the_browser_of_a_killed_run_is_ended_by_the_next_start(browser_here: None, tmp_path: Path) -> None:
    """A run killed before its teardown (SIGKILL, a CI timeout) left chromedriver and Chromium running,
    forever (Chromium outlives its driver)."""
    child, (_, driver_pid, folder) = _start_child(tmp_path)
    left = _theirs(folder)
    assert int(driver_pid) in left
    child.kill()
    child.wait()
    assert _wait_gone([int(driver_pid)]) == []  # dies with the run
    driver = _browser.start_browser()  # sweeps first
    try:
        assert _wait_gone(left) == [] and not Path(folder).exists()
    finally:
        driver.quit()


# --- generations(): the queue's columns are drawn too ----------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "shape"),
    [
        ("pending", lambda row: row.priority not in (0, -10, -1, 1, 10, 100)),
        ("pending", lambda row: row.owner_key in ms.OWNER_KEYS),
        ("pending", lambda row: row.owner_key is not None and row.owner_key not in ms.OWNER_KEYS),
        ("pending", lambda row: row.idempotency_key is not None),
        ("pending", lambda row: row.run_after is not None and row.run_after > row.created_at),
        ("completed", lambda row: row.run_after is not None and row.progress == 1.0),
        ("processing", lambda row: row.progress is not None and row.stage in ms.STAGES),
        ("failed", lambda row: row.progress is not None and row.stage is None),
    ],
    ids=[
        "priority",
        "a-known-owner",
        "any-owner",
        "idempotency-key",
        "deferred",
        "claimed-after-its-run-after-and-done",
        "running-with-progress",
        "failed-with-progress",
    ],
)
def test_generations_draw_the_queue_columns(statuses: str, shape: Callable[[Generation], bool]) -> None:
    """Every drawn row had priority 0, no owner key, no idempotency key, no run_after and no progress: code
    reading queue rows (the dashboard, a fairness check, a queue's exporter) was never tested on them."""
    row = example(ms.generations(statuses=statuses), shape, 1000)
    assert shape(row)


@settings(max_examples=300, deadline=None, database=None)
@given(row=ms.generations())
def test_drawn_queue_and_progress_columns_agree_with_the_status_machine(row: Generation) -> None:
    assert -32_768 <= row.priority <= 32_767
    assert row.owner_key is None or (1 <= len(row.owner_key) <= 200 and row.owner_key.strip())
    assert row.idempotency_key is None or (
        row.idempotency_key.endswith(row.id) and len(row.idempotency_key) <= 200
    )
    # a requeued row (pending again, or cancelled since: no worker) keeps its last claim's start, and its
    # run_after may be a backoff after it
    claimed = row.status is not Status.PENDING and row.worker_id is not None
    if claimed and row.started_at is not None and row.run_after is not None:
        assert row.created_at <= row.run_after <= row.started_at  # claimed once due
    if row.progress is None:
        assert row.stage is None and row.progress_at is None
    else:  # written while it ran: a requeued (pending) row's progress was cleared
        assert claimed and row.started_at is not None and row.progress_at is not None
        assert 0 <= row.progress <= 1 and (row.stage is None or 1 <= len(row.stage) <= 64)
        end = row.completed_at or row.lease_expires_at
        assert end is not None and row.started_at <= row.progress_at <= end


def test_generations_narrow_the_owner_keys() -> None:
    row = example(
        ms.generations(owner_keys=["tenant-a", "tenant-b"]), lambda row: row.owner_key is not None, 200
    )
    assert row.owner_key in ("tenant-a", "tenant-b")
    assert (
        example(ms.generations(owner_keys="solo"), lambda row: row.owner_key is not None, 100).owner_key
        == "solo"
    )
    for bad in ([], [""], ["x" * 201], [None], 7):
        with pytest.raises(InvalidInput, match="owner_keys"):
            ms.generations(owner_keys=bad)  # type: ignore[arg-type]


_AT = datetime(2026, 1, 1, tzinfo=UTC)
"""A moment among the drawn rows' (2025-2026): some pending rows wait for their run_after then."""


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(ms.generations(), min_size=1, max_size=8, unique_by=lambda row: row.id))
def test_drawn_queues_import_and_are_claimed_on_both_backends(db_url: str, rows: list[Generation]) -> None:
    """Rows drawn together pass both schemas (the idempotency keys' unique index, the owner lanes' triggers)
    and read back equal; the queue's figures are theirs and every due pending row is claimed."""
    clock = FakeClock(_AT)
    with Store(db_url, clock=clock) as store:
        store.reset_database(confirm="delete everything")
        texts = {row.prompt: sum(1 for other in rows if other.prompt == row.prompt) for row in rows}
        prompts = [Prompt(0, text, used, _AT, _AT) for text, used in texts.items()]
        assert store.run(import_rows, prompts, rows) == len(rows)
        for row in rows:
            assert store.get_generation(row.id) == row
        pending = [row for row in rows if row.status is Status.PENDING]
        depth = store.queue_depth()
        levels = {
            (level.owner_key, level.priority): (level.pending, level.deferred) for level in depth.levels
        }
        expected: dict[tuple[str | None, int], tuple[int, int]] = {}
        for row in pending:
            count, deferred = expected.get((row.owner_key, row.priority), (0, 0))
            waits = row.run_after is not None and row.run_after > _AT
            expected[row.owner_key, row.priority] = (count + 1, deferred + waits)
        assert levels == expected
        running = [row.owner_key for row in rows if row.status is Status.PROCESSING]
        assert depth.running == {key: running.count(key) for key in set(running)}
        clock.advance(timedelta(days=3_650))  # every run_after passed
        claimed = []
        while (job := store.claim_next("gpu-9", lease_seconds=60)) is not None:
            claimed.append(job.id)
        assert sorted(claimed) == sorted(row.id for row in pending)


# --- the dashboard's footer: the time of its figures, by the store's clock ---------------------------------


def test_the_dashboards_footer_shows_the_stores_clock_as_its_figures(sqlite_url: str, tmp_path: Path) -> None:
    """The footer showed the wall clock (``datetime.now``) while the figures are read against the store's
    clock (the overview's 24 hours, the prompts' windows, the workers' leases): under any other clock (a
    fake one in a test or a demo, a replay) the page said it was read at a time its figures were not."""
    from starlette.testclient import TestClient

    from musicstore.web import create_app

    clock = FakeClock(datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC))
    with Store(sqlite_url, clock=clock) as store:
        job = store.create_generation("a footer", model_name="m", duration_seconds=1)
        store.claim_next("gpu-0", lease_seconds=60)
        with TestClient(create_app(store, root=tmp_path)) as client:
            for path in ("/", "/generations", f"/generations/{job.id}", "/prompts", "/workers", "/nowhere"):
                page = client.get(path)
                assert page.status_code == (404 if path == "/nowhere" else 200), path
                assert "<footer>read-only · 2031-02-03 04:05:06 UTC</footer>" in page.text, path
            clock.advance(3_600)
            assert "2031-02-03 05:05:06 UTC</footer>" in client.get("/workers").text


def test_a_failing_clock_still_lets_a_page_say_why(sqlite_url: str, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from musicstore.web import create_app

    def broken() -> datetime:
        return datetime(2031, 1, 1)  # naive: refused by every operation that reads the clock

    store = Store(sqlite_url, clock=broken)
    with store, TestClient(create_app(store, root=tmp_path), raise_server_exceptions=False) as client:
        assert client.get("/generations").status_code == 200
        overview = client.get("/")
        assert overview.status_code in (400, 500) and "<footer>read-only" in overview.text
