"""Output layout and atomic, durable file writes.

A file is written to a temp file in its target directory, fsynced, given normal permissions (``stage``),
renamed into place with ``os.replace`` and the directory is fsynced (``place``; ``place_atomic`` does both,
``export_batch`` stages every item's file before it places any). On any failure the temp file is removed; a
file already at the final path stays as it was, unless the failure came after the rename (the directory
fsync), in which case the new file is removed too and nothing is left there.

libsndfile reports every failed write as "System error.", so soundfile writes through a file object of ours
(``_Sink``) that keeps the ``OSError`` of the failed write: a full disk raises ``StorageError`` naming
ENOSPC, a file over the size limit EFBIG, a quota EDQUOT.
"""

from __future__ import annotations

import errno
import io
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from musicstore import interrupt, validate
from musicstore.errors import InvalidInput, StorageError, shown
from musicstore.filestore.fsync import fsync

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
EXTENSIONS = {"wav": "WAV", "flac": "FLAC"}
_TEMP_STEM_BYTES = 200  # + ".", ".flac", "." + 8 random + ".tmp" stays under the usual 255-byte limit


def _umask_now() -> int | None:
    """The umask as it is now, read from ``/proc/self/status`` (Linux 4.7+), which changes nothing; None
    where it cannot be read there."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _umask_at_import() -> int:
    """The umask at import: from ``/proc/self/status``, or elsewhere by ``os.umask``, which cannot read it
    without setting it (a race with the threads of a process that imports this module late: a dashboard's
    first waveform)."""
    mask = _umask_now()
    if mask is None:
        mask = os.umask(0)
        os.umask(mask)
    return mask


_UMASK = [_umask_at_import()]
"""The umask last read."""


def _file_mode() -> int:
    """``0o666 & ~umask`` with the umask as it is now (a service may set it after importing musicstore), or
    where that cannot be read, as it was last read."""
    mask = _umask_now()
    if mask is not None:
        _UMASK[0] = mask
    return 0o666 & ~_UMASK[0]


def format_for(path: Path) -> str:
    """The soundfile format ("WAV"/"FLAC") named by the path's extension."""
    ext = path.suffix.lower().lstrip(".")
    if ext not in EXTENSIONS:
        raise InvalidInput(f"{path.name}: the extension must be one of {sorted(EXTENSIONS)}")
    return EXTENSIONS[ext]


def as_path(path: object, what: str = "path") -> Path:
    """``path`` as a ``Path`` (a str or str ``os.PathLike``, no NUL, a path the OS takes:
    ``validate.os_path``), else ``InvalidInput`` naming it."""
    try:
        text = os.fspath(path) if isinstance(path, str | os.PathLike) else None
    except Exception:  # an __fspath__ of the caller's that fails
        text = None
    if not isinstance(text, str) or "\x00" in text:
        raise InvalidInput(f"{what} must be a str or a Path without NUL, got {type(path).__name__}")
    return Path(validate.os_path(text, what, empty=True))


def layout_path(root: str | Path, generation_id: str, ext: str = "wav", when: datetime | None = None) -> Path:
    """``<root>/YYYY/MM/DD/<generation_id>.<ext>`` by the UTC date of ``when`` (default: now).

    The id may hold letters, digits, ``-`` and ``_`` only (a UUID fits), so the path cannot leave root.
    """
    base = as_path(root, "root")
    if not isinstance(generation_id, str) or not _ID.fullmatch(generation_id):
        raise InvalidInput(f"generation id {shown(generation_id)} must be 1–128 letters, digits, '-' or '_'")
    if not isinstance(ext, str) or ext.lower() not in EXTENSIONS:
        raise InvalidInput(f"extension {shown(ext)} must be one of {sorted(EXTENSIONS)}")
    # the layout uses the UTC date; a tzinfo whose offset is None is naive too (read in the host's zone)
    day = datetime.now(UTC) if when is None else validate.moment(when, "when")
    path = base / f"{day.year:04d}" / f"{day.month:02d}" / f"{day.day:02d}" / f"{generation_id}.{ext.lower()}"
    if not path.resolve().is_relative_to(base.resolve()):
        raise InvalidInput(f"{path} would be outside the output root {base}")
    return path


