"""The rows maintenance merges with a store's listing come in its order: byte order (migration 0017).

``musicstore.maintenance.bucket`` walks the generations and renditions of one store in key order (the
``generations_file_path`` index, the renditions' unique ``storage_key`` index) beside the listing, which S3
and a folder give in byte order: Python's ``str`` order (UTF-8 bytes sort as code points). In a PostgreSQL
database created with another collation (an ICU locale here: ``a_c`` before ``a-c``, ``a/b`` before
``a/B`` before ``aZ``) the rows came in that locale's order: reconcile's answers stayed right, but each key
the merge missed cost a lookup by key or a ``HEAD`` request. 0017 gives both columns ``COLLATE "C"`` on
PostgreSQL; SQLite's BINARY collation is byte order already. Checked on SQLite, on the test server's
database, and on a database whose default collation is ICU's ``en``; the plans still walk the indexes.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from musicstore import Store, migrate
from musicstore.filestore import FileStore, open_filestore
from musicstore.maintenance import bucket
from musicstore.maintenance.bucket import stored_rows
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.usage import disk_usage
from musicstore.ops.storage import record_storage
from musicstore.storage_names import check_key
from tests import test_plans, test_schema
from tests.conftest import new_job
from tests.test_maintenance_s3 import RENDITION
from tests.test_schema import _from, _rollback, _sql
from tests.wrapped_stores import Wrapped

_names = itertools.count()
CHECKSUM = "0" * 64
# Letters of both cases, punctuation Python and a locale sort apart, non-ASCII (one beyond the BMP)
ALPHABET = "aAbBzZ09 _-.,~é€ßÉ😀"


@pytest.fixture
def icu_postgres_url(musicstore_postgres_server: Any) -> Iterator[str]:
    """A migrated database whose default collation is ICU's ``en`` (not byte order)."""
    import psycopg

    server = musicstore_postgres_server
    name = f"musicstore_icu_{os.getpid()}_{next(_names)}"
    try:
        server.admin(
            f"DROP DATABASE IF EXISTS {name}",
            f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en'",
        )
    except psycopg.Error as exc:  # PostgreSQL before 15, or built without ICU
        pytest.skip(f"the test server cannot create a database with an ICU collation: {exc}")
    try:
        # the database's own order is not Python's: '_' before '-', 'a' before 'B'
        assert _sql(server.url(name), "SELECT 'a_c' < 'a-c', 'a' < 'B'") == [(True, True)]
        migrate(server.url(name))
        yield server.url(name)
    finally:
        server.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres", "postgres-icu"])
def any_url(request: pytest.FixtureRequest) -> str:
    fixture = {"sqlite": "sqlite_url", "postgres": "postgres_url", "postgres-icu": "icu_postgres_url"}
    url: str = request.getfixturevalue(fixture[request.param])
    return url


def _segment() -> st.SearchStrategy[str]:
    return st.text(ALPHABET, min_size=1, max_size=4).filter(lambda s: s not in (".", ".."))


KEYS = st.lists(
    st.builds(lambda parts, ext: "/".join(parts) + ext, st.lists(_segment(), min_size=1, max_size=2),
              st.sampled_from([".wav", ".flac", ".WAV"])),
    min_size=1, max_size=10, unique=True,
).filter(lambda keys: all(_valid(k) for k in keys))  # fmt: skip


def _valid(key: str) -> bool:
    try:
        check_key(key)
    except Exception:
        return False
    return True


def _recorded(store: Store, url: str, key: str, size: int = 4) -> str:
    """A completed generation whose file is ``key`` in the store at ``url``; its id."""
    job = new_job(store)
    claimed = store.claim_next("w")
    assert claimed is not None and claimed.id == job.id
    store.complete_generation(job.id, file_path=key, file_size_bytes=size)
    store.run(record_storage, job.id, storage_url=url, key=key, checksum=CHECKSUM)
    return job.id


def _rendition(store: Store, generation_id: str, key: str, data: bytes) -> None:
    store.create_rendition(
        generation_id, storage_key=key, file_size_bytes=len(data), checksum=hashlib.sha256(data).hexdigest(),
        **{**RENDITION, "settings": {**RENDITION["settings"], "bitrate_kbps": 64 + len(key) % 200}},
    )  # fmt: skip


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(keys=KEYS, renditions=st.lists(st.booleans(), min_size=10, max_size=10))
@example(keys=["a-c.wav", "a_c.wav", "a/b.wav", "a/B.wav", "aZ.wav", "ab.wav", "é.wav", "f.wav"],
         renditions=[False, True] * 5)  # fmt: skip
