"""Renditions and their codecs, a bug hunt (session 23): what a demanding user of ``render_generation`` and
``musicstore.audio.renditions`` would call wrong. Each test failed before its fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicstore import Store
from musicstore.audio import synthesize_music
from musicstore.audio.renditions import decode
from musicstore.models import Generation
from musicstore.rendering import render_generation


def _completed_by_hand(store: Store, root: Path, rate: int, channels: int) -> Generation:
    """A generation created with the defaults (32 kHz, stereo) whose worker wrote its own master at ``rate``
    with ``channels`` and completed it with ``complete_generation`` (docs/async.md's worker)."""
    store.create_generation("by hand", model_name="m", duration_seconds=1)
    job = store.claim_next("w")
    assert job is not None
    audio = np.asarray(synthesize_music(1.0, rate, seed=2))[:channels]
    path = root / f"{job.id}.wav"
    sf.write(path, audio.T, rate, subtype="PCM_16")
    return store.complete_generation(job.id, file_path=path.name, file_size_bytes=path.stat().st_size)


@pytest.mark.parametrize(("rate", "channels", "fmt"), [(44_100, 2, "mp3"), (32_000, 1, "opus")])
def test_a_master_unlike_its_row_is_rendered_once_then_found(
    db_url: str, tmp_path: Path, rate: int, channels: int, fmt: str
) -> None:
    """The request's key was made from the row's sample rate and channels, the recorded row from the
    master's: a second render_generation missed the row, encoded again and raised InvalidInput ('already has
    this rendition'), the file name's digest naming a request that was never recorded."""
    root = tmp_path / "audio"
    root.mkdir()
    with Store(db_url, migrate=True) as store:
        done = _completed_by_hand(store, root, rate, channels)
        assert (done.sample_rate, done.channels) == (32_000, 2)
        made = render_generation(store, done.id, root=root, formats=[fmt])
        assert made[0].channels == channels and made[0].sample_rate == (48_000 if fmt == "opus" else rate)
        audio, _ = decode((root / made[0].storage_key).read_bytes())
        assert audio.shape[0] == channels
        again = render_generation(store, done.id, root=root, formats=[fmt])
        assert again == made and store.list_renditions(done.id) == made
        assert sorted(p.name for p in root.iterdir()) == sorted([f"{done.id}.wav", made[0].storage_key])
