"""export_batch is all or nothing for the files at its paths (session 26).

Each item wrote its file into place as soon as it was done, and a failed batch removed the files its items
had written: an item that redid an earlier export replaced the earlier file, which was then gone (the path
empty) when another item failed, and items kept starting after one had failed. Now the items write temps
beside their paths, renamed into place only once every item succeeded (``files.stage`` / ``files.place``,
``audio/batch.py``): a failure or an interrupt leaves every path as it was.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore.audio import ExportOptions, export_audio, export_batch, files, synthesize_music
from musicstore.audio import export as export_module
from musicstore.errors import StorageError

RATE = 16_000
OPTIONS = ExportOptions(dither_seed=3)  # reproducible dither: a batch's file is byte for byte export_audio's
CLIPS = np.stack([synthesize_music(0.5, RATE, seed=s) * np.float32(0.2 + 0.3 * s) for s in range(4)])
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)


@cache
def reference(index: int) -> bytes:
    """The file ``export_audio`` writes for ``CLIPS[index]``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r.wav"
        export_audio(CLIPS[index], RATE, path, OPTIONS)
        return path.read_bytes()


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (temps included) by its relative path, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def batch_paths(root: Path, count: int, folders: int, existing: list[bool]) -> list[Path]:
    """``count`` paths over ``folders`` folders (made), an earlier file at those ``existing`` marks."""
    paths = [root / f"f{i % folders}" / f"{i}.wav" for i in range(count)]
    for i, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        if existing[i]:
            path.write_bytes(f"earlier export {i}".encode())
    return paths


