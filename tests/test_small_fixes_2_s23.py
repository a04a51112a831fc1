"""Small fixes from earlier hunts (session 23): typed, truthful errors for a folder or a missing file given
to the audio readers, a truncated W64 file refused, the dashboard's model filter for a name with a newline.
Each test failed before its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from musicstore import InvalidInput, StorageError
from musicstore.audio import file_peaks
from musicstore.audio.analysis import analyze_file


def test_analyze_file_and_file_peaks_name_a_folder_and_agree_on_a_missing_file(tmp_path: Path) -> None:
    """``analyze_file`` of a folder said "no such file", and ``file_peaks`` of a missing file raised
    ``InvalidInput`` where ``analyze_file`` (and the docs) say ``StorageError``: both now raise
    ``StorageError`` naming a folder as a folder (``file_peaks``' error stays an ``InvalidInput`` too)."""
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    missing = tmp_path / "missing.wav"
    with pytest.raises(StorageError, match=r"folder\.wav: is a folder, not a file"):
        analyze_file(folder)
    with pytest.raises(StorageError, match=r"folder\.wav: is a folder, not a file"):
        file_peaks(folder)
    with pytest.raises(StorageError, match=r"missing\.wav: no such file"):
        analyze_file(missing)
    with pytest.raises(StorageError, match=r"missing\.wav: no such file") as raised:
        file_peaks(missing)
    assert isinstance(raised.value, InvalidInput)  # what it raised until then: callers catching it still do
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.wav"]
