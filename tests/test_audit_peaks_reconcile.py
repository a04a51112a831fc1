"""The waveform peaks file a generation's row records (``metadata["peaks"]``: ``key``, ``bytes``,
``sha256``, written by the export since peaks are on by default, or by ``render_peaks``) under reconcile, on
a local root and in a real SeaweedFS bucket, on both database backends: a recorded peaks file that is
missing, of another size or of another content is reported (``dangling_peaks``), a record that leads
outside the root is reported as outside the root and nothing there is read or touched, and a repair drops
the record (``render_peaks`` makes it again) and takes the damaged file away."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore import Store
from musicstore.filestore import FileStore, open_filestore
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.retention import cleanup
from musicstore.rendering import render_peaks


def _exported(store: Store, files: FileStore, **kwargs: Any) -> Any:
    from musicstore.recording import export_generation
    from tests.test_record import OPTIONS, claimed, music

    return export_generation(store, claimed(store), music(), root=files, options=OPTIONS, **kwargs)


def _root(files: FileStore, tmp_path: Path) -> str | Path:
    return tmp_path / "audio" if files.url.startswith("file:") else files.url


def _meta(store: Store, gid: str) -> dict[str, Any]:
    row = store.get_generation(gid)
    assert row is not None
    return row.metadata


@contextmanager
def _opened(url: str) -> Iterator[FileStore]:
    files = open_filestore(url)
    try:
        yield files
    finally:
        files.close()


def _local(files: FileStore) -> bool:
    return files.url.startswith("file:")


def damaged(files: FileStore, key: str, damage: str) -> bytes:
    """Replace the object at ``key`` by one a byte longer (``size_mismatch``) or of its size with its first
    ``2`` a ``3`` (``checksum_mismatch``, for a peaks file); the bytes put."""
    body = b"".join(files.get(key))
    bad = body + b" " if damage == "size_mismatch" else body.replace(b"2", b"3", 1)
    assert bad != body and (len(bad) == len(body)) == (damage == "checksum_mismatch")
    files.delete(key)
    files.put(key, bad)
    return bad


def _repair(store: Store, files: FileStore, tmp_path: Path) -> Any:
    return reconcile(store, _root(files, tmp_path), repair=True, delete_orphans=not _local(files))


def test_a_recorded_peaks_file_that_is_there_is_consistent(
    store: Store, where: FileStore, tmp_path: Path
) -> None:
    done = _exported(store, where)
    assert done.peaks is not None  # peaks are on by default
    report = reconcile(store, _root(where, tmp_path))
    assert report.consistent, asdict(report)
    # one record; two peaks files: the audiowaveform one and its normalised one
    assert report.peaks_checked == 1 and report.dangling_peaks_count == 0 and report.peaks_files == 2


def test_a_missing_recorded_peaks_file_is_reported_and_repaired(
    store: Store, where: FileStore, tmp_path: Path
) -> None:
    done = _exported(store, where)
    key = _meta(store, done.generation.id)["peaks"]["key"]
    assert where.delete(key)
    report = reconcile(store, _root(where, tmp_path))
    assert not report.consistent
    assert report.dangling_peaks_count == 1 and report.dangling_count == 0
    [found] = report.dangling_peaks
    assert (found.id, found.key, found.problem, found.actual_bytes) == (
        done.generation.id,
        key,
        "missing",
        None,
    )
    assert found.expected_bytes == done.peaks.bytes and found.action == "reported"
    assert "peaks" in json.dumps(asdict(report))

    repaired = _repair(store, where, tmp_path)
    assert [p.action for p in repaired.dangling_peaks] == ["record_dropped"]
    row = store.get_generation(done.generation.id)
    assert row is not None
    assert "peaks" not in row.metadata and row.is_completed  # the master is fine: the row stays completed
    assert reconcile(store, _root(where, tmp_path)).consistent
    again = render_peaks(store, done.generation.id)  # makes them again
    assert _meta(store, done.generation.id)["peaks"] == again.as_metadata()
    assert reconcile(store, _root(where, tmp_path)).consistent


@pytest.mark.parametrize("which", ["peaks", "normalized"])  # the audiowaveform file, the normalised one
@pytest.mark.parametrize("damage", ["size_mismatch", "checksum_mismatch"])
def test_a_damaged_recorded_peaks_file_is_reported_and_taken_away(
    store: Store, where: FileStore, tmp_path: Path, damage: str, which: str
) -> None:
    done = _exported(store, where)
    record = _meta(store, done.generation.id)["peaks"]
    if which == "normalized":  # checked alike, listed with its own key; the whole record goes (session 31)
        record = record["normalized"]
    key = record["key"]
    body = b"".join(where.get(key))
    bad = damaged(where, key, damage)
    verify = not _local(where)  # a bucket reads objects only when asked; a folder reads peaks files always
    report = reconcile(store, _root(where, tmp_path), verify_checksums=verify)
    assert not report.consistent
    [found] = report.dangling_peaks
    assert (found.key, found.problem, found.expected_bytes) == (key, damage, record["bytes"])
    assert found.actual_bytes == len(bad)

    repaired = reconcile(
        store, _root(where, tmp_path), repair=True, delete_orphans=not _local(where), verify_checksums=verify
    )
    assert [p.action for p in repaired.dangling_peaks] == ["record_dropped"]
    assert key not in {o.key for o in where.list()}  # the damaged file is gone from the root
    if _local(where):
        moved = Path(str(repaired.quarantine)) / key
        assert moved.read_bytes() == bad  # quarantined, not deleted
    assert "peaks" not in _meta(store, done.generation.id)
    assert reconcile(store, _root(where, tmp_path), verify_checksums=verify).consistent
    if which == "peaks":
        render_peaks(store, done.generation.id)
        assert b"".join(where.get(key)) == body  # the same bytes as the export's


def test_a_bucket_compares_peaks_sizes_without_reading(
    store: Store, where: FileStore, tmp_path: Path
) -> None:
    if _local(where):
        pytest.skip("a bucket's case")
    done = _exported(store, where)
    key = _meta(store, done.generation.id)["peaks"]["key"]
    body = b"".join(where.get(key))
    where.delete(key)
    where.put(key, body.replace(b"2", b"3", 1))  # same size, other bytes
    assert reconcile(store, where.url).consistent  # sizes agree; the bytes are read only when asked
    assert reconcile(store, where.url, verify_checksums=True).dangling_peaks[0].problem == "checksum_mismatch"


def test_a_record_that_is_not_one_is_reported(store: Store, where: FileStore, tmp_path: Path) -> None:
    done = _exported(store, where)
    store.merge_metadata(done.generation.id, {"peaks": {"samples_per_pixel": 256}})  # no key
    report = reconcile(store, _root(where, tmp_path))
    assert not report.consistent
    assert [(p.id, p.problem) for p in report.dangling_peaks] == [(done.generation.id, "invalid_record")]
    # the file itself is still there, named after a live generation: referenced by name, never an orphan
    assert report.orphan_count == 0


def _outside_records(tmp_path: Path, root: Path) -> list[tuple[str, str]]:
    """(key, what) of peaks records that lead outside ``root``; ``elsewhere`` holds a real file."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    (elsewhere / "p.json").write_bytes(b"x" * 10)
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    (root / "file-link.json").symlink_to(elsewhere / "p.json")
    return [
        ("../elsewhere/p.json", "'..' segment"),
        (str(elsewhere / "p.json"), "absolute"),
        ("linked/p.json", "symlink"),
        ("file-link.json", "symlink"),
        ("a\\b.json", "Windows"),
    ]


