"""Regressions found by the secrets hunt.

- botocore's and urllib3's log records (DEBUG: each request's headers, the endpoint, the canonical request
  of a signature) are masked as psycopg's and yoyo's are: an S3 session token and a password in the
  endpoint URL's userinfo were shown to any application logging at DEBUG.
- A job's error message and cancel reason are stored with the known secrets masked, and the worker's log of
  a handler's error (its traceback too) is masked: a handler's exception quoting a presigned URL (its session
  token) or a database URL's password was kept on the row for the dashboard and ``show`` to display, and
  logged by ``musicstore.worker`` as it was.
- A password parameter whose name is percent-encoded (``pass%77ord=``, ``ssl%70assword=``), which libpq
  decodes and uses, is masked: it was shown as given by ``DatabaseURL.masked``, ``repr(store)`` and every
  message quoting the URL.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict

from musicstore import DatabaseError, Store
from musicstore.filestore import open_filestore
from musicstore.masking import redact, register_secret
from musicstore.urls import resolve
from musicstore.worker import MAX_ERROR_CHARS, Job, Worker, WorkerReport
from tests.conftest import new_job


def test_botocore_debug_logs_show_no_s3_secret(
    musicstore_s3_server: Any, musicstore_s3_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = musicstore_s3_server
    token = f"tok{secrets.token_hex(12)}"
    password = f"pw{secrets.token_hex(12)}"
    scheme, _, rest = server.endpoint_url.partition("://")
    hidden = [token, password, server.secret_access_key]
    with caplog.at_level(logging.DEBUG):
        for options in (
            {**server.options, "session_token": token},  # SeaweedFS refuses it: denied, logged all the same
            {**server.options, "endpoint_url": f"{scheme}://user:{password}@{rest}"},
        ):
            files = open_filestore(musicstore_s3_url, **options)
            try:
                try:
                    files.put("a/b.wav", b"RIFF")
                    files.head("a/b.wav")
                    b"".join(files.get("a/b.wav"))
                    list(files.list())
                    files.delete("a/b.wav")
                except Exception as exc:  # a denial: its message is checked as the logs are
                    logging.getLogger("test").debug("raised: %s", exc)
                files.presigned_url("a/b.wav")  # returned to the caller, who asked for it; never logged
            finally:
                files.close()
    texts = [record.getMessage() for record in caplog.records]
    assert any(record.name.startswith("botocore") for record in caplog.records)
    shown = [(secret, text[:200]) for secret in hidden for text in texts if secret in text]
    assert not shown


def test_a_secret_in_a_handlers_error_is_masked_on_the_row_and_in_the_log(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = f"tok{secrets.token_hex(12)}"
    register_secret(token)  # as S3FileStore registers its session token
    quoted = f"GET https://bucket.example/a.wav?X-Amz-Security-Token={token} failed"

    def handler(job: Job) -> None:
        raise RuntimeError(quoted)

    with Store(db_url) as store:
        job = new_job(store)
        with caplog.at_level(logging.DEBUG):
            assert Worker(store, "gpu-0", handler).run(max_jobs=1) == WorkerReport(failed=1)
        failed = store.get_generation(job.id)
        assert failed is not None and failed.error_message is not None
        assert token not in failed.error_message and "X-Amz-Security-Token=***" in failed.error_message
        assert token not in caplog.text and "X-Amz-Security-Token=***" in caplog.text
        other = new_job(store, "another prompt")
        store.cancel(other.id, f"the user gave up: {quoted}")
        cancelled = store.get_generation(other.id)
        assert cancelled is not None and token not in str(cancelled.error_message)


@pytest.mark.parametrize("name", ["pass%77ord", "ssl%70assword", "%70%61%73%73%77%6F%72%64", "PASS%57ORD"])
def test_a_password_parameter_with_an_encoded_name_is_masked(
    name: str,
) -> None:
    secret = f"pw{secrets.token_hex(10)}"
    url = f"postgresql://someone@127.0.0.1:1/db?connect_timeout=1&{name}={secret}&sslmode=disable"
    if name.lower() == "pass%77ord":
        assert conninfo_to_dict(url)["password"] == secret  # what libpq reads
    resolved = resolve(url)
    assert secret not in resolved.masked and secret not in repr(resolved)
    with pytest.raises(DatabaseError) as raised:
        Store(url, busy_timeout=0.3)
    assert secret not in str(raised.value) and secret not in redact(f"quoted: {url}")


@pytest.mark.parametrize("cut", [1, 5, 23])
def test_a_secret_the_error_messages_length_cuts_through_is_not_kept_in_part(
    db_url: str, cut: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker masks a handler's message before cutting it to ``MAX_ERROR_CHARS``: cut first, a secret
    straddling the cut left its first characters in the worker's log line, no longer the whole secret that
    masking finds."""
    token = f"tok{secrets.token_hex(12)}"
    register_secret(token)
    prefix = "RuntimeError: "
    message = "x" * (MAX_ERROR_CHARS - len(prefix) - cut) + token + " after"

    def handler(job: Job) -> None:
        raise RuntimeError(message)

    with Store(db_url) as store:
        job = new_job(store)
        with caplog.at_level(logging.ERROR, "musicstore.worker"):
            assert Worker(store, "gpu-0", handler).run(max_jobs=1) == WorkerReport(failed=1)
        failed = store.get_generation(job.id)
        assert failed is not None and failed.error_message is not None
        assert len(failed.error_message) <= MAX_ERROR_CHARS
        shown = [failed.error_message, *(record.getMessage() for record in caplog.records)]
        assert shown[1:] and not [text for text in shown if "x" + token[:cut] in text]