def _remove(path: Path, error: BaseException) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as cleanup:
        error.add_note(f"and removing {path} failed too: {cleanup}")


def _temp_prefix(path: Path) -> str:
    """``.<name>.``, the stem shortened so that the temp name fits where ``path``'s own name does."""
    stem = path.stem
    while len(os.fsencode(stem)) > _TEMP_STEM_BYTES:
        stem = stem[:-1]
    return f".{stem}{path.suffix}."


def _make_directories(directory: Path) -> None:
    """``mkdir -p``, durably: each new folder's entry in its parent is flushed, so that after a crash a file
    whose row was committed is not lost with a ``YYYY/MM/DD`` folder created for it."""
    missing: list[Path] = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
        fsync(folder.parent, directory=True)


_HINTS = {
    errno.ENOSPC: "free space on that filesystem, or export to another root",
    errno.EDQUOT: "free space under the quota, or raise it",
    errno.EFBIG: "the file exceeds the size limit of this process (ulimit -f) or of the filesystem",
}


class _Sink(io.FileIO):
    """The temp file as soundfile sees it: a failed write is kept in ``error`` (with its errno) and reported
    as a short write, since an exception cannot cross libsndfile's callback."""

    error: OSError | None = None

    def write(self, data: Any, /) -> int:
        if self.error is not None:
            return 0
        view, done = memoryview(data).cast("B"), 0
        while done < len(view):
            try:
                done += super().write(view[done:]) or 0
            except OSError as exc:
                self.error = exc
                break
        return done


class _Unraisable:
    """``sys.unraisablehook`` once musicstore ran libsndfile: what soundfile's I/O callbacks raise in a
    thread inside ``callback_errors`` is kept for that thread; anything else goes to the hook it replaced."""

    def __init__(self, previous: Callable[[Any], Any]) -> None:
        self.previous = previous

    def __call__(self, unraisable: Any) -> None:
        kept: list[BaseException] | None = getattr(_CALLBACKS, "errors", None)
        if kept is None:
            self.previous(unraisable)
        else:
            kept.append(unraisable.exc_value or unraisable.exc_type())


_CALLBACKS = threading.local()
_HOOK_LOCK = threading.Lock()


@contextmanager
def callback_errors() -> Iterator[None]:
    """Around libsndfile on a file object (``sf.write``, ``sf.read``, ``SoundFile`` over an ``io`` object):
    an exception raised in its read/write callbacks is raised here, at the end.

    cffi cannot pass an exception through C: it reports it to ``sys.unraisablehook`` and the callback returns
    0, so a Ctrl-C landing in a callback (most of a long encode's Python time) was lost, the export went on
    and reported success, or soundfile raised a bare AssertionError on the short write."""
    with _HOOK_LOCK:
        if not isinstance(sys.unraisablehook, _Unraisable):
            sys.unraisablehook = _Unraisable(sys.unraisablehook)
    outer: list[BaseException] | None = getattr(_CALLBACKS, "errors", None)
    errors: list[BaseException] = []
    _CALLBACKS.errors = errors
    try:
        yield
    except BaseException:
        if errors:
            raise errors[0]  # noqa: B904 (what failed after it is its context)
        raise
    finally:
        _CALLBACKS.errors = outer
    if errors:
        raise errors[0]


_BLOCK_FRAMES = 1 << 16
"""Frames handed to libsndfile per write: its write callback copies all the bytes it is given at once (a
whole clip's frames in one call was a second copy of them)."""


def _write_frames(
    fd: int,
    name: str,
    blocks: Iterable[NDArray[np.generic]],
    *,
    channels: int,
    rate: int,
    fmt: str,
    subtype: str,
) -> None:
    """Encode the ``(n, C)`` frame blocks, in order, into the open file ``fd`` (named ``name``); a failed
    write raises its ``OSError``."""
    sink = _Sink(fd, "r+", closefd=False)
    sink.name = name  # for messages: the path, not the descriptor
    try:
        with callback_errors(), sf.SoundFile(sink, "w", rate, channels, subtype, format=fmt) as encoded:
            for block in blocks:
                encoded.write(block)
    except (AssertionError, sf.SoundFileError):  # soundfile asserts on a short write
        if sink.error is None:
            raise
    if sink.error is not None:
        raise sink.error


