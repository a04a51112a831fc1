"""Regressions found by the CLI/async/recording hunt: what ``musicstore`` prints against what the API holds,
``AsyncStore`` against ``Store``, and recording's failure paths."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from musicstore import InvalidInput, Status, Store
from musicstore.cli import main
from tests.conftest import new_job


def _out(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_tables_show_a_multi_line_prompt_as_one_unambiguous_row(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # short_text joined a prompt's lines with a space: "verse\nchorus" read as "verse chorus", another prompt
    prompts = ["verse\nchorus", "verse chorus", "verse\\nchorus", "tab\there"]
    with Store(sqlite_url) as store:
        for prompt in prompts:
            new_job(store, prompt)
    for command in ("list", "prompts"):
        lines = _out(capsys, command, "--database", sqlite_url).splitlines()
        assert len(lines) == 2 + len(prompts), lines  # header, rule, one line per row
        for shown in ("verse\\nchorus", "verse chorus", "verse\\\\nchorus", "tab\\there"):
            assert sum(line.rstrip().endswith(shown) for line in lines[2:]) == 1, (shown, lines)
    listed = json.loads(_out(capsys, "list", "--json", "--database", sqlite_url))
    assert sorted(item["prompt"] for item in listed["items"]) == sorted(prompts)  # verbatim


class _ClaimedMeanwhile(Store):
    """A store on which another worker claims the generation after whatever the command read first and
    before its cancel: the race between ``musicstore cancel`` and a worker's claim."""

    url_text = ""
    claimed = False

    def _claim_once(self) -> None:
        if not _ClaimedMeanwhile.claimed:
            _ClaimedMeanwhile.claimed = True
            with Store(self.url_text) as other:
                assert other.claim_next("gpu-7") is not None

    def get_generation(self, generation_id: str) -> Any:  # a read before the cancel, outside it
        found = super().get_generation(generation_id)
        self._claim_once()
        return found

    def transaction(self, *, write: bool = True) -> Any:  # the cancel's own transaction begins after it
        self._claim_once()
        return super().transaction(write=write)


