"""Acceptance-style probes of the dashboard (issue 16), from outside: its public API over real servers.

- ``HEAD /audio/{id}`` of a master in a bucket redirects to a URL that answers a ``HEAD`` (a presigned GET URL
  answered it 403: S3 signs the method), and a ``GET`` still to one that streams it with Range support;
  ``presigned_url(method=)`` takes GET or HEAD only.
- The wheel carries the templates and assets, and no page links outside the app (it works offline).
- ``/metrics`` for an ``Accept`` with a malformed version is the text format, not a 500.
- Hostile query strings (NUL, non-UTF-8, huge or negative numbers, full-width digits) are a 400 with its
  reason on both backends; unknown or empty parameters are ignored.
"""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.request
import zipfile
from email.message import Message
from pathlib import Path

import pytest

pytest.importorskip("starlette")

from starlette.testclient import TestClient

from musicstore import Store
from musicstore.errors import InvalidInput
from musicstore.filestore import AsyncFileStore, FileStore, LocalFileStore
from musicstore.recording import export_generation
from musicstore.web import create_app
from tests.test_packaging import wheel  # noqa: F401  (the wheel of this tree, built once)
from tests.test_web import _audio, populate


def _fetch(method: str, url: str, headers: dict[str, str] | None = None) -> tuple[int, Message, bytes]:
    """``method`` on ``url`` (no redirect to follow): its status, headers and body."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_head_of_audio_in_a_bucket_redirects_to_a_url_that_answers_head(
    sqlite_url: str, musicstore_s3_files: FileStore
) -> None:
    with Store(sqlite_url) as store:
        store.create_generation("lofi", model_name="m", duration_seconds=1, sample_rate=32_000, channels=1)
        claimed = store.claim_next("gpu-0", lease_seconds=300)
        assert claimed is not None
        done = export_generation(store, claimed, _audio(1.0, 0)[:1], root=musicstore_s3_files).generation
        with TestClient(create_app(store)) as client:
            head = client.head(f"/audio/{claimed.id}", follow_redirects=False)
            get = client.get(f"/audio/{claimed.id}", follow_redirects=False)
    assert head.status_code == get.status_code == 307
    status, headers, body = _fetch("HEAD", head.headers["location"])
    assert (status, headers["Content-Type"], body) == (200, "audio/wav", b"")
    assert int(headers["Content-Length"]) == done.file_size_bytes
    status, headers, body = _fetch("GET", get.headers["location"], {"Range": "bytes=0-9"})
    assert (status, headers["Content-Type"], headers["Content-Range"], body[:4]) == (
        206,
        "audio/wav",
        f"bytes 0-9/{done.file_size_bytes}",
        b"RIFF",
    )


def test_a_presigned_url_is_for_get_or_head_only(musicstore_s3_files: FileStore, tmp_path: Path) -> None:
    folder = LocalFileStore(tmp_path)
    try:
        assert folder.presigned_url("a.wav", method="HEAD") == folder.presigned_url("a.wav")
        for files in (folder, musicstore_s3_files):
            for method in ("POST", "PUT", "DELETE", "get", ""):
                with pytest.raises(InvalidInput, match="must be 'GET' or 'HEAD'"):
                    files.presigned_url("a.wav", method=method)
        musicstore_s3_files.put("a.wav", b"0123456789")
        signed = asyncio.run(AsyncFileStore(musicstore_s3_files).presigned_url("a.wav", method="HEAD"))
        status, headers, _ = _fetch("HEAD", signed)
        assert (status, headers["Content-Length"]) == (200, "10")
    finally:
        folder.close()


@pytest.mark.slow
def test_the_wheel_carries_the_dashboards_templates_and_assets(wheel: Path) -> None:  # noqa: F811
    package = Path(__file__).resolve().parent.parent / "musicstore" / "web"
    shipped = sorted(
        f"musicstore/web/{path.relative_to(package).as_posix()}"
        for folder in ("static", "templates")
        for path in (package / folder).iterdir()
    )
    assert any(name.endswith("app.js") for name in shipped) and len(shipped) > 3
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert [name for name in shipped if name not in names] == []
        assert archive.read("musicstore/web/static/app.js") == (package / "static" / "app.js").read_bytes()


_LINK = re.compile(r"""(?:src|href|action)="([^"]*)\"""")


def test_every_page_links_only_to_the_dashboard_itself(tmp_path: Path, sqlite_url: str) -> None:
    """Works offline: every src, href and form action of every page stays on the app (no CDN, no font)."""
    with Store(sqlite_url) as store:
        data = populate(store, tmp_path / "audio")
        with TestClient(create_app(store, root=data.root)) as client:
            paths = ["/", "/generations", "/prompts", "/workers", f"/generations/{data.completed[1]}"]
            pages = {path: client.get(path) for path in paths}
            script = client.get("/static/app.js").text
            style = client.get("/static/style.css").text
    for path, page in pages.items():
        assert page.status_code == 200, path
        links = _LINK.findall(page.text)
        assert links and [link for link in links if not link.startswith(("/", "?", "#", "data:"))] == [], path
        assert [link for link in links if link.startswith("//")] == [], path  # another host
    assert "http://" not in script and "https://" not in script and "import(" not in script
    assert "@import" not in style and "url(" not in style.replace("url(data:", "")


@pytest.mark.parametrize(
    "accept",
    [
        "application/openmetrics-text;version=abc",
        "application/openmetrics-text; version=1.",
        "application/openmetrics-text;version=1.0.x, text/plain;q=0.5",
        "text/plain;version=abc",
    ],
)
def test_metrics_for_an_accept_header_with_a_malformed_version_is_the_text_format(
    sqlite_url: str, accept: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed ``version`` in ``Accept`` (the client's header) was ``500`` "internal error", a TypeError
    logged from prometheus_client's negotiation: it is the text format any other ``Accept`` gets."""
    from prometheus_client.parser import text_string_to_metric_families

    with Store(sqlite_url) as store:
        store.create_generation("lofi", model_name="m", duration_seconds=1)
        with TestClient(create_app(store), raise_server_exceptions=False) as client:
            response = client.get("/metrics", headers={"Accept": accept})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert families["musicstore_queue_depth"].samples[0].value == 1
    assert "Traceback" not in caplog.text and not [r for r in caplog.records if r.levelname == "ERROR"]


