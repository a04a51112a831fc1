"""Crash safety under SIGKILL: operations that write a file and a row together, killed at a chosen point in a
real subprocess, leave what the docs promise (no partial file under a final name, nothing a retry or
reconcile cannot take up)."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from musicstore import Store
from musicstore.audio import layout_path, synthesize_music
from musicstore.delivery import Delivery
from musicstore.filestore import open_filestore
from musicstore.maintenance.reconcile import reconcile
from musicstore.recording import export_generation
from musicstore.rendering import render_generation
from tests.test_reconcile import put

REPO = Path(__file__).resolve().parent.parent


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )


QUARANTINE_KILLED_MIDCOPY = """
    import errno, os, shutil, signal, sys
    from musicstore import Store
    from musicstore.maintenance.reconcile import reconcile

    url, root, quarantine = sys.argv[1:]
    rename = os.rename

    def other_filesystem(src, dst, **kw):  # the quarantine on another filesystem: rename cannot move it
        if str(dst).startswith(quarantine):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return rename(src, dst, **kw)

    def half_then_killed(src, dst, length=0):
        dst.write(src.read(5000))
        dst.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    os.rename, shutil.copyfileobj = other_filesystem, half_then_killed
    with Store(url) as store:
        reconcile(store, root, repair=True, quarantine=quarantine)
"""


def test_quarantine_across_filesystems_killed_midcopy_leaves_no_partial_file(
    sqlite_url: str, tmp_path: Path
) -> None:
    """reconcile --quarantine to another filesystem copies each orphan: it wrote the copy at its final name
    in the quarantine, so a kill midway left a truncated file there, looking like the orphan (the original
    stayed in the root, and the next run quarantined it again as ``<name>.1``). The copy is now written under
    a hidden temp name, fsynced, and linked into place whole."""
    root, quarantine = tmp_path / "audio", tmp_path / "quarantine"
    root.mkdir()
    orphan = put(root, "2026/01/02/stray.wav", size=10_000)
    original = orphan.read_bytes()
    run = _run(QUARANTINE_KILLED_MIDCOPY, sqlite_url, str(root), str(quarantine))
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert orphan.read_bytes() == original  # still in the root, whole
    named = [p for p in quarantine.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert named == []  # no partial copy under the orphan's name
    with Store(sqlite_url) as store:
        again: Any = reconcile(store, root, repair=True, quarantine=quarantine)
        assert [o.action for o in again.orphans] == ["quarantined"]
        moved = Path(again.orphans[0].moved_to)
        assert moved == quarantine / "2026/01/02/stray.wav" and moved.read_bytes() == original
        assert not orphan.exists() and reconcile(store, root).consistent


RENDER_KILLED_AFTER_PUT = """
    import os, signal, sys
    from musicstore import Store
    from musicstore.filestore import LocalFileStore
    from musicstore.filestore.s3 import S3FileStore
    from musicstore.rendering import render_generation

    url, root, generation_id = sys.argv[1:]
    for kind in (LocalFileStore, S3FileStore):
        def put(self, *args, _put=kind.put, **kwargs):  # the object is in, the row not committed yet
            _put(self, *args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
        kind.put = put
    with Store(url) as store:
        render_generation(store, generation_id, root=root, formats=["vorbis"])
"""


@pytest.fixture(params=["folder", "s3"])
def render_root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the masters and their renditions go: a local folder, or a prefix of the test S3 server."""
    if request.param == "s3":
        return str(request.getfixturevalue("musicstore_s3_url"))
    (tmp_path / "audio").mkdir()
    return str(tmp_path / "audio")


def test_a_render_killed_between_its_put_and_its_commit_does_not_block_the_next(
    sqlite_url: str, render_root: str
) -> None:
    """A render killed after its put and before its commit left its object at the rendition's key, marked
    with the generation's id, and no row: every later render of that request raised ``ObjectExists`` until
    someone ran ``reconcile --repair`` (a Vorbis or Opus encode differs each time, so it is never the same
    bytes). Holding the generation's row lock with its row inserted, the render now replaces an object
    marked with its own generation's id, as the export does; another object at the key still stays."""
    with Store(sqlite_url) as store:
        store.create_generation("a harp", model_name="m", duration_seconds=1, sample_rate=32_000, channels=2)
        claimed = store.claim_next("gpu-0")
        assert claimed is not None
        export_generation(store, claimed, synthesize_music(1.0, 32_000, channels=2, seed=1), root=render_root)
    run = _run(RENDER_KILLED_AFTER_PUT, sqlite_url, render_root, claimed.id)
    assert run.returncode == -signal.SIGKILL, run.stderr
    with Store(sqlite_url) as store:
        assert store.list_renditions(claimed.id) == []
        assert reconcile(store, render_root).orphan_count == 1  # the killed render's object
        [made] = render_generation(store, claimed.id, root=render_root, formats=["vorbis"])
        assert store.list_renditions(claimed.id) == [made]
        with Delivery(store) as delivery:
            assert hashlib.sha256(delivery.read_audio(made)).hexdigest() == made.checksum
        assert reconcile(store, render_root).consistent


def test_reconcile_repair_leaves_an_orphan_whose_dead_letter_was_replayed_and_recorded_meanwhile(
    sqlite_url: str, render_root: str
) -> None:
    """A worker killed between placing its master and its commit leaves the file at the layout's key; once
    its job is a dead letter the file is an orphan. reconcile --repair judged it from the rows read during
    the walk and removed it later without looking again (only a rendition was checked again under its
    generation's lock), so when the dead letter was replayed and recorded meanwhile, at that very key, the
    repair removed the new file: a completed row whose file was gone. The repair of a master now takes its
    generation's row lock and leaves the file when a row records it or its generation is pending or
    processing again."""
    import musicstore.maintenance.reconcile as module

    with Store(sqlite_url) as store:
        store.create_generation("a harp", model_name="m", duration_seconds=1, sample_rate=16_000, channels=1)
        job = store.claim_next("gpu-0", lease_seconds=60)
        assert job is not None
        key = layout_path(Path("."), job.id, when=job.created_at).as_posix()
        leftover = synthesize_music(1.0, 16_000, channels=1, seed=9)
        files = open_filestore(render_root)
        files.put(key, b"RIFF what a killed attempt left", metadata={"generation-id": job.id})
        store.fail(job.id, "lease lost: worker gone", retry=False)  # a dead letter; its file an orphan
        assert reconcile(store, render_root).orphan_count == 1
        repair = module._repair_unless_recorded

        def replayed_meanwhile(*args: Any, **kwargs: Any) -> bool:  # between the walk and the repair
            store.replay(job.id)
            claimed = store.claim_next("gpu-1")
            assert claimed is not None and claimed.id == job.id
            export_generation(store, claimed, leftover, root=files, peaks=False)
            return repair(*args, **kwargs)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(module, "_repair_unless_recorded", replayed_meanwhile)
            reconcile(store, render_root, repair=True, delete_orphans=True)
        assert reconcile(store, render_root).consistent  # the recorded file is still there
        done = store.get_generation(job.id)
        assert done is not None and done.file_path == key
        with Delivery(store) as delivery:
            assert delivery.read_audio(done)
