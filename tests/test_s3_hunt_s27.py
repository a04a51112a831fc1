"""Session 27's hunt over object storage and delivery: a read opened and given up before its first chunk."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from musicstore.filestore import AsyncFileStore, LocalFileStore


def _open_files(kind: str = "") -> int:
    """How many file descriptors this process holds (of ``kind``: ``socket:`` for sockets)."""
    return sum(os.readlink(f"/proc/self/fd/{fd}").startswith(kind) for fd in _fds())


def _open_in(folder: Path) -> int:
    """How many files under ``folder`` this process holds open."""
    return _open_files(str(folder.resolve()))


def _fds() -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own descriptor, closed by now
            continue
        found.append(fd)
    return found


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")


@needs_proc
def test_a_folder_read_closed_or_dropped_before_its_first_chunk_closes_its_file(tmp_path: Path) -> None:
    """``get`` opens the file at once; a read closed (or dropped) before its first chunk closed nothing: a
    generator not started runs no ``finally``, so each left a file descriptor open for good."""
    files = LocalFileStore(tmp_path / "audio")
    files.put("2026/01/31/a.wav", b"RIFF" * 100)
    before = _open_in(tmp_path)
    for _ in range(20):
        files.get("2026/01/31/a.wav").close()  # type: ignore[attr-defined]
    for _ in range(20):
        files.get("2026/01/31/a.wav")  # dropped at once
    reading = files.get("2026/01/31/a.wav")
    assert next(reading) == b"RIFF" * 100
    reading.close()  # type: ignore[attr-defined]
    assert _open_in(tmp_path) == before
    assert b"".join(files.get("2026/01/31/a.wav")) == b"RIFF" * 100 and _open_in(tmp_path) == before


@needs_proc
def test_an_async_read_closed_before_its_first_chunk_closes_its_file(tmp_path: Path) -> None:
    """``AsyncFileStore.get``'s chunks, closed (``aclose``) before the first: the file is closed then, not
    when the iterator is dropped."""
    files = AsyncFileStore(LocalFileStore(tmp_path / "audio"))

    async def main() -> tuple[int, int, bytes]:
        await files.put("a.wav", b"RIFF" * 10)
        before = _open_in(tmp_path)
        held = [await files.get("a.wav") for _ in range(10)]
        for chunks in held:
            await chunks.aclose()  # type: ignore[attr-defined]
        read = b"".join([chunk async for chunk in await files.get("a.wav")])
        return before, _open_in(tmp_path), read

    before, after, read = asyncio.run(main())
    assert after == before and read == b"RIFF" * 10


@needs_proc
def test_copy_files_skipping_key_conflicts_leaves_no_source_file_open(
    musicstore_store: Any, tmp_path: Path
) -> None:
    """copy_files hands the source's read to the target's put, which refuses a key conflict before reading
    it: each such row left its source file open (a run over many rows ran out of descriptors)."""
    from musicstore.maintenance.relocate import copy_files
    from tests.test_copy_files import on_disk

    folder = LocalFileStore(tmp_path / "audio")
    store = musicstore_store
    made = on_disk(store, folder, 3)
    target = LocalFileStore(tmp_path / "target")
    for generation in made:  # the master's key is a folder in the target: KeyConflict
        target.put(f"{generation.created_at:%Y/%m/%d}/{generation.id}.wav/x", b"in the way")
    before = _open_in(tmp_path)
    report = copy_files(store, target)
    assert sorted(s.id for s in report.skipped) == sorted(g.id for g in made)
    assert all("KeyConflict" in s.reason for s in report.skipped)
    assert _open_in(tmp_path) == before
