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
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from musicstore import DatabaseError, Store, masking
from musicstore.filestore import open_filestore
from musicstore.masking import S3_LOGGERS, mask_logs, redact, register_secret
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


class _RootRecords(logging.Handler):
    """What an application logging at DEBUG from the root sees: each record, formatted (traceback too)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.texts: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append((record.name, self.format(record)))


@pytest.fixture
def root_records() -> Iterator[_RootRecords]:
    handler, root = _RootRecords(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_s3_log_records_of_loggers_made_after_the_store_are_masked(
    musicstore_s3_server: Any, musicstore_s3_url: str, root_records: _RootRecords
) -> None:
    """``mask_logs`` filtered only the loggers that existed when the store was made (a logger's filter sees
    only its own records): one botocore, boto3, s3transfer or urllib3 makes later (a module they import on
    demand: ``s3transfer.processpool``, ``s3transfer.crt``, ``boto3.crt``, ``urllib3.contrib.pyopenssl``,
    ``urllib3.http2.connection``; or a newer release's) passed the secret key, the session token and a
    presigned URL's token to the root's handlers as they were logged."""
    server = musicstore_s3_server
    token = f"tok{secrets.token_hex(12)}"
    files = open_filestore(musicstore_s3_url, **{**server.options, "session_token": token})
    later = secrets.token_hex(4)
    try:
        try:  # SeaweedFS refuses the token: a denial, logged all the same
            files.put("a/b.wav", b"RIFF")
            b"".join(files.get("a/b.wav"))
            files.delete("a/b.wav")
        except Exception as exc:
            logging.getLogger("test").debug("raised: %s", exc)
        url = files.presigned_url("a/b.wav")
        assert token in url  # the caller asked for it: returned as it is, its token in it
        headers = {"X-Amz-Security-Token": token, "secret": server.secret_access_key}
        for prefix in S3_LOGGERS:  # made after the store, as a module imported on demand makes its logger
            made = logging.getLogger(f"{prefix}.later{later}")
            made.debug("Sending http request: %s", headers)
            made.debug("presigned %s", url)
            try:
                raise RuntimeError(f"request to {url} failed")
            except RuntimeError:
                made.debug("Exception received when sending HTTP request.", exc_info=True)
    finally:
        files.close()
    assert {f"{prefix}.later{later}" for prefix in S3_LOGGERS} <= {name for name, _ in root_records.texts}
    assert any(name.startswith("botocore.") for name, _ in root_records.texts)
    hidden = [token, server.secret_access_key]
    shown = [(name, text[:160]) for secret in hidden for name, text in root_records.texts if secret in text]
    assert not shown


@settings(max_examples=40, deadline=None)
@given(
    prefix=st.sampled_from(S3_LOGGERS),
    path=st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), min_size=1, max_size=3),
    text=st.text(
        st.characters(
            codec="utf-8", exclude_categories=("Cs", "Cc", "Z"), exclude_characters="@:/?#&=%'\";\\"
        ),
        min_size=6,
        max_size=30,
    ),
)
def test_a_record_of_any_s3_logger_made_after_masking_reaches_the_root_masked(
    prefix: str, path: list[str], text: str
) -> None:
    secret = f"zq{text}"  # one piece (no character URL parsers split on): nothing shorter is masked after it
    before = set(masking._secrets)
    try:
        _logged_masked(prefix, path, secret)
    finally:
        with masking._lock:  # no other test's message is masked by this one's secrets
            masking._secrets.intersection_update(before)


def _logged_masked(prefix: str, path: list[str], secret: str) -> None:
    register_secret(secret)
    mask_logs(*S3_LOGGERS)  # what each S3 store made does
    made = logging.getLogger(".".join([prefix, "later", *path]))  # made after it, whatever its name
    handler, root = _RootRecords(), logging.getLogger()
    level, root.level = root.level, logging.DEBUG
    root.addHandler(handler)
    try:
        made.debug("headers: %r", {"X-Amz-Security-Token": secret})
        made.warning("as is: " + secret.replace("%", "%%"))
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert len(handler.texts) == 2
    assert not [text for _, text in handler.texts if secret in text or repr(secret)[1:-1] in text]