def test_the_rows_of_a_store_come_in_pythons_order(
    any_url: str, keys: list[str], renditions: list[bool]
) -> None:
    """Property: the rows ``bucket.stored_rows`` merges with the listing (generations and renditions, paged
    3 at a time) come in ``sorted()``'s order of their keys, on every backend and database collation."""
    tag = uuid.uuid4().hex
    url = f"s3://bucket/{tag}/"  # this example's rows only (a rendition's key is unique in the database)
    with Store(any_url) as store:
        expected = []
        for key, with_rendition in zip(keys, renditions, strict=False):
            gid = _recorded(store, url, key)
            expected.append(key)
            if with_rendition:
                _rendition(store, gid, f"{key}.{tag[:8]}.mp3", b"ID3")
                expected.append(f"{key}.{tag[:8]}.mp3")
        assert [row.key for row in stored_rows(store, url, 3)] == sorted(expected)


class Counted(Store):
    """A store counting the keys the merge looked up because it did not meet them beside their rows (an object
    it took for an orphan, confirmed by ``bucket.stored_by_keys``)."""

    looked_up = 0

    def run(self, op: Any, /, *args: Any, **kwargs: Any) -> Any:
        if op is bucket.stored_by_keys:
            self.looked_up += len(args[1])
        return super().run(op, *args, **kwargs)


def test_reconcile_of_a_consistent_bucket_meets_every_object_beside_its_row_under_an_icu_collation(
    icu_postgres_url: str, objects: FileStore
) -> None:
    """Keys in one folder (SeaweedFS lists a folder in byte order) that the ICU locale sorts otherwise: with
    byte-ordered keys the merge meets every object beside its row, and looks none up by key (before 0017
    it looked up most of them: right, but a query per batch and a HEAD per key past the hold)."""
    names = ["a-c", "a_c", "aZ", "ab", "A-b", "a.b", "é", "f", "Zz", "z_z", "z-z"]
    counted = Counted(icu_postgres_url)
    with counted as store:
        for name in names:
            key = f"mixed/{name}.wav"
            objects.put(key, b"RIFF")
            _recorded(store, objects.url, key)
        assert [o.key for o in objects.list()] == sorted(f"mixed/{n}.wav" for n in names)
        report = reconcile(store, objects, batch=4)
        assert report.consistent
        assert report.rows_checked == report.referenced_files == len(names)
        assert counted.looked_up == 0


def test_plans_walk_the_key_indexes_on_a_database_with_an_icu_collation(icu_postgres_url: str) -> None:
    """Every read query's plan, as tests/test_plans.py and tests/test_schema.py check them on the test
    server's database, on the ICU one: the keys' indexes, in byte order, serve the walks and the lookups
    (the parameters, of the default collation, take the column's)."""
    test_schema.test_postgres_has_the_same_indexes_and_plans_sort_free(icu_postgres_url)
    test_plans.test_postgres_plans_are_index_ordered(icu_postgres_url)


def _collations(url: str) -> dict[str, str]:
    rows = _sql(
        url,
        "SELECT c.relname || '.' || a.attname, coalesce(k.collname, '')"
        " FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid"
        " LEFT JOIN pg_collation AS k ON k.oid = a.attcollation"
        " WHERE (c.relname, a.attname) IN (('generations', 'file_path'), ('renditions', 'storage_key'))",
    )
    return {str(column): str(name) for column, name in rows}


def test_0017_rolls_back_to_the_default_collation_and_applies_again(icu_postgres_url: str) -> None:
    """Applied to rows: the keys keep their values; rolled back, the columns take the database's collation
    (the ICU order again); applied again, byte order."""
    url = "s3://bucket/rolled/"
    keys = ["a_c.wav", "a-c.wav", "B.wav", "a.wav"]
    with Store(icu_postgres_url) as store:
        for key in keys:
            _recorded(store, url, key)
    assert _collations(icu_postgres_url) == {"generations.file_path": "C", "renditions.storage_key": "C"}
    _rollback(icu_postgres_url, "0017")
    assert _collations(icu_postgres_url) == {
        "generations.file_path": "default", "renditions.storage_key": "default"
    }  # fmt: skip
    in_locale = _sql(icu_postgres_url, "SELECT file_path FROM generations ORDER BY file_path")
    assert [r[0] for r in in_locale] == ["a_c.wav", "a-c.wav", "a.wav", "B.wav"]  # not Python's
    assert migrate(icu_postgres_url) == _from("0017")
    with Store(icu_postgres_url) as store:
        assert [row.key for row in stored_rows(store, url, 2)] == sorted(keys)


# --- a key the merge missed is counted once, whatever its name ----------------------------------------------

OUT_OF_ORDER_KEYS = ["a/one.mp3", "b/two.ogg", "c/notes.txt", "d/three.wav", "e/four.flac"]
"""Keys rows record (any key may be a row's: ``complete_generation`` takes it), three of them not audio."""
LISTED = [*OUT_OF_ORDER_KEYS, "f/readme.txt", "g/x.json"]
"""Those and two objects no row records."""


