"""Delivery hunt (session 21): renditions and the file stores, on both database backends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from musicstore import Store
from musicstore.delivery import Delivery
from musicstore.errors import StorageError
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.relocate import copy_files
from musicstore.ops.storage import get_storage
from musicstore.rendering import render_generation, render_peaks
from tests.test_rendition_store import exported


def test_a_rendition_is_not_recorded_when_copy_files_moves_the_master_while_it_is_encoded(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # render_generation located the master, encoded the rendition, then put it beside the master *it had
    # read* and recorded the row, whatever the generation's row said by then: when copy-files moved the
    # generation to another store meanwhile, the rendition row (which follows its generation's store) named a
    # file the new store lacked: a dangling rendition (delivery's ObjectNotFound), its object an orphan in the
    # old store that `reconcile --repair --orphans delete` then removed
    from musicstore import rendering

    old, new = tmp_path / "old", tmp_path / "new"
    done = exported(store, old)
    from musicstore.audio.renditions import render_bytes as encode

    def encoded_while_moved(*args: Any, **kwargs: Any) -> Any:
        made = encode(*args, **kwargs)
        assert copy_files(store, new).rows_updated == 1
        return made

    monkeypatch.setattr(rendering, "render_bytes", encoded_while_moved)
    with pytest.raises(StorageError, match="moved while the mp3 rendition was made"):
        render_generation(store, done.id, root=old, formats=["mp3"])
    assert store.list_renditions(done.id) == []  # nothing recorded
    assert store.run(get_storage, done.id).storage_url == new.absolute().as_uri()
    assert not [p for p in old.rglob("*.mp3")]  # nothing put in the old store either
    monkeypatch.setattr(rendering, "render_bytes", encode)
    (mp3,) = render_generation(store, done.id, root=new, formats=["mp3"])  # again: beside the moved master
    assert (new / mp3.storage_key).is_file()
    with Delivery(store) as delivery:
        assert delivery.read_audio(mp3)  # found where its generation now is
    checked = reconcile(store, new)
    assert checked.dangling_rendition_count == 0 and checked.orphan_count == 0


def _before_the_first_copy(
    monkeypatch: pytest.MonkeyPatch, action: Callable[[], object]
) -> Callable[[], None]:
    """Run ``action`` once, as copy-files is about to copy its first file (after it read the page's rows and
    renditions); returns what puts copy-files back as it was."""
    from musicstore.maintenance import relocate

    copy_one = relocate._copy_one
    done: list[bool] = []

    def copy_after_action(*args: Any, **kwargs: Any) -> str:
        if not done:
            done.append(True)
            action()
        return copy_one(*args, **kwargs)

    monkeypatch.setattr(relocate, "_copy_one", copy_after_action)
    return lambda: monkeypatch.setattr(relocate, "_copy_one", copy_one)


def test_copy_files_leaves_the_row_when_a_rendition_is_recorded_while_it_copies(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # copy_files listed a page's renditions, copied them, then pointed each row at the new store if the
    # generation's row was still as read: a rendition recorded in between (its object put beside the master in
    # the old store, under the row lock copy-files did not wait for) was not copied, yet its row followed its
    # generation to the new store: a dangling rendition, its object an orphan in the old store
    old, new = tmp_path / "old", tmp_path / "new"
    done = exported(store, old)
    (mp3,) = render_generation(store, done.id, root=old, formats=["mp3"])
    before = store.run(get_storage, done.id)
    rendered: list[str] = []

    def render() -> None:
        (opus,) = render_generation(store, done.id, root=old, formats=["opus"])
        rendered.append(opus.storage_key)

    stop = _before_the_first_copy(monkeypatch, render)
    report = copy_files(store, new)
    assert rendered and (report.rows_updated, report.rows_changed) == (0, 1)
    assert store.run(get_storage, done.id) == before  # left where it was, as it was
    with Delivery(store) as delivery:
        for rendition in store.list_renditions(done.id):
            assert delivery.read_audio(rendition)
    stop()
    again = copy_files(store, new)  # the next run copies them all and moves the row
    assert (again.rows_updated, again.renditions_copied) == (1, 2)
    assert (new / rendered[0]).is_file() and (new / mp3.storage_key).is_file()
    with Delivery(store) as delivery:
        assert len([delivery.read_audio(r) for r in store.list_renditions(done.id)]) == 2
    checked = reconcile(store, new)
    assert checked.dangling_rendition_count == 0 and checked.orphan_count == 0


def test_copy_files_leaves_the_row_when_peaks_are_recorded_while_it_copies(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the same for the peaks record (metadata["peaks"], a key that follows its generation's store): peaks
    # recorded after copy-files read the row were not copied, yet the row moved, its record naming a file
    # the new store lacked (a dangling peaks record)
    old, new = tmp_path / "old", tmp_path / "new"
    done = exported(store, old)
    before = store.run(get_storage, done.id)
    drawn: list[str] = []
    stop = _before_the_first_copy(
        monkeypatch, lambda: drawn.append(render_peaks(store, done.id, root=old, samples_per_pixel=512).key)
    )
    report = copy_files(store, new)
    assert drawn and (report.rows_updated, report.rows_changed) == (0, 1)
    assert store.run(get_storage, done.id) == before  # left where it was, as it was
    stop()
    assert copy_files(store, new).rows_updated == 1  # the next run copies them all and moves the row
    row = store.get_generation(done.id)
    assert row is not None and row.metadata["peaks"]["key"] == drawn[0] and (new / drawn[0]).is_file()
    checked = reconcile(store, new)
    assert checked.dangling_peaks_count == 0 and checked.orphan_count == 0
