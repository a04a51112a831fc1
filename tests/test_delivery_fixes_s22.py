"""Delivery fixes (session 22): cleanup, copy-files, render and reconcile racing each other, both backends,
on a local folder and in a bucket (the ``where`` fixture)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from musicstore import Store
from musicstore.filestore import FileStore, ObjectNotFound
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.retention import cleanup
from musicstore.rendering import render_generation
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
