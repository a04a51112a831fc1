"""Crash safety under SIGKILL: operations that write a file and a row together, killed at a chosen point in a
real subprocess, leave what the docs promise (no partial file under a final name, nothing a retry or
reconcile cannot take up)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from musicstore import Store
from musicstore.maintenance.reconcile import reconcile
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
