"""Dashboard fixes (session 23): pages under a clock in the first days of the year 1, a local master whose
header records no length, and Range headers the server must ignore."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("starlette")
pytest.importorskip("jinja2")
pytest.importorskip("prometheus_client")

from starlette.testclient import TestClient

from musicstore import Store
from musicstore.testing import FakeClock
from musicstore.web import create_app
from tests.test_rendition_hunt_s23 import _streamed_flac


@pytest.fixture(params=["sqlite", "postgres"])
def backend_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.mark.parametrize(
    "path", ["/", "/api/overview", "/prompts", "/api/prompts", "/workers", "/api/workers", "/metrics"]
)
def test_the_pages_under_a_clock_in_the_first_days_of_the_year_1(
    backend_url: str, tmp_path: Path, path: str
) -> None:
    """The overview's 24 hours and 30 days and the prompts' trending day and week reaching back before the
    year 1 count from the calendar's start, as ``read_metrics`` and ``queue_position`` do: the page, not
    an OverflowError (a 500)."""
    clock = FakeClock(datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC))
    with Store(backend_url, clock=clock) as store:
        job = store.create_generation("early", model_name="m", duration_seconds=1)
        assert store.claim_next("gpu-0", lease_seconds=1) is not None
        store.fail(job.id, "boom", retry=False)
        store.create_generation("early", model_name="m", duration_seconds=1)
        with TestClient(create_app(store, root=tmp_path)) as client:
            response = client.get(path)
            assert response.status_code == 200, response.text
            if path == "/api/prompts":
                assert response.json()["trending_day"] == [{"text": "early", "uses": 2}]
            if path == "/api/overview":
                charts = response.json()["charts"]
                assert sum(charts["hours"]["series"][0][1]) == 2  # both created in the first hour
                assert sum(charts["hours"]["series"][2][1]) == 1  # the failure
                days = dict(zip(charts["days"]["labels"], charts["days"]["series"][0][1], strict=True))
                assert days["0001-01-01"] == 2 and sum(days.values()) == 2


def test_the_waveform_of_a_flac_master_whose_header_does_not_say_its_length(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """libsndfile gives a FLAC whose header does not say its length (written to a pipe) 2**63 - 1 frames:
    the peaks asked ``file_peaks`` for 2**63 / 1000 samples per pixel and answered 400 'samples_per_pixel
    must be an integer in 1-1048576', a parameter no request gave. It is a file that cannot be read as audio:
    no waveform (404, the reason logged), the page and the audio still served."""
    with Store(sqlite_url) as store:
        store.create_generation("streamed", model_name="m", duration_seconds=1)
        job = store.claim_next("gpu-0")
        assert job is not None
        path = tmp_path / f"{job.id}.flac"
        path.write_bytes(_streamed_flac(100_000))
        store.complete_generation(job.id, file_path=path.name, file_size_bytes=path.stat().st_size)
        with TestClient(create_app(store, root=tmp_path)) as client:
            peaks = client.get(f"/api/generations/{job.id}/peaks")
            assert peaks.status_code == 404, peaks.text
            assert peaks.json()["error"] == "no waveform: the audio file cannot be read as audio"
            assert "does not say how many frames" in caplog.text
            assert client.get(f"/generations/{job.id}").status_code == 200
            assert client.get(f"/audio/{job.id}").status_code == 200


@pytest.fixture(scope="module")
def audio_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str, bytes]]:
    """A client of an app serving one completed generation's local file of 1,000 bytes: its id and bytes."""
    root = tmp_path_factory.mktemp("ranges")
    with Store(f"sqlite:///{root / 'db.sqlite'}", migrate=True) as store:
        store.create_generation("ranges", model_name="m", duration_seconds=1)
        job = store.claim_next("gpu-0")
        assert job is not None
        body = bytes(range(256)) * 3 + bytes(232)
        (root / f"{job.id}.wav").write_bytes(body)
        store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=len(body))
        with TestClient(create_app(store, root=root)) as client:
            yield client, job.id, body


@pytest.mark.parametrize(
    "header",
    [
        "items=0-9",
        "0-9",
        "bytes 0-9",
        "bytes=",
        "bytes=abc",
        "bytes=5",
        "bytes=-",
        "bytes=9-0",
        "bytes=0-9,x",
        "bytes=0-" + "9" * 5000,
    ],
    ids=lambda header: header[:20],
)
def test_a_range_of_an_unknown_unit_or_invalid_syntax_is_ignored(
    audio_site: tuple[TestClient, str, bytes], header: str
) -> None:
    """RFC 9110 (14.2): a server MUST ignore a Range of a unit it does not know, and may ignore one whose
    ranges are invalid: the whole file with 200. Starlette's FileResponse answered 400 ('Only support bytes
    range', 'Malformed range header') and a player asking so got no audio."""
    client, gid, body = audio_site
    for method in ("GET", "HEAD"):
        response = client.request(method, f"/audio/{gid}", headers={"Range": header})
        assert response.status_code == 200, (method, response.text)
        assert response.headers["content-length"] == str(len(body))
        assert "content-range" not in response.headers
        assert response.content == (body if method == "GET" else b"")


@pytest.mark.parametrize(
    ("header", "status", "part"),
    [
        ("bytes=100-199", 206, slice(100, 200)),
        ("BYTES = 0-9", 206, slice(0, 10)),
        ("bytes=-10", 206, slice(990, 1000)),
        ("bytes=990-", 206, slice(990, 1000)),
        ("bytes=0-0, 500-", 206, None),
        ("bytes=1000-", 416, None),
        ("bytes=-0", 416, None),
        ("bytes=" + "9" * 30 + "-", 416, None),
    ],
)
def test_a_valid_bytes_range_is_served_or_unsatisfiable(
    audio_site: tuple[TestClient, str, bytes], header: str, status: int, part: slice | None
) -> None:
    client, gid, body = audio_site
    response = client.get(f"/audio/{gid}", headers={"Range": header})
    assert response.status_code == status, response.text
    if status == 416:
        assert response.headers["content-range"] == f"bytes */{len(body)}"
    if part is not None:
        assert response.content == body[part]


@settings(max_examples=200, deadline=None)
@given(header=st.text(st.sampled_from("bytes=items0123456789-, "), max_size=20))
def test_any_range_header_is_whole_part_or_unsatisfiable(
    audio_site: tuple[TestClient, str, bytes], header: str
) -> None:
    """Whatever a Range says: 200 with the whole file, 206 with parts of it, or 416; never a 400."""
    client, gid, body = audio_site
    response = client.get(f"/audio/{gid}", headers={"Range": header})
    assert response.status_code in (200, 206, 416), (header, response.text)
    if response.status_code == 200:
        assert response.content == body
    if response.status_code == 206 and "content-range" in response.headers:
        first, last = map(int, response.headers["content-range"].split()[1].split("/")[0].split("-"))
        assert response.content == body[first : last + 1]
