"""musicstore.testing and the dashboard as a user's project meets them (session 25): a malformed
``$MUSICSTORE_TEST_S3_URL``, the browser's processes on a Ctrl-C and after a killed run, the queue's columns
in ``generations()``' rows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from musicstore import InvalidInput, StorageError
from musicstore.testing import _seaweed

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
