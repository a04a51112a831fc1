"""Regressions of the lead's s23 fixes from the helpers' "found, not fixed" lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import musicstore
from musicstore import InvalidInput, Status, Store
from musicstore.audio.tags import SEED_RANGE, provenance_of
from musicstore.delivery import Delivery
from musicstore.errors import WriteConflict
from musicstore.filestore import open_filestore
from musicstore.recording import export_batch_generations, export_generation
from musicstore.rendering import render_generation, render_peaks
from tests.test_record import claimed, music


@pytest.mark.parametrize("root", ["s3:/my-bucket/music", Path("s3://my-bucket/music"), "file:/srv/audio"])
def test_an_export_to_a_root_with_one_slash_is_refused_with_the_row_untouched(
    store: Store, root: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Path("s3://b/m")`` is ``s3:/b/m``: the export wrote into a local folder ``./s3:/b/m`` and completed
    the job with a ``file://`` row, the bucket never written (open_filestore refuses it; the export did not
    ask it for a root without '://')."""
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.iterdir())
    job = claimed(store)
    with pytest.raises(InvalidInput, match="is not a URL"):
        export_generation(store, job, music(), root=root)
    with pytest.raises(InvalidInput, match="is not a URL"):
        export_batch_generations(store, [job], music()[None], root=root)
    row = store.get_generation(job.id)
    assert row is not None and row.status is Status.PROCESSING and row.file_path is None
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize("seed", [SEED_RANGE[0], -1, 0, 2**63 - 1, 2**63, SEED_RANGE[1]])
def test_every_seed_the_provenance_takes_is_tagged(store: Store, seed: int) -> None:
    """docs/renditions.md: the metadata's seed, any whole number (int64 or uint64), is tagged ``SEED``; a
    negative one, or one of 2**63 and over, was dropped though ``Provenance`` takes them."""
    stored = -(2**63) <= seed < 2**63  # a row's metadata holds 64-bit signed integers
    job = claimed(store, metadata={"seed": seed} if stored else {})
    given = None if stored else {"seed": seed}  # an export's own metadata (not stored as an integer)
    assert provenance_of(job, given).fields()["SEED"] == str(seed)
    for outside in (SEED_RANGE[0] - 1, SEED_RANGE[1] + 1, True, 1.0):
        assert "SEED" not in provenance_of(job, {"seed": outside}).fields()


def test_delivery_files_given_one_store_or_none_is_invalid_input(store: Store, tmp_path: Path) -> None:
    """``files=`` takes stores (a list): one store, None or a URL was a bare TypeError (not iterable)."""
    one = open_filestore(tmp_path / "audio")
    for wrong in (one, None, "s3://bucket/prefix", 3):
        with pytest.raises(InvalidInput, match="files must be an iterable of FileStore"):
            Delivery(store, root=tmp_path, files=wrong)  # type: ignore[arg-type]
    Delivery(store, root=tmp_path, files=[one])  # a list of them is what it takes


def test_a_render_given_one_store_as_files_is_invalid_input(store: Store, tmp_path: Path) -> None:
    """render_generation and render_peaks read their files= through the same check as a Delivery: one
    store was a bare TypeError (not iterable) from the renders' own list() of it."""
    root = tmp_path / "audio"
    job = claimed(store)
    export_generation(store, job, music(), root=root, peaks=False)
    one = open_filestore(root)
    for render in (
        lambda: render_generation(store, job.id, root=root, formats=["flac"], files=one),  # type: ignore[arg-type]
        lambda: render_peaks(store, job.id, root=root, files=one),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidInput, match="files must be an iterable of FileStore"):
            render()


def test_write_conflict_is_exported_with_the_other_errors() -> None:
    """docs/usage.md lists WriteConflict among musicstore's errors, and the package re-exports its errors."""
    assert getattr(musicstore, "WriteConflict", None) is WriteConflict
    assert "WriteConflict" in musicstore.__all__
