"""No part of a database password appears in any output, error, ``--json`` document or log record.

Passwords are built of marker pieces (``zq…k``, which appear nowhere by chance) joined by the characters URL
parsers split on. Each is given in every form a user may use (userinfo, raw or percent-encoded; a
``password=`` parameter; ``$PGPASSWORD``; ``$MUSICSTORE_DATABASE_URL``; a libpq ``key=value`` string;
mistyped schemes) to every command and library entry point, against an unreachable server and a real one (a
role whose password is checked: right and wrong). Every stdout, stderr, exception (with its whole chain),
log record and warning is scanned for every marker and its percent-encoded form.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore import AsyncStore, DatabaseError, MusicstoreError, Store, cli, masking, migrate
from musicstore.maintenance.backup import backup, restore
from musicstore.maintenance.transfer import copy_store
from musicstore.urls import URL_ENV, resolve, without_password

ROLE = "musicstore_secret"
SEPARATORS = ["@", ":", "/", "%", "?", "#", "&", "=", " ", "@:", "%40", "'", "\\", "+", ";", "[", "!"]
FORMS = [
    "userinfo",
    "userinfo-encoded",
    "query",
    "query-encoded",
    "pgpassword",
    "env-url",
    "conninfo",
    "postgres://",
    "postgressql://",
    "mysql://",
    "sqlite:/",
    "postgresql:/",
]
TARGETS = ["unreachable", "wrong", "right"]
SHOW_ID = "01a2285d-0000-7000-8000-000000000000"

markers = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789éß漢"),
    min_size=4,
    max_size=6,
).map(lambda text: f"zq{text}k")


@dataclass(frozen=True)
class Secret:
    """A password and the marker pieces it is made of (no piece may show anywhere)."""

    password: str
    pieces: tuple[str, ...]


@st.composite
def secrets(draw: st.DrawFn) -> Secret:
    pieces = draw(st.lists(markers, min_size=1, max_size=3, unique=True))
    joints = draw(st.lists(st.sampled_from(["", *SEPARATORS]), min_size=len(pieces), max_size=len(pieces)))
    lead = draw(st.sampled_from(["", *SEPARATORS]))
    return Secret(lead + "".join(p + j for p, j in zip(pieces, joints, strict=True)), tuple(pieces))


NASTY = Secret(
    "zqAb漢1k@zqCd2k:zqEf3k/zqGh4k%zqIj5k?zqKl6k#zqMn7k",
    ("zqAb漢1k", "zqCd2k", "zqEf3k", "zqGh4k", "zqIj5k", "zqKl6k", "zqMn7k"),
)
"""A password with each character URL parsers split on."""


def leaks(secret: Secret, *texts: str) -> list[str]:
    """The marker pieces (raw or percent-encoded) found in any of ``texts``."""
    found = []
    for piece in secret.pieces:
        for form in {piece, quote(piece, safe="")}:
            if len(form) >= 3 and any(form in text for text in texts):
                found.append(form)
    return found


def exception_texts(exc: BaseException | None) -> list[str]:
    """Everything an exception shows: the formatted traceback with its chain, and each one's str/repr/args."""
    if exc is None:
        return []
    texts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args), *getattr(current, "__notes__", [])]
        pending += [current.__cause__, current.__context__]
    return texts


# --- the real server: a role whose password is checked ----------------------------------------------


@dataclass
class Server:
    host: str
    port: int
    database: str
    checked: bool
    """Whether the server checks ROLE's password (pg_hba.conf could be edited); trust otherwise."""
    admin_url: str

    def set_password(self, password: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(ROLE), sql.Literal(password))
            )


def _hba_lines() -> str:
    return "".join(
        f"host all {ROLE} {address} scram-sha-256\n" for address in ("127.0.0.1/32", "::1/128", "samehost")
    )


