"""The dashboard over HTTP (starlette's TestClient, in process): pages, the JSON API, audio, /metrics, and its
security: escaping, ids checked before lookup, no path from a URL, the token, GET/HEAD only."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("starlette")
pytest.importorskip("jinja2")
pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from musicstore import Generation, Store
from musicstore.recording import export_generation
from musicstore.web import create_app
from musicstore.web import reads as web_reads

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)> 100% _lofi_ & \"quotes\" 'single'"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Data:
    """What ``populate`` made: ids by role, and the output root."""

    root: Path
    completed: list[str] = field(default_factory=list)
    failed: str = ""
    processing: str = ""
    pending: list[str] = field(default_factory=list)
    hostile: str = ""

    @property
    def all_ids(self) -> list[str]:
        return [*self.completed, self.failed, self.processing, *self.pending]


def _audio(seconds: float, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 32_000)) / 32_000
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    return np.stack([tone, tone]).astype(np.float32) + rng.normal(0, 0.01, (2, t.size)).astype(np.float32)


def populate(store: Store, root: Path, *, renditions: bool = True) -> Data:
    """Three completed generations with audio (the first with the hostile prompt, and a FLAC rendition), one
    failed with a hostile error, one processing, two pending; two models."""
    data = Data(root)
    prompts = [HOSTILE, "lofi hip hop at 90 BPM", "ambient drone in D minor"]
    for i, prompt in enumerate(prompts):
        store.create_generation(
            prompt,
            model_name="musicgen-small" if i % 2 else "musicgen-large",
            duration_seconds=2,
            sample_rate=32_000,
            channels=2,
        )
        claimed = store.claim_next("gpu-0", lease_seconds=300)
        assert claimed is not None
        export_generation(store, claimed, _audio(2.0, i), root=root, generation_time_seconds=3.5 + i)
        data.completed.append(claimed.id)
    data.hostile = data.completed[0]
    store.create_generation(
        "techno at 130 BPM", model_name="musicgen-small", duration_seconds=2, sample_rate=32_000, channels=2
    )
    claimed = store.claim_next("gpu-1", lease_seconds=300)
    assert claimed is not None
    store.fail(claimed.id, HOSTILE, retry=False, worker_id="gpu-1")
    data.failed = claimed.id
    store.create_generation(
        "jazz trio", model_name="musicgen-small", duration_seconds=2, sample_rate=32_000, channels=2
    )
    claimed = store.claim_next("gpu-2", lease_seconds=300)
    assert claimed is not None
    data.processing = claimed.id
    for prompt in ("lofi rain", "lofi hip hop at 90 BPM"):
        data.pending.append(
            store.create_generation(
                prompt, model_name="musicgen-large", duration_seconds=2, sample_rate=32_000, channels=2
            ).id
        )
    if renditions:
        from musicstore.rendering import render_generation

        render_generation(store, data.completed[1], root=root, formats=["flac"])
    return data


@pytest.fixture
def web_store(sqlite_url: str) -> Iterator[Store]:
    with Store(sqlite_url) as store:
        yield store


@pytest.fixture
def data(web_store: Store, tmp_path: Path) -> Data:
    return populate(web_store, tmp_path / "audio")


@pytest.fixture
def client(web_store: Store, data: Data) -> Iterator[TestClient]:
    with TestClient(create_app(web_store, root=data.root)) as c:
        yield c


def test_every_page_and_api_answers(client: TestClient, data: Data) -> None:
    gid = data.completed[1]
    for path in ("/", "/generations", f"/generations/{gid}", "/prompts", "/workers"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in response.headers["content-security-policy"]
    for path in (
        "/api/overview",
        "/api/generations",
        f"/api/generations/{gid}",
        "/api/prompts",
        "/api/workers",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "application/json"
    overview = client.get("/api/overview").json()
    assert overview["by_status"] == {
        "pending": 2,
        "processing": 1,
        "completed": 3,
        "failed": 1,
        "cancelled": 0,
    }
    assert overview["failures"][0]["id"] == data.failed
    assert sum(dict(overview["charts"]["hours"]["series"])["created"]) == 7
    one = client.get(f"/api/generations/{gid}").json()
    assert one["prompt"] == "lofi hip hop at 90 BPM"
    assert [r["format"] for r in one["renditions"]] == ["flac"]
    page = client.get(f"/generations/{gid}").text
    assert f'src="/audio/{gid}"' in page and "flac" in page and "LUFS" in page
    workers = client.get("/api/workers").json()
    assert [w["worker_id"] for w in workers["workers"]] == ["gpu-2"]
    assert client.get("/workers").text.count(data.processing) >= 1


def test_a_hostile_prompt_and_error_are_escaped_everywhere(client: TestClient, data: Data) -> None:
    pages = ["/", "/generations", f"/generations/{data.hostile}", f"/generations/{data.failed}", "/prompts"]
    for path in pages:
        body = client.get(path).text
        assert "<script>alert" not in body and "<img src=x" not in body, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in body, path
    # the JSON API carries the text verbatim, as JSON (never HTML)
    api = client.get(f"/api/generations/{data.hostile}")
    assert api.json()["prompt"] == HOSTILE and api.headers["content-type"] == "application/json"
    # and a search for it finds it, with LIKE's own characters taken literally
    for q in ("<script>", "100%", "_lofi_", '"quotes"'):
        ids = [g["id"] for g in client.get("/api/generations", params={"q": q}).json()["items"]]
        assert ids == [data.hostile], q
    assert client.get("/api/generations", params={"q": "100%_"}).json()["items"] == []


@pytest.mark.parametrize(
    "path",
    [
        "/generations/not-an-id",
        "/generations/01A20180-5E48-7DC6-AFBF-CDF54FB09FCB",  # upper case: not canonical
        "/generations/01a20180-5e48-7dc6-afbf-cdf54fb09fcb",  # canonical, absent
        "/generations/..%2F..%2Fetc%2Fpasswd",
        "/audio/..%2F..%2Fetc%2Fpasswd",
        "/audio/not-an-id",
        "/audio/01a20180-5e48-7dc6-afbf-cdf54fb09fcb",
        "/api/generations/x'%20OR%201=1--",
        "/api/generations/01a20180-5e48-7dc6-afbf-cdf54fb09fcb/peaks",
        "/static/../../pyproject.toml",
        "/static/..%2F__init__.py",
        "/static/app.py",
        "/nowhere",
    ],
)
def test_bad_ids_and_paths_are_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, (path, response.text[:200])
    assert "Traceback" not in response.text


def test_audio_of_an_unfinished_generation_is_404(client: TestClient, data: Data) -> None:
    for gid in (data.pending[0], data.processing, data.failed):
        assert client.get(f"/audio/{gid}").status_code == 404
        assert client.get(f"/api/generations/{gid}/peaks").status_code == 404


def test_bad_filters_are_400(client: TestClient) -> None:
    for params in (
        {"status": "bogus"},
        {"day": "2026-13-01"},
        {"cursor": "AAAA"},
        {"limit": "0"},
        {"q": "x" * 201},
    ):
        assert client.get("/generations", params=params).status_code == 400, params
        assert client.get("/api/generations", params=params).json()["status"] == 400, params


def test_audio_streams_the_file_with_ranges(client: TestClient, data: Data, web_store: Store) -> None:
    gid = data.completed[1]
    generation = web_store.get_generation(gid)
    assert generation is not None and generation.file_path is not None
    on_disk = (data.root / generation.file_path).read_bytes()
    full = client.get(f"/audio/{gid}")
    assert full.status_code == 200 and full.content == on_disk
    assert full.headers["content-type"] == "audio/wav"
    part = client.get(f"/audio/{gid}", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == on_disk[100:200]
    assert client.head(f"/audio/{gid}").status_code == 200


def test_peaks_come_from_the_file(client: TestClient, data: Data) -> None:
    peaks = client.get(f"/api/generations/{data.completed[1]}/peaks").json()
    assert peaks["frames"] == 64_000 and peaks["sample_rate"] == 32_000
    values = peaks["peaks"]
    assert len(values) == 2 * peaks["length"] and 0 < peaks["length"] <= 1000
    assert all(-1 <= v <= 1 for v in values) and max(values) > 0.2


def test_filters_and_keyset_paging(client: TestClient, data: Data) -> None:
    def ids(**params: Any) -> list[str]:
        found, cursor = [], None
        while True:
            page = client.get("/api/generations", params={**params, **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            body = page.json()
            found += [g["id"] for g in body["items"]]
            cursor = body["next_cursor"]
            if cursor is None:
                return found

    newest_first = list(reversed(data.all_ids))
    for limit in (1, 2, 3, 50):
        assert ids(limit=limit) == newest_first, limit
    assert ids(status="completed", limit=2) == list(reversed(data.completed))
    assert ids(model="musicgen-large", limit=1) == [
        g for g in newest_first if g in {data.completed[0], data.completed[2], *data.pending}
    ]
    assert ids(status="pending", model="musicgen-large") == list(reversed(data.pending))
    assert ids(q="LOFI", limit=1) == [data.pending[1], data.pending[0], data.completed[1], data.hostile]
    assert ids(q="lofi", status="completed") == [data.completed[1], data.hostile]
    generation = client.get(f"/api/generations/{data.failed}").json()
    day = generation["created_at"][:10]
    assert ids(day=day) == newest_first
    assert ids(day="2001-01-01") == []


def test_a_text_search_walks_one_window_per_page(
    client: TestClient, data: Data, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a window of 2 rows, pages hold the matches of their window (some empty) and the cursors still
    reach every match, in order."""
    monkeypatch.setattr(web_reads, "SEARCH_WINDOW", 2)
    found, cursor, pages = [], None, 0
    while True:
        params = {"q": "lofi", **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/generations", params=params).json()
        found += [g["id"] for g in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert found == [data.pending[1], data.pending[0], data.completed[1], data.hostile]
    assert pages >= 4  # 8 rows, 2 a window


def test_the_token(web_store: Store, data: Data) -> None:
    token = "s3cret-token-for-tests"
    with TestClient(create_app(web_store, root=data.root, token=token)) as c:
        for path in ("/", "/metrics", "/api/overview", f"/audio/{data.completed[1]}", "/static/app.js"):
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers={"Authorization": "Bearer wrong-token-xx"}).status_code == 401
            assert c.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200, path
        assert token not in c.get("/").text
        assert c.get("/login", params={"token": "nope"}, follow_redirects=False).status_code == 401
        login = c.get("/login", params={"token": token}, follow_redirects=False)
        assert login.status_code == 303
        assert "httponly" in login.headers["set-cookie"].lower()
        assert c.get("/").status_code == 200  # the cookie now
    with pytest.raises(Exception, match="token"):
        create_app(web_store, token="short")


def test_only_get_and_head(client: TestClient, data: Data) -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in ("/", f"/generations/{data.completed[0]}", "/api/generations", "/metrics"):
            response = client.request(method, path)
            assert response.status_code == 405, (method, path)
    assert client.head("/").status_code == 200


def test_metrics_parse_and_carry_no_ids(client: TestClient, data: Data) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    generations = {s.labels["status"]: s.value for s in families["musicstore_generations"].samples}
    assert generations == {"pending": 2, "processing": 1, "completed": 3, "failed": 1, "cancelled": 0}
    assert families["musicstore_queue_depth"].samples[0].value == 2
    assert families["musicstore_loudness_lufs"].type == "histogram"
    for family in families.values():
        for sample in family.samples:
            for value in sample.labels.values():
                assert not UUID.search(value) and "gpu-" not in value and "lofi" not in value, sample


def test_the_app_mounts_under_a_prefix(web_store: Store, data: Data) -> None:
    outer = Starlette(routes=[Mount("/jobs", app=create_app(web_store, root=data.root))])
    with TestClient(outer) as c:
        page = c.get("/jobs/generations")
        assert page.status_code == 200
        assert f'href="/jobs/generations/{data.completed[1]}"' in page.text
        assert 'src="/jobs/static/app.js"' in page.text
        assert c.get(f"/jobs/audio/{data.completed[1]}").status_code == 200
        assert c.get("/jobs/static/app.js").status_code == 200


@pytest.mark.slow
def test_audio_in_a_bucket_redirects_to_a_presigned_url(sqlite_url: str, musicstore_s3_url: str) -> None:
    from musicstore.filestore import open_filestore

    bucket = open_filestore(musicstore_s3_url)
    with Store(sqlite_url) as store:
        store.create_generation("lofi", model_name="m", duration_seconds=1, sample_rate=32_000, channels=1)
        claimed = store.claim_next("gpu-0", lease_seconds=300)
        assert claimed is not None
        export_generation(store, claimed, _audio(1.0, 0)[:1], root=bucket)
        with TestClient(create_app(store)) as c:
            response = c.get(f"/audio/{claimed.id}", follow_redirects=False)
            assert response.status_code == 307
            location = response.headers["location"]
            assert location.startswith("http") and "Signature" in location
            peaks = c.get(f"/api/generations/{claimed.id}/peaks").json()
            assert peaks["frames"] == 32_000
    bucket.close()


def test_generation_dicts_are_json(data: Data, web_store: Store) -> None:
    from musicstore.web.app import generation_dict

    generation = web_store.get_generation(data.completed[0])
    assert isinstance(generation, Generation)
    as_dict = generation_dict(generation)
    assert as_dict["status"] == "completed" and isinstance(as_dict["created_at"], str)


def test_priority_and_progress_are_shown(client: TestClient, data: Data, web_store: Store) -> None:
    import sqlite3

    path = web_store.url.path
    assert path is not None
    with sqlite3.connect(
        path
    ) as conn:  # create_generation(priority=...) is the queue's; set it as a row would have it
        conn.execute("UPDATE generations SET priority = 5 WHERE id = ?", (data.pending[1],))
        conn.execute("UPDATE generations SET priority = -3 WHERE id = ?", (data.processing,))
    conn.close()
    web_store.report_progress(data.processing, "gpu-2", 0.375, "sampling")
    overview = client.get("/api/overview").json()
    assert overview["pending_by_priority"] == {"high": 1, "normal": 1, "low": 0}
    assert overview["processing_by_priority"] == {"high": 0, "normal": 0, "low": 1}
    page = client.get(f"/generations/{data.processing}").text
    assert 'id="progress"' in page and "37.5 %" in page and "sampling" in page and "priority -3" in page
    workers = client.get("/workers").text
    assert '<progress max="1" value="0.375">' in workers and "sampling" in workers
    table = client.get("/generations", params={"status": "pending"}).text
    assert "<td>5</td>" in table
    metrics = client.get("/metrics").text
    assert 'musicstore_queue_depth_by_priority{priority="high"} 1.0' in metrics


def test_audio_whose_file_is_gone_is_404(web_store: Store, data: Data, tmp_path: Path) -> None:
    """Rows recorded with a file:// storage URL are found without a root; a file gone is a 404, not a 500."""
    with TestClient(create_app(web_store, root=tmp_path / "nowhere")) as c:
        assert c.get(f"/audio/{data.completed[1]}").status_code == 200
    generation = web_store.get_generation(data.completed[2])
    assert generation is not None and generation.file_path is not None
    (data.root / generation.file_path).unlink()
    with TestClient(create_app(web_store, root=data.root)) as c:
        response = c.get(f"/audio/{generation.id}")
        assert response.status_code == 404 and "Traceback" not in response.text


PAGING_PROMPTS = ["lofi rain", "LOFI beats", "ambient 100%", "jazz_trio", "techno", "lo-fi piano", "drone"]


@pytest.fixture
def paging_store(db_url: str) -> Iterator[tuple[Store, list[Generation]]]:
    """21 generations, some sharing one created_at (ties broken by id), of two models and four statuses;
    on both backends."""
    from musicstore.testing import FakeClock

    clock = FakeClock()
    with Store(db_url, clock=clock) as store:
        for i in range(21):
            store.create_generation(
                PAGING_PROMPTS[i % len(PAGING_PROMPTS)],
                model_name=("m-a", "m-b")[i % 2],
                duration_seconds=1,
            )
            if i % 3:  # every third shares the previous one's created_at
                clock.advance(1)
        for i in range(6):
            claimed = store.claim_next(f"w{i}", lease_seconds=60)
            assert claimed is not None
            if i % 2:
                store.complete_generation(claimed.id, file_path=f"{claimed.id}.wav", file_size_bytes=10)
            elif i % 3:
                store.fail(claimed.id, "boom", retry=False)
        everything = store.list_generations(limit=500).items
        yield store, everything


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    status=st.sampled_from([None, "pending", "processing", "completed", "failed"]),
    model=st.sampled_from([None, "m-a", "m-b"]),
    text=st.sampled_from([None, "lofi", "LO", "100%", "_", "o", "absent"]),
    limit=st.integers(1, 8),
    window=st.integers(1, 25),
)
def test_pages_of_any_filter_hold_every_match_once_newest_first(
    paging_store: tuple[Store, list[Generation]],
    *,
    status: str | None,
    model: str | None,
    text: str | None,
    limit: int,
    window: int,
) -> None:
    """Keyset paging (and the windowed text search, any window size) returns exactly the filtered rows, in
    (created_at, id) descending order, each once."""
    store, everything = paging_store
    expected = [
        g.id
        for g in everything
        if (status is None or g.status.value == status)
        and (model is None or g.model_name == model)
        and (text is None or text.lower() in g.prompt.lower())
    ]
    filters = web_reads.Filters(status=status, model_name=model, text=text)
    saved, web_reads.SEARCH_WINDOW = web_reads.SEARCH_WINDOW, window
    try:
        found: list[str] = []
        cursor = None
        for _ in range(100):
            with store.transaction(write=False) as tx:
                page = tx.run(web_reads.table_page, filters, cursor=cursor, limit=limit)
            assert len(page.items) <= limit
            found += [g.id for g in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
    finally:
        web_reads.SEARCH_WINDOW = saved
    assert found == expected


def test_every_page_answers_on_both_backends(paging_store: tuple[Store, list[Generation]]) -> None:
    store, everything = paging_store
    with TestClient(create_app(store)) as c:
        for path in (
            "/",
            "/generations?q=lofi&status=pending",
            "/generations?day=2026-01-01",
            "/prompts",
            "/workers",
            "/metrics",
            "/api/overview",
            f"/generations/{everything[0].id}",
        ):
            assert c.get(path).status_code == 200, path
        overview = c.get("/api/overview").json()
        assert sum(overview["by_status"].values()) == 21
        assert overview["by_status"]["processing"] == 1 and overview["by_status"]["completed"] == 3
        assert [w["worker_id"] for w in c.get("/api/workers").json()["workers"]] == ["w0"]
