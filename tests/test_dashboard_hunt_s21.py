"""The dashboard's and metrics' edges found by the s21 hunt (both backends): query values, the trailing
window's cut, the charts, the figures against a recount of the rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("starlette")
pytest.importorskip("jinja2")
pytest.importorskip("prometheus_client")

from starlette.testclient import TestClient

from musicstore import Store
from musicstore.testing import FakeClock
from musicstore.web import create_app
from tests.test_web_regressions import _Texts

GEN: dict[str, Any] = {
    "model_name": "musicgen-small",
    "duration_seconds": 2,
    "sample_rate": 32_000,
    "channels": 2,
}


@pytest.fixture
def web_store(db_url: str) -> Iterator[Store]:
    with Store(db_url) as store:
        store.create_generation("lofi hip hop at 90 BPM", **GEN)
        yield store


@pytest.mark.parametrize("limit", ["9" * 5000, "1" + "0" * 4400, "0" * 5000 + "5"])
def test_a_limit_of_thousands_of_digits_is_a_bad_request(
    web_store: Store, tmp_path: Path, limit: str
) -> None:
    # int() refuses a str of more than 4,300 digits with a ValueError: the page was a 500 "internal error"
    with TestClient(create_app(web_store, root=tmp_path), raise_server_exceptions=False) as client:
        for path in ("/api/generations", "/generations"):
            response = client.get(path, params={"limit": limit})
            if limit.lstrip("0") == "5":  # leading zeros were read as the number, as before
                assert response.status_code == 200, (path, response.text)
            else:
                assert response.status_code == 400, (path, response.text)
                assert "limit must be a whole number from 1 to 500" in response.text


def test_a_window_holding_exactly_its_limit_is_not_cut(db_url: str) -> None:
    # musicstore_window_truncated is 1 "when the window held more than" its limit: a window of exactly its
    # limit (all of it read) said it was cut, so its figures read as a lower bound
    from musicstore.metrics import metrics_text, read_metrics

    with Store(db_url) as store:
        for i in range(3):
            store.create_generation(f"lofi {i}", **GEN)
        exact = read_metrics(store, window_limit=3)
        assert sum(exact.window.generations.values()) == 3 and len(exact.recent) == 3
        assert not exact.window.truncated
        cut = read_metrics(store, window_limit=2)
        assert sum(cut.window.generations.values()) == 2 and len(cut.recent) == 2 and cut.window.truncated
        assert b'musicstore_window_truncated{window="3600s"} 0.0' in metrics_text(store, window_limit=3)
        assert b'musicstore_window_truncated{window="3600s"} 1.0' in metrics_text(store, window_limit=2)
        assert read_metrics(store, window_limit=1_000_000).window.truncated is False


def test_the_days_chart_shows_every_one_of_its_30_days(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    # the chart had a bar per day with rows only: a day without any (an outage) vanished from the axis, its
    # neighbours' bars side by side, and the chart's 30 days were fewer, unlabelled gaps
    store.create_generation("lofi 0", **GEN)
    first = clock.now.strftime("%Y-%m-%d")
    clock.advance(3 * 86_400)
    store.create_generation("lofi 1", **GEN)
    store.create_generation("lofi 2", **GEN)
    today = clock.now.date()
    with TestClient(create_app(store, root=tmp_path)) as client:
        days = client.get("/api/overview").json()["charts"]["days"]
    expected = [(today - timedelta(days=29 - i)).isoformat() for i in range(30)]
    assert days["labels"] == expected
    created = dict(zip(days["labels"], dict(days["series"])["created"], strict=True))
    assert created[first] == 1 and created[today.isoformat()] == 2 and sum(created.values()) == 3


_OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["create", "claim", "complete", "fail", "retry", "cancel", "advance", "requeue", "delete"]
        ),
        st.integers(0, 7),
    ),
    max_size=30,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=_OPS)
def test_the_metrics_agree_with_a_recount_of_the_rows(
    store: Store, clock: FakeClock, steps: list[Any]
) -> None:
    from musicstore.metrics import LEASE_EXPIRED, priority_class, read_metrics
    from musicstore.ops.jobs import RESET_CONFIRMATION

    store.reset_database(confirm=RESET_CONFIRMATION)  # each example starts from an empty store
    created = 0
    for op, n in steps:
        ids = [g.id for g in store.get_all_generations(limit=500)]
        processing = [g.id for g in store.get_all_generations(status="processing", limit=500)]
        pick = ids[n % len(ids)] if ids else None
        claimed = processing[n % len(processing)] if processing else None
        if op == "create":
            model = ["musicgen-small", 'a "quoted"\\model\n', "ünï"][n % 3]
            store.create_generation(f"prompt {n % 4}", **{**GEN, "model_name": model}, priority=n % 3 - 1)
            created += 1
        elif op == "claim":
            store.claim_next(f"gpu-{n % 3}", lease_seconds=30 + 60 * (n % 2))
        elif op == "complete" and claimed is not None:
            store.complete_generation(
                claimed,
                file_path=f"{claimed}.wav",
                file_size_bytes=1000 + n,
                generation_time_seconds=0.5 * n,
                metadata={"loudness_lufs": -14.0 - n, "true_peak_dbtp": -1.0},
            )
        elif op in ("fail", "retry") and claimed is not None:
            store.fail(claimed, f"boom {n}", retry=op == "retry")
        elif op == "cancel" and pick is not None:
            if store.get_generation(pick).status.value in ("pending", "processing"):  # type: ignore[union-attr]
                store.cancel(pick, "no longer wanted")
        elif op == "advance":
            clock.advance(60 * 7 * n)
        elif op == "requeue":
            store.requeue_expired()
        elif op == "delete" and pick is not None and pick not in processing:  # a claim is not deleted
            store.delete_generation(pick)

    s = read_metrics(store)
    rows = store.get_all_generations(limit=500)
    now = clock.now
    statuses = ("pending", "processing", "completed", "failed", "cancelled")
    assert s.by_status == {st_: sum(g.status.value == st_ for g in rows) for st_ in statuses}
    assert s.by_model == dict(Counter((g.model_name, g.status.value) for g in rows))
    for st_ in statuses:
        of = [g for g in rows if g.status.value == st_]
        assert s.file_bytes[st_] == sum(g.file_size_bytes or 0 for g in of)
        assert s.audio_seconds[st_] == pytest.approx(sum(g.duration_seconds for g in of))
        assert s.generation_seconds[st_] == pytest.approx(sum(g.generation_time_seconds or 0 for g in of))
    assert s.prompt_uses == created and s.prompts == len(
        {f"prompt {n % 4}" for op, n in steps if op == "create"}
    )
    pending = [g for g in rows if g.status.value == "pending"]
    assert s.pending_by_priority == {
        c: sum(priority_class(g.priority) == c for g in pending) for c in ("high", "normal", "low")
    }
    oldest = min((g.created_at for g in pending), default=None)
    assert s.oldest_pending_age == (None if oldest is None else pytest.approx((now - oldest).total_seconds()))
    busy = [g for g in rows if g.status.value == "processing"]
    expired = [g for g in busy if g.lease_expires_at is not None and g.lease_expires_at <= now]
    assert (s.leases_live, s.leases_expired) == (len(busy) - len(expired), len(expired))
    assert [w.worker_id for w in s.workers] == sorted({g.worker_id for g in busy})  # type: ignore[type-var]
    assert s.processing_by_priority == {
        c: sum(priority_class(g.priority) == c for g in busy) for c in ("high", "normal", "low")
    }
    since = now - timedelta(seconds=s.window.seconds)
    recent = [g for g in rows if g.created_at >= since]
    assert s.window.generations == {st_: sum(g.status.value == st_ for g in recent) for st_ in statuses}
    assert s.window.claims == sum(g.attempts for g in recent)
    assert s.window.retries == sum(max(g.attempts - 1, 0) for g in recent)
    assert s.window.lease_expiries == sum((g.error_message or "").startswith(LEASE_EXPIRED) for g in recent)
    assert s.window.completions == sum(
        g.status.value == "completed" and g.completed_at is not None and g.completed_at >= since for g in rows
    )
    done = [g for g in rows if g.status.value == "completed"]
    assert s.generation_time.count == sum(g.generation_time_seconds is not None for g in done)
    assert s.loudness.count == len(done) and s.loudness.total == pytest.approx(
        sum(g.metadata["loudness_lufs"] for g in done)
    )


def test_the_workers_and_prompts_pages_read_the_stores_clock(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    # /workers and /prompts read the wall clock where /metrics and the overview read the store's: under a
    # store's own clock (here months behind the wall) every live lease showed expired on /workers while the
    # overview said live, and the trending windows counted no row
    store.create_generation("lofi 0", **GEN)
    store.create_generation("lofi 0", **GEN)
    store.claim_next("gpu-0", lease_seconds=600)
    clock.advance(10)
    with TestClient(create_app(store, root=tmp_path)) as client:
        overview = client.get("/api/overview").json()
        workers = client.get("/api/workers").json()
        prompts = client.get("/api/prompts").json()
        page = client.get("/workers").text
    assert overview["leases"] == {"live": 1, "expired": 0}
    assert workers["leases"] == overview["leases"] and workers["workers"][0]["expired"] == 0
    assert "1 live lease(s), 0 expired" in page and 'class="expired"' not in page
    assert prompts["trending_day"] == [{"text": "lofi 0", "uses": 2}] == prompts["trending_week"]
    clock.advance(600)  # the lease has expired by the store's clock
    with TestClient(create_app(store, root=tmp_path)) as client:
        assert client.get("/api/workers").json()["leases"] == {"live": 0, "expired": 1}
        assert client.get("/api/overview").json()["leases"] == {"live": 0, "expired": 1}


@pytest.mark.parametrize(
    ("window", "label"),
    [
        (3600, "3600s"),
        (1_209_600, "1209600s"),
        (2_592_000, "2592000s"),
        (1_234_567, "1234567s"),
        (2.5, "2.5s"),
    ],
)
def test_the_window_label_is_its_exact_seconds(db_url: str, window: float, label: str) -> None:
    # the label was f"{seconds:g}s": six significant digits, so two weeks was "1.2096e+06s" and windows of
    # 1,234,567 and 1,234,568 seconds had one label
    from musicstore.metrics import metrics_text

    with Store(db_url) as store:
        text = metrics_text(store, window=window).decode()
    assert f'musicstore_window_claims{{window="{label}"}} 0.0' in text
    assert f'musicstore_window_generations{{status="pending",window="{label}"}} 0.0' in text


def test_a_queue_of_exactly_the_priority_walks_limit_is_not_cut(
    db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # pending_by_priority_truncated was "counted >= PENDING_LIMIT": a queue of exactly the limit, counted
    # whole, said that its classes were a lower bound; the running totals know the queue's length exactly
    from musicstore.metrics import read_metrics, reads

    monkeypatch.setattr(reads, "PENDING_LIMIT", 3)  # the walk's 10,000, made small
    with Store(db_url) as store:
        for priority in (1, 0, -1):
            store.create_generation("lofi", **{**GEN, "priority": priority})
        exact = read_metrics(store)
        assert exact.pending_by_priority == {"high": 1, "normal": 1, "low": 1}
        assert exact.pending_truncated is False
        with TestClient(create_app(store, root=tmp_path)) as client:
            assert client.get("/api/overview").json()["pending_by_priority_truncated"] is False
        store.create_generation("lofi", **GEN)
        cut = read_metrics(store)
        assert sum(cut.pending_by_priority.values()) == 3 and cut.pending_truncated is True


def test_the_tables_links_keep_its_page_size(web_store: Store, tmp_path: Path) -> None:
    # "Older →" and "Newest" carried the filters and the cursor but not ?limit=: the next page fell back to
    # 50 rows
    import html
    import re

    for i in range(5):  # six rows with the fixture's
        web_store.create_generation(f"lofi {i}", **GEN)
    with TestClient(create_app(web_store, root=tmp_path)) as client:
        seen: list[str] = []
        page = client.get("/generations", params={"limit": "2", "q": "lofi"}).text
        for _ in range(3):
            rows = re.findall(r'<tr data-id="([0-9a-f-]+)">', page)
            assert len(rows) == 2, rows
            seen += rows
            older = re.search(r'<a href="([^"]+)" id="page-next"', page)
            if older is None:
                break
            assert "limit=2" in older[1] and "q=lofi" in older[1]
            page = client.get("/generations" + html.unescape(older[1])).text
            newest = re.search(r'<a href="([^"]+)" id="page-first"', page)
            assert newest is not None and "limit=2" in newest[1] and "cursor" not in newest[1]
        assert len(set(seen)) == 6 and older is None


@pytest.mark.parametrize(
    "document",
    [
        {"bits": 2000, "samples_per_pixel": 4, "length": 2, "sample_rate": 8000, "data": [0, 1, 0, 1]},
        {"bits": 8, "samples_per_pixel": 1e400, "length": 2, "sample_rate": 8000, "data": [0, 1, 0, 1]},
        {"bits": 8, "samples_per_pixel": 4, "length": 2, "sample_rate": 1e400, "data": [0, 1, 0, 1]},
    ],
    ids=["bits-2000", "spp-infinite", "rate-infinite"],
)
def test_a_peaks_file_out_of_range_is_read_from_the_audio_instead(
    web_store: Store, tmp_path: Path, document: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    # a peaks file whose numbers overflow (bits 2000: 1 << 1999 is no float; 1e400 is JSON's infinity, which
    # int() refuses with an OverflowError) failed the waveform with a 500, where one that cannot be read is
    # left for the audio file's own peaks
    import hashlib
    import json

    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "a.wav", np.full(8000, 0.25), 8000)
    body = json.dumps(document).replace("Infinity", "1e400").encode()
    (tmp_path / "a.peaks.4.8.json").write_bytes(body)  # a peaks file of the master a.wav by its name
    peaks = {"key": "a.peaks.4.8.json", "sha256": hashlib.sha256(body).hexdigest()}
    claimed = web_store.claim_next("gpu-0")
    assert claimed is not None
    size = (tmp_path / "a.wav").stat().st_size
    web_store.complete_generation(
        claimed.id, file_path="a.wav", file_size_bytes=size, metadata={"peaks": peaks}
    )
    with TestClient(create_app(web_store, root=tmp_path), raise_server_exceptions=False) as client:
        response = client.get(f"/api/generations/{claimed.id}/peaks")
    assert response.status_code == 200, response.text
    found = response.json()
    assert found["frames"] == 8000 and found["length"] == 1000  # computed from the audio file
    assert max(found["peaks"]) == pytest.approx(0.25, abs=1e-4)
    assert any("a.peaks.4.8.json" in r.getMessage() and "not used" in r.getMessage() for r in caplog.records)


def test_the_overviews_note_says_what_the_hourly_bars_count(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    # the note said the completed bars were those of the rows created in the last 24 hours ("of those, when
    # they completed"), where they count every completion of the hour (a backlog's too): a backlog's
    # completions read as completions of rows that the created bars did not show
    store.create_generation("lofi", **GEN)
    clock.advance(2 * 86_400)  # the row is older than the chart's day
    claimed = store.claim_next("gpu-0")
    assert claimed is not None
    store.complete_generation(claimed.id, file_path="a.wav", file_size_bytes=1)
    with TestClient(create_app(store, root=tmp_path)) as client:
        hours = dict(client.get("/api/overview").json()["charts"]["hours"]["series"])
        page = client.get("/").text
    assert sum(hours["created"]) == 0 and sum(hours["completed"]) == 1
    assert "of those, when they completed" not in page
    assert "every completion of the hour, whenever its generation was created" in page


def test_a_day_without_its_zeros_shows_in_the_date_field(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    # ?day=2026-1-1 filtered the table (strptime reads it) but the form's <input type="date"> was given
    # "2026-1-1", which a browser takes for no date: the field showed empty, and the next filter dropped it
    store.create_generation("lofi", **GEN)
    day = clock.now.date()
    loose = f"{day.year}-{day.month}-{day.day}"
    with TestClient(create_app(store, root=tmp_path)) as client:
        page = client.get("/generations", params={"day": loose, "limit": "1"}).text
    assert f'id="filter-day" value="{day.isoformat()}"' in page
    assert 'class="badge' in page  # the row of that day is shown


def test_a_figure_from_metadata_is_isolated_from_its_unit(web_store: Store, tmp_path: Path) -> None:
    # the figures table showed the export's figures (metadata values: any JSON, a str too) as bare text before
    # their unit: an RLO in a str loudness turned " LUFS" after it round, where every other metadata value is
    # a <bdi> of its own (docs/dashboard.md)
    rlo = "\u202e"
    figures = {"loudness_lufs": f"-14{rlo}x", "true_peak_dbtp": f"-1{rlo}y", "format": f"W{rlo}AV"}
    claimed = web_store.claim_next("gpu-0")
    assert claimed is not None
    web_store.complete_generation(claimed.id, file_path="a.wav", file_size_bytes=1, metadata=figures)
    with TestClient(create_app(web_store, root=tmp_path)) as client:
        page = client.get(f"/generations/{claimed.id}").text
    parser = _Texts()
    parser.feed(page)
    for value in figures.values():
        where = {tag for tag, data in parser.texts if value in data}
        assert where == {"bdi"}, (value, where)
    assert "LUFS" in page and "dBTP" in page


def test_trending_prompts_say_when_their_window_was_cut(
    web_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the trending tables count at most TRENDING_ROWS of the window's newest rows, but said nothing when the
    # window held more: "last 7 days" of a busy week was its last day or so, shown as the week's
    from musicstore.web import dashboard

    monkeypatch.setattr(dashboard, "TRENDING_ROWS", 2)  # the 50,000, made small
    web_store.create_generation("lofi hip hop at 90 BPM", **GEN)  # two rows with the fixture's: whole
    with TestClient(create_app(web_store, root=tmp_path)) as client:
        whole = client.get("/api/prompts").json()
        assert whole["trending_day"] == [{"text": "lofi hip hop at 90 BPM", "uses": 2}]
        assert whole["trending_truncated"] == {"day": False, "week": False}
        assert "newest" not in client.get("/prompts").text
        web_store.create_generation("ambient", **GEN)
        cut = client.get("/api/prompts").json()
        assert cut["trending_truncated"] == {"day": True, "week": True}
        assert sum(p["uses"] for p in cut["trending_day"]) == 2
        page = client.get("/prompts").text
    assert page.count("the newest 2 generations of the window read") == 2


def test_the_model_filter_shows_a_model_without_rows(web_store: Store, tmp_path: Path) -> None:
    # the select listed the models with rows only: ?model=a model without any (a link from elsewhere, rows
    # deleted) filtered the table while the select said "any", and the next filter dropped the model
    with TestClient(create_app(web_store, root=tmp_path)) as client:
        page = client.get("/generations", params={"model": "musicgen-large"}).text
    assert '<option value="musicgen-large" selected>musicgen-large</option>' in page
    assert '<option value="musicgen-small">musicgen-small</option>' in page
    assert "No generation here." in page
