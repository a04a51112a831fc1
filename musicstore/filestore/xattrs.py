"""Where a local store keeps what S3 keeps beside an object: its checksum, content type and metadata, in
extended attributes of the file (``user.musicstore.sha256``, ``user.mime_type``,
``user.musicstore.metadata``: ``name=value`` lines). On a filesystem without user xattrs none is kept, and
none is read."""

from __future__ import annotations

import errno
import json
import os

XATTR_CHECKSUM = "user.musicstore.sha256"
XATTR_CONTENT_TYPE = "user.mime_type"
XATTR_METADATA = "user.musicstore.metadata"
XATTR_NAME = "user.musicstore.name"
"""On a temp file whose name had to be shortened: the file name it is written for (``uploads``)."""
_NO_XATTR = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA)


def set_attributes(
    fd: int,
    checksum: str | None,
    content_type: str | None,
    meta: dict[str, str],
    whole_name: str | None = None,
) -> None:
    """Keep these on the open file ``fd`` (nothing, without user xattrs; another OSError is raised)."""
    values = {XATTR_CHECKSUM: checksum, XATTR_CONTENT_TYPE: content_type, XATTR_NAME: whole_name}
    if meta:
        values[XATTR_METADATA] = encode_metadata(meta)
    for name, value in values.items():
        if value is None:
            continue
        try:
            os.setxattr(fd, name, value.encode())
        except OSError as exc:
            if exc.errno not in _NO_XATTR:
                raise
            return  # no user xattrs on this filesystem: nothing is kept


def encode_metadata(meta: dict[str, str]) -> str:
    """User metadata as kept in ``user.musicstore.metadata``: ``name=value`` lines, sorted. The names (no
    ``=``) and values (printable ASCII: no newline) are kept as they are, so 2 KiB of metadata takes about
    2 KiB: as JSON, escaped quotes and backslashes doubled it and each name's quotes added four bytes, past
    what ext4 holds in a file's attributes (one block, 4 KiB, all of them), and the put failed "No space left
    on device" (ENOSPC) on a disk with room, for metadata a bucket keeps."""
    return "\n".join(f"{name}={meta[name]}" for name in sorted(meta))


def decode_metadata(text: str | None) -> dict[str, str]:
    """``encode_metadata`` read back; a JSON object (as files put before it kept them) read as JSON."""
    if not text:
        return {}
    if text.startswith("{"):  # no name starts with a brace
        found: dict[str, str] = json.loads(text)
        return found
    return dict(line.split("=", 1) for line in text.split("\n"))


def attribute(fd: int, name: str) -> str | None:
    """The attribute ``name`` of the open file ``fd``; None when it has none."""
    try:
        return os.getxattr(fd, name).decode()
    except OSError as exc:
        if exc.errno in _NO_XATTR:
            return None
        raise


__all__ = [
    "XATTR_CHECKSUM",
    "XATTR_CONTENT_TYPE",
    "XATTR_METADATA",
    "XATTR_NAME",
    "attribute",
    "decode_metadata",
    "encode_metadata",
    "set_attributes",
]