@pytest.fixture
def racing_store(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from musicstore.cli import common

    _ClaimedMeanwhile.url_text, _ClaimedMeanwhile.claimed = db_url, False
    monkeypatch.setattr(common, "Store", _ClaimedMeanwhile)
    yield db_url


@pytest.mark.parametrize("as_json", [False, True])
def test_cancel_reports_what_the_cancel_changed_not_a_read_before_it(
    racing_store: str, as_json: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    # cmd_cancel read the row, then cancelled: a worker claiming in between was reported as "was pending"
    with Store(racing_store) as store:
        job = new_job(store)
    argv = ["cancel", job.id, "--database", racing_store] + (["--json"] if as_json else [])
    out = _out(capsys, *argv)
    assert _ClaimedMeanwhile.claimed
    if as_json:
        shown = {"id": job.id, "status": "cancelled", "was": "processing", "worker_id": "gpu-7"}
        assert json.loads(out) == shown
    else:
        assert out.startswith(f"cancelled {job.id} (was processing by worker gpu-7:"), out
    with Store(racing_store) as store:
        row = store.get_generation(job.id)
        assert row is not None and row.status is Status.CANCELLED and row.worker_id == "gpu-7"


def test_export_refuses_a_store_it_cannot_record_in_before_any_work(sqlite_url: str, tmp_path: Path) -> None:
    # an AsyncStore (or None) was found out only after the export: bare TypeError/AttributeError
    from musicstore.aio import AsyncStore
    from musicstore.audio import synthesize_music
    from musicstore.recording import export_batch_generations, export_generation

    with Store(sqlite_url) as store:
        new_job(store, channels=2)
        claimed = store.claim_next("gpu-0")
        assert claimed is not None
        audio = synthesize_music(0.5, claimed.sample_rate, channels=2)
        for wrong in (AsyncStore(sqlite_url), None, sqlite_url):
            with pytest.raises(InvalidInput, match="store must be a musicstore Store"):
                export_generation(wrong, claimed, audio, root=tmp_path)  # type: ignore[arg-type]
            with pytest.raises(InvalidInput, match="store must be a musicstore Store"):
                export_batch_generations(wrong, [claimed], audio[None], root=tmp_path)  # type: ignore[arg-type]
        assert not any(tmp_path.rglob("*.wav"))
        row = store.get_generation(claimed.id)
        assert row is not None and row.status is Status.PROCESSING and row.error_message is None


def test_opening_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    # Store(url) made the folders and an empty database file, then refused it for its schema
    from musicstore import MigrationError
    from musicstore.aio import AsyncStore

    for path in (tmp_path / "typo.db", tmp_path / "new" / "folder" / "x.db"):
        url = f"sqlite:///{path}"
        with pytest.raises(MigrationError, match=r"no database at .*migrate"):
            Store(url)

        async def opening(url: str = url) -> None:
            with pytest.raises(MigrationError, match=r"no database at .*migrate"):
                await AsyncStore.open(url)

        asyncio.run(opening())
        assert list(tmp_path.iterdir()) == []
    with Store(f"sqlite:///{tmp_path / 'made.db'}", migrate=True) as made:
        assert made.count_generations() == 0


def test_render_of_an_unknown_id_exits_3_as_documented(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # render exited 3 (NotFound) for an unknown id, but --help and docs/cli.md named only show, cancel, replay
    from musicstore.cli import EPILOG, EXIT_NOT_FOUND

    unknown = "01a20180-5e48-7dc6-afbf-cdf54fb09fcb"
    assert (
        main(["render", unknown, "--database", sqlite_url, "--output-root", str(tmp_path)]) == EXIT_NOT_FOUND
    )
    assert capsys.readouterr().err == f"musicstore: error: no generation with id {unknown}\n"
    documented = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
    assert "| 3 | `show`, `render`, `cancel`, `replay`" in documented.read_text(encoding="utf-8")
    assert "3    show, render, cancel, replay" in EPILOG


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_a_stdout_that_is_not_utf8_gets_escapes_not_a_traceback(sqlite_url: str, encoding: str) -> None:
    # print() raised UnicodeEncodeError (a traceback, exit 1) for a prompt the terminal cannot show
    import os
    import subprocess
    import sys

    prompt = "日本語 🎵 café"
    with Store(sqlite_url) as store:
        new_job(store, prompt)
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    for args in (["list"], ["prompts"], ["list", "--json"], ["prompts", "--json"]):
        result = subprocess.run(
            [sys.executable, "-m", "musicstore", *args, "--database", sqlite_url],
            capture_output=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0 and not result.stderr, (args, result.stderr)
        out = result.stdout.decode(encoding)
        if "--json" in args:
            found = json.loads(out)
            texts = [g["prompt"] for g in found["items"]] if "items" in found else found["prompts"]
            assert [t["text"] if isinstance(t, dict) else t for t in texts] == [prompt]
        else:
            assert "\\u65e5\\u672c\\u8a9e \\U0001f3b5" in out, out


def test_an_output_root_that_is_a_file_fails_the_job_without_a_false_cleanup_note(
    sqlite_url: str, tmp_path: Path
) -> None:
    # the error carried "and removing <root>/.../.<id>.<hex>.wav failed: Not a directory" for a file that
    # could never have been written
    from musicstore import StorageError
    from musicstore.audio import synthesize_music
    from musicstore.recording import export_generation

    root = tmp_path / "not-a-folder"
    root.write_text("a file")
    with Store(sqlite_url) as store:
        new_job(store, channels=2)
        claimed = store.claim_next("gpu-0")
        assert claimed is not None
        audio = synthesize_music(0.5, claimed.sample_rate, channels=2)
        with pytest.raises(StorageError) as raised:
            export_generation(store, claimed, audio, root=root)
        notes = raised.value.__notes__
        assert not any("removing" in note for note in notes), notes
        assert notes == [f"generation {claimed.id} is now failed (on_error='fail')"]
        row = store.get_generation(claimed.id)
        assert row is not None and row.status is Status.FAILED
    assert root.read_text() == "a file"


def test_an_error_line_escapes_control_characters(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # an error naming a path sent its terminal escape sequences to stderr as they were
    odd = tmp_path / "a\x1b[31mred\x07"
    assert main(["reconcile", "--database", sqlite_url, "--output-root", str(odd)]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and err.count("\n") == 1, repr(err)
    assert err.startswith("musicstore: error: output root ") and "a\\x1b[31mred\\x07" in err


def test_metadata_depth_is_as_documented(sqlite_url: str) -> None:
    # docs/usage.md said "nested at most 64 levels (the object itself is level 1)"; 64 objects deep is refused
    from musicstore import validate

    def nested(levels: int) -> dict[str, Any]:
        value: dict[str, Any] = {}
        for _ in range(levels - 1):
            value = {"k": value}
        return value

    with Store(sqlite_url) as store:
        kept = new_job(store, metadata=nested(validate.MAX_METADATA_DEPTH - 1))
        assert kept.metadata == nested(validate.MAX_METADATA_DEPTH - 1)
        with pytest.raises(InvalidInput, match="nested deeper"):
            new_job(store, metadata=nested(validate.MAX_METADATA_DEPTH))
    documented = (Path(__file__).resolve().parent.parent / "docs" / "usage.md").read_text(encoding="utf-8")
    assert "nested at most 63 deep, the object itself counting as one" in documented


def test_backup_onto_a_folder_is_refused_before_any_work(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # "DEST exists; pass --overwrite to replace it", and with --overwrite the backup was made, then failed
    folder = tmp_path / "backups"
    folder.mkdir()
    (folder / "keep.txt").write_text("kept")
    for extra in ([], ["--overwrite"]):
        assert main(["backup", str(folder), "--database", sqlite_url, *extra]) == 1
        assert (
            capsys.readouterr().err
            == f"musicstore: error: {folder} is a folder; give the path of a database file (in it, say)\n"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backups", "musicstore.db"]
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


def test_queue_json_counts_processing_as_the_table_does(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # the table said "pending 1, processing 2", the JSON had no processing total (only per owner key)
    with Store(db_url) as store:
        for owner in ("u1", None, None):
            new_job(store, owner_key=owner)
        assert store.claim_next("gpu-0") is not None and store.claim_next("gpu-1") is not None
    table = _out(capsys, "queue", "--database", db_url).splitlines()[0]
    assert table.startswith("pending 1, processing 2, ")
    shown = json.loads(_out(capsys, "queue", "--json", "--database", db_url))
    assert (shown["pending"], shown["processing"]) == (1, 2)
    assert shown["processing"] == sum(r["running"] for r in shown["running"])


def test_show_aligns_every_value_left_when_metadata_makes_the_column_wide(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # a number was right-aligned to the column's width, set by the metadata's JSON: sample_rate, channels and
    # the other figures stood hundreds of columns to the right of their field's name
    with Store(sqlite_url) as store:
        generation = new_job(store, "p", metadata={"notes": "x" * 300})
    lines = _out(capsys, "show", generation.id, "--database", sqlite_url).splitlines()
    start = lines[0].index("value")
    values = {line[:start].strip(): line[start:] for line in lines[2:]}
    for field, shown in [("sample_rate", "32000"), ("channels", "2"), ("attempts", "0"), ("priority", "0")]:
        assert values[field] == shown, (field, values[field][:40])
    from musicstore.cli.table import table

    assert table([("-",), ("2",), ("10",)], ["limit"])[2:] == ["-", "    2", "   10"]  # figures stay right


def test_an_empty_quarantine_folder_is_a_usage_error_not_the_working_directory(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # --quarantine "$UNSET" was Path(""): reconcile --repair moved the orphans into the working directory
    monkeypatch.chdir(tmp_path)
    orphan = tmp_path / "audio" / "2026" / "orphan.wav"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x")
    argv = ["reconcile", "-d", sqlite_url, "-o", "audio", "--repair", "--quarantine", ""]
    assert main(argv) == 2
    assert "--quarantine: must not be empty" in capsys.readouterr().err
    assert orphan.exists() and not (tmp_path / "2026").exists()


_CLOSE_WHILE_OPENING = """
import asyncio, sys
from musicstore.aio import AsyncStore

async def main() -> None:
    store = AsyncStore(sys.argv[1])
    counting = asyncio.ensure_future(store.count_generations())
    await asyncio.sleep(0)  # its connection is opening
    await store.close()
    print(await counting)

asyncio.run(main())
"""


def test_an_async_sqlite_connection_opened_while_the_store_closes_is_closed(sqlite_url: str) -> None:
    # it went to the idle list after close(): never closed, its aiosqlite thread kept the process from exiting
    done = subprocess.run(
        [sys.executable, "-c", _CLOSE_WHILE_OPENING, sqlite_url],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"


def test_an_operation_waiting_for_a_pooled_connection_when_the_store_closes_is_told_it_is_closed(
    postgres_url: str,
) -> None:
    # it raised DatabaseError naming psycopg's pool ("the pool 'pool-3' is closed"), as if the database failed
    from musicstore.aio import AsyncStore

    async def main() -> None:
        store = await AsyncStore.open(postgres_url, pool_size=1)
        held, release = asyncio.Event(), asyncio.Event()

        async def hold() -> int:
            async with store.transaction() as tx:
                held.set()
                await asyncio.wait_for(release.wait(), 60)  # until after close(): no stall frees it sooner
                return await tx.count_generations()

        holding = asyncio.ensure_future(hold())
        await held.wait()
        waiting = asyncio.ensure_future(store.count_generations())  # the pool's one connection is lent
        await asyncio.sleep(0.05)
        await store.close()
        release.set()
        assert await holding == 0  # begun before close(): it finishes
        with pytest.raises(InvalidInput, match="the store is closed"):
            await waiting

    asyncio.run(main())


def test_a_new_postgres_listener_whose_listen_fails_is_closed(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a new listener's LISTEN that raised (or was cancelled: wait_for under asyncio.timeout) left its
    # connection open, dropped without close (ResourceWarning; a server session until the collector ran)
    import psycopg

    from musicstore import DatabaseError
    from musicstore.aio import AsyncStore
    from musicstore.waiting import hub

    made: list[Any] = []
    connect, aconnect = psycopg.connect, psycopg.AsyncConnection.connect

    def connecting(*args: Any, **kwargs: Any) -> Any:
        made.append(connect(*args, **kwargs))
        return made[-1]

    async def aconnecting(*args: Any, **kwargs: Any) -> Any:
        made.append(await aconnect(*args, **kwargs))
        return made[-1]

    with Store(postgres_url) as store:
        job = new_job(store)
        monkeypatch.setattr(psycopg, "connect", connecting)
        monkeypatch.setattr(psycopg.AsyncConnection, "connect", aconnecting)
        monkeypatch.setattr(hub, "_listen_sql", lambda: "LISTEN")  # a syntax error
        with pytest.raises(DatabaseError):
            store.wait_for(job.id, timeout=1)

    async def main() -> None:
        async with AsyncStore.open(postgres_url) as astore:
            with pytest.raises(DatabaseError):
                await astore.wait_for(job.id, timeout=1)

    asyncio.run(main())
    assert made and all(conn.closed for conn in made)  # the listeners and the pools' connections


def test_a_streamed_read_cancelled_while_a_chunk_is_read_raises_cancelled_error(tmp_path: Path) -> None:
    # the read's finally closed the file's generator while its thread was still in it (a slow S3 chunk):
    # ValueError('generator already executing') replaced the CancelledError, the file left open
    import threading

    from musicstore.filestore import AsyncFileStore, open_filestore

    files = open_filestore(str(tmp_path))
    reading, go, closed = threading.Event(), threading.Event(), threading.Event()

    def chunks(*args: Any, **kwargs: Any) -> Iterator[bytes]:
        try:
            yield b"first"
            reading.set()
            go.wait(30)  # the second chunk is slow
            yield b"second"
        finally:
            closed.set()

    files.get = chunks  # type: ignore[method-assign]

    async def main() -> None:
        stream = await AsyncFileStore(files).get("slow.wav")

        async def read() -> list[bytes]:
            return [chunk async for chunk in stream]

        task = asyncio.ensure_future(read())
        await asyncio.to_thread(reading.wait, 30)
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)  # before the fix: done by now, with ValueError
        go.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert closed.is_set()

    asyncio.run(main())
