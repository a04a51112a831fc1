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
from tests.test_rendition_store import exported


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


def _findings(store: Store, where: FileStore) -> dict[str, str]:
    """A dangling master, a dangling rendition and an orphan in ``where``: the keys involved."""
    lost, kept = _exported(store, where), _exported(store, where)
    where.delete(str(lost.file_path))
    (mp3,) = render_generation(store, kept.id, root=where, formats=["mp3"])
    where.delete(mp3.storage_key)
    orphan = "2026/01/01/0190a1b2-0000-7000-8000-000000000001.wav"
    where.put(orphan, b"RIFF orphan")
    return {"lost": lost.id, "rendition": mp3.id, "orphan": orphan}


def _another_reconcile_first(
    monkeypatch: pytest.MonkeyPatch, store: Store, where: FileStore, **options: Any
) -> list[Any]:
    """Run a whole ``reconcile --repair`` (the other process) as this one is about to make its first
    repair; returns the list its report lands in."""
    from musicstore.maintenance import reconcile as module
    from musicstore.maintenance.row_checks import mark_dangling_failed

    other: list[Any] = []

    def first() -> None:
        if not other:
            other.append(None)
            other[0] = reconcile(store, where, repair=True, **options)

    run, guarded = Store.run, module._repair_unless_recorded

    def run_after_the_other(self: Store, operation: Any, *args: Any, **kwargs: Any) -> Any:
        if operation is mark_dangling_failed:
            first()
        return run(self, operation, *args, **kwargs)

    def repair_after_the_other(*args: Any, **kwargs: Any) -> Any:
        first()
        return guarded(*args, **kwargs)

    monkeypatch.setattr(Store, "run", run_after_the_other)
    monkeypatch.setattr(module, "_repair_unless_recorded", repair_after_the_other)
    return other


