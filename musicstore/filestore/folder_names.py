"""The names a local store (``musicstore.filestore.folder``) gives its files: a folder path checked where a
store is made or opened (``check_root``), a key's folder and file names held to the file system's
``NAME_MAX`` (``check_names``, ``fits``) and the temp file a put writes first (``temp_name``)."""

from __future__ import annotations

import secrets

from ..errors import InvalidInput, shown

NAME_MAX_BYTES = 255
"""The longest folder or file name a local store writes, in bytes: Linux's ``NAME_MAX``."""


def check_root(path: str) -> str:
    """``path`` (a local folder's) unless it holds a NUL, which no OS path can (``InvalidInput``, where the
    OS raised a bare ValueError)."""
    if "\x00" in path:
        raise InvalidInput("a local folder's path cannot hold a NUL character")
    return path


def temp_name(name: str) -> str:
    """``.<name>.<8 random>.tmp``; a name over 241 bytes has its stem (then its extension) shortened to fit
    ``NAME_MAX`` whole (a 242 to 255-byte name with a long extension made one the OS refused; the put keeps
    the whole name in an attribute of the temp file for ``uploads``). A stem was cut to 200 bytes even when
    the name fitted, and ``uploads`` named another key."""
    stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
    while len(f"{stem}{dot}{ext}".encode()) > NAME_MAX_BYTES - 14:
        stem, ext = (stem[:-1], ext) if stem else (stem, ext[:-1])
    return f".{stem}{dot}{ext}.{secrets.token_hex(4)}.tmp"


def fits(key: str) -> bool:
    """Whether each of ``key``'s folder and file names fits a file system's (``NAME_MAX``, 255 bytes): no
    file can be at a key that does not (not found, rather than the OS's ENAMETOOLONG as a failure)."""
    if len(key) <= NAME_MAX_BYTES // 4:  # a character is at most 4 bytes in UTF-8
        return True
    return all(len(segment.encode("utf-8")) <= NAME_MAX_BYTES for segment in key.split("/"))


def check_names(key: str) -> str:
    """``key`` if each of its folder and file names fits a file system's name (``NAME_MAX``, 255 bytes);
    raises ``InvalidInput`` before anything is made (the OS refused it only after the folders were)."""
    for segment in key.split("/"):
        size = len(segment.encode("utf-8"))
        if size > NAME_MAX_BYTES:
            raise InvalidInput(
                f"key {shown(key)} has a name of {size:,} bytes as UTF-8; a folder or file name in a local "
                f"store is at most {NAME_MAX_BYTES} bytes (the file system's limit)"
            )
    return key


__all__ = ["NAME_MAX_BYTES", "check_names", "check_root", "fits", "temp_name"]