def test_a_local_peaks_record_outside_the_root_is_reported_and_never_followed(
    store: Store, tmp_path: Path
) -> None:
    root = tmp_path / "audio"
    root.mkdir()
    with _opened(root.as_uri()) as files:
        done = _exported(store, files)
    for key, what in _outside_records(tmp_path, root):
        record = {**_meta(store, done.generation.id)["peaks"], "key": key, "bytes": 10}
        store.merge_metadata(done.generation.id, {"peaks": record})
        before = os.stat(tmp_path / "elsewhere" / "p.json")
        for repair in (False, True):
            report = reconcile(store, root, repair=repair, delete_orphans=True)
            assert not report.consistent
            assert report.dangling_peaks_count == 0 and report.outside_root_count == 1, (key, asdict(report))
            [outside] = report.outside_root
            assert (outside.id, outside.file_path, outside.kind) == (done.generation.id, key, "peaks")
            assert what in outside.reason, outside.reason
        after = os.stat(tmp_path / "elsewhere" / "p.json")
        assert (tmp_path / "elsewhere" / "p.json").read_bytes() == b"x" * 10
        assert (before.st_mtime_ns, before.st_ino) == (after.st_mtime_ns, after.st_ino)
        assert _meta(store, done.generation.id)["peaks"]["key"] == key  # left as it is


