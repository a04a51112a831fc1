"""Regressions found by the secrets hunt.

- botocore's and urllib3's log records (DEBUG: each request's headers, the endpoint, the canonical request
  of a signature) are masked as psycopg's and yoyo's are: an S3 session token and a password in the
  endpoint URL's userinfo were shown to any application logging at DEBUG.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import pytest

from musicstore.filestore import open_filestore


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
