"""Claims of docs/cli.md, docs/maintenance.md and docs/migrations.md that the code did not keep: each test
quotes the claim it holds the code to."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from musicstore import Store
from musicstore.cli import EXIT_INCONSISTENT, main

_REQUEST: dict[str, Any] = {"model_name": "m", "duration_seconds": 1, "sample_rate": 32_000, "channels": 2}


def _store_with_an_orphan(url: str, root: Path) -> Path:
    """A migrated store whose root holds one orphan file (no row records it)."""
    Store(url, migrate=True).close()
    orphan = root / "2026/01/01/01a2285e-0000-7000-8000-000000000000.wav"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"\0" * 10)
    return orphan


def test_a_failed_repair_says_its_error_on_stderr_with_json_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # cli.md, reconcile: "A repair that fails (a read-only root, a full quarantine) leaves the item's action
    # `reported`, prints its error on stderr (and in `--json`'s `errors`)". With --json the error was in the
    # document only: `reconcile --repair --json > log` under cron said nothing on stderr (cleanup --json does)
    url = f"sqlite:///{tmp_path}/store.db"
    orphan = _store_with_an_orphan(url, tmp_path / "audio")
    not_a_folder = tmp_path / "quarantine"
    not_a_folder.write_text("a file where the quarantine folder should be")
    argv = [
        "reconcile",
        "-d",
        url,
        "-o",
        str(tmp_path / "audio"),
        "--repair",
        "--quarantine",
        str(not_a_folder),
    ]
    assert main([*argv, "--json"]) == EXIT_INCONSISTENT
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert [o["action"] for o in report["orphans"]] == ["reported"] and len(report["errors"]) == 1
    assert err == f"musicstore: error: {report['errors'][0]}\n"
    assert orphan.exists()


def _completed_with_a_file(url: str, root: Path) -> str:
    """A completed generation whose file (5 bytes) is recorded in the folder ``root``."""
    with Store(url, migrate=True) as store:
        store.create_generation("a take", **_REQUEST)
        claimed = store.claim_next("gpu-0")
        assert claimed is not None
        (root / "take.wav").parent.mkdir(parents=True, exist_ok=True)
        (root / "take.wav").write_bytes(b"\0" * 5)
        store.complete_generation(claimed.id, file_path="take.wav", file_size_bytes=5)
        return claimed.id


@pytest.mark.parametrize("spelling", ["path", "file_url"])
def test_a_dry_run_copy_to_a_folder_not_there_yet_makes_no_folder(
    spelling: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # cli.md, copy-files: "`--dry-run` copies nothing and reports what the run would copy" (the option's help:
    # "copy nothing, change no row"): a dry run to a folder not there yet made it, and every folder above it
    # (`--to /mnt/new/music --dry-run`, a preview, left /mnt/new/music behind, empty)
    from musicstore.maintenance.relocate import copy_files

    url = f"sqlite:///{tmp_path}/store.db"
    _completed_with_a_file(url, tmp_path / "audio")
    target = tmp_path / "new" / "music"
    to = str(target) if spelling == "path" else target.as_uri()
    with Store(url) as store:
        plan = copy_files(store, to, source=tmp_path / "audio", dry_run=True)
    assert plan.dry_run and (plan.objects_copied, plan.bytes_copied, plan.rows_updated) == (1, 5, 1)
    assert plan.target == target.as_uri() and not (tmp_path / "new").exists()
    assert main(["copy-files", "-d", url, "--to", to, "--source", str(tmp_path / "audio"), "--dry-run"]) == 0
    assert "would copy the files of 1 generations" in capsys.readouterr().out
    assert not (tmp_path / "new").exists()
    with Store(url) as store:  # the real run makes it, as before
        assert copy_files(store, to, source=tmp_path / "audio").rows_updated == 1
    assert (target / "take.wav").read_bytes() == b"\0" * 5


@pytest.mark.parametrize("kind", ["fifo", "socket", "folder"])
def test_overwrite_replaces_a_database_file_never_a_pipe_a_socket_or_a_folder(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # cli.md: "`--overwrite` replaces an existing DEST"; maintenance.md: "An existing `destination` is
    # replaced only with `overwrite=True` (a rename over it)". The rename replaced whatever was there: as
    # root, `musicstore backup /dev/null --overwrite` put the database where /dev/null was (a regular file
    # from then on, for every process of the host). --overwrite is for a database file: anything else that
    # is not a regular file is refused before any work, and left as it is (a FIFO or socket here, never a
    # real device in a test)
    import socket
    import stat

    from musicstore import InvalidInput
    from musicstore.maintenance.backup import backup, restore

    url = f"sqlite:///{tmp_path}/store.db"
    Store(url, migrate=True).close()
    there = tmp_path / "there"
    if kind == "fifo":
        os.mkfifo(there)
    elif kind == "socket":
        listening = socket.socket(socket.AF_UNIX)
        listening.bind(str(there))
    else:
        there.mkdir()
    before = os.lstat(there)
    with pytest.raises(InvalidInput, match=r"not a regular file|is a folder"):
        backup(url, there, overwrite=True)
    assert main(["backup", str(there), "-d", url, "--overwrite"]) == 1
    assert "musicstore: error: " in capsys.readouterr().err
    backup(url, tmp_path / "copy.db")
    with pytest.raises(InvalidInput, match=r"not a regular file|is a folder"):
        restore(tmp_path / "copy.db", f"sqlite:///{there}", overwrite=True)
    after = os.lstat(there)
    assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode) and after.st_ino == before.st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.db", "store.db", "there"]
    if kind == "socket":
        listening.close()


def test_restore_says_a_typed_path_on_one_line_with_its_controls_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # cli.md: control characters (a newline, a terminal escape in a file name) are shown as escapes, "so each
    # row stays one line"; backup's line, reconcile's root and the demo's folder are escaped, restore's line
    # printed the backup's name raw: a newline split it, an ESC sequence drove the terminal
    url = f"sqlite:///{tmp_path}/store.db"
    Store(url, migrate=True).close()
    named = tmp_path / "nightly\n\x1b[2Jcopy.db"
    assert main(["backup", str(named), "-d", url]) == 0
    backed_up = capsys.readouterr().out
    assert backed_up.count("\n") == 1 and "\x1b" not in backed_up and "\\x1b[2J" in backed_up
    assert main(["restore", str(named), "-d", f"sqlite:///{tmp_path}/restored.db"]) == 0
    restored = capsys.readouterr().out
    assert restored.count("\n") == 1 and "\x1b" not in restored, restored
    assert restored.startswith(f"restored {tmp_path}/nightly\\n\\x1b[2Jcopy.db as {tmp_path}/restored.db: ")


def test_cleanups_criteria_line_shows_a_typed_model_name_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # as restore's line: `cleanup --model "$NAME"` printed the name raw in its first line ("...; model a" and
    # a second line "b" with the ESC sequence sent to the terminal)
    url = f"sqlite:///{tmp_path}/store.db"
    Store(url, migrate=True).close()
    (tmp_path / "audio").mkdir()
    assert main(["cleanup", "-d", url, "-o", str(tmp_path / "audio"), "--model", "a\nb\x1b[31m"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith("; model a\\nb\\x1b[31m") and "\x1b" not in first, first


def test_restore_from_a_folder_says_it_is_a_folder_not_that_it_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # cli.md: one line saying what was wrong, for "a file or folder that is missing, not a folder...";
    # `restore backups/` (the folder, not the file in it) said "backup backups does not exist", as backup's
    # source said before (tests/test_cli_hunt_s22.py): it is there, and is a folder
    url = f"sqlite:///{tmp_path}/store.db"
    folder = tmp_path / "backups"
    folder.mkdir()
    assert main(["restore", str(folder), "-d", url]) == 1
    err = capsys.readouterr().err
    assert f"{folder} is a folder, not a backup file" in err and "does not exist" not in err, err
    assert not (tmp_path / "store.db").exists()
