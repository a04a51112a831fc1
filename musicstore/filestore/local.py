"""Containment: the one way maintenance reaches a file under the output root, and never one outside it.

A row's ``file_path`` is untrusted text (rows can be imported or edited by hand). ``RootDir`` opens the root
once and reaches ``a/b/c.wav`` the way ``openat`` does: each folder is opened relative to the one above it
with ``O_NOFOLLOW | O_DIRECTORY``, and the file itself is looked at with ``lstat`` relative to its folder's
descriptor. Nothing is resolved by a path string, so no symlink is ever followed below the root (the root
itself may be a symlink: it is the operator's choice). A path is *outside* (``Outside``, with the reason)
when it is absolute, has a ``..`` segment, holds a NUL or a backslash, starts with a drive letter, cannot be
encoded as a file name, or passes through or ends at a symlink (even one that points back inside the root:
it is not followed to find out). ``.`` and empty segments are dropped.

What it does not close: a folder that another process *moves* out of the root while a run holds it open is
still acted on where it now is (the descriptor follows the folder). Maintenance holds at most
``MAX_OPEN_FOLDERS`` folders open at a time; anyone able to rename folders inside the root can do that.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import stat
from pathlib import Path
from types import TracebackType

from .fsync import fsync

MAX_OPEN_FOLDERS = 64
"""Folder descriptors kept open (oldest opened first out): a row in an open folder costs one lstat."""
OUTSIDE_ROOT = "outside_root"
"""The category reports use for a path that leads outside the root or through a symlink."""

_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_DRIVE = re.compile(r"[A-Za-z]:")
_PLAIN = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9_.-]*/)*[A-Za-z0-9_][A-Za-z0-9_.-]*")
"""The layout's paths (``2026/01/31/<id>.wav``): nothing to check further, no segment to drop."""


class Outside(ValueError):
    """A path that does not name a place inside the root; ``str()`` is the reason."""


def parts(rel: object) -> list[str]:
    """The segments of ``rel`` as a path under the root (lexical checks only); raises ``Outside``."""
    if isinstance(rel, str) and _PLAIN.fullmatch(rel):
        return rel.split("/")
    if not isinstance(rel, str) or not rel:
        raise Outside(f"{rel!r} is not a path")
    if "\x00" in rel:
        raise Outside(f"{rel!r} holds a NUL character")
    if "\\" in rel or _DRIVE.match(rel):
        raise Outside(f"{rel!r} is a Windows-style path")
    if rel.startswith("/"):
        raise Outside(f"{rel!r} is an absolute path")
    try:
        os.fsencode(rel)
    except UnicodeError:
        raise Outside(f"{rel!r} cannot be encoded as a file name") from None
    segments = [s for s in rel.split("/") if s not in ("", ".")]
    if ".." in segments:
        raise Outside(f"{rel!r} has a '..' segment")
    if not segments:
        raise Outside(f"{rel!r} names the root itself, not a file under it")
    return segments