def _blocks_of(frames: NDArray[np.generic]) -> Iterator[NDArray[np.generic]]:
    for start in range(0, frames.shape[0], _BLOCK_FRAMES):
        yield frames[start : start + _BLOCK_FRAMES]


def _failure(path: Path, exc: OSError | sf.SoundFileError, placed: bool) -> StorageError:
    if isinstance(exc, OSError) and exc.errno is not None:
        code = errno.errorcode.get(exc.errno, str(exc.errno))
        hint = _HINTS.get(exc.errno)
        cause = f"{os.strerror(exc.errno)} ({code})" + (f": {hint}" if hint else "")
    else:
        cause = str(exc)
    after = (
        "it had been renamed into place and was removed again: nothing is left at that path"
        if placed
        else "the temp file was removed and that path was not changed"
    )
    return StorageError(f"writing {path} failed: {cause}; {after}")


def write_atomic(path: Path, frames: NDArray[np.generic], sample_rate: int, fmt: str, subtype: str) -> int:
    """Write ``(S, C)`` frames to ``path`` atomically and durably; return the file size in bytes.

    An existing file at ``path`` is replaced (a retried export overwrites its earlier file). A failed write
    raises ``StorageError`` naming the cause (e.g. "No space left on device (ENOSPC)").
    """
    return write_blocks_atomic(
        path, _blocks_of(frames), channels=frames.shape[1], sample_rate=sample_rate, fmt=fmt, subtype=subtype
    )


def write_blocks_atomic(
    path: Path,
    blocks: Iterable[NDArray[np.generic]],
    *,
    channels: int,
    sample_rate: int,
    fmt: str,
    subtype: str,
) -> int:
    """``write_atomic`` of the frames given as ``(n, C)`` blocks, in order, each written before the next is
    asked for (a block may be a buffer the next one overwrites): the same file as ``write_atomic`` of the
    blocks joined, with one block in memory at a time. What the blocks' iterator raises is raised, and
    nothing is left at ``path`` as for a failed write (the temp file is removed)."""
    return place_atomic(path, _encoder(blocks, channels, sample_rate, fmt, subtype))


def stage_blocks(
    path: Path,
    blocks: Iterable[NDArray[np.generic]],
    *,
    channels: int,
    sample_rate: int,
    fmt: str,
    subtype: str,
) -> Staged:
    """``write_blocks_atomic``'s file written to its temp beside ``path`` (``stage``), not placed."""
    return stage(path, _encoder(blocks, channels, sample_rate, fmt, subtype))


def _encoder(
    blocks: Iterable[NDArray[np.generic]], channels: int, rate: int, fmt: str, subtype: str
) -> Callable[[int, str], None]:
    def write(fd: int, name: str) -> None:
        _write_frames(fd, name, blocks, channels=channels, rate=rate, fmt=fmt, subtype=subtype)

    return write


def write_bytes_atomic(path: Path, data: bytes) -> int:
    """Write ``data`` (an encoded file, e.g. a tagged rendition) to ``path`` as ``write_atomic`` does."""

    def write(fd: int, _name: str) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    return place_atomic(path, write)


def place_atomic(path: Path, write: Callable[[int, str], None]) -> int:
    """Create a temp file beside ``path``, let ``write(fd, temp_name)`` fill it, fsync, chmod (``stage``),
    rename into place and fsync the folder (``place``); return the size. Failures as in ``write_atomic``."""
    staged: Staged | None = None
    try:  # entered first: a Ctrl-C as stage returns finds its temp file in ``staged``
        staged = stage(path, write)
        place([staged])
    except BaseException as exc:
        if staged is not None:  # renamed or removed by place already, unless it was never called
            staged.discard(exc)
        raise
    return staged.size


@dataclass(frozen=True)
class Staged:
    """A file written whole to ``temp``, beside its final ``path``: fsynced and given the normal mode, not
    yet renamed into place (``place``), or removed (``discard``)."""

    path: Path
    temp: Path
    size: int

    def discard(self, error: BaseException) -> None:
        """Remove the temp file; a failed removal is noted on ``error``."""
        _remove(self.temp, error)