class Listed(Wrapped):
    """A store whose listing comes in the given order of its keys (SeaweedFS lists folder by folder, and
    before 0017 a database with a locale's collation gave its rows in another order than the listing's)."""

    def __init__(self, inner: FileStore, order: list[str]) -> None:
        super().__init__(inner)
        self.order = order

    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[Any]:
        found = {o.key: o for o in self.inner.list(prefix, page_size=page_size)}
        return iter([found[key] for key in self.order if key in found])


def _put_and_record(store: Store, files: FileStore, keys: list[str]) -> None:
    for key in keys:
        info = files.put(key, f"bytes of {key}".encode())
        job = new_job(store)
        claimed = store.claim_next("w")
        assert claimed is not None and claimed.id == job.id
        store.complete_generation(job.id, file_path=key, file_size_bytes=info.size)
        assert info.checksum is not None
        store.run(record_storage, job.id, storage_url=files.url, key=key, checksum=info.checksum)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(order=st.permutations(LISTED), batch=st.integers(1, 4))
@example(order=sorted(LISTED, reverse=True), batch=2)
def test_every_object_is_classified_once_in_any_listing_order(
    sqlite_url: str, tmp_path_factory: pytest.TempPathFactory, order: list[str], batch: int
) -> None:
    """Property: whatever order the listing comes in, each object is one item, and one a row records is
    *referenced*. An object whose name is not audio that the merge did not meet beside its row was *other*
    and then, its row's HEAD finding it, *referenced* as well: counted twice (reconcile's unknown files and
    files scanned, disk usage's bytes)."""
    root = tmp_path_factory.mktemp("listed")
    files = open_filestore(root.as_uri())
    with Store(sqlite_url) as store:
        for row in store.list_generations(limit=100).items:  # an earlier example's rows
            store.delete_generation(row.id)
        _put_and_record(store, files, OUT_OF_ORDER_KEYS)
        for key in ("f/readme.txt", "g/x.json"):  # no row records these
            files.put(key, b"other")
        items = [(i.key, i.state) for i in bucket.classify_objects(store, Listed(files, order), batch=batch)]
    expected = [(k, "referenced") for k in OUT_OF_ORDER_KEYS] + [
        ("f/readme.txt", "other"),
        ("g/x.json", "other"),
    ]
    assert sorted(items) == sorted(expected)


def test_reconcile_and_disk_usage_count_an_out_of_order_object_of_any_name_once(
    store: Store, objects: FileStore
) -> None:
    _put_and_record(store, objects, OUT_OF_ORDER_KEYS)
    listed: Any = Listed(objects, sorted(OUT_OF_ORDER_KEYS, reverse=True))
    report = reconcile(store, listed, batch=2)
    assert report.consistent
    assert (report.files_scanned, report.referenced_files, report.unknown_files) == (5, 5, 0)
    usage = disk_usage(store, listed, batch=2)
    assert (usage.files, usage.recorded.files, usage.other.files) == (5, 5, 0)
    assert usage.bytes == usage.recorded.bytes == sum(len(f"bytes of {k}") for k in OUT_OF_ORDER_KEYS)


def test_rows_sharing_a_key_and_its_peaks_file_count_each_object_once(
    store: Store, objects: FileStore
) -> None:
    """Two generations recording one key and one peaks file beside it (rows may share a key: maintenance
    reads a key's rows whole): the peaks row of the second came between the two master rows, so the merge
    took the master's rows as two keys and counted the master and its peaks object twice each."""
    key, peaks = "2026/01/01/shared.wav", "2026/01/01/shared.peaks.256.8.json"
    master, drawn = objects.put(key, b"RIFF master"), objects.put(peaks, b"{}")
    for _ in range(2):
        job = new_job(store)
        claimed = store.claim_next("w")
        assert claimed is not None and claimed.id == job.id
        record = {"peaks": {"key": peaks, "bytes": drawn.size}}
        store.complete_generation(job.id, file_path=key, file_size_bytes=master.size, metadata=record)
        assert master.checksum is not None
        store.run(record_storage, job.id, storage_url=objects.url, key=key, checksum=master.checksum)
    items = [(i.key, i.state, len(i.rows)) for i in bucket.classify_objects(store, objects, peaks=True)]
    assert items == [(peaks, "referenced", 2), (key, "referenced", 2)]
    report = reconcile(store, objects)
    assert report.consistent and (report.files_scanned, report.referenced_files) == (2, 2)
    assert (report.rows_checked, report.peaks_files) == (2, 1)
    usage = disk_usage(store, objects)
    assert (usage.files, usage.bytes) == (2, master.size + drawn.size)
