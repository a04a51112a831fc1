"""Delivery fixes (session 22): cleanup, copy-files, render and reconcile racing each other, both backends,
on a local folder and in a bucket (the ``where`` fixture)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from musicstore import Store
from musicstore.delivery import Delivery
from musicstore.filestore import FileStore, ObjectNotFound
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.relocate import copy_files
from musicstore.maintenance.retention import cleanup
from musicstore.ops.storage import get_storage
from musicstore.rendering import render_generation, render_peaks
from tests.test_record import OPTIONS, claimed, music


def _exported(store: Store, where: FileStore) -> Any:
    from musicstore.recording import export_generation

    return export_generation(store, claimed(store), music(), root=where, options=OPTIONS).generation


def _there(files: FileStore, key: str) -> bool:
    try:
        files.head(key)
    except ObjectNotFound:
        return False
    return True


def _as_cleanup_checks_the_master(monkeypatch: pytest.MonkeyPatch, action: Callable[[], object]) -> None:
    """Run ``action`` once, as cleanup checks the first master's file (a folder's or a bucket's): after it
    read the page's candidates and their renditions, before it deletes their rows."""
    from musicstore.maintenance import cleanup_places

    done: list[bool] = []
    for kind in (cleanup_places._Folder, cleanup_places._Objects):
        problem = kind.problem

        def problem_after_action(self: Any, *args: Any, _problem: Any = problem, **kwargs: Any) -> Any:
            if not done:
                done.append(True)
                action()
            return _problem(self, *args, **kwargs)

        monkeypatch.setattr(kind, "problem", problem_after_action)


def test_cleanup_removes_a_rendition_recorded_while_it_ran(
    store: Store, where: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # cleanup read a page's renditions, then deleted the rows (their renditions' rows cascading), then removed
    # the files it had listed: a rendition recorded in between (its file put, its row committed) had its row
    # deleted by the cascade and its file left behind, an orphan no row records
    done = _exported(store, where)
    (mp3,) = render_generation(store, done.id, root=where, formats=["mp3"])
    rendered: list[str] = []
    _as_cleanup_checks_the_master(
        monkeypatch,
        lambda: rendered.extend(
            r.storage_key for r in render_generation(store, done.id, root=where, formats="opus")
        ),
    )
    report = cleanup(store, where, statuses=["completed"], dry_run=False)
    assert rendered and report.rows_deleted == 1
    assert store.get_generation(done.id) is None
    assert not _there(where, mp3.storage_key)
    assert not _there(where, rendered[0])  # removed with its generation, not left an orphan
    assert report.deleted[0].renditions_deleted == 2
    checked = reconcile(store, where)
    assert checked.orphan_count == 0 and checked.dangling_rendition_count == 0


def test_render_generation_puts_the_rendition_where_the_row_it_read_says(
    store: Store, objects: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # render_generation read the generation's storage row three times: once to keep (the place each record
    # must still name), once more to choose its root and a third time to locate the master it read and put
    # the rendition beside. A copy-files landing after the first read (bucket -> folder) and another moving
    # the row back during the encode (folder -> bucket) passed the check (the row named the bucket again)
    # while the rendition went into the folder: its row named an object the bucket lacked (a dangling
    # rendition), its file an orphan in the folder
    from musicstore import rendering
    from musicstore.audio.renditions import render_bytes as encode

    folder = tmp_path / "folder"
    done = _exported(store, objects)
    delivery = rendering._delivery

    def moved_first(*args: Any, **kwargs: Any) -> Any:
        assert copy_files(store, folder).rows_updated == 1
        return delivery(*args, **kwargs)

    def moved_back(*args: Any, **kwargs: Any) -> Any:
        made = encode(*args, **kwargs)
        assert copy_files(store, objects).rows_updated == 1
        return made

    monkeypatch.setattr(rendering, "_delivery", moved_first)
    monkeypatch.setattr(rendering, "render_bytes", moved_back)
    (mp3,) = render_generation(store, done.id, formats=["mp3"])
    assert store.run(get_storage, done.id).storage_url == objects.url
    assert _there(objects, mp3.storage_key) and not (folder / mp3.storage_key).exists()
    with Delivery(store) as reading:
        assert reading.read_audio(mp3)
    assert reconcile(store, objects).dangling_rendition_count == 0


def test_render_peaks_puts_the_peaks_where_the_row_it_read_says(
    store: Store, objects: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the same three reads in render_peaks: moved to a folder and back while the peaks were computed, they
    # went into the folder and the row's record named a file the bucket lacked (a dangling peaks record)
    from musicstore import rendering
    from musicstore.audio.peaks import compute_peaks as compute

    folder = tmp_path / "folder"
    done = _exported(store, objects)
    delivery = rendering._delivery
    calls: list[int] = []

    def moved_first(*args: Any, **kwargs: Any) -> Any:
        assert copy_files(store, folder).rows_updated == 1
        return delivery(*args, **kwargs)

    def moved_back(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:  # the first call checks the arguments
            assert copy_files(store, objects).rows_updated == 1
        return compute(*args, **kwargs)

    monkeypatch.setattr(rendering, "_delivery", moved_first)
    monkeypatch.setattr(rendering, "compute_peaks", moved_back)
    stored = render_peaks(store, done.id, samples_per_pixel=512)
    assert stored.storage_url == objects.url == store.run(get_storage, done.id).storage_url
    assert _there(objects, stored.key) and not (folder / stored.key).exists()
    checked = reconcile(store, objects)
    assert checked.dangling_peaks_count == 0
