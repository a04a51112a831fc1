"""The store ``copy_files`` copies to, opened so that a dry run makes nothing: not even its folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

from ..errors import StorageError
from ..filestore import FileStore, ObjectInfo, ObjectNotFound, open_filestore
from ..storage_names import SCHEME, local_path


class _FolderToBe:
    """A local folder a dry run would copy to that is not there yet: it holds no object. Only what a dry
    run asks of its target (``url``, ``head``, ``close``); the real run makes the folder."""

    def __init__(self, url: str) -> None:
        self.url = url

    def head(self, key: str) -> ObjectInfo:
        raise ObjectNotFound(f"{self.url}/{key}: no such object")

    def close(self) -> None:
        """Nothing held open."""


def open_target(to: str | Path, *, dry_run: bool) -> FileStore:
    """``open_filestore(to)``, which makes a missing folder; with ``dry_run`` a missing folder is left
    unmade (before, a preview to ``/mnt/new/music`` left that folder and its parents behind, empty)."""
    if not dry_run:
        return open_filestore(to)
    try:
        return open_filestore(to, create=False)  # its checks of ``to`` first: a bad one raises as before
    except StorageError:
        text = os.fspath(to)
        scheme = SCHEME.match(text)
        if scheme is not None and scheme[1].lower() != "file":
            raise
        path = Path(text) if scheme is None else local_path(text)
        url = path.absolute().as_uri()
        if path.exists() or path.is_symlink():  # a file, a broken link: not a folder, as the run would say
            raise
        return cast(FileStore, _FolderToBe(url))
