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
from pathlib import Path

import pytest

from musicstore import InvalidInput, StorageError
from musicstore.testing import _browser, _seaweed, plugin

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


def _wait_gone(pids: list[int], seconds: float = 10.0) -> list[int]:
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
