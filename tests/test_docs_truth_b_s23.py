"""Claims of docs/cli.md, docs/maintenance.md and docs/migrations.md that the code did not keep: each test
quotes the claim it holds the code to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from musicstore import Store
from musicstore.cli import EXIT_INCONSISTENT, main

_REQUEST = {"model_name": "m", "duration_seconds": 1, "sample_rate": 32_000, "channels": 2}


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