HOSTILE_QUERIES = [
    "model=%00", "model=a%00b", "status=%00", "day=%00", "cursor=%00", "q=%00a", "status=%FF%FE",
    "cursor=%F0%9F%98%80", "cursor=LTE6eA", "cursor=" + "A" * 99, "day=99999-01-01", "day=-2024-01-01",
    "day=%2B2024-01-01", "day=0000-01-01", "day=2024-02-30", "limit=-1", "limit=1e3", "limit=5_0",
    "limit=%EF%BC%95", "limit=" + "9" * 5000, "model=" + "m" * 5000, "status=pending&status=bogus",
    "status=%E2%80%AEpending",
]  # fmt: skip


@pytest.mark.parametrize("backend", ["sqlite_url", "postgres_url"])
def test_hostile_query_strings_are_a_400_with_its_reason_and_unknown_ones_are_ignored(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with Store(request.getfixturevalue(backend)) as store:
        populate(store, tmp_path / "audio", renditions=False)
        with TestClient(create_app(store), raise_server_exceptions=False) as client:
            for query in HOSTILE_QUERIES:
                page = client.get(f"/generations?{query}")
                api = client.get(f"/api/generations?{query}")
                assert page.status_code == api.status_code == 400, query
                assert api.json()["status"] == 400 and api.json()["error"], query
                assert "<script" not in page.text.split("</head>")[1], query
            plain = client.get("/api/generations").json()
            for query in ("foo=bar", "q[]=a", "limit[]=9", "%FF=%FE", "status=", "model=&day=&q=&cursor="):
                assert client.get(f"/api/generations?{query}").json() == plain, query
                assert client.get(f"/generations?{query}").status_code == 200, query