def test_a_bucket_peaks_record_outside_the_prefix_is_reported(store: Store, musicstore_s3_url: str) -> None:
    with _opened(musicstore_s3_url) as files:
        done = _exported(store, files)
        record = _meta(store, done.generation.id)["peaks"]
        for key in ("../p.json", "/p.json", "a//../b.json"):
            store.merge_metadata(done.generation.id, {"peaks": {**record, "key": key}})
            report = reconcile(store, files, repair=True, delete_orphans=True)
            assert not report.consistent and report.outside_root_count == 1, (key, asdict(report))
            assert report.outside_root[0].kind == "peaks" and report.outside_root[0].file_path == key
            assert _meta(store, done.generation.id)["peaks"]["key"] == key


def test_cleanup_deletes_the_recorded_peaks_file_wherever_the_row_put_it(
    store: Store, where: FileStore, tmp_path: Path
) -> None:
    """A record naming a peaks file not beside its master (moved by hand, rendered elsewhere): cleanup
    deletes it with its generation when it is a peaks file of that generation."""
    done = _exported(store, where)
    record = _meta(store, done.generation.id)["peaks"]
    body = b"".join(where.get(record["key"]))
    moved = f"elsewhere/{record['key'].rpartition('/')[2]}"
    where.put(moved, body)
    where.delete(record["key"])
    store.merge_metadata(done.generation.id, {"peaks": {**record, "key": moved}})
    assert reconcile(store, _root(where, tmp_path)).consistent
    report = cleanup(store, _root(where, tmp_path), statuses=["completed"], dry_run=False)
    # the moved peaks file and the normalised one beside the master
    assert report.rows_deleted == 1 and report.peaks_files_deleted == 2, asdict(report)
    assert {o.key for o in where.list()} == set()


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    damage=st.lists(
        st.sampled_from(["keep", "missing", "grow", "shrink", "flip", "invalid"]), min_size=1, max_size=3
    ),
)
def test_reconcile_reports_exactly_the_damaged_peaks_records_property(
    sqlite_store_factory: Any, tmp_path_factory: pytest.TempPathFactory, damage: list[str]
) -> None:
    """Any mix of kept, missing, resized, flipped and invalid records on a folder: exactly the damaged ones
    are reported, each with its problem; a repair leaves a consistent root and no record naming a bad file."""
    store, root = sqlite_store_factory(tmp_path_factory.mktemp("peaks"))
    expected: dict[str, str] = {}
    with _opened(root.as_uri()) as files:
        for what in damage:
            done = _exported(store, files)
            gid, key = done.generation.id, done.peaks.key
            body = (root / key).read_bytes()
            if what == "missing":
                (root / key).unlink()
            elif what == "grow":
                (root / key).write_bytes(body + b"\n")
            elif what == "shrink":
                (root / key).write_bytes(body[:-1])
            elif what == "flip":
                (root / key).write_bytes(bytes([body[0] ^ 1]) + body[1:])
            elif what == "invalid":
                store.merge_metadata(gid, {"peaks": {"key": key, "bytes": "many"}})
            if what != "keep":
                expected[gid] = {
                    "missing": "missing", "grow": "size_mismatch", "shrink": "size_mismatch",
                    "flip": "checksum_mismatch", "invalid": "invalid_record",
                }[what]  # fmt: skip
    report = reconcile(store, root)
    assert {p.id: p.problem for p in report.dangling_peaks} == expected
    assert report.consistent == (not expected) and report.peaks_checked == len(damage)
    reconcile(store, root, repair=True, delete_orphans=True)
    assert reconcile(store, root).consistent
    for generation in store.list_generations(limit=100).items:
        record = generation.metadata.get("peaks")
        if record is not None:
            data = (root / record["key"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == record["sha256"] and len(data) == record["bytes"]
    store.close()


@pytest.fixture
def sqlite_store_factory(clock: Any) -> Iterator[Any]:
    from musicstore import migrate

    def make(folder: Path) -> tuple[Store, Path]:
        url = f"sqlite:///{folder / 'db.sqlite'}"
        migrate(url)
        (folder / "audio").mkdir()
        return Store(url, clock=clock), folder / "audio"

    yield make


def test_the_cli_reports_a_missing_peaks_file_plain_and_json(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    from musicstore.cli import EXIT_INCONSISTENT, EXIT_OK
    from tests.test_containment import musicstore_cli

    root = tmp_path / "audio"
    root.mkdir()
    with _opened(root.as_uri()) as files:
        done = _exported(store, files)
    (root / done.peaks.key).unlink()
    common = ("--database", db_url, "--output-root", str(root))

    table = musicstore_cli("reconcile", *common)
    assert table.returncode == EXIT_INCONSISTENT, table.stderr
    assert "recorded waveform peaks files missing or damaged" in table.stdout
    assert done.peaks.key in table.stdout and "missing" in table.stdout and "Traceback" not in table.stderr
    report = json.loads(musicstore_cli("reconcile", "--json", *common).stdout)
    assert report["dangling_peaks_count"] == 1 and not report["consistent"]
    assert report["dangling_peaks"][0]["key"] == done.peaks.key

    repaired = musicstore_cli("reconcile", "--repair", "--orphans", "delete", "--json", *common)
    assert json.loads(repaired.stdout)["dangling_peaks"][0]["action"] == "record_dropped"
    assert musicstore_cli("reconcile", *common).returncode == EXIT_OK


@pytest.mark.parametrize("place", ["first", "last"])
def test_a_recorded_peaks_key_far_from_its_master_is_counted_once_in_a_bucket(
    store: Store, musicstore_s3_url: str, place: str
) -> None:
    """A record moved by hand to a key that sorts before every master (so its row comes out of key order)
    or after them: the merge still meets it once, checks it, and finds it missing once it is gone."""
    with _opened(musicstore_s3_url) as files:
        done = [_exported(store, files) for _ in range(3)]
        record = done[1].generation.metadata["peaks"]
        name = record["key"].rpartition("/")[2]
        moved = f"{'0000' if place == 'first' else 'zzzz'}/{name}"
        files.put(moved, b"".join(files.get(record["key"])))
        files.delete(record["key"])
        store.merge_metadata(done[1].generation.id, {"peaks": {**record, "key": moved}})
        report = reconcile(store, files, verify_checksums=True)
        assert report.consistent, asdict(report)
        # each generation: its master, its peaks file and their normalised file
        assert (report.files_scanned, report.peaks_files, report.peaks_checked) == (9, 6, 3)
        assert report.referenced_files == 9 and report.checksums_verified == 9
        files.delete(moved)
        gone = reconcile(store, files)
        assert [(p.id, p.key, p.problem) for p in gone.dangling_peaks] == [
            (done[1].generation.id, moved, "missing")
        ]
        assert (gone.files_scanned, gone.peaks_files) == (8, 5)


def test_disk_usage_counts_peaks_files_as_reconcile_does(
    store: Store, where: FileStore, tmp_path: Path
) -> None:
    """disk_usage's orphans are reconcile's orphans, peaks files included: a live generation's peaks are
    recorded (under its status), a deleted one's are orphans."""
    from musicstore.maintenance.usage import disk_usage

    kept = _exported(store, where)
    gone = _exported(store, where)
    store.delete_generation(gone.generation.id)  # its master and peaks stay: orphans
    root = _root(where, tmp_path)
    report = reconcile(store, root)
    usage = disk_usage(store, root)
    assert report.orphan_count == 3 and report.orphan_peaks_count == 2  # its normalised peaks too
    assert usage.orphans.files == report.orphan_count and usage.orphans.bytes == report.orphan_bytes
    assert usage.recorded.files == report.referenced_files == 3  # the kept master and its two peaks files
    assert usage.other.files == 0
    assert usage.by_status["completed"].files == 3
    normalized_bytes = kept.generation.metadata["peaks"]["normalized"]["bytes"]
    assert usage.recorded.bytes == kept.generation.file_size_bytes + kept.peaks.bytes + normalized_bytes


def test_cleanup_never_follows_a_peaks_record_outside_the_root(
    store: Store, where: FileStore, tmp_path: Path
) -> None:
    """A record named like the generation's peaks file but leading outside the root (``..``, a symlinked
    folder, an empty segment a bucket refuses): cleanup deletes the row, its master and the peaks beside it,
    and touches nothing the record names."""
    done = _exported(store, where)
    gid, record = done.generation.id, _meta(store, done.generation.id)["peaks"]
    name = record["key"].rpartition("/")[2]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / name).write_bytes(b"not yours")
    if _local(where):
        (tmp_path / "audio" / "linked").symlink_to(elsewhere, target_is_directory=True)
        keys = [f"../elsewhere/{name}", f"linked/{name}", str(elsewhere / name)]
    else:
        keys = [f"../elsewhere/{name}", f"x//{name}", f"/x/{name}"]
    for key in keys:
        store.merge_metadata(gid, {"peaks": {**record, "key": key}})
        dry = cleanup(store, _root(where, tmp_path), statuses=["completed"])
        # the two beside the master: the peaks file and its normalised one
        assert dry.peaks_files_deleted == 2 and not dry.errors, asdict(dry)
    report = cleanup(store, _root(where, tmp_path), statuses=["completed"], dry_run=False)
    assert report.rows_deleted == 1 and report.peaks_files_deleted == 2, asdict(report)
    assert (elsewhere / name).read_bytes() == b"not yours"
    assert {o.key for o in where.list()} <= ({"linked"} if _local(where) else set())