@contextmanager
def failing(kind: str, name: str, started: list[str]) -> Iterator[type[BaseException]]:
    """The item whose path is named ``name`` fails (``kind``); the items that started are listed in
    ``started``. Yields the type of error the batch raises."""
    real_one, real_write = export_module._export_one, files._write_frames

    def export_one(*args: Any, **kwargs: Any) -> Any:  # an item's first step
        path: Path = args[2]
        started.append(path.name)
        if path.name == name and kind == "ValueError first":
            raise ValueError("the model output was refused")
        if path.name == name and kind == "KeyboardInterrupt first":
            raise KeyboardInterrupt
        return real_one(*args, **kwargs)

    def write_frames(fd: int, temp: str, blocks: Any, **kwargs: Any) -> None:
        if not os.path.basename(temp).startswith(f".{name}."):
            return real_write(fd, temp, blocks, **kwargs)

        def cut() -> Iterator[Any]:  # part of the file is written, then the write fails
            yield next(iter(blocks))
            raise OSError(errno.ENOSPC, "No space left on device") if kind == "ENOSPC" else MemoryError()

        return real_write(fd, temp, cut(), **kwargs)

    raised: dict[str, type[BaseException]] = {
        "ValueError first": ValueError,
        "KeyboardInterrupt first": KeyboardInterrupt,
        "ENOSPC": StorageError,
        "MemoryError": MemoryError,
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(export_module, "_export_one", export_one)
        patch.setattr(files, "_write_frames", write_frames)
        yield raised[kind]


@SETTINGS
@given(
    data=st.data(),
    count=st.integers(1, 4),
    folders=st.integers(1, 2),
    workers=st.sampled_from([1, 2]),
    kind=st.sampled_from(["ValueError first", "KeyboardInterrupt first", "ENOSPC", "MemoryError"]),
)
def test_a_failing_item_changes_no_file_at_any_path(
    data: st.DataObject, count: int, folders: int, workers: int, kind: str
) -> None:
    """Whatever item fails, and however: every path holds what it held before the call, byte for byte (or
    nothing), no temp is left, and with one worker the items after it never start."""
    bad = data.draw(st.integers(0, count - 1), label="failing item")
    existing = data.draw(st.lists(st.booleans(), min_size=count, max_size=count), label="earlier files")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        paths = batch_paths(root, count, folders, existing)
        before = snapshot(root)
        started: list[str] = []
        with failing(kind, paths[bad].name, started) as error, pytest.raises(error) as caught:
            export_batch(CLIPS[:count], RATE, paths, OPTIONS, workers=workers)
        assert snapshot(root) == before
        if kind != "KeyboardInterrupt first":
            assert f"batch item {bad} of {count}" in "".join(caught.value.__notes__)
        if workers == 1:
            assert started == [p.name for p in paths[: bad + 1]]


@SETTINGS
@given(
    count=st.integers(1, 4),
    folders=st.integers(1, 2),
    workers=st.sampled_from([1, 2]),
    existing=st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_a_batch_that_succeeds_writes_every_file(
    count: int, folders: int, workers: int, existing: list[bool]
) -> None:
    """Each path holds its item's file, the one export_audio writes (an earlier file replaced); the results
    name the final paths and their sizes; no temp is left."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        paths = batch_paths(root, count, folders, existing)
        results = export_batch(CLIPS[:count], RATE, paths, OPTIONS, workers=workers)
        assert [r.path for r in results] == paths
        assert [r.bytes for r in results] == [len(reference(i)) for i in range(count)]
        assert snapshot(root) == {p.relative_to(root).as_posix(): reference(i) for i, p in enumerate(paths)}


def test_items_not_started_when_one_failed_are_not_started(tmp_path: Path) -> None:
    """Before, the items after a failed one still ran (and wrote) before the batch removed their files."""
    started: list[str] = []
    paths = batch_paths(tmp_path, 4, 1, [False] * 4)
    with failing("ENOSPC", "1.wav", started), pytest.raises(StorageError, match="ENOSPC") as caught:
        export_batch(CLIPS, RATE, paths, OPTIONS, workers=1)
    assert started == ["0.wav", "1.wav"]
    assert "batch item 1 of 4; no file at the batch's paths was changed (2 items not started)" in (
        caught.value.__notes__
    )
    assert snapshot(tmp_path) == {}


def test_an_earlier_file_survives_a_batch_that_failed(tmp_path: Path) -> None:
    """The tester's case: item 0 redoes an earlier export (its file there), item 1 fails. Before, item 0
    replaced the earlier file, which the failure then removed: the path was empty."""
    paths = batch_paths(tmp_path, 2, 1, [True, False])
    with failing("ENOSPC", "1.wav", []), pytest.raises(StorageError):
        export_batch(CLIPS[:2], RATE, paths, OPTIONS, workers=1)
    assert snapshot(tmp_path) == {"f0/0.wav": b"earlier export 0"}


def test_an_interrupted_wait_changes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while export_batch waits (after the first item was written to its temp): the items running
    finish, every temp is removed, and the earlier files are as they were."""
    paths = batch_paths(tmp_path, 4, 2, [True, False, True, True])
    before = snapshot(tmp_path)

    def interrupted(future: Any) -> object:
        future.result()
        raise KeyboardInterrupt

    monkeypatch.setattr(export_module, "_outcome", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_batch(CLIPS, RATE, paths, OPTIONS, workers=2)
    assert snapshot(tmp_path) == before


def broken_rename(
    monkeypatch: pytest.MonkeyPatch, name: str, error: BaseException
) -> Callable[[], list[str]]:
    """``os.replace`` onto a path named ``name`` raises ``error``; returns the names renamed onto."""
    real, renamed = os.replace, list[str]()

    def replace(source: Any, target: Any) -> None:
        if Path(target).name == name:
            raise error
        real(source, target)
        renamed.append(Path(target).name)

    monkeypatch.setattr(os, "replace", replace)
    return lambda: renamed


@pytest.mark.parametrize("bad", [0, 1, 2])
@pytest.mark.parametrize("earlier", [False, True])
def test_a_failed_rename_when_placing_is_reported_and_the_rest_placed(
    bad: int, earlier: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every item succeeded, then a rename fails: the other files are placed, that path is unchanged, its
    temp removed, and the StorageError names it and says how many were placed."""
    paths = batch_paths(tmp_path, 3, 1, [earlier] * 3)
    broken_rename(monkeypatch, f"{bad}.wav", OSError(errno.EIO, "Input/output error"))
    with pytest.raises(StorageError) as caught:
        export_batch(CLIPS[:3], RATE, paths, OPTIONS)
    message = str(caught.value)
    assert "1 of 3 files were not placed (the other 2 were)" in message
    assert f"writing {paths[bad]} failed: Input/output error (EIO)" in message
    assert "the temp file was removed and that path was not changed" in message
    expected = {f"f0/{i}.wav": reference(i) for i in range(3) if i != bad}
    if earlier:
        expected[f"f0/{bad}.wav"] = f"earlier export {bad}".encode()
    assert snapshot(tmp_path) == expected


def test_a_failed_folder_fsync_when_placing_removes_that_folders_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for one export: a file renamed into a folder whose fsync fails is removed again (the path empty:
    the earlier file it replaced is gone), and said so; another folder's files are placed."""
    paths = batch_paths(tmp_path, 4, 2, [True] * 4)  # f0: 0.wav, 2.wav; f1: 1.wav, 3.wav
    from musicstore.filestore.fsync import fsync as real

    def fsync(path: Any, *, directory: bool = False) -> None:
        if directory and Path(path) == tmp_path / "f1":
            raise OSError(errno.EIO, "Input/output error")
        real(path, directory=directory)

    monkeypatch.setattr(files, "fsync", fsync)
    with pytest.raises(StorageError) as caught:
        export_batch(CLIPS, RATE, paths, OPTIONS)
    message = str(caught.value)
    assert "2 of 4 files were not placed (the other 2 were)" in message
    for lost in (paths[1], paths[3]):
        assert f"writing {lost} failed: Input/output error (EIO); it had been renamed into place" in message
    assert snapshot(tmp_path) == {"f0/0.wav": reference(0), "f0/2.wav": reference(2)}


def test_an_interrupt_when_placing_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C between two renames: the file renamed but not yet made durable is removed again (its path
    empty: honest, and noted), the temps not renamed are removed (those paths unchanged)."""
    paths = batch_paths(tmp_path, 3, 1, [True] * 3)
    renamed = broken_rename(monkeypatch, "1.wav", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt) as caught:
        export_batch(CLIPS[:3], RATE, paths, OPTIONS)
    assert renamed() == ["0.wav"]
    assert snapshot(tmp_path) == {"f0/1.wav": b"earlier export 1", "f0/2.wav": b"earlier export 2"}
    note = "".join(caught.value.__notes__)
    assert "interrupted while placing 3 files: 0 placed, 0 failed before" in note
    assert f"not renamed, unchanged: {paths[1]}, {paths[2]}" in note
    assert f"removed again (the path is empty): {paths[0]}" in note


def test_one_export_still_places_its_file_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """export_audio (and place_atomic) are the two steps together: a rename failure reads as it did."""
    target = tmp_path / "x.wav"
    target.write_bytes(b"earlier")
    broken_rename(monkeypatch, "x.wav", OSError(errno.EIO, "Input/output error"))
    with pytest.raises(StorageError) as caught:
        export_audio(CLIPS[0], RATE, target, OPTIONS)
    assert str(caught.value) == (
        f"writing {target} failed: Input/output error (EIO); the temp file was removed and that path was not "
        "changed"
    )
    assert snapshot(tmp_path) == {"x.wav": b"earlier"}