def test_a_reconcile_racing_another_reports_what_that_one_repaired_as_already_repaired(
    store: Store, where: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two `reconcile --repair` at once: the second to reach a finding found its repair undone by the first
    # (the row no longer completed, the rendition's row or the orphan gone): it reported it `changed` or
    # `gone`, counted it as a disagreement and exited 4, though the first had repaired it and the database
    # and files agreed; now it re-checks such a finding and reports it `already_repaired`, consistent
    found = _findings(store, where)
    other = _another_reconcile_first(monkeypatch, store, where, delete_orphans=True)
    report = reconcile(store, where, repair=True, delete_orphans=True)
    first = other[0]
    assert not first.consistent and first.errors == []  # it found and repaired them all: exit code 4
    assert [(d.id, d.action) for d in first.dangling] == [(found["lost"], "marked_failed")]
    assert report.errors == [] and report.consistent, report
    actions = [d.action for d in report.dangling + report.dangling_renditions] + [
        o.action for o in report.orphans
    ]
    assert actions and set(actions) == {"already_repaired"} and report.already_repaired == len(actions)
    monkeypatch.undo()
    assert reconcile(store, where).consistent


def test_the_cli_exits_0_when_another_reconcile_repaired_what_it_found(
    store: Store,
    db_url: str,
    where: FileStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from musicstore.cli import main

    _findings(store, where)
    other = _another_reconcile_first(monkeypatch, store, where, delete_orphans=True)
    code = main(
        ["reconcile", "--database", db_url, "--output-root", where.url, "--repair", "--orphans", "delete"]
    )
    out = capsys.readouterr().out
    assert other[0] is not None and not other[0].consistent
    assert code == 0, out
    assert "already_repaired" in out and "repaired by another process" in out


def test_reconcile_of_a_bucket_removes_the_peaks_left_there_by_copy_files_with_the_master(
    store: Store, objects: FileStore, tmp_path: Path
) -> None:
    # copy-files keeps the source files; a bucket's `reconcile --repair --orphans delete` then removes those
    # no row records any longer: the master and its renditions (their rows moved with it), but not its
    # waveform peaks, counted as referenced while their generation's row existed, in whatever store
    done = _exported(store, objects)
    render_generation(store, done.id, formats=["mp3"])
    peaks = str(done.metadata["peaks"]["key"])
    assert _there(objects, peaks)
    folder = tmp_path / "folder"
    assert copy_files(store, folder).rows_updated == 1
    assert (folder / peaks).is_file()
    found = reconcile(store, objects)
    # the master, its mp3, its peaks file and their normalised file
    assert (found.orphan_count, found.orphan_peaks_count) == (4, 2)
    reconcile(store, objects, repair=True, delete_orphans=True)
    assert [o.key for o in objects.list()] == []  # the peaks went with the master they were made from
    assert reconcile(store, objects).consistent and reconcile(store, folder).consistent


def test_reconcile_keeps_the_peaks_of_a_generation_moved_to_a_prefix_inside_the_bucket(
    store: Store, objects: FileStore
) -> None:
    # the same rule must not take the peaks of a generation whose store is a prefix inside this one: they
    # are listed here under a longer key, and are that store's
    from musicstore.filestore import open_filestore

    inner = open_filestore(objects.url + "v2/")
    done = _exported(store, inner)
    peaks = "v2/" + str(done.metadata["peaks"]["key"])
    report = reconcile(store, objects, repair=True, delete_orphans=True)
    assert _there(objects, peaks) and report.orphan_peaks_count == 0
    assert reconcile(store, inner).consistent
    inner.close()


def _custom(store: Store, where: FileStore, path: str) -> Any:
    """A completed generation whose master is at ``path`` (not the ``<id>.wav`` layout)."""
    import io

    import soundfile as sf

    from musicstore.ops.storage import record_storage

    job = claimed(store)
    buffer = io.BytesIO()
    sf.write(buffer, music().T, 32_000, format="WAV", subtype="PCM_16")
    saved = where.put(path, buffer.getvalue())
    store.complete_generation(job.id, file_path=path, file_size_bytes=saved.size)
    assert saved.checksum is not None
    store.run(record_storage, job.id, storage_url=where.url, key=saved.key, checksum=saved.checksum)
    return job


def test_reconcile_takes_away_the_damaged_peaks_of_a_master_at_a_custom_path(
    store: Store, where: FileStore
) -> None:
    # a damaged peaks file of a generation recorded at a custom file_path (`album/track 01.peaks...json`,
    # no id in its name) was not recognised as its peaks: repair dropped the record and left the file, and
    # render_peaks then met other bytes at its key (ObjectExists) for good
    from musicstore.rendering import render_peaks

    job = _custom(store, where, "album/track 01.wav")
    stored = render_peaks(store, job.id, root=where)
    assert stored.key == "album/track 01.peaks.256.8.json"
    where.put(stored.key, b"{}", overwrite=True)  # damaged
    report = reconcile(store, where, repair=True, delete_orphans=True, verify_checksums=True)
    assert [(p.key, p.problem, p.action) for p in report.dangling_peaks] == [
        (stored.key, "size_mismatch", "record_dropped")
    ]
    assert not _there(where, stored.key)  # taken away with the record, as an `<id>.peaks…` file is
    again = render_peaks(store, job.id, root=where)  # made again
    assert again.sha256 == stored.sha256 and reconcile(store, where).consistent


def test_cleanup_leaves_a_row_copy_files_moved_while_it_ran(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # cleanup of a folder read a row whose files were there, then deleted it whatever its storage_url had
    # become: a copy-files that moved it to another store in between had its copies there orphaned (no row
    # records them), though the row was no longer this folder's to clean up
    old, new = tmp_path / "old", tmp_path / "new"
    done = exported(store, old)
    _as_cleanup_checks_the_master(monkeypatch, lambda: copy_files(store, new))
    report = cleanup(store, old, statuses=["completed"], dry_run=False)
    assert (report.rows_deleted, report.rows_changed) == (0, 1)
    assert store.get_generation(done.id) is not None
    assert store.run(get_storage, done.id).storage_url == new.absolute().as_uri()
    with Delivery(store) as delivery:
        assert delivery.read_audio(done.id)
    assert reconcile(store, new).consistent


def test_the_peaks_of_a_master_at_a_custom_path_are_counted_as_peaks_on_a_folder_as_in_a_bucket(
    store: Store, where: FileStore
) -> None:
    # a bucket's reconcile counted the recorded peaks file of a master at a custom path as a peaks file
    # (its row's record met it); a folder's walk knew peaks files only by an id in their name and counted
    # it among the files of other types (`unknown_files`), and so did disk_usage
    from musicstore.maintenance.usage import disk_usage
    from musicstore.rendering import render_peaks

    job = _custom(store, where, "album/track 01.wav")
    render_peaks(store, job.id, root=where)
    report = reconcile(store, where)
    assert report.consistent
    assert (report.files_scanned, report.referenced_files, report.peaks_files, report.unknown_files) == (
        2, 2, 1, 0,
    )  # fmt: skip
    usage = disk_usage(store, where)
    assert (usage.files, usage.other.files) == (2, 0)


def test_render_peaks_removes_its_file_when_cleanup_deleted_the_generation_meanwhile(
    store: Store, where: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # render_peaks put its file, then found the row gone when it came to record it (a cleanup deleted the
    # generation, and removed the files beside its master, while the peaks were computed): it raised
    # NotFound and left the file, an orphan no row would ever record
    from musicstore import rendering
    from musicstore.audio.peaks import compute_peaks as compute
    from musicstore.errors import NotFound

    done = _exported(store, where)
    calls: list[int] = []

    def deleted_meanwhile(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:  # the first call checks the arguments
            assert cleanup(store, where, statuses=["completed"], dry_run=False).rows_deleted == 1
        return compute(*args, **kwargs)

    monkeypatch.setattr(rendering, "compute_peaks", deleted_meanwhile)
    with pytest.raises(NotFound):
        render_peaks(store, done.id, root=where, samples_per_pixel=512)
    assert [o.key for o in where.list()] == []
    assert reconcile(store, where).consistent


def test_a_render_refused_by_another_object_at_its_key_does_not_say_it_removed_a_file(
    store: Store, where: FileStore
) -> None:
    # the note every failed render added said "its file was removed", also when nothing was put: an object
    # nobody recorded at the key (ObjectExists), left as it was, or the generation deleted meanwhile
    from musicstore.audio import RenditionSpec, get_profile
    from musicstore.filestore import ObjectExists
    from musicstore.rendering import rendition_name

    done = _exported(store, where)
    master = str(done.file_path)
    settings = RenditionSpec("flac").settings(done.sample_rate, done.channels).description
    taken = f"{master.rpartition('/')[0]}/{rendition_name(Path(master), settings, get_profile('streaming'))}"
    where.put(taken, b"someone else's bytes")
    with pytest.raises(ObjectExists) as raised:
        render_generation(store, done.id, root=where, formats=["flac"])
    notes = " ".join(raised.value.__notes__)
    assert "removed" not in notes and "nothing was put" in notes, notes
    assert b"".join(where.get(taken)) == b"someone else's bytes"


def test_a_quarantine_on_another_filesystem_takes_an_orphan_another_reconcile_moved_as_repaired(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # with the quarantine on another filesystem an orphan is copied out, then removed: when another
    # reconcile moved it first (between this one's look and its copy), opening it raised FileNotFoundError,
    # reported as an error ("cannot move ... to the quarantine"): exit code 4 with an error for an orphan
    # the other had quarantined
    import errno
    import os

    root, quarantine = tmp_path / "root", tmp_path / "quarantine"
    root.mkdir()
    (root / "stray.wav").write_bytes(b"RIFF stray")
    rename = os.rename

    def moved_by_the_other_then_cross_device(src: Any, dst: Any, **kwargs: Any) -> None:
        if "src_dir_fd" not in kwargs:
            rename(src, dst, **kwargs)
            return
        os.unlink(src, dir_fd=kwargs["src_dir_fd"])  # the other reconcile's move, done first
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "rename", moved_by_the_other_then_cross_device)
    report = reconcile(store, root, repair=True, quarantine=quarantine)
    assert report.errors == []
    assert [(o.path, o.action) for o in report.orphans] == [("stray.wav", "already_repaired")]
    assert report.consistent
