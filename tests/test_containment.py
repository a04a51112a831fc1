"""Containment: no maintenance command touches anything outside the output root, whatever a row says.

Rows can hold any ``file_path`` (imported, edited by hand): absolute paths, ``..`` segments, symlinked
folders or files inside the root that lead outside, NUL, Windows-style paths. Property (hypothesis, both
backends): after reconcile (report, repair with deletion, repair with quarantine), cleanup and disk_usage,

- the folder outside the root is exactly as it was: names, sizes, contents, mtimes (a snapshot), and no
  file or folder in it was opened, read, written, created, moved or deleted (inotify; Linux has no event for
  a bare ``stat``);
- every row whose path leads outside the root (by an oracle independent of ``musicstore.filestore.local``) is
  reported as ``outside_root`` by reconcile and skipped as outside by cleanup, and no other row is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import re
import select
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore import RESET_CONFIRMATION, Generation
from musicstore.cli import EXIT_INCONSISTENT
from musicstore.filestore.local import Outside, RootDir, parts
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.retention import cleanup
from musicstore.maintenance.usage import disk_usage
from musicstore.urls import URL_ENV
from tests.conftest import new_job

# --- a world: a root with symlinks that lead out, and a sibling folder with real files -------------------

OUTSIDE_FILES = {"victim.wav": 11, "sub/deep.wav": 12, "sub/notes.txt": 13, "root.wav": 14}
INSIDE_FILES = {"2026/01/01/good.wav": 21, "x.wav": 22, "2026/01/02/other.wav": 23}
SYMLINKS = {  # inside the root → target (relative targets resolve from the link's folder)
    "link_dir": "../outside",
    "2026/link_sub": "../../outside/sub",
    "link_file.wav": "../outside/victim.wav",
    "2026/01/loop": "..",  # leads back inside the root: still not followed
    "abs_link": "{outside}",
}


def make_world(base: Path) -> tuple[Path, Path]:
    root, outside = base / "root", base / "outside"
    for folder, files in ((outside, OUTSIDE_FILES), (root, INSIDE_FILES)):
        for rel, size in files.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bytes([size]) * size)
    for rel, target in SYMLINKS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(target.format(outside=outside))
    return root, outside


def snapshot(folder: Path) -> dict[str, tuple[str, int, int, str]]:
    """Every entry under ``folder``: kind, size, mtime (ns) and content digest."""
    found: dict[str, tuple[str, int, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if kind == "file" else ""
            found[path.relative_to(folder).as_posix()] = (kind, info.st_size, info.st_mtime_ns, digest)
    return found


def leads_outside(root: Path, rel: str) -> bool:
    """The oracle: lexically not a relative path without '..', or through/to a symlink, or out by realpath."""
    if not rel or "\x00" in rel or "\\" in rel or rel.startswith("/") or re.match(r"[A-Za-z]:", rel):
        return True
    segments = [s for s in rel.split("/") if s not in ("", ".")]
    if not segments or ".." in segments:
        return True
    for depth in range(1, len(segments) + 1):
        if os.path.islink(root.joinpath(*segments[:depth])):
            return True
    real = os.path.realpath(root.joinpath(*segments))
    return not real.startswith(os.path.realpath(root) + os.sep)


# --- inotify: did anything open, read or change a file outside? ------------------------------------------

_IN_EVENTS = {
    0x001: "access", 0x002: "modify", 0x004: "attrib", 0x008: "close_write", 0x020: "open",
    0x040: "moved_from", 0x080: "moved_to", 0x100: "create", 0x200: "delete", 0x400: "delete_self",
}  # fmt: skip


class Watch:
    """inotify watches on a folder and every folder below it (Linux)."""

    def __init__(self, folder: Path) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        mask = sum(_IN_EVENTS)
        folders = [dirpath for dirpath, _, _ in os.walk(folder)]  # listed before watching: unseen
        for dirpath in folders:
            assert libc.inotify_add_watch(self.fd, os.fsencode(dirpath), mask) >= 0

    def events(self) -> list[str]:
        found: list[str] = []
        while select.select([self.fd], [], [], 0)[0]:
            data = os.read(self.fd, 65536)
            offset = 0
            while offset < len(data):
                _, mask, _, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16 : offset + 16 + length].rstrip(b"\0").decode()
                found += [f"{event} {name}" for bit, event in _IN_EVENTS.items() if mask & bit]
                offset += 16 + length
        return found

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def watch() -> Iterator[type[Watch]]:
    if not sys.platform.startswith("linux"):
        pytest.skip("inotify is Linux only")
    yield Watch


# --- rows with any file_path --------------------------------------------------------------------------


def set_file_path(url: str, generation_id: str, file_path: str) -> None:
    """What an import or a hand edit can do, and ``complete_generation`` refuses."""
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("UPDATE generations SET file_path = ? WHERE id = ?", (file_path, generation_id))
        return
    import psycopg

    stored = file_path.replace("\x00", "\ufffd")  # PostgreSQL text cannot hold NUL
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE generations SET file_path = %s WHERE id = %s", (stored, generation_id))


def completed_row(store: Any, root: Path, size: int = 21) -> Generation:
    new_job(store)
    claimed = store.claim_next("w")
    done: Generation = store.complete_generation(
        claimed.id, file_path="2026/01/01/good.wav", file_size_bytes=size
    )
    return done


SEGMENTS = [
    "..", ".", "", "2026", "01", "02", "sub", "outside", "root", "link_dir", "link_sub", "loop", "abs_link",
]  # fmt: skip
NAMES = ["victim.wav", "deep.wav", "notes.txt", "link_file.wav", "good.wav", "x.wav", "root.wav", "other.wav"]


@st.composite
def hostile_paths(draw: st.DrawFn) -> str:
    segments = draw(st.lists(st.sampled_from(SEGMENTS), max_size=5))
    path = "/".join([*segments, draw(st.sampled_from(NAMES))])
    form = draw(
        st.sampled_from(["plain", "plain", "plain", "absolute", "outside", "nul", "windows", "drive"])
    )
    if form == "absolute":
        return "/" + path
    if form == "outside":
        return "{outside}/" + path
    if form == "nul":
        cut = draw(st.integers(0, len(path)))
        return path[:cut] + "\x00" + path[cut:]
    if form == "windows":
        return path.replace("/", "\\")
    if form == "drive":
        return "C:/" + path
    return path


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(paths=st.lists(hostile_paths(), min_size=1, max_size=4))
def test_maintenance_never_touches_outside_and_reports_every_row_that_leads_there(
    store: Any, db_url: str, watch: type[Watch], paths: list[str]
) -> None:
    store.reset_database(confirm=RESET_CONFIRMATION)  # each example starts from an empty store
    base = Path(tempfile.mkdtemp(prefix="containment-"))
    try:
        root, outside = make_world(base)
        good = completed_row(store, root)
        rows: dict[str, str] = {}
        for path in paths:
            row = completed_row(store, root, size=12)  # the size of a file outside: a follower would agree
            rows[row.id] = path.format(outside=outside)
            set_file_path(db_url, row.id, rows[row.id])
        if db_url.startswith("postgresql"):
            rows = {gid: path.replace("\x00", "\ufffd") for gid, path in rows.items()}
        expected = {gid for gid, path in rows.items() if leads_outside(root, path)}
        before = snapshot(outside)
        watcher = watch(outside)
        try:
            reports = [
                reconcile(store, root),
                reconcile(store, root, repair=True, delete_orphans=True),
                reconcile(store, root, repair=True, quarantine=base / "quarantine"),
            ]
            usage = disk_usage(store, root)
            swept = cleanup(store, root, statuses=["completed", "failed"], dry_run=False)
            events = watcher.events()
        finally:
            watcher.close()
        assert events == []
        assert snapshot(outside) == before
        for report in reports:
            assert {o.id for o in report.outside_root} == expected
            assert report.outside_root_count == len(expected)
            assert not report.consistent or not expected
        assert usage.symlinks == len(SYMLINKS)
        outside_skips = {s.id for s in swept.skipped if s.reason.startswith("outside the output root")}
        assert outside_skips == expected and swept.outside_root_count == len(expected)
        for gid in expected:
            assert store.get_generation(gid) is not None  # never deleted
        assert store.get_generation(good.id) is None  # the control row went, with its file
    finally:
        shutil.rmtree(base)


# --- the CLI says so ------------------------------------------------------------------------------------


def musicstore_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (URL_ENV, "MUSICSTORE_OUTPUT_ROOT")}
    return subprocess.run(
        [sys.executable, "-m", "musicstore", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def test_the_cli_reports_rows_outside_the_root_and_leaves_them(
    store: Any, db_url: str, tmp_path: Path
) -> None:
    root, outside = make_world(tmp_path)
    new_job(store)
    claimed = store.claim_next("w")  # a symlinked folder passes complete_generation's lexical check
    through_link = store.complete_generation(claimed.id, file_path="link_dir/victim.wav", file_size_bytes=11)
    climbing = completed_row(store, root, size=12)
    set_file_path(db_url, climbing.id, "../outside/sub/deep.wav")  # the size of the file it names
    before = snapshot(outside)
    common = ("--database", db_url, "--output-root", str(root))

    table = musicstore_cli("reconcile", *common)
    assert table.returncode == EXIT_INCONSISTENT, table.stderr
    assert "rows outside the output root" in table.stdout and "2 rows outside the output root" in table.stdout
    assert "link_dir is a symlink (not followed)" in table.stdout and "has a '..' segment" in table.stdout
    assert "consistent" not in table.stdout.splitlines()[-1]

    report = json.loads(musicstore_cli("reconcile", "--json", *common).stdout)
    assert report["outside_root_count"] == 2 and not report["consistent"]
    assert {o["id"] for o in report["outside_root"]} == {through_link.id, climbing.id}

    repaired = musicstore_cli("reconcile", "--repair", "--orphans", "delete", *common)
    assert repaired.returncode == EXIT_INCONSISTENT and "2 rows outside the output root" in repaired.stdout
    swept = musicstore_cli("cleanup", "--status", "completed", "--apply", *common)
    assert swept.returncode == 0, swept.stderr
    assert swept.stdout.count("outside the output root") == 2
    assert store.get_generation(through_link.id) is not None and store.get_generation(climbing.id) is not None
    assert snapshot(outside) == before


# --- RootDir ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "reason"),
    [
        ("", "is not a path"),
        ("a/\x00b.wav", "NUL"),
        ("a\\b.wav", "Windows-style"),
        ("C:/b.wav", "Windows-style"),
        ("/etc/passwd", "absolute"),
        ("//server/share/x.wav", "absolute"),
        ("a/../../x.wav", "'..'"),
        ("..", "'..'"),
        ("./.", "the root itself"),
        ("a/\udfffb.wav", "cannot be encoded"),
    ],
)
def test_paths_that_cannot_name_a_file_under_the_root(rel: str, reason: str) -> None:
    with pytest.raises(Outside, match=re.escape(reason)):
        parts(rel)


def test_dot_and_empty_segments_are_dropped() -> None:
    assert parts("./2026//01/./x.wav") == ["2026", "01", "x.wav"]


def test_rootdir_refuses_symlinks_and_removes_only_regular_files(tmp_path: Path) -> None:
    root, outside = make_world(tmp_path)
    (root / "folder").mkdir()
    before = snapshot(outside)
    with RootDir(root) as where:
        for rel in ("link_dir/victim.wav", "2026/link_sub/deep.wav", "link_file.wav", "2026/01/loop/x.wav"):
            with pytest.raises(Outside, match="symlink"):
                where.lstat(rel)
            with pytest.raises(Outside, match="symlink"):
                where.unlink(rel)
        assert where.lstat("x.wav/inside.wav") is None  # through a file: missing
        assert where.lstat("nowhere/x.wav") is None
        assert not where.unlink("folder")  # not a regular file
        assert where.unlink("x.wav") and not (root / "x.wav").exists()
    assert snapshot(outside) == before and (root / "folder").is_dir()


def test_quarantine_across_filesystems_copies_then_removes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = make_world(tmp_path)
    target = tmp_path / "q.wav"
    real_rename = os.rename

    def exdev(*args: Any, **kwargs: Any) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "rename", exdev)
    with RootDir(root) as where:
        assert where.move_out("2026/01/02/other.wav", target)
        with pytest.raises(Outside):
            where.move_out("link_file.wav", tmp_path / "never.wav")
    monkeypatch.setattr(os, "rename", real_rename)
    assert target.read_bytes() == bytes([23]) * 23 and not (root / "2026/01/02/other.wav").exists()
    assert not (tmp_path / "never.wav").exists()
