"""Regressions found by the s22 hunt over the file stores (a folder and S3 on a real SeaweedFS server)."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore.filestore import FileStore, LocalFileStore

_names = itertools.count()


@given(
    stem=st.text(st.characters(codec="utf-8", categories=["L", "N"]), min_size=1, max_size=60),
    fill=st.sampled_from(["b", "\u00e9", "\u97f3", "\U0001d11e"]),
    ext_bytes=st.integers(1, 254),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_local_put_takes_any_name_that_fits_name_max_whatever_its_extension(
    tmp_path: Path, stem: str, fill: str, ext_bytes: int
) -> None:
    """A name of at most 255 bytes is put whole, its temp file's name shortened to fit too: one with a long
    extension (``take.<240 bytes>``) made a temp name over 255 bytes and the put failed with a StorageError
    (ENAMETOOLONG) where a bucket takes the key."""
    name = f"{stem}.{fill * (ext_bytes // len(fill.encode()) or 1)}"
    while len(name.encode()) > 255:
        name = name[:-1]
    key = f"k{next(_names)}/{name}"
    store = LocalFileStore(tmp_path / "audio")
    assert store.put(key, b"bytes").size == 5
    assert b"".join(store.get(key)) == b"bytes"
    assert [info.key for info in store.list(key.partition("/")[0] + "/")] == [key]
    assert list(store.uploads()) == []


def test_a_name_with_a_long_extension_is_put_alike_on_both_backends(where: FileStore) -> None:
    key = "2026/01/31/take." + "b" * 250
    assert where.put(key, b"RIFF").size == 4
    assert where.head(key).size == 4 and [info.key for info in where.list()] == [key]
