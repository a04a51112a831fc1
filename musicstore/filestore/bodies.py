"""The body of an S3 put: its bytes hashed first (SHA-256) and, when they are many, a file they are read from
(the caller's, when it can seek back; else a temp file they are spooled to), and a window on that file for
each request, so memory stays bounded whatever the size."""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import tempfile
from typing import IO, Any

from .base import Source, chunks


def b64(digest: bytes) -> str:
    """A digest as S3 checksum headers carry it (base64)."""
    return base64.b64encode(digest).decode()


def prepare(data: Source, threshold: int) -> tuple[bytes, IO[bytes] | None, int, bytes, bool]:
    """The bytes of a put: (the bytes, None) when they fit one PUT (at most ``threshold``), else (b"", a file
    positioned at them); their size and SHA-256; whether the file is ours to close."""
    if isinstance(data, bytes | bytearray | memoryview):
        whole = bytes(data)
        if len(whole) <= threshold:
            return whole, None, len(whole), hashlib.sha256(whole).digest(), False
        return b"", io.BytesIO(whole), len(whole), hashlib.sha256(whole).digest(), True
    pieces = chunks(data)
    digest, head, size = hashlib.sha256(), bytearray(), 0
    for piece in pieces:
        head += piece
        if len(head) > threshold:
            break
    else:
        return bytes(head), None, len(head), hashlib.sha256(head).digest(), False
    seekable = getattr(data, "seekable", None)
    if callable(seekable) and seekable():
        file: Any = data
        start = file.tell() - len(head)
        digest.update(head)
        size = len(head)
        for piece in pieces:
            digest.update(piece)
            size += len(piece)
        file.seek(start)
        return b"", file, size, digest.digest(), False
    spool = tempfile.TemporaryFile()  # noqa: SIM115  # closed by put
    try:
        for piece in itertools.chain([bytes(head)], pieces):
            spool.write(piece)
            digest.update(piece)
            size += len(piece)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return b"", spool, size, digest.digest(), True


class Window(io.RawIOBase):
    """``size`` bytes of ``file`` from where it stands, as a stream of their own (offset 0 is that place):
    what a PUT body is read (and, on a retry, re-read) from."""

    def __init__(self, file: IO[bytes], size: int) -> None:
        super().__init__()
        self._file, self._start, self._size, self._at = file, file.tell(), size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._at, io.SEEK_END: self._size}[whence]
        self._at = min(max(base + offset, 0), self._size)
        self._file.seek(self._start + self._at)
        return self._at

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")[: self._size - self._at]
        piece = self._file.read(len(view)) if len(view) else b""
        view[: len(piece)] = piece
        self._at += len(piece)
        return len(piece)
