"""Where a local store keeps what S3 keeps beside an object: its checksum, content type and metadata, in
extended attributes of the file (``user.musicstore.sha256``, ``user.mime_type``,
``user.musicstore.metadata``). On a filesystem without user xattrs none is kept, and none is read."""

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
        values[XATTR_METADATA] = json.dumps(meta, sort_keys=True, separators=(",", ":"))
    for name, value in values.items():
        if value is None:
            continue
        try:
            os.setxattr(fd, name, value.encode())
        except OSError as exc:
            if exc.errno not in _NO_XATTR:
                raise
            return  # no user xattrs on this filesystem: nothing is kept


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
    "set_attributes",
]
