"""Claims of docs/export.md, docs/recording.md and docs/schema.md that the code did not keep (session 23)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from musicstore import Status
from musicstore.audio import synthesize_music
from musicstore.errors import InvalidInput
from musicstore.recording import OnError, export_batch_generations, export_generation
from musicstore.storage_names import store_url
from musicstore.validate.values import MAX_METADATA_BYTES

_NO_ROOM_FOR_THE_OWNER_FILE = """
import resource, signal, sys, tempfile
from musicstore import recording
tempfile.tempdir = sys.argv[1]  # not probed by writing a file, which the limit below would refuse
from musicstore.errors import StorageError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    recording._export_folder()
except StorageError as exc:
    print("StorageError", exc)
"""


def test_an_export_folder_whose_owner_file_cannot_be_written_is_not_left_behind(tmp_path: Path) -> None:
    """docs/recording.md: the temp folder an export to an object store encodes in is "removed when the export
    ends however it ends" (but for a killed process, whose folder names its maker for a later sweep). When
    the ``owner`` file could not be written (a full disk, EFBIG), the export failed with StorageError but its
    folder stayed: without an owner file no sweep ever removes it (one more per failed export)."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", _NO_ROOM_FOR_THE_OWNER_FILE, str(temp)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("StorageError cannot make a temp folder"), done.stdout
    assert list(temp.iterdir()) == []


def _long_root(base: Path) -> Path:
    """A folder whose file:// URL is over the 2,048 characters ``generations.storage_url`` holds."""
    root = base
    while len(root.as_uri()) <= 2_060:
        root = root / ("d" * 200)
    root.mkdir(parents=True)
    return root


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_root_whose_url_no_row_can_hold_is_refused_before_the_export(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """docs/schema.md: ``storage_url`` holds 1–2048 characters; docs/recording.md: a root "whose url no row
    can record" is a caller mistake (InvalidInput, the row unchanged, nothing written). A folder root whose
    file:// URL is longer was exported, placed, then refused by the database's CHECK (DatabaseError) at every
    job, each one's model run and encoding thrown away, the row left processing for its lease to expire."""
    fixture = "musicstore_store" if backend == "sqlite" else "musicstore_postgres_store"
    store = request.getfixturevalue(fixture)
    store.create_generation("a deep root", model_name="m", duration_seconds=1.0, sample_rate=16_000)
    claimed = store.claim_next("gpu-0")
    root = _long_root(tmp_path)
    audio = synthesize_music(1.0, 16_000, seed=1)
    for given in (root, str(root), root.as_uri()):
        with pytest.raises(InvalidInput, match="2,048 characters"):
            export_generation(store, claimed, audio, root=given)
        with pytest.raises(InvalidInput, match="2,048 characters"):
            export_batch_generations(store, [claimed], audio[None], root=given)
    assert store.get_generation(claimed.id).status is Status.PROCESSING
    assert list(root.iterdir()) == []
    with pytest.raises(InvalidInput, match="2,048 characters"):
        store_url(root.as_uri())


@pytest.mark.parametrize(
    ("backend", "on_error"), [("sqlite", "fail"), ("postgres", "fail"), ("sqlite", "retry")]
)
def test_a_completion_whose_metadata_grows_too_large_fails_the_row_per_on_error(
    backend: str, on_error: OnError, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """docs/recording.md's table: a failure is either the caller's (row unchanged, nothing written) or the
    job's (the row failed per ``on_error``). A row whose metadata (accepted when it was created) plus the
    export's figures passes the 1 MiB limit was exported, then refused at completion (InvalidInput), its
    file removed and the row left processing: every later claim ran the model again to the same end."""
    fixture = "musicstore_store" if backend == "sqlite" else "musicstore_postgres_store"
    store = request.getfixturevalue(fixture)
    near_the_limit = {"notes": "x" * (MAX_METADATA_BYTES - 400)}
    store.create_generation(
        "p", model_name="m", duration_seconds=1.0, sample_rate=16_000, metadata=near_the_limit
    )
    claimed = store.claim_next("gpu-0")
    root = tmp_path / "out"
    with pytest.raises(InvalidInput, match="maximum is") as raised:
        export_generation(store, claimed, synthesize_music(1.0, 16_000, seed=2), root=root, on_error=on_error)
    row = store.get_generation(claimed.id)
    assert row.status is (Status.FAILED if on_error == "fail" else Status.PENDING)
    assert row.error_message is not None and "maximum is" in row.error_message
    assert any(f"is now {row.status}" in note for note in raised.value.__notes__)
    assert [p for p in root.rglob("*") if p.is_file()] == []
