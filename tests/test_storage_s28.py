"""Session 28's storage hunt: recording into a bucket whose put replies are lost, the folder store's
checksums, placing a file under Ctrl-C, and the edges of both stores. Against a real SeaweedFS
(musicstore.testing), no mocks."""

from __future__ import annotations

import http.client
import os
import signal
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest

from musicstore import Status, StorageError, Store
from musicstore.audio import files
from musicstore.delivery import Delivery
from musicstore.filestore import ChecksumMismatch, KeyConflict, LocalFileStore, ObjectNotFound, S3FileStore
from musicstore.maintenance.reconcile import reconcile
from musicstore.ops.storage import get_storage
from musicstore.recording import export_generation
from tests.test_record import claimed, music


class _ReplyDropper:
    """An HTTP proxy in front of the real server that passes every request on and, for each ``PUT``, drops
    the connection instead of passing the server's reply back: the put lands (the first; a retry's
    conditional put is refused there, 412), and the client sees a connection closed before any answer, each
    attempt. Other requests (``HEAD``, ``DELETE``...) pass both ways."""

    def __init__(self, target: str) -> None:
        host = urlsplit(target)
        proxy, self.puts = self, 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                conn = http.client.HTTPConnection(host.hostname or "127.0.0.1", host.port)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                conn.close()
                if self.command == "PUT":
                    proxy.puts += 1
                    self.close_connection = True
                    return  # the reply is dropped: the handler closes the connection unanswered
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in {"transfer-encoding", "connection", "content-length"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any  # noqa: N815 (http.server's names)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- 1. a put whose replies are lost leaves no object the row does not record ---------------------------


@pytest.mark.parametrize("on_error", ["retry", "fail"])
def test_an_export_whose_put_replies_are_lost_leaves_no_orphan_object(
    store: Store, musicstore_s3_server: Any, musicstore_s3_url: str, on_error: str
) -> None:
    """The PUT lands, its reply is lost, and each retry's reply too (StoreUnavailable): the row is not
    completed, so the object the first attempt wrote (marked with the generation's id) is removed while the
    row is still locked, and the put's own error is raised."""
    server = musicstore_s3_server
    proxy = _ReplyDropper(server.endpoint_url)
    prefix = urlsplit(musicstore_s3_url).path.lstrip("/")
    direct = S3FileStore(server.bucket, prefix, **server.options)
    lossy = S3FileStore(
        server.bucket, prefix, max_attempts=2, **{**server.options, "endpoint_url": proxy.url}
    )
    try:
        job = claimed(store)
        key = f"{job.created_at:%Y/%m/%d}/{job.id}.wav"
        with pytest.raises(StorageError, match="cannot reach") as raised:
            export_generation(store, job, music(), root=lossy, on_error=on_error)  # type: ignore[arg-type]
        assert proxy.puts == 2  # both attempts reached the server
        assert server.secret_access_key not in str(raised.value)
        with pytest.raises(ObjectNotFound):
            direct.head(key)
        assert list(direct.list()) == []
        row = store.get_generation(job.id)
        expected = Status.PENDING if on_error == "retry" else Status.FAILED
        assert row is not None and row.status is expected and row.file_path is None
    finally:
        lossy.close()
        direct.close()
        proxy.close()


# --- 2. a folder's master carries no checksum attribute: its row's is the record ------------------------


def test_a_folder_master_is_verified_against_its_rows_checksum(store: Store, tmp_path: Path) -> None:
    """A master exported into a folder is renamed into place, not put: no ``user.musicstore.sha256``
    attribute (``head`` reports none), as docs/storage.md says. The row's SHA-256 is the record: delivery
    reads against it and reconcile --verify-checksums compares the file with it."""
    root = tmp_path / "audio"
    job = claimed(store)
    recorded = export_generation(store, job, music(), root=root)
    folder = LocalFileStore(root)
    assert folder.head(str(recorded.key)).checksum is None
    assert store.run(get_storage, job.id).checksum == recorded.checksum
    path = root / str(recorded.key)
    data = bytearray(path.read_bytes())
    data[1000] ^= 0x01
    path.write_bytes(bytes(data))
    with Delivery(store, root=root) as delivery, pytest.raises(ChecksumMismatch):
        delivery.read_audio(recorded.generation)
    report = reconcile(store, root, verify_checksums=True)
    assert [(d.id, d.problem) for d in report.dangling] == [(job.id, "checksum_mismatch")]


# --- 3. Ctrl-C while a file takes its place -------------------------------------------------------------


def _then_ctrl_c(real: Callable[..., Any]) -> Callable[..., Any]:
    """``real``, after which a SIGINT lands at once (its handler runs as ``raise_signal`` returns): a
    Ctrl-C in the window between a system call that made or moved a file and the step that notes it."""

    def call(*args: Any, **kwargs: Any) -> Any:
        done = real(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)
        return done

    return call


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_ctrl_c_as_a_file_is_renamed_leaves_its_path_empty_not_half_placed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted just after the rename, before ``place`` noted it: the file was left at its path, not made
    durable (its folder not fsynced), and a batch's note called that path "not renamed, unchanged"."""
    staged = [files.stage(tmp_path / f"{n}.bin", _writing(b"x" * 100)) for n in range(2)]
    monkeypatch.setattr(os, "replace", _then_ctrl_c(os.replace))
    with pytest.raises(KeyboardInterrupt) as raised:
        files.place(staged)
    assert _files(tmp_path) == []  # the renamed one removed again, the other's temp removed
    note = raised.value.__notes__[0]  # the first renamed, then the interrupt: the second never was
    assert f"unchanged: {tmp_path / '1.bin'};" in note and note.endswith(
        f"(the path is empty): {tmp_path / '0.bin'}"
    )


def test_ctrl_c_as_the_temp_file_is_made_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "mkstemp", _then_ctrl_c(tempfile.mkstemp))
    with pytest.raises(KeyboardInterrupt):
        files.place_atomic(tmp_path / "a.bin", _writing(b"x" * 100))
    assert _files(tmp_path) == []


