"""The maintenance commands under user mistakes (issue 10): a root or target URL that carries a secret
(userinfo in ``file://`` or ``s3://``, a query) is refused in one line, exit code 1, no traceback, and no
part of the secret in stdout or stderr, plain or ``--json``; a ``file:///absolute/path`` root works as the
folder it names (as ``copy-files --to`` takes it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from musicstore import Store
from musicstore.errors import InvalidInput
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.retention import cleanup
from musicstore.maintenance.usage import disk_usage
from tests.test_containment import musicstore_cli

SECRET = "Zq9s3cr3tPW"

ROOTS = [
    f"file://operator:{SECRET}@host/srv/audio",
    f"file://operator:{SECRET}@/srv/audio",
    f"FILE://:{SECRET}@localhost/srv/audio",
    f"file:///srv/audio?password={SECRET}",
    f"file:///srv/audio#{SECRET}",
    f"s3://AKIAEXAMPLE:{SECRET}@bucket-x/prefix",
    f"s3://bucket-x/prefix?secret={SECRET}",
]


def _commands(url: str, root: str) -> list[list[str]]:
    common = ["--database", url]
    return [
        ["reconcile", *common, "--output-root", root],
        ["reconcile", *common, "--output-root", root, "--repair", "--orphans", "delete", "--json"],
        ["cleanup", *common, "--output-root", root, "--status", "failed", "--apply"],
        ["stats", *common, "--disk", "--output-root", root, "--json"],
        ["copy-files", *common, "--to", root],
    ]


@pytest.mark.parametrize("root", ROOTS)
def test_a_root_with_a_secret_is_refused_without_showing_it(sqlite_url: str, root: str) -> None:
    for argv in _commands(sqlite_url, root):
        result = musicstore_cli(*argv)
        shown = result.stdout + result.stderr
        assert result.returncode == 1, (argv, shown)
        assert SECRET not in shown and SECRET.lower() not in shown.lower(), (argv, shown)
        assert "Traceback" not in shown and result.stderr.startswith("musicstore: error: "), (argv, shown)
        assert len(result.stderr.strip().splitlines()) == 1, (argv, shown)


@pytest.mark.parametrize("root", [r for r in ROOTS if r.lower().startswith("file:")])
def test_the_api_refuses_such_a_root_without_showing_it(store: Store, root: str) -> None:
    for call in (
        lambda: reconcile(store, root),
        lambda: cleanup(store, root, statuses=["failed"], dry_run=False),
        lambda: disk_usage(store, root),
    ):
        with pytest.raises(InvalidInput) as caught:
            call()
        assert SECRET not in str(caught.value)


def test_a_file_url_root_is_the_folder_it_names(store: Store, sqlite_url: str, tmp_path: Path) -> None:
    root = tmp_path / "audio"
    root.mkdir()
    (root / "notes.txt").write_text("kept")
    url = root.as_uri()
    assert reconcile(store, url).consistent and reconcile(store, url).unknown_files == 1
    assert disk_usage(store, url).other.files == 1
    assert cleanup(store, url, statuses=["failed"]).rows_deleted == 0
    result = musicstore_cli("reconcile", "--database", sqlite_url, "--output-root", url, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["root"] == str(root)


@pytest.mark.parametrize("key", ["x//{name}", "../{name}", "/abs/{name}", "./{name}"])
def test_cleanup_of_a_bucket_skips_a_row_whose_key_leads_outside(
    store: Store, db_url: str, musicstore_s3_url: str, key: str
) -> None:
    """A row edited by hand to a key no object under the prefix can have: cleanup keeps row and objects
    (skipped, counted outside the root) and goes on with the others, as on a local root."""
    from musicstore.filestore import open_filestore
    from musicstore.recording import export_generation
    from tests.test_containment import set_file_path
    from tests.test_record import OPTIONS, claimed, music

    files = open_filestore(musicstore_s3_url)
    try:
        bad = export_generation(store, claimed(store), music(), root=files, options=OPTIONS)
        good = export_generation(store, claimed(store), music(), root=files, options=OPTIONS)
        assert bad.key is not None
        set_file_path(db_url, bad.generation.id, key.format(name=bad.key.rpartition("/")[2]))
        report = cleanup(store, files, statuses=["completed"], dry_run=False)
        assert [d.id for d in report.deleted] == [good.generation.id]
        assert [s.id for s in report.skipped] == [bad.generation.id] and report.outside_root_count == 1
        assert "outside the output root" in report.skipped[0].reason
        assert store.get_generation(bad.generation.id) is not None
        assert bad.key in {o.key for o in files.list()}
    finally:
        files.close()
