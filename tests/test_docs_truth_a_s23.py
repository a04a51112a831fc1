"""Claims of docs/export.md, docs/recording.md and docs/schema.md that the code did not keep (session 23)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_NO_ROOM_FOR_THE_OWNER_FILE = """
import resource, signal, sys, tempfile
from musicstore import recording
tempfile.tempdir = sys.argv[1]  # not probed by writing a file, which the limit below would refuse
from musicstore.errors import StorageError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    recording._export_folder()
except StorageError as exc:
    print("StorageError", exc)
"""


def test_an_export_folder_whose_owner_file_cannot_be_written_is_not_left_behind(tmp_path: Path) -> None:
    """docs/recording.md: the temp folder an export to an object store encodes in is "removed when the export
    ends however it ends" (but for a killed process, whose folder names its maker for a later sweep). When
    the ``owner`` file could not be written (a full disk, EFBIG), the export failed with StorageError but its
    folder stayed: without an owner file no sweep ever removes it (one more per failed export)."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", _NO_ROOM_FOR_THE_OWNER_FILE, str(temp)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("StorageError cannot make a temp folder"), done.stdout
    assert list(temp.iterdir()) == []
