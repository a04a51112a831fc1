"""The lead's fixes of session 27, each with the test that failed before it."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from musicstore import Store
from musicstore.audio import synthesize_music
from musicstore.audio.loudness import integrated_loudness
from musicstore.audio.profiles import get_profile
from musicstore.audio.renditions import RenditionOptions, RenditionSpec, render_audio
from musicstore.errors import DatabaseError, InvalidInput


def test_a_too_quiet_rendition_within_the_tolerance_reached_its_target(tmp_path: Path) -> None:
    """A clip left at its own level (``max_gain_db=0``: ``too_quiet``) whose loudness is within the profile's
    tolerance reached the target, as an export's does (docs/renditions.md); it said False."""
    profile = get_profile("streaming")
    rate = 48_000
    clip = synthesize_music(4.0, rate, seed=3)
    level = integrated_loudness(clip, rate).lufs
    under = 0.6 * profile.tolerance_lu  # quieter than the target, within the tolerance
    clip = (clip * 10 ** ((profile.target_lufs - under - level) / 20)).astype(np.float32)
    result = render_audio(
        clip,
        rate,
        tmp_path / "r.flac",
        RenditionSpec("flac"),
        "streaming",
        options=RenditionOptions(max_gain_db=0.0),
    )
    assert result.status == "too_quiet"
    assert abs(result.loudness - profile.target_lufs) <= profile.tolerance_lu
    assert result.target_reached


def test_a_row_whose_metadata_is_not_json_is_a_database_error(tmp_path: Path) -> None:
    """A damaged file's row (its metadata bytes not a JSON object, past the schema's CHECK) is read as a
    typed ``DatabaseError`` naming the damage, not a bare ``JSONDecodeError`` (found by the maintenance
    hunt: a truncated backup read such bytes as zeros)."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with Store(url, migrate=True) as store:
        generation = store.create_generation("p", model_name="m", duration_seconds=1, metadata={"a": 1})
    with closing(sqlite3.connect(tmp_path / "db.sqlite")) as conn:
        conn.execute("PRAGMA ignore_check_constraints = ON")
        for damaged in ('{"a": 1', '{"a": 1}}', "[1, 2]", "\x00\x00{"):
            conn.execute("UPDATE generations SET metadata = ? WHERE id = ?", (damaged, generation.id))
            conn.commit()
            with Store(url) as store, pytest.raises(DatabaseError, match=r"not a JSON object.*damaged"):
                store.get_generation(generation.id)


def test_the_function_form_of_claim_next_waits_as_the_method_does(tmp_path: Path) -> None:
    """``musicstore.claim_next(store, worker, wait=...)`` (the 0.1 function taking the driver first) is the
    store's own ``claim_next``: it waits; in a transaction a wait is the transaction's ``InvalidInput``. It
    was Python's bare ``TypeError`` (unexpected keyword 'wait') from the operation (found by the fnf
    helper)."""
    import musicstore

    claim_next: Any = musicstore.claim_next  # typed as the operation (no wait): the 0.1 function's signature
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with Store(url, migrate=True) as store:
        assert claim_next(store, "w", wait=0.05) is None
        job = store.create_generation("p", model_name="m", duration_seconds=1)
        claimed = claim_next(store, "w", wait=1)
        assert claimed is not None and claimed.id == job.id
        with store.transaction() as tx:
            with pytest.raises(InvalidInput, match="cannot wait inside a transaction"):
                claim_next(tx, "w", wait=1)
            assert claim_next(tx, "w") is None
        with pytest.raises(InvalidInput, match="wait"):
            claim_next(store, "w", wait=-1)
