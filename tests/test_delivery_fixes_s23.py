"""Delivery fixes (session 23): reconcile racing another on a bucket's uploads, custom-path peaks of deleted
generations, render_generation after copy-files moved a generation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from musicstore import Store
from musicstore.delivery import Delivery
from musicstore.filestore import FileStore, Upload
from musicstore.maintenance.reconcile import ReconcileReport, reconcile
from musicstore.maintenance.relocate import copy_files
from musicstore.ops.storage import get_storage
from tests.conftest import FakeClock
from tests.test_rendition_store import exported, files


def _another_reconcile_after_the_listing(
    monkeypatch: pytest.MonkeyPatch, store: Store, files: FileStore
) -> list[ReconcileReport]:
    """Run a second ``reconcile --repair`` once, right after this one listed the uploads and before it
    aborts them: the two raced, and the other aborted first."""
    kind = type(files)
    uploads = kind.uploads
    other: list[ReconcileReport] = []

    def listed_then_the_other(self: Any) -> Iterator[Upload]:
        yield from uploads(self)
        if not other:
            other.append(ReconcileReport(files.url, repair=True, quarantine=None))  # no recursion
            other[0] = reconcile(store, files.url, repair=True, delete_orphans=True, stale_after_seconds=0)

    monkeypatch.setattr(kind, "uploads", listed_then_the_other)
    return other


@pytest.fixture
def abandoned(musicstore_s3_server: Any, musicstore_s3_url: str) -> str:
    """A multipart upload begun under the test prefix and never completed; its key."""
    client = musicstore_s3_server.client()
    bucket, _, prefix = musicstore_s3_url.removeprefix("s3://").partition("/")
    client.create_multipart_upload(Bucket=bucket, Key=f"{prefix}2026/01/02/abandoned.wav")
    return "2026/01/02/abandoned.wav"


def test_a_reconcile_racing_another_to_abort_an_upload_counts_it_already_repaired(
    store: Store, objects: FileStore, abandoned: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two `reconcile --repair --orphans delete` on a bucket at once, one stale multipart upload: the one that
    # came second aborted it again (S3 and SeaweedFS answer that as done), reported it `aborted` and exited
    # 4, as if it had found and repaired a disagreement the other had already repaired
    other = _another_reconcile_after_the_listing(monkeypatch, store, objects)
    report = reconcile(store, objects, repair=True, delete_orphans=True, stale_after_seconds=0)
    assert [(u.key, u.action) for u in other[0].abandoned_uploads] == [(abandoned, "aborted")]
    assert not other[0].consistent
    assert report.errors == []
    assert [(u.key, u.action) for u in report.abandoned_uploads] == [(abandoned, "already_repaired")]
    assert report.already_repaired == 1 and report.consistent
    monkeypatch.undo()
    assert list(objects.uploads()) == []


def test_the_cli_exits_0_when_another_reconcile_aborted_the_upload_it_found(
    store: Store,
    *,
    db_url: str,
    objects: FileStore,
    abandoned: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from musicstore.cli import main

    other = _another_reconcile_after_the_listing(monkeypatch, store, objects)
    code = main(
        ["reconcile", "--database", db_url, "--output-root", objects.url, "--repair", "--orphans", "delete",
         "--stale-after", "0s"]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert other and not other[0].consistent, (code, out, err)
    assert code == 0, out
    assert "already_repaired" in out and abandoned in out


def _custom(store: Store, where: FileStore, path: str) -> Any:
    """A completed generation whose master is at ``path`` (not the ``<id>.wav`` layout), its peaks drawn."""
    from musicstore.rendering import render_peaks
    from tests.test_delivery_fixes_s22 import _custom as recorded_at

    job = recorded_at(store, where, path)
    render_peaks(store, job.id, root=where)
    return job


def _keys(files: FileStore) -> set[str]:
    return {o.key for o in files.list()}


def test_the_peaks_of_a_deleted_generation_at_a_custom_path_are_orphan_peaks(
    store: Store, where: FileStore
) -> None:
    # a generation recorded at a custom file_path (`album/track 01.wav`) had its peaks drawn beside it
    # (`album/track 01.peaks.256.8.json`, no id in the name); once its row was deleted, reconcile reported
    # its master as an orphan but the peaks file as a file of another kind (`unknown_files`), never repaired,
    # where the peaks of a master in the layout (`<id>.peaks…json`) are orphan peaks
    from musicstore.maintenance.usage import disk_usage

    job = _custom(store, where, "album/track 01.wav")
    live = _custom(store, where, "album/track 02.wav")  # its neighbour, still recorded: kept
    assert store.get_generation(live.id) is not None
    peaks, master = "album/track 01.peaks.256.8.json", "album/track 01.wav"
    assert {peaks, master} <= _keys(where)
    store.delete_generation(job.id)
    report = reconcile(store, where)
    assert {o.path for o in report.orphans} == {master, peaks}
    assert (report.orphan_count, report.orphan_peaks_count, report.unknown_files) == (2, 1, 0)
    assert (report.peaks_files, report.referenced_files) == (2, 2)
    usage = disk_usage(store, where)
    assert (usage.orphans.files, usage.other.files) == (2, 0)
    repaired = reconcile(store, where, repair=True, delete_orphans=True)
    assert {(o.path, o.action) for o in repaired.orphans} == {(master, "deleted"), (peaks, "deleted")}
    assert _keys(where) == {"album/track 02.wav", "album/track 02.peaks.256.8.json"}
    assert reconcile(store, where).consistent


def test_a_json_named_as_peaks_beside_a_recorded_master_stays_another_kind(
    store: Store, where: FileStore
) -> None:
    # a peaks-named file beside a master some row records, which that row does not record (drawn by hand,
    # say): the generation is there, so it is no orphan; it is left alone as before
    _custom(store, where, "album/track 01.wav")
    where.put("album/track 01.peaks.512.16.json", b'{"version": 2}')
    report = reconcile(store, where, repair=True, delete_orphans=True)
    assert (report.orphan_count, report.unknown_files) == (0, 1) and report.consistent
    assert "album/track 01.peaks.512.16.json" in _keys(where)


def test_render_after_copy_files_reads_and_writes_where_the_row_now_says(
    store: Store, tmp_path: Path
) -> None:
    # copy-files moved a generation from `old` to `new` (both folders of this host), and `render` kept being
    # given the old output root: root= was taken as this host's mount of the row's folder, so the master was
    # read in `old` and the rendition put there, beside a copy no row names, while its row said `new`
    # (reconcile of `new`: a dangling rendition); once `old` was tidied the render said the master was
    # "missing; run reconcile", which a reconcile of either folder did not change
    from musicstore.rendering import render_generation, render_peaks

    old, new = tmp_path / "old", tmp_path / "new"
    done = exported(store, old)
    copy_files(store, new)
    assert store.run(get_storage, done.id).storage_url == new.as_uri()
    before = files(old)
    (mp3,) = render_generation(store, done.id, root=old, formats=["mp3"])
    assert (new / mp3.storage_key).is_file() and files(old) == before
    (old / str(done.file_path)).unlink()  # the source tidied: the copy no row names is gone
    (opus,) = render_generation(store, done.id, root=old, formats=["opus"])
    assert (new / opus.storage_key).is_file()
    drawn = render_peaks(store, done.id, root=old, samples_per_pixel=512)
    assert drawn.storage_url == new.as_uri() and (new / drawn.key).is_file()
    assert files(old) == before - {str(done.file_path)}
    assert reconcile(store, new).consistent
    with Delivery(store) as delivery:
        assert delivery.read_audio(opus)


def test_render_says_which_folder_the_row_names_when_the_root_given_lacks_the_master(
    store: Store, tmp_path: Path
) -> None:
    # a row whose folder this host does not have (another host's path): root= is its mount here; the master
    # missing there was "missing from <root>; run reconcile", naming neither the folder the row names nor
    # that root= stood for it
    from musicstore.errors import InvalidInput
    from musicstore.rendering import render_generation

    old, mount = tmp_path / "old", tmp_path / "mount"
    done = exported(store, old)
    old.rename(tmp_path / "elsewhere")
    mount.mkdir()
    with pytest.raises(InvalidInput) as raised:
        render_generation(store, done.id, root=mount, formats=["mp3"])
    message = str(raised.value)
    assert old.as_uri() in message and str(mount) in message, message


def test_cleanup_keeps_the_peaks_another_generation_records_beside_a_master_of_the_same_stem(
    store: Store, where: FileStore, tmp_path: Path, clock: FakeClock
) -> None:
    # two generations at custom paths of one stem (`album/t.wav`, `album/t.flac`): peaks files are named after
    # the stem (`album/t.peaks.256.8.json`), so cleanup of the one removed, as "its" peaks, the file the other
    # still records: a dangling peaks record for a generation that was never deleted
    from musicstore.maintenance.retention import cleanup
    from tests.test_delivery_fixes_s22 import _custom as unpeaked

    gone = unpeaked(store, where, "album/t.flac")
    clock.advance(86_400)
    kept = _custom(store, where, "album/t.wav")
    peaks = "album/t.peaks.256.8.json"
    record = store.get_generation(kept.id)
    assert record is not None and record.metadata["peaks"]["key"] == peaks
    root: Any = where if where.url.startswith("s3:") else tmp_path / "audio"
    report = cleanup(store, root, older_than=timedelta(hours=1), dry_run=False)
    assert [item.id for item in report.deleted] == [gone.id] and report.peaks_files_deleted == 0
    assert peaks in _keys(where) and "album/t.flac" not in _keys(where)
    checked = reconcile(store, where)
    assert checked.dangling_peaks_count == 0 and checked.consistent, checked