def stage(path: Path, write: Callable[[int, str], None]) -> Staged:
    """The first step of ``place_atomic``: a temp file made beside ``path`` (and its missing folders,
    durably), filled by ``write(fd, temp_name)``, fsynced and given the normal mode. ``path`` is not touched.
    On any failure the temp file is removed; an ``OSError`` (a full disk) raises ``StorageError``."""
    directory = path.parent
    fd, temp = -1, None
    try:
        try:
            _make_directories(directory)
            with interrupt.deferred():  # a Ctrl-C as the temp file is made: raised once it is known
                fd, name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=directory)
                temp = Path(name)
        except OSError as exc:
            raise StorageError(f"cannot create a file in {directory}: {exc}; check the output root") from exc
        write(fd, name)
        os.fsync(fd)
        size = os.fstat(fd).st_size
        with interrupt.deferred():  # closed once: os.close releases the number even when it raises (EIO)
            closing, fd = fd, -1
            os.close(closing)
        os.chmod(temp, _file_mode())
        return Staged(path, temp, size)  # a Ctrl-C up to here removes the temp file; from here, the caller
    except BaseException as exc:
        if fd >= 0:
            os.close(fd)
        if temp is None:
            raise
        _remove(temp, exc)
        if isinstance(exc, OSError | sf.SoundFileError):
            raise _failure(path, exc, placed=False) from exc
        raise


def place(staged: Sequence[Staged]) -> None:
    """The second step of ``place_atomic``, for one file or a batch's: each temp renamed onto its path
    (``os.replace``: an earlier file there is replaced), in order, then each of their folders fsynced once.

    A path keeps its new file once both are done. A temp whose rename fails is removed (that path is not
    changed) and the others are still renamed; the files renamed into a folder whose fsync fails are removed
    again (the earlier files they replaced are gone: those paths are empty). Then ``StorageError`` names each
    path that did not get its file. An interrupt (``KeyboardInterrupt``) removes the temps not yet renamed
    and the files not yet made durable (their paths empty), and is raised; one that lands as a file is
    renamed waits until the rename is noted (``interrupt.deferred``): it left that file in place."""
    pending = list(staged)
    renamed: list[Staged] = []
    lost: list[tuple[Staged, OSError, bool]] = []  # the file, why, and whether it had been renamed
    try:
        while pending:
            with interrupt.deferred():  # a Ctrl-C as a file is renamed: raised once the rename is noted
                try:
                    os.replace(pending[0].temp, pending[0].path)
                except OSError as exc:
                    lost.append((pending[0], exc, False))
                    pending[0].discard(exc)
                else:
                    renamed.append(pending[0])
                del pending[0]
        for folder in dict.fromkeys([item.path.parent for item in renamed]):
            inside = [item for item in renamed if item.path.parent == folder]
            try:
                fsync(folder, directory=True)
            except OSError as exc:
                with interrupt.deferred():
                    for item in inside:
                        lost.append((item, exc, True))
                        _remove(item.path, exc)
            renamed = [item for item in renamed if item.path.parent != folder]  # durable, or removed
    except BaseException as exc:  # interrupted: nothing is left half done
        for item in pending:
            item.discard(exc)
        for item in renamed:
            _remove(item.path, exc)
        if len(staged) > 1:
            exc.add_note(_interrupted(len(staged), pending, renamed, len(lost)))
        raise
    if lost:
        raise _not_placed(lost, len(staged)) from lost[0][1]


def _not_placed(lost: Sequence[tuple[Staged, OSError, bool]], count: int) -> StorageError:
    if count == 1:
        item, exc, renamed = lost[0]
        return _failure(item.path, exc, renamed)
    why = "; ".join(str(_failure(item.path, exc, renamed)) for item, exc, renamed in lost)
    return StorageError(
        f"{len(lost)} of {count} files were not placed (the other {count - len(lost)} were): {why}"
    )


def _interrupted(count: int, pending: list[Staged], removed: list[Staged], lost: int) -> str:
    untouched = ", ".join(str(item.path) for item in pending) or "none"
    emptied = ", ".join(str(item.path) for item in removed) or "none"
    return (
        f"interrupted while placing {count} files: {count - len(pending) - len(removed) - lost} placed, "
        f"{lost} failed before; not renamed, unchanged: {untouched}; renamed but not yet durable, removed "
        f"again (the path is empty): {emptied}"
    )
