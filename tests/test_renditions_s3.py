"""Renditions of a master kept in an object store (a real SeaweedFS): the master read from the bucket and
checked against its recorded SHA-256, each rendition put beside it (conditional create) in the transaction
that records its row; nothing left on any error. Both database backends."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf
from mutagen.mp3 import MP3
from mutagen.oggopus import OggOpus

from musicstore import DatabaseError, InvalidAudio, StorageError, Store
from musicstore.audio import RenditionSpec, get_profile
from musicstore.audio.truepeak import to_db, true_peak
from musicstore.filestore import FileStore, ObjectExists, open_filestore
from musicstore.recording import export_generation
from musicstore.rendering import render_generation, rendition_name
from musicstore.store import Transaction
from tests.test_record import OPTIONS, claimed, music


def keys(objects: FileStore) -> set[str]:
    return {o.key for o in objects.list()}


def exported(store: Store, objects: FileStore) -> Any:
    job = claimed(store, metadata={"seed": 11})
    return export_generation(store, job, music(), root=objects, options=OPTIONS).generation


def test_renditions_of_a_master_in_s3_go_beside_it_and_are_recorded(
    store: Store, objects: FileStore, tmp_path: Path
) -> None:
    done = exported(store, objects)
    before = keys(objects)
    missing_root = tmp_path / "not-here"  # a local root does not matter to a row in a bucket
    made = render_generation(store, done.id, root=missing_root, formats=["mp3", "opus"], profile="streaming")
    assert keys(objects) == before | {r.storage_key for r in made}
    folder = str(done.file_path).rpartition("/")[0]
    for row in made:
        assert row.storage_key.startswith(f"{folder}/{done.id}.streaming.")
        head = objects.head(row.storage_key)
        data = b"".join(objects.get(row.storage_key, checksum=row.checksum))
        assert head.size == row.file_size_bytes == len(data) and head.checksum == row.checksum
        assert hashlib.sha256(data).hexdigest() == row.checksum
        assert head.content_type in ("audio/mpeg", "audio/ogg")
        assert head.metadata["profile"] == "streaming" and head.metadata["generation-id"] == done.id
        decoded, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        assert to_db(true_peak(decoded.T.copy())) <= -1.0  # the ceiling holds on what the bucket serves
        assert row.true_peak_dbtp is not None and row.true_peak_dbtp <= -1.0
    mp3, opus = (b"".join(objects.get(r.storage_key)) for r in made)
    id3 = MP3(io.BytesIO(mp3)).tags  # type: ignore[no-untyped-call]
    assert id3 is not None and id3["TXXX:GENERATION_ID"].text == [done.id] and id3["TXXX:SEED"].text == ["11"]
    comments = OggOpus(io.BytesIO(opus)).tags
    assert comments is not None and comments["GENERATION_ID"] == [done.id] and "R128_TRACK_GAIN" in comments
    assert store.list_renditions(done.id) == sorted(made, key=lambda r: r.format)
    # the same request again: nothing put, the rows returned (without reading the master)
    assert render_generation(store, done.id, formats=["mp3"]) == made[:1] and keys(objects) == keys(objects)


def test_a_master_that_fails_its_checksum_or_is_gone_leaves_nothing(store: Store, objects: FileStore) -> None:
    done = exported(store, objects)
    key = str(done.file_path)
    peaks = str(done.metadata["peaks"]["key"])  # the export's waveform peaks, beside the master
    normalized = str(done.metadata["peaks"]["normalized"]["key"])  # and their normalised form
    original = b"".join(objects.get(key))
    objects.put(key, original[:-2] + b"\x00\x01", overwrite=True)  # damaged after it was recorded
    with pytest.raises(InvalidAudio, match="sha256"):
        render_generation(store, done.id, formats=["mp3"])
    assert keys(objects) == {key, peaks, normalized} and store.list_renditions(done.id) == []
    objects.delete(key)
    with pytest.raises(Exception, match="missing") as gone:
        render_generation(store, done.id, formats=["mp3"])
    assert type(gone.value).__name__ == "InvalidInput"
    assert keys(objects) == {peaks, normalized} and store.list_renditions(done.id) == []


def test_a_failure_around_the_put_leaves_neither_object_nor_row(store: Store, objects: FileStore) -> None:
    done = exported(store, objects)
    before = keys(objects)

    # the row is refused: nothing is put
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise DatabaseError("refused")

    with pytest.MonkeyPatch.context() as patch:  # (the fixture's monkeypatch holds the S3 settings)
        patch.setattr(Transaction, "create_rendition", refuse, raising=False)
        with pytest.raises(DatabaseError, match="refused"):
            render_generation(store, done.id, formats=["mp3"])
    assert keys(objects) == before and store.list_renditions(done.id) == []

    # the put fails after the upload (the object is there): it is deleted again, the row rolled back
    real_put = type(objects).put

    def put_then_fail(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        real_put(self, key, *args, **kwargs)
        raise StorageError("connection lost after the upload")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(objects), "put", put_then_fail)
        with pytest.raises(StorageError, match="connection lost") as raised:
            render_generation(store, done.id, root=objects, formats=["opus"])
    assert "its file was removed" in str(raised.value.__notes__)
    assert keys(objects) == before and store.list_renditions(done.id) == []

    # an object nobody recorded holds the key: the conditional create refuses it and leaves it as it was
    master = str(done.file_path)
    settings = RenditionSpec("flac").settings(done.sample_rate, done.channels).description
    taken = f"{master.rpartition('/')[0]}/{rendition_name(Path(master), settings, get_profile('streaming'))}"
    objects.put(taken, b"someone else's bytes")
    with pytest.raises(ObjectExists):
        render_generation(store, done.id, formats=["flac"])
    assert b"".join(objects.get(taken)) == b"someone else's bytes"
    assert store.list_renditions(done.id) == []


def test_cli_render_of_a_generation_in_s3(
    sqlite_url: str, musicstore_s3_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from musicstore.cli import main

    objects = open_filestore(musicstore_s3_url)
    try:
        with Store(sqlite_url) as store:
            done = exported(store, objects)
        args = ["render", done.id, "--format", "mp3", "--json", "--database", sqlite_url]
        assert main([*args, "--output-root", str(tmp_path / "unused")]) == 0
        (made,) = json.loads(capsys.readouterr().out)["renditions"]
        assert made["format"] == "mp3" and made["storage_key"].endswith(".mp3")
        assert objects.head(made["storage_key"]).checksum == made["checksum"]
    finally:
        objects.close()
