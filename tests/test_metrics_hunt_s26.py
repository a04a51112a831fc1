"""The dashboard's and /metrics' figures against what the store holds now (s26 hunt, both backends): a
waveform kept in the dashboard's cache after its generation's master was made again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("jinja2")
pytest.importorskip("prometheus_client")

from starlette.testclient import TestClient

from musicstore import Store
from musicstore.maintenance.reconcile import reconcile
from musicstore.recording import export_generation
from musicstore.testing import FakeClock
from musicstore.web import create_app

GEN: dict[str, Any] = {
    "model_name": "musicgen-small",
    "duration_seconds": 2,
    "sample_rate": 32_000,
    "channels": 2,
}


def _tone(envelope: Any) -> Any:
    t = np.arange(64_000) / 32_000
    return np.stack([0.5 * np.sin(2 * np.pi * 220 * t) * envelope(t)] * 2).astype(np.float32)


def test_the_waveform_of_a_master_made_again_is_the_new_ones(db_url: str, tmp_path: Path) -> None:
    # the dashboard cached a waveform under the generation's id and file size: a dead letter replayed (its
    # master lost, marked failed by reconcile) and exported again, to a file of the same size as a WAV of the
    # same length always is, was drawn with the lost master's waveform for as long as the app ran
    root = tmp_path / "audio"
    clock = FakeClock()
    with Store(db_url, clock=clock) as store, TestClient(create_app(store, root=root)) as client:
        made = store.create_generation("lofi hip hop at 90 BPM", **GEN)
        claimed = store.claim_next("gpu-0", lease_seconds=60)
        assert claimed is not None
        export_generation(store, claimed, _tone(np.ones_like), root=root, generation_time_seconds=1.0)
        lost = store.get_generation(made.id)
        assert lost is not None and lost.file_path is not None
        before = client.get(f"/api/generations/{made.id}/peaks").json()
        (root / lost.file_path).unlink()
        reconcile(store, root, repair=True)  # completed -> failed: its master is missing
        clock.advance(60)
        store.replay(made.id)
        claimed = store.claim_next("gpu-0", lease_seconds=60)
        assert claimed is not None
        export_generation(store, claimed, _tone(lambda t: t / 2), root=root, generation_time_seconds=1.0)
        again = store.get_generation(made.id)
        assert again is not None and again.file_size_bytes == lost.file_size_bytes  # the same size
        after = client.get(f"/api/generations/{made.id}/peaks").json()
        with TestClient(create_app(store, root=root)) as fresh:  # no cache: the file's own waveform
            expected = fresh.get(f"/api/generations/{made.id}/peaks").json()
    assert expected != before
    assert after == expected


def test_the_overviews_queue_by_priority_card_says_when_it_is_a_lower_bound(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the card showed the classes of the first 10,000 pending jobs read (by owner key) with no sign when more
    # were pending, where /api/overview's pending_by_priority_truncated says so and the claims card has "+"
    from musicstore.metrics import reads

    monkeypatch.setattr(reads, "PENDING_LIMIT", 2)  # the walk's 10,000, made small
    with Store(db_url) as store, TestClient(create_app(store, root=tmp_path)) as client:
        for queued in (1, 2, 3):
            store.create_generation(f"lofi {queued}", **GEN, priority=queued - 2)
            page = client.get("/").text
            overview = client.get("/api/overview").json()
            assert overview["pending_by_priority_truncated"] is (queued > 2)
            assert ('id="priority-truncated"' in page) is (queued > 2)
