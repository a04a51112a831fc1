"""Regressions found by a hunt over delivery and object storage (session 26): real SeaweedFS, no mocks."""

from __future__ import annotations

import urllib.request

import pytest

from musicstore.filestore import open_filestore

SECRET = "Sw0rdfish-proxy-pass"


def test_a_presigned_url_carries_no_credentials_of_the_endpoint_url_and_fetches_the_file(
    musicstore_s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``AWS_ENDPOINT_URL=http://user:SECRET@host`` (credentials of a proxy in front of the store): botocore
    copied the userinfo into every presigned URL, the URL listeners are handed and the dashboard's 307
    sends, password and all (urllib could not even fetch it: it took ``user:SECRET@host`` for a host)."""
    import os

    endpoint = os.environ["AWS_ENDPOINT_URL"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint.replace("://", f"://user:{SECRET}@", 1))
    with open_filestore(musicstore_s3_url) as files:
        files.put("2026/01/31/a b.wav", b"RIFF listen")
        url = files.presigned_url("2026/01/31/a b.wav", expires=60)
    assert SECRET not in url and "user" not in url.partition("?")[0]
    assert url.startswith(endpoint + "/")
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.read() == b"RIFF listen"