class RootDir:
    """The output root, opened once; use as a context manager (``close()`` releases the descriptors)."""

    def __init__(self, root: str | Path) -> None:
        self.path = Path(root)
        self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._folders: dict[str, int] = {}
        """Open folders by their path below the root; the oldest opened is closed first beyond the limit."""

    def __enter__(self) -> RootDir:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()

    def close(self) -> None:
        for fd in self._folders.values():
            os.close(fd)
        self._folders.clear()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def folder(self, segments: list[str]) -> int | None:
        """A descriptor of the folder ``segments`` below the root (None if it is missing or a file).

        Raises ``Outside`` if one of them is a symlink. The descriptor stays owned by this object.
        """
        fd = self._folders.get("/".join(segments), self._fd if not segments else -1)
        if fd >= 0:
            return fd
        start, fd = 0, self._fd
        for depth in range(len(segments) - 1, 0, -1):  # the deepest folder already open
            cached = self._folders.get("/".join(segments[:depth]))
            if cached is not None:
                start, fd = depth, cached
                break
        for depth in range(start, len(segments)):
            name = segments[depth]
            try:
                fd = os.open(name, _FOLDER_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                    raise
                self._refuse_symlink(fd, name, segments[: depth + 1])
                return None
            if len(self._folders) >= MAX_OPEN_FOLDERS:
                os.close(self._folders.pop(next(iter(self._folders))))
            self._folders["/".join(segments[: depth + 1])] = fd
        return fd

    @staticmethod
    def _refuse_symlink(fd: int, name: str, segments: list[str]) -> None:
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(info.st_mode):
            raise Outside(f"{'/'.join(segments)} is a symlink (not followed)")

    def lstat(self, rel: object) -> os.stat_result | None:
        """The entry ``rel`` names, itself (None when it is missing); raises ``Outside`` as ``parts`` does and
        when a folder on the way, or the entry, is a symlink."""
        entry = self._entry(rel)
        return None if entry is None else entry[2]

    def _place(self, rel: str) -> tuple[int, str] | None:
        """(folder descriptor, name) of a regular file at ``rel``, or None when there is none."""
        entry = self._entry(rel)
        return (entry[0], entry[1]) if entry is not None and stat.S_ISREG(entry[2].st_mode) else None

    def _entry(self, rel: object) -> tuple[int, str, os.stat_result] | None:
        """(folder descriptor, name, lstat) of the entry ``rel`` names; None when it is missing."""
        *folders, name = parts(rel)
        fd = self.folder(folders)
        if fd is None:
            return None
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISLNK(info.st_mode):
            raise Outside(f"{rel} is a symlink (not followed)")
        return fd, name, info

    def sha256(self, rel: str, *, expect: int | None = None) -> tuple[int, str | None] | None:
        """(bytes, SHA-256 hex) of the regular file at ``rel``, opened relative to its folder with
        ``O_NOFOLLOW`` (one ``openat`` and one ``fstat``, no separate ``lstat``) and read; None when there is
        none (missing, or not a regular file). With ``expect``, a file of another size is not read: its hash
        is None. Raises ``Outside`` as ``lstat`` does."""
        *folders, name = parts(rel)
        folder = self.folder(folders)
        if folder is None:
            return None
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=folder)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # the name is a symlink: not followed
                raise Outside(f"{rel} is a symlink (not followed)") from None
            raise
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return None
            if expect is not None and info.st_size != expect:
                return info.st_size, None
            digest, size = hashlib.sha256(), 0
            while chunk := os.read(fd, 1 << 16):
                digest.update(chunk)
                size += len(chunk)
            return size, digest.hexdigest()
        finally:
            os.close(fd)

    def unlink(self, rel: str) -> bool:
        """Remove the regular file at ``rel``; False when there is none (missing, or not a regular file)."""
        place = self._place(rel)
        if place is None:
            return False
        try:
            os.unlink(place[1], dir_fd=place[0])
        except FileNotFoundError:
            return False
        return True

    def move_out(self, rel: str, target: Path) -> bool:
        """Move the regular file at ``rel`` to ``target`` (outside the root; a rename, or copy and remove
        across filesystems); False when there is none."""
        place = self._place(rel)
        if place is None:
            return False
        fd, name = place
        try:
            os.rename(name, target, src_dir_fd=fd)
        except FileNotFoundError:
            return False
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            return self._copy_out(fd, name, target)
        return True

    @staticmethod
    def _copy_out(fd: int, name: str, target: Path) -> bool:
        # Copied under a hidden temp name, fsynced, then linked to ``target`` whole (link refuses an existing
        # name): a copy killed midway leaves only that temp file, never part of a file at ``target``. False
        # when the file is gone (another process, a second reconcile, moved it out first).
        try:
            source = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except FileNotFoundError:
            return False
        temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            dst = open(temp, "xb")  # noqa: SIM115
            try:
                with dst, open(source, "rb", closefd=False) as src:
                    shutil.copyfileobj(src, dst)
                    dst.flush()
                    os.fsync(dst.fileno())
                info = os.fstat(source)
                os.utime(temp, ns=(info.st_atime_ns, info.st_mtime_ns))
                os.link(temp, target)  # never over an existing file
            finally:
                temp.unlink(missing_ok=True)  # the copy this made, never another file
            fsync(target.parent, directory=True)
        finally:
            os.close(source)
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile: this copy stands
            os.unlink(name, dir_fd=fd)
        return True


__all__ = ["MAX_OPEN_FOLDERS", "OUTSIDE_ROOT", "Outside", "RootDir", "parts"]