@pytest.fixture(scope="module")
def server(musicstore_postgres_server: Any) -> Iterator[Server]:
    import psycopg

    pg = musicstore_postgres_server
    name = f"musicstore_secrets_{os.getpid()}"
    pg.admin(f"CREATE DATABASE {name} TEMPLATE {pg.template}")
    admin_url = pg.url(name)
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    hba: Path | None = None
    original = ""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")
        conn.execute(f"CREATE ROLE {ROLE} LOGIN SUPERUSER PASSWORD 'not-the-secret'")
        hba_file = Path(str(conn.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
        try:  # a server of our own (or a local one we may edit): make it check the role's password
            original = hba_file.read_text()
            if original:
                hba_file.write_text(_hba_lines() + original)
                hba = hba_file
                conn.execute("SELECT pg_reload_conf()")
        except OSError:
            hba = None
    checked = hba is not None
    if checked:  # wait until the server reads the new rules: a wrong password is refused
        probe = f"postgresql://{ROLE}:wrong@{info['host']}:{info['port']}/{name}"
        for _ in range(100):
            try:
                psycopg.connect(probe, connect_timeout=2).close()
            except psycopg.OperationalError:
                break
            time.sleep(0.05)
    try:
        yield Server(str(info["host"]), int(str(info["port"])), name, checked, admin_url)
    finally:
        if hba is not None:
            hba.write_text(original)
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
            conn.execute(f"DROP ROLE {ROLE}")


# --- URLs ---------------------------------------------------------------------------------------------


def url_for(
    form: str, secret: Secret, target: str, server: Server | None
) -> tuple[str | None, dict[str, str]]:
    """The URL (None: from the environment) and environment that give ``secret`` in ``form`` to ``target``."""
    if target == "unreachable" or server is None:
        host, port, database = "127.0.0.1", 1, "musicstore"
    else:
        host, port, database = server.host, server.port, server.database
    password, encoded = secret.password, quote(secret.password, safe="")
    where = f"{host}:{port}/{database}"
    match form:
        case "userinfo":
            return f"postgresql://{ROLE}:{password}@{where}", {}
        case "userinfo-encoded":
            return f"postgresql://{ROLE}:{encoded}@{where}", {}
        case "query":
            return f"postgresql://{ROLE}@{where}?password={password}", {}
        case "query-encoded":
            return f"postgresql://{ROLE}@{where}?sslmode=disable&password={encoded}", {}
        case "pgpassword":
            return f"postgresql://{ROLE}@{where}", {"PGPASSWORD": password}
        case "env-url":
            return None, {URL_ENV: f"postgresql://{ROLE}:{encoded}@{where}"}
        case "conninfo":
            quoted = password.replace("\\", "\\\\").replace("'", "\\'")
            return f"host={host} port={port} user={ROLE} password='{quoted}' dbname={database}", {}
        case "postgres://" | "postgressql://" | "mysql://":
            return f"{form}{ROLE}:{password}@{where}", {}
        case "sqlite:/" | "postgresql:/":
            return f"{form}{ROLE}:{password}@{where}", {}
    raise AssertionError(form)


# --- the CLI, in process ------------------------------------------------------------------------------


def _subcommands() -> dict[str, Any]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return dict(action.choices or {})


def command_lines(tmp: Path, backup_file: Path) -> dict[str, list[list[str]]]:
    """Every command of the CLI, each with and without ``--json`` where it has it."""
    root = tmp / "audio"
    root.mkdir(exist_ok=True)
    lines: dict[str, list[str]] = {
        "migrate": ["migrate"],
        "stats": ["stats", "--storage", "--disk", "-o", str(root)],
        "list": ["list"],
        "show": ["show", SHOW_ID],
        "render": ["render", SHOW_ID, "--format", "mp3", "-o", str(root)],
        "prompts": ["prompts"],
        "reconcile": ["reconcile", "-o", str(root)],
        "cleanup": ["cleanup", "--status", "failed", "-o", str(root)],
        "copy-files": ["copy-files", "--to", str(tmp / "elsewhere")],
        "backup": ["backup", str(tmp / "copy.db"), "--overwrite"],
        "restore": ["restore", str(backup_file)],
        "requeue-expired": ["requeue-expired"],
        "demo": ["demo", "--count", "1", "-o", str(root)],
        "cancel": ["cancel", SHOW_ID],
        "replay": ["replay", "--all"],
        "queue-position": ["queue-position", SHOW_ID],
        "set-owner-limit": ["set-owner-limit", "user-42", "1"],
        "serve": ["serve", "--check", "-o", str(root)],
    }
    every: dict[str, list[list[str]]] = {}
    for name, sub in _subcommands().items():
        line = lines.get(name, [name])
        every[name] = [line, [*line, "--json"]] if "--json" in sub._option_string_actions else [line]
    return every


def _takes_database(name: str) -> bool:
    return "--database" in _subcommands()[name]._option_string_actions


@dataclass
class Seen:
    """What one call showed: its outputs, the exception it raised, its log records and warnings."""

    texts: list[str]
    code: int = 0
    """The CLI's exit code (-1: an exception left ``main``, which would print a traceback)."""
    stderr: str = ""

    def assert_told(self) -> None:
        """Done (show: no such id; reconcile: found a difference), or one line on stderr; no traceback."""
        assert self.code != -1, self.texts
        assert self.code in {0, 3, 4} or self.stderr.count("\n") == 1, self.stderr

    def assert_hidden(self, secret: Secret, what: object) -> None:
        found = leaks(secret, *self.texts)
        assert not found, f"{what}: {found} shown in {[t for t in self.texts if any(f in t for f in found)]}"


@contextlib.contextmanager
def watching(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """Collect every log record (any logger, DEBUG up) and warning made inside the block."""
    texts: list[str] = []
    caplog.clear()
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="psycopg"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield texts
            finally:
                texts += [str(w.message) for w in caught]
        for record in caplog.records:
            texts += [record.getMessage(), str(record.args)]
            if record.exc_info and record.exc_info[1] is not None:
                texts += exception_texts(record.exc_info[1])


def run_command(
    argv: list[str],
    url: str | None,
    *,
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> Seen:
    """``musicstore ARGV`` in this process (a store's pool gives up after 0.3 s instead of 5)."""
    capsys.readouterr()
    raised: BaseException | None = None
    with monkeypatch.context() as patch, watching(caplog) as texts:
        patch.delenv(URL_ENV, raising=False)
        patch.delenv("PGPASSWORD", raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        patch.setattr(cli.common, "Store", functools.partial(Store, busy_timeout=0.3))
        if url is not None:
            if _takes_database(argv[0]):
                argv = [*argv, "--database", url]
            else:
                patch.setenv(URL_ENV, url)
        try:
            code = cli.main(argv)
        except BaseException as exc:  # a traceback: shown too
            raised, code = exc, -1
    out, err = capsys.readouterr()
    return Seen([out, err, *texts, *exception_texts(raised)], code, err)


# --- the library ----------------------------------------------------------------------------------------


async def _async_open(url: str | None) -> str:
    store = await AsyncStore.open(url, busy_timeout=0.3)
    try:
        return repr(store) + repr(await store.get_database_stats())
    finally:
        await store.close()


def library_calls(
    url: str | None, tmp: Path, sqlite_url: str, backup_file: Path
) -> dict[str, Callable[[], str]]:
    """Each public entry point that takes a database URL; each returns what it would show."""

    def store() -> str:
        with Store(url, busy_timeout=0.3) as opened:
            return repr(opened) + repr(opened.url) + repr(opened.get_database_stats())

    def copy() -> str:
        with Store(sqlite_url) as source, Store(url, busy_timeout=0.3) as target:
            return str(copy_store(source, target))

    return {
        "Store": store,
        "migrate": lambda: repr(migrate(url)),
        "AsyncStore": lambda: asyncio.run(_async_open(url)),
        "backup": lambda: repr(backup(url, tmp / "lib-copy.db", overwrite=True)),
        "restore": lambda: repr(restore(backup_file, url)),
        "copy_store": copy,
        "resolve": lambda: repr(resolve(url)) + without_password(resolve(url).url),
    }


def run_library(call: Callable[[], str], env: dict[str, str], caplog: pytest.LogCaptureFixture) -> Seen:
    raised: BaseException | None = None
    shown = ""
    with watching(caplog) as texts:
        saved = {name: os.environ.get(name) for name in (URL_ENV, "PGPASSWORD", *env)}
        os.environ.pop(URL_ENV, None)
        os.environ.pop("PGPASSWORD", None)
        os.environ.update(env)
        try:
            shown = call()
        except BaseException as exc:
            raised = exc
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    return Seen([shown, *texts, *exception_texts(raised)])


@pytest.fixture
def backup_file(sqlite_url: str, tmp_path: Path) -> Path:
    path = tmp_path / "backup.db"
    backup(sqlite_url, path)
    return path


def _prepare(target: str, secret: Secret, server: Server) -> None:
    server.set_password(secret.password if target == "right" else "not-the-secret")


# --- the tests ------------------------------------------------------------------------------------------


def test_the_scan_finds_a_piece_shown() -> None:
    """The scan itself: a message quoting one piece (as a driver that split the URL elsewhere does) is
    found."""
    assert leaks(NASTY, 'failed to resolve host "zqCd2k:zqEf3k"') == ["zqCd2k", "zqEf3k"]
    assert leaks(NASTY, quote("zqAb漢1k", safe="")) == [quote("zqAb漢1k", safe="")]
    assert leaks(NASTY, "postgresql://user:***@host/db") == []


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_command_hides_the_password(
    name: str,
    *,
    server: Server,
    sqlite_url: str,
    backup_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each command, with and without --json, on each target, with a password that holds @ : / % ? #."""
    for target, form in (("unreachable", "userinfo"), ("wrong", "query"), ("right", "userinfo-encoded")):
        _prepare(target, NASTY, server)
        url, env = url_for(form, NASTY, target, server)
        for argv in command_lines(tmp_path, backup_file)[name]:
            seen = run_command(argv, url, env=env, monkeypatch=monkeypatch, capsys=capsys, caplog=caplog)
            seen.assert_hidden(NASTY, (target, argv))
            seen.assert_told()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    secret=secrets(),
    form=st.sampled_from(FORMS),
    target=st.sampled_from(TARGETS),
    command=st.sampled_from(sorted(_subcommands())),
    json_output=st.booleans(),
    entry=st.sampled_from(["Store", "migrate", "AsyncStore", "backup", "restore", "copy_store", "resolve"]),
)
def test_no_password_in_any_output(
    *,
    secret: Secret,
    form: str,
    target: str,
    command: str,
    json_output: bool,
    entry: str,
    server: Server,
    sqlite_url: str,
    backup_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _prepare(target, secret, server)
    url, env = url_for(form, secret, target, server)
    lines = command_lines(tmp_path, backup_file)[command]
    argv = lines[-1] if json_output else lines[0]
    run_command(argv, url, env=env, monkeypatch=monkeypatch, capsys=capsys, caplog=caplog).assert_hidden(
        secret, (form, target, argv)
    )
    call = library_calls(url, tmp_path, sqlite_url, backup_file)[entry]
    run_library(call, env, caplog).assert_hidden(secret, (form, target, entry))


def test_a_wrong_password_is_refused_and_not_shown(
    server: Server, caplog: pytest.LogCaptureFixture, sqlite_url: str, backup_file: Path, tmp_path: Path
) -> None:
    """The server really checks the role's password (else the "wrong" target above proves less)."""
    assert server.checked or os.environ.get("CI") != "true", "pg_hba.conf could not be edited on CI"
    _prepare("wrong", NASTY, server)
    url, _ = url_for("userinfo-encoded", NASTY, "wrong", server)
    with pytest.raises(DatabaseError) as raised, Store(url, busy_timeout=0.3):
        pass
    if server.checked:
        assert "password authentication failed" in str(raised.value)
    Seen(exception_texts(raised.value)).assert_hidden(NASTY, "wrong password")
    _prepare("right", NASTY, server)
    with Store(url, busy_timeout=5) as store:  # the same URL with the right password works
        assert store.get_database_stats().total >= 0
        assert "zq" not in repr(store)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:zqAbc1k@zqDef2k@127.0.0.1:1/db",  # unescaped @: libpq and urllib split it differently
        "postgresql://u:zqAbc1k/zqDef2k@127.0.0.1:1/db",
        "postgresql://u:zqAbc1k%zqDef2k@127.0.0.1:1/db",  # libpq quoted an invalid percent token
        "postgresql://u@127.0.0.1:1/db?password=zqAbc1k&sslpassword=zqDef2k",
        "postgresql://u@127.0.0.1:1/db?password=zqAbc1k&zqDef2k",  # libpq quoted the text after a raw &
        "postgressql://u:zqAbc1k:zqDef2k@127.0.0.1:1/db",
        "host=127.0.0.1 port=1 password='zqAbc1k zqDef2k'",
    ],
)
def test_the_command_never_echoes_a_password(url: str, tmp_path: Path) -> None:
    """The real entry point (``python -m musicstore``), the URL given on the command line or in the
    environment: each of these once showed the password (the raw URL echoed, or a driver's message)."""
    secret = Secret("", ("zqAbc1k", "zqDef2k"))
    clean = {k: v for k, v in os.environ.items() if k not in (URL_ENV, "PGPASSWORD")}
    for args, env in (
        (["migrate", "--json", "--database", url], clean),
        (["list", "--json"], {**clean, URL_ENV: url}),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "musicstore", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith("musicstore: error: ") and result.stderr.count("\n") == 1
        Seen([result.stdout, result.stderr]).assert_hidden(secret, args)


def test_pgpassword_is_masked_in_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    from musicstore.masking import redact

    monkeypatch.setenv("PGPASSWORD", "zqEnv@Secret1k")
    assert redact('could not connect as "zqEnv@Secret1k" or zqEnv%40Secret1k') == (
        'could not connect as "***" or ***'
    )
    assert "zqEnv" not in str(MusicstoreError("the driver said Secret1k"))


def test_a_password_with_an_at_sign_reaches_libpq_and_yoyo_alike() -> None:
    """An unescaped @ or : in the password is percent-encoded once, so both parsers read the same password."""
    import psycopg
    from yoyo.connections import parse_uri

    from musicstore.masking import redact, register

    target = resolve("postgresql://user:p@ss:w@db-host:5433/musicstore?sslmode=disable")
    assert target.url == "postgresql://user:p%40ss%3Aw@db-host:5433/musicstore?sslmode=disable"
    assert psycopg.conninfo.conninfo_to_dict(target.url)["password"] == "p@ss:w"
    assert parse_uri(target.yoyo_url).password == "p@ss:w"
    assert "p@ss" not in repr(target) and "ss:w" not in repr(target)
    with pytest.raises(MusicstoreError, match="percent-encode") as raised:
        resolve("postgresql://user:zqAbc1k/zqDef2k@db-host/musicstore")
    assert "zqAbc1k" not in str(raised.value) and "zqDef2k" not in str(raised.value)
    register("postgresql://user:zqAbc1k%2Fx@h/db")  # encoded, decoded and the pieces are known from now on
    assert redact("zqAbc1k/x zqAbc1k%2Fx zqAbc1k") == "*** *** ***"


# --- what a registered secret may mask --------------------------------------------------------------

HEX_AND_SPLITTERS = "0123456789abcdefABCDEF@:/%?#&= é"


def _shares_a_piece(text: str, *forms: str) -> bool:
    """Whether ``text`` holds a run of ``MIN_SECRET`` characters found in one of ``forms``."""
    size = masking.MIN_SECRET
    return any(text[i : i + size] in form for i in range(len(text) - size + 1) for form in forms)


@contextlib.contextmanager
def _registered_only_here() -> Iterator[None]:
    """Only the secrets registered inside the block count (those earlier tests of the session registered, e.g.
    a generated password "0000", would mask runs this module's properties expect kept); restored after."""
    with masking._lock:
        before = set(masking._secrets)
        masking._secrets.clear()
    try:
        yield
    finally:
        with masking._lock:
            masking._secrets.clear()
            masking._secrets.update(before)


@st.composite
def _ids_near(draw: st.DrawFn, secret: str) -> str:
    """A lowercase or uppercase hex string, often built of the hex runs of the secret's encoded forms (where
    a fragment of a percent-escape such as "2540" would show)."""
    encoded = quote(secret, safe="")
    runs = [run for form in (encoded, quote(encoded, safe="")) for run in re.findall(r"[0-9A-Fa-f]+", form)]
    hexes = st.text(alphabet="0123456789abcdef", max_size=8)
    parts = draw(st.lists(st.one_of(hexes, st.sampled_from(runs)) if runs else hexes, max_size=6))
    return "".join(parts)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), secret=st.text(alphabet=HEX_AND_SPLITTERS, min_size=1, max_size=12))
def test_a_secret_masks_no_part_of_an_id_that_is_not_part_of_it(data: st.DataObject, secret: str) -> None:
    """Only runs of the secret itself (raw or percent-decoded) are masked in free text: a fragment of one of
    its percent-encoded forms (e.g. "2540" of "%2540", "405c" of "a%405c") never masks part of a generation
    id or any other hex string, whether the secret is registered as is or read from a URL's userinfo."""
    text = data.draw(st.one_of(_ids_near(secret), st.uuids().map(str)))
    with _registered_only_here():
        masking.register_secret(secret)
        masking.register(f"postgresql://user:{quote(secret, safe='')}@db-host/musicstore")
        if not _shares_a_piece(text, secret, unquote(secret)):
            assert masking.redact(text) == text


def test_an_escaped_at_sign_masks_no_hex_run() -> None:
    """The CI case: a password ending in "%40" (encoded "%2540") masked "2540" inside an id."""
    with _registered_only_here():
        masking.register_secret("zqAbc1k%40")
        masking.register("postgresql://user:zqAbc1k%2540@h/db")
        generation_id = "01a2285d-2540-7000-8000-0000a405c000"
        assert (
            masking.redact(f"generation {generation_id} not found") == f"generation {generation_id} not found"
        )
        assert masking.redact("zqAbc1k%40 zqAbc1k%2540 zqAbc1k@ zqAbc1k") == "*** *** *** ***"


def test_a_password_with_an_unescaped_question_mark_is_masked_whole() -> None:
    """libpq ends the userinfo at the first @ and starts a query at the next ?, then quotes what follows it:
    a piece of the password after a ? must be known too (hypothesis found '?zqXdPkJzk@zqNBU0k?zqSa4szdk?')."""
    with _registered_only_here():
        masking.register(
            "postgresql://musicstore_secret:?zqXdPkJzk@zqNBU0k?zqSa4szdk?@127.0.0.1:1/musicstore"
        )
        said = 'missing key/value separator "=" in URI query parameter: "zqSa4szdk?@127.0.0.1:1/musicstore"'
        assert "zq" not in masking.redact(said)
