"""The ``musicstore`` command through its real entry point (``python -m musicstore``) on real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from musicstore import Generation, Status, Store
from musicstore.audio import layout_path
from musicstore.cli import EXIT_INCONSISTENT, EXIT_NOT_FOUND, parse_duration, parse_size
from musicstore.migrate import shipped_migrations
from musicstore.testing import FakeClock
from musicstore.urls import URL_ENV

ROOT_ENV = "MUSICSTORE_OUTPUT_ROOT"


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in (URL_ENV, ROOT_ENV)}
    return subprocess.run(
        [sys.executable, "-m", "musicstore", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        cwd=cwd,
        timeout=120,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("musicstore: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert all(word in result.stderr for word in words), result.stderr


@dataclass
class World:
    """A store with files: 3 old completed generations, 1 recent completed, 1 pending, 1 expired claim."""

    url: str
    root: Path
    old: list[Generation]
    recent: Generation
    pending: Generation
    expired: Generation

    def args(self, *args: str) -> list[str]:
        return [*args, "--database", self.url]

    def store(self) -> Store:
        return Store(self.url)


@pytest.fixture
def world(sqlite_url: str, tmp_path: Path) -> World:
    root = tmp_path / "audio"
    root.mkdir()
    clock = FakeClock(datetime.now(UTC) - timedelta(days=60))
    with Store(sqlite_url, clock=clock) as store:

        def finished(prompt: str, model: str = "musicgen-small", size: int = 1000) -> Generation:
            clock.advance(1)
            store.create_generation(prompt, model_name=model, duration_seconds=30)
            claimed = store.claim_next("gpu-0")
            assert claimed is not None
            path = layout_path(root, claimed.id, "wav", when=claimed.created_at)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\0" * size)
            rel = path.relative_to(root).as_posix()
            return store.complete_generation(claimed.id, file_path=rel, file_size_bytes=size)

        old = [
            finished("lofi hip hop at 90 BPM"),
            finished("lofi hip hop at 90 BPM"),
            finished("ambient drone"),
        ]
        clock.now = datetime.now(UTC) - timedelta(hours=1)
        recent = finished("upbeat synthwave", model="musicgen-large", size=500)
        expired = store.create_generation("stuck job", model_name="musicgen-large", duration_seconds=10)
        claimed = store.claim_next("gpu-1", lease_seconds=60)  # the lease ran out 59 minutes ago
        assert claimed is not None and claimed.id == expired.id
        clock.advance(1)
        pending = store.create_generation("queued job", model_name="musicgen-small", duration_seconds=10)
    return World(sqlite_url, root, old, recent, pending, expired)


def test_help_names_the_environment_and_exit_codes() -> None:
    result = run("--help")
    assert result.returncode == 0
    for text in (URL_ENV, ROOT_ENV, "exit codes", "reconcile", "requeue-expired", "130"):
        assert text in result.stdout
    sub = run("cleanup", "--help")
    assert (
        sub.returncode == 0 and URL_ENV in sub.stdout and ROOT_ENV in sub.stdout and "--apply" in sub.stdout
    )


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["no-such-command"],
        ["list", "--limit", "0"],
        ["list", "--limit", "10001"],  # the help's "at most 10000": a usage error like 0, not exit 1
        ["prompts", "--limit", "10001"],
        ["list", "--status", "done"],
        ["cleanup", "--older-than", "3 fortnights"],
        ["cleanup", "--max-bytes", "lots"],
        ["cleanup"],  # no criterion
        ["show"],
    ],
)
def test_bad_arguments_exit_2_with_usage(args: list[str], tmp_path: Path) -> None:
    result = run(*args, "--database", f"sqlite:///{tmp_path}/x.db") if args else run()
    assert result.returncode == 2, result.stderr
    assert "usage: musicstore" in result.stderr and "Traceback" not in result.stderr and not result.stdout
    assert not (tmp_path / "x.db").exists()


def test_errors_are_one_line_exit_1(world: World, tmp_path: Path) -> None:
    missing = run("stats", "--database", f"sqlite:///{tmp_path}/missing.db")
    assert missing.returncode == 1 and not missing.stdout
    one_line_error(missing, "no database at", "musicstore migrate")
    assert not (tmp_path / "missing.db").exists()  # a typo does not leave an empty database behind
    one_line_error(run(*world.args("list", "--cursor", "not-a-cursor")), "cursor")
    one_line_error(run(*world.args("show", "not-an-id")), "UUID")
    one_line_error(
        run(*world.args("reconcile", "--output-root", str(tmp_path / "nowhere"))), "does not exist"
    )
    pg = run("backup", str(tmp_path / "b.db"), "--database", "postgresql://user@localhost/musicstore")
    assert pg.returncode == 1
    one_line_error(pg, "pg_dump")
    bad_url = run("stats", "--database", "mysql://localhost/x")
    assert bad_url.returncode == 1
    one_line_error(bad_url, "unsupported database URL")
    huge = world.args("cleanup", "--older-than", "1000000w", "--output-root", str(world.root))
    one_line_error(run(*huge), "older_than")


def test_migrate_and_stats_read_the_url_from_the_environment(tmp_path: Path) -> None:
    env = {URL_ENV: f"sqlite:///{tmp_path}/env.db"}
    first = run("migrate", env=env)
    applied = f"applied {len(shipped_migrations())} migration(s)"
    assert first.returncode == 0 and first.stdout.startswith(applied)
    again = run("migrate", "--json", env=env)
    assert again.returncode == 0 and json.loads(again.stdout)["applied"] == []
    stats = run("stats", "--json", env=env)
    assert stats.returncode == 0 and json.loads(stats.stdout)["total"] == 0
    default = run("migrate", cwd=tmp_path)  # no option, no variable: sqlite:///data/generations.db
    assert default.returncode == 0 and (tmp_path / "data" / "generations.db").exists()


def test_stats_table_and_json(world: World) -> None:
    table = run(*world.args("stats"))
    assert table.returncode == 0 and table.stderr == ""
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["status", "generations"]
    assert "completed             4" in table.stdout and "total                 6" in table.stdout
    assert "3,500 bytes" in table.stdout

    result = run(*world.args("stats", "--json", "--storage", "--disk"), env={ROOT_ENV: str(world.root)})
    figures = json.loads(result.stdout)
    with world.store() as store:
        stats = store.get_database_stats()
    assert figures["by_status"] == {s.value: n for s, n in stats.by_status.items()}
    assert figures["total"] == 6 and figures["total_file_bytes"] == 3500 == stats.total_file_bytes
    assert figures["storage"]["by_model"]["musicgen-large"] == {"generations": 2, "file_bytes": 500}
    assert sum(b["generations"] for b in figures["storage"]["by_day"].values()) == 6
    assert figures["disk"]["recorded"] == {"files": 4, "bytes": 3500}
    assert figures["disk"]["orphans"]["files"] == 0

    storage = run(*world.args("stats", "--storage", "--disk", "--output-root", str(world.root)))
    assert "by model (2):" in storage.stdout and "musicgen-large            2    500" in storage.stdout
    assert "recorded         4  3,500" in storage.stdout


def test_list_table_json_filters_and_cursor(world: World) -> None:
    with world.store() as store:
        everything = [g.id for g in store.list_generations(limit=100).items]
    assert len(everything) == 6

    table = run(*world.args("list"))
    assert table.returncode == 0
    header, rule, *rows = table.stdout.splitlines()
    assert header.split()[:3] == ["id", "status", "model"] and set(rule) == {"-", " "}
    assert [row.split()[0] for row in rows] == everything  # newest first, no "more" hint
    assert "queued job" in rows[0] and "pending" in rows[0]

    first = json.loads(run(*world.args("list", "--limit", "4", "--json")).stdout)
    assert [g["id"] for g in first["items"]] == everything[:4] and first["count"] == 4
    item = first["items"][0]
    assert item["status"] == "pending" and item["prompt"] == "queued job"
    assert datetime.fromisoformat(item["created_at"]) == world.pending.created_at
    second = json.loads(
        run(*world.args("list", "--limit", "4", "--cursor", first["next_cursor"], "--json")).stdout
    )
    assert [g["id"] for g in second["items"]] == everything[4:] and second["next_cursor"] is None

    paged = run(*world.args("list", "--limit", "2")).stdout.splitlines()
    cursor = json.loads(run(*world.args("list", "--limit", "2", "--json")).stdout)["next_cursor"]
    assert len(paged) == 2 + 2 + 2 and paged[-1].startswith(f"more: musicstore list --cursor {cursor} ")

    large = json.loads(
        run(*world.args("list", "--json", "--status", "completed", "--model", "musicgen-large")).stdout
    )
    assert [g["id"] for g in large["items"]] == [world.recent.id]
    assert run(*world.args("list", "--status", "failed")).stdout == "no generations\n"


def test_show_table_json_and_not_found(world: World) -> None:
    table = run(*world.args("show", world.recent.id))
    assert table.returncode == 0
    fields = dict(line.split(None, 1) for line in table.stdout.splitlines()[2:])
    assert set(fields) == {*Generation.__dataclass_fields__, "storage_url", "storage_key", "checksum"}
    assert fields["storage_key"] == world.recent.file_path  # where the file lives (migration 0006)
    assert (
        fields["status"] == "completed"
        and fields["file_size_bytes"] == "500"
        and fields["error_message"] == "-"
    )

    shown = json.loads(run(*world.args("show", world.recent.id, "--json")).stdout)
    assert shown["id"] == world.recent.id and shown["model_name"] == "musicgen-large"
    assert shown["file_path"] == world.recent.file_path and shown["metadata"] == {}
    assert datetime.fromisoformat(shown["completed_at"]) == world.recent.completed_at

    unknown = run(*world.args("show", str(uuid.uuid4())))
    assert unknown.returncode == EXIT_NOT_FOUND == 3 and not unknown.stdout
    one_line_error(unknown, "no generation with id")


def test_prompts_table_and_json(world: World) -> None:
    table = run(*world.args("prompts", "--limit", "2"))
    assert table.returncode == 0
    rows = table.stdout.splitlines()[2:]
    assert len(rows) == 2 and rows[0].split()[0] == "2" and rows[0].endswith("lofi hip hop at 90 BPM")
    prompts = json.loads(run(*world.args("prompts", "--json")).stdout)["prompts"]
    assert prompts[0]["text"] == "lofi hip hop at 90 BPM" and prompts[0]["used_count"] == 2
    assert len(prompts) == 5 and {"id", "text", "used_count", "first_used_at", "last_used_at"} == set(
        prompts[0]
    )


def test_reconcile_reports_exit_4_and_repairs(world: World, tmp_path: Path) -> None:
    root = ["--output-root", str(world.root)]
    clean = run(*world.args("reconcile", *root))
    assert clean.returncode == 0 and "consistent" in clean.stdout and clean.stderr == ""  # no bar: not a tty

    (world.root / str(world.old[0].file_path)).unlink()
    stray = world.root / "2026" / f"{uuid.uuid4()}.wav"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"\0" * 10)

    report = run(*world.args("reconcile", "--json"), env={ROOT_ENV: str(world.root)})
    assert report.returncode == EXIT_INCONSISTENT == 4 and report.stderr == ""
    found = json.loads(report.stdout)
    assert found["consistent"] is False and found["repair"] is False
    assert [o["path"] for o in found["orphans"]] == [stray.relative_to(world.root).as_posix()]
    assert [(d["id"], d["problem"]) for d in found["dangling"]] == [(world.old[0].id, "missing")]
    assert stray.exists()  # report only

    table = run(*world.args("reconcile", *root))
    assert (
        table.returncode == 4 and "orphan files (1):" in table.stdout and "dangling rows (1):" in table.stdout
    )
    assert "reconcile --repair" in table.stdout

    quarantine = tmp_path / "quarantine"
    repaired = run(*world.args("reconcile", *root, "--repair", "--quarantine", str(quarantine), "--json"))
    assert repaired.returncode == 4
    actions = json.loads(repaired.stdout)
    assert (
        actions["orphans"][0]["action"] == "quarantined"
        and actions["dangling"][0]["action"] == "marked_failed"
    )
    assert not stray.exists() and len(list(quarantine.rglob("*.wav"))) == 1
    assert run(*world.args("reconcile", *root)).returncode == 0


def test_cleanup_dry_run_changes_nothing_and_apply_deletes(world: World) -> None:
    root = ["--output-root", str(world.root)]
    files = sorted(world.root.rglob("*.wav"))
    plan = run(*world.args("cleanup", *root, "--older-than", "30d", "--json"))
    assert plan.returncode == 0 and plan.stderr == ""
    report = json.loads(plan.stdout)
    assert report["dry_run"] is True and report["rows_deleted"] == 3 and report["bytes_freed"] == 3000
    assert {d["id"] for d in report["deleted"]} == {g.id for g in world.old}
    assert {d["file_action"] for d in report["deleted"]} == {"would_delete"}
    assert sorted(world.root.rglob("*.wav")) == files
    with world.store() as store:
        assert store.count_generations() == 6

    table = run(*world.args("cleanup", *root, "--older-than", "30d"))
    assert table.stdout.startswith("dry run, nothing deleted") and "would free 3,000 bytes" in table.stdout
    assert table.stdout.count("would_delete") == 3

    done = run(*world.args("cleanup", *root, "--older-than", "30d", "--apply"))
    assert done.returncode == 0 and done.stdout.startswith("deleted:") and "freed 3,000 bytes" in done.stdout
    assert sorted(world.root.rglob("*.wav")) == [world.root / str(world.recent.file_path)]
    with world.store() as store:
        assert store.count_generations() == 3 and store.get_generation(world.old[0].id) is None

    budget = json.loads(run(*world.args("cleanup", *root, "--max-bytes", "0.1kB", "--yes", "--json")).stdout)
    assert budget["max_total_bytes"] == 100 and budget["budget_met"] is True and budget["rows_deleted"] == 1
    pending = json.loads(
        run(*world.args("cleanup", *root, "--status", "pending", "--status", "failed", "--json")).stdout
    )
    assert [d["id"] for d in pending["deleted"]] == [world.pending.id] and pending["statuses"] == [
        "pending",
        "failed",
    ]


def test_backup_and_restore(world: World, tmp_path: Path) -> None:
    dest = tmp_path / "backups" / "copy.db"
    made = run(*world.args("backup", str(dest), "--json"))
    assert made.returncode == 0 and made.stderr == ""
    report = json.loads(made.stdout)
    assert (
        report["integrity"] == "ok"
        and report["destination"] == str(dest)
        and report["bytes"] == dest.stat().st_size
    )
    again = run(*world.args("backup", str(dest)))
    assert again.returncode == 1
    one_line_error(again, "exists", "--overwrite")
    assert "backed up" in run(*world.args("backup", str(dest), "--overwrite")).stdout

    target = f"sqlite:///{tmp_path}/restored.db"
    restored = run("restore", str(dest), "--database", target)
    assert restored.returncode == 0 and restored.stdout.startswith("restored")
    assert json.loads(run("stats", "--json", "--database", target).stdout)["total"] == 6
    refused = run("restore", str(dest), "--database", target)
    assert refused.returncode == 1
    one_line_error(refused, "--overwrite")


def test_requeue_expired_table_and_json(world: World) -> None:
    with world.store() as store:
        second = store.create_generation("another stuck job", model_name="m", duration_seconds=5)
    # the first expired claim has had one attempt: with --max-attempts 1 it fails for good
    result = json.loads(run(*world.args("requeue-expired", "--max-attempts", "1", "--json")).stdout)
    assert result == {"requeued": [], "failed": [world.expired.id]}
    assert json.loads(run(*world.args("requeue-expired", "--json")).stdout) == {"requeued": [], "failed": []}
    with world.store() as store:
        store.claim_next("gpu-2", lease_seconds=0.001)  # world.pending, the oldest pending
        store.claim_next("gpu-2", lease_seconds=0.001)
        assert store.get_generation(second.id).status is Status.PROCESSING  # type: ignore[union-attr]
    table = run(*world.args("requeue-expired"))
    assert table.returncode == 0 and table.stdout.startswith("requeued 2, failed 0")
    assert second.id in table.stdout and world.pending.id in table.stdout


def test_demo_exports_audio_under_the_output_root_from_the_environment(tmp_path: Path) -> None:
    root = tmp_path / "out"
    result = run(
        "demo", "--count", "1", "--database", f"sqlite:///{tmp_path}/demo.db", env={ROOT_ENV: str(root)}
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    assert "LUFS out" in result.stdout and "completed             1" in result.stdout
    assert len(list(root.rglob("*.wav"))) == 1


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_progress_bar_only_on_a_terminal(world: World) -> None:
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "musicstore", *world.args("reconcile", "-o", str(world.root))],
            stdout=subprocess.PIPE,
            stderr=slave,
            timeout=60,
            check=False,
        )
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the other end is closed
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    assert proc.returncode == 0 and b"consistent" in proc.stdout
    assert b"\rreconcile 4 rows and files" in seen and seen.endswith(b"\r")  # drawn, then erased


def test_duration_and_size_arguments() -> None:
    assert parse_duration("30d") == timedelta(days=30) and parse_duration("1.5h") == timedelta(minutes=90)
    assert parse_duration("2w") == timedelta(weeks=2) and parse_duration(" 45s ") == timedelta(seconds=45)
    assert parse_size("5000") == 5000 and parse_size("50GB") == 50 * 10**9 and parse_size("2GiB") == 2 * 2**30
    assert parse_size("500mb") == 500 * 10**6 and parse_size("1.5k") == 1500 and parse_size("1KiB") == 1024
    for bad in ("30", "d", "-1d", "3x"):
        with pytest.raises(Exception, match="not a duration"):
            parse_duration(bad)
    for bad in ("lots", "1iB", "5 PB", "-5"):
        with pytest.raises(Exception, match="not a size"):
            parse_size(bad)


def test_unreachable_postgres_is_one_line_without_the_password() -> None:
    # psycopg's pool logged every failed attempt on stderr (13 lines around the error)
    url = "postgresql://musicstore:s3cret@127.0.0.1:1/musicstore"
    result = run("stats", "--database", url)
    assert result.returncode == 1 and not result.stdout
    one_line_error(result, "cannot connect")
    assert "s3cret" not in result.stderr


def test_backup_restore_and_migrate_never_print_the_postgres_password(
    postgres_url: str, tmp_path: Path
) -> None:
    unreachable = "postgresql://musicstore:s3cret@127.0.0.1:1/musicstore"
    for args in (["backup", str(tmp_path / "b.db")], ["restore", str(tmp_path / "b.db")]):
        result = run(*args, "--database", unreachable)
        assert result.returncode == 1
        one_line_error(result, "pg_dump", "musicstore:***@127.0.0.1")
        assert "s3cret" not in result.stderr
    with_password = postgres_url.replace("://musicstore@", "://musicstore:s3cret@")
    assert with_password != postgres_url
    migrated = run("migrate", "--json", "--database", with_password)
    assert migrated.returncode == 0, migrated.stderr
    assert "s3cret" not in migrated.stdout
    assert json.loads(migrated.stdout)["database"].startswith("postgresql://musicstore:***@")


def test_tables_escape_control_characters(world: World) -> None:
    with world.store() as store:
        odd = store.create_generation(
            "two\nlines \x1b]0;pwned\x07\x1b[2J", model_name="musicgen-small", duration_seconds=5
        )
        claimed = store.claim_next("gpu-9")
        assert claimed is not None and claimed.id == world.pending.id
        store.fail(claimed.id, "Traceback (most recent call last):\n  File x\nRuntimeError: \x1b[31mboom")
    for args in (["list"], ["prompts"], ["show", odd.id], ["show", world.pending.id]):
        result = run(*world.args(*args))
        assert result.returncode == 0, result.stderr
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout, args
    for gid in (odd.id, world.pending.id):  # one field a line, even for multi-line values
        lines = run(*world.args("show", gid)).stdout.splitlines()[2:]
        fields = [*Generation.__dataclass_fields__, "storage_url", "storage_key", "checksum"]
        assert [line.split()[0] for line in lines] == fields
    shown = run(*world.args("show", world.pending.id)).stdout
    assert "Traceback (most recent call last):\\n  File x\\nRuntimeError: \\x1b[31mboom" in shown
    assert json.loads(run(*world.args("show", odd.id, "--json")).stdout)["prompt"] == odd.prompt


def test_an_empty_database_or_output_root_is_a_usage_error(world: World, tmp_path: Path) -> None:
    # `-d "$UNSET"` used to fall back to $MUSICSTORE_DATABASE_URL or data/generations.db
    made = run("migrate", "--database", "", cwd=tmp_path)
    assert made.returncode == 2 and "--database" in made.stderr and not made.stdout
    assert not (tmp_path / "data").exists()
    restored = run("restore", "backup.db", "-d", " ", "--overwrite", env={URL_ENV: world.url})
    assert restored.returncode == 2 and "usage: musicstore" in restored.stderr
    cleaned = run(
        *world.args("cleanup", "--older-than", "1s", "--apply", "-o", ""), env={ROOT_ENV: str(world.root)}
    )
    assert cleaned.returncode == 2 and "--output-root" in cleaned.stderr
    with world.store() as store:
        assert store.count_generations() == 6