def test_ctrl_c_as_a_folder_put_makes_its_temp_file_leaves_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.open

    def opening(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        opened = real(path, flags, *args, **kwargs)
        if str(path).endswith(".tmp"):
            signal.raise_signal(signal.SIGINT)
        return opened

    folder = LocalFileStore(tmp_path / "audio")
    monkeypatch.setattr(os, "open", opening)
    with pytest.raises(KeyboardInterrupt):
        folder.put("2026/01/31/a.wav", b"RIFF....")
    monkeypatch.undo()
    assert _files(tmp_path / "audio") == []
    assert list(folder.uploads()) == []
    assert folder.put("2026/01/31/a.wav", b"RIFF....").size == 8


def _writing(data: bytes) -> Callable[[int, str], None]:
    def write(fd: int, _name: str) -> None:
        os.write(fd, data)

    return write


@pytest.mark.parametrize("where", ["place_atomic", "export_audio", "export_batch"])
def test_ctrl_c_as_the_staged_file_is_handed_to_place_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Interrupted between a file's staging and ``place`` (here as ``place`` is called): the temp file,
    whole and fsynced, was no one's to remove and stayed beside its path."""
    from musicstore.audio import batch, export

    real = files.place

    def placing(staged: Any) -> None:
        signal.raise_signal(signal.SIGINT)
        real(staged)

    module = {"place_atomic": files, "export_audio": export, "export_batch": batch}[where]
    monkeypatch.setattr(module, "place", placing)
    clip = music(0.5)
    with pytest.raises(KeyboardInterrupt):
        if where == "place_atomic":
            files.place_atomic(tmp_path / "a.bin", _writing(b"x" * 100))
        elif where == "export_audio":
            export.export_audio(clip, 48_000, tmp_path / "a.wav")
        else:
            export.export_batch(np.stack([clip, clip]), 48_000, [tmp_path / "a.wav", tmp_path / "b.wav"])
    assert _files(tmp_path) == []


# --- hunt: the folder store ---------------------------------------------------------------------------


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_made_at_the_key_during_a_put_is_a_key_conflict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overwrite: bool
) -> None:
    """A put at ``p`` racing one at ``p/q.wav``: the other's folder made at ``p`` after this put checked
    the name, before its link (or rename). It raised a plain ``ObjectExists`` "exists already" (with
    ``overwrite``: ``StorageError`` "Is a directory"), where docs/storage.md promises ``KeyConflict``
    (about half of 400 threaded races here); nothing changes either way."""
    folder = LocalFileStore(tmp_path / "audio")
    name = "link" if not overwrite else "replace"
    real = getattr(os, name)

    def racing(*args: Any, **kwargs: Any) -> None:
        os.mkdir("p", dir_fd=kwargs["dst_dir_fd"])  # the other put's folder, made just now
        real(*args, **kwargs)

    monkeypatch.setattr(os, name, racing)
    with pytest.raises(KeyConflict, match="is a folder"):
        folder.put("p", b"A", overwrite=overwrite)
    monkeypatch.undo()
    assert (tmp_path / "audio" / "p").is_dir() and _files(tmp_path / "audio") == []
