"""Regressions found by a black-box hunt over the file stores (local, S3) and what moves files across."""

from __future__ import annotations

import pytest

from musicstore.filestore import FileStore, ObjectNotFound


def test_a_key_below_an_object_is_no_object_on_both_backends(where: FileStore) -> None:
    """A key whose folder is an object (a file, locally) names nothing: ``head`` and ``get`` raise
    ``ObjectNotFound`` and ``delete`` returns False, as S3 answers; the local backend raised a
    ``StorageError`` whose message wrapped another ("reading ... failed: ...: a folder on its way ... ()")."""
    where.put("2026/01/31/abc.wav", b"RIFF")
    below = "2026/01/31/abc.wav/peaks.json"
    with pytest.raises(ObjectNotFound, match="no such object"):
        where.head(below)
    with pytest.raises(ObjectNotFound, match="no such object"):
        where.get(below)
    assert where.delete(below) is False
    assert where.delete("2026/01") is False  # a folder (a prefix on S3) is no object either
    with pytest.raises(ObjectNotFound):
        where.head("2026/01")
    assert [o.key for o in where.list()] == ["2026/01/31/abc.wav"]  # nothing was removed
