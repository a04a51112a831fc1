"""Packaging: what the wheel declares and carries, and ``yoyo apply`` for a user who has only the wheel."""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import sqlite3
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from collections.abc import Iterator
from email.message import Message
from email.parser import Parser
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from packaging.requirements import Requirement

from musicstore import Store
from musicstore.cli import main
from musicstore.migrate import migrations_path, shipped_migrations

ROOT = Path(__file__).resolve().parent.parent
WHEEL_USER_COMMAND = re.compile(r"^ *(yoyo apply .*\$\(musicstore migrations-path\).*)$", re.MULTILINE)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this tree, built as a user's ``pip`` builds it (an isolated build environment)."""
    dist = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    (built,) = dist.glob("musicstore-*.whl")
    return built


def _metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(archive.read(name).decode())


def _requirements(wheel: Path) -> list[Requirement]:
    return [Requirement(line) for line in _metadata(wheel).get_all("Requires-Dist", [])]


@pytest.mark.slow
def test_the_wheel_carries_the_mit_license(wheel: Path) -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        assert archive.read(name).decode() == license_text
    metadata = _metadata(wheel)
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]


def _imported_distributions() -> dict[str, str]:
    """Every third-party distribution that musicstore's code or its migrations import, by import name."""
    modules: set[str] = set()
    for path in [*(ROOT / "musicstore").rglob("*.py"), *(ROOT / "migrations").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    installed = packages_distributions()
    return {
        module: installed[module][0]
        for module in modules - set(sys.stdlib_module_names) - {"musicstore"}
        if module in installed
    }


@pytest.mark.slow
def test_every_imported_distribution_is_declared(wheel: Path) -> None:
    """A module musicstore imports is its own dependency or an extra's, never had through another package."""
    imported = _imported_distributions()
    assert {"sqlparse", "yoyo-migrations", "psycopg", "pyloudnorm"} <= set(imported.values())
    declared = {re.sub(r"[-_.]+", "-", r.name).lower() for r in _requirements(wheel)}
    missing = {name for name in imported.values() if re.sub(r"[-_.]+", "-", name).lower() not in declared}
    assert not missing, f"imported but not declared: {sorted(missing)}"


@pytest.mark.slow
def test_requirements_follow_psycopg_advice_and_bound_pyloudnorm(wheel: Path) -> None:
    requirements = _requirements(wheel)

    def extra(name: str) -> dict[str, Requirement]:
        return {r.name: r for r in requirements if r.marker and r.marker.evaluate({"extra": name})}

    # a library depends on psycopg (pure, the system's libpq); the binary build is an application's choice
    assert extra("postgres")["psycopg"].extras == set()
    assert {"psycopg", "psycopg-pool"} <= set(extra("postgres"))
    assert "binary" in extra("postgres-binary")["psycopg"].extras
    assert {"psycopg-pool"} <= set(extra("postgres-binary"))
    # pyloudnorm's iirfilter is an internal module: bounded to the minor releases known to have it
    assert "from pyloudnorm.iirfilter import" in (ROOT / "musicstore/audio/loudness.py").read_text()
    (pyloudnorm,) = [r for r in requirements if r.name == "pyloudnorm"]
    assert any(spec.operator == "<" for spec in pyloudnorm.specifier)
    from importlib.metadata import version

    assert pyloudnorm.specifier.contains(version("pyloudnorm"))
    # development tools are a dependency group of the source tree, not a published extra
    assert "dev" not in _metadata(wheel).get_all("Provides-Extra", [])
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    assert {"pytest", "mypy", "ruff", "tox"} <= {Requirement(r).name for r in groups["dev"]}


def test_readme_quickstart_uses_the_binary_extra_and_the_dev_group() -> None:
    """The README's test command (the one .ci/run runs) installs what tox and CI use."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^python3 -m venv \.venv && .* -m pytest$", readme, re.MULTILINE)
    assert match is not None
    command = match.group(0)
    assert "--group dev" in command and "postgres-binary" in command and "torch==2.13.0" in command
    tox = (ROOT / "tox.ini").read_text()
    assert "dependency_groups = dev" in tox and "postgres-binary" in tox


# --- yoyo apply for a user of the wheel ----------------------------------------------------------------


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


SECRET = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=4, max_size=24)


@given(
    password=SECRET,
    where=st.sampled_from(["userinfo", "password", "sslpassword", "oauth_client_secret", "PassWord"]),
)
def test_yoyo_url_spells_postgresql_for_yoyo_and_never_prints_the_password(password: str, where: str) -> None:
    base = "postgresql://musician@db.example:5433/music"
    url = (
        f"postgresql://musician:{quote(password, safe='')}@db.example:5433/music?sslmode=require"
        if where == "userinfo"
        else f"{base}?{where}={quote(password, safe='')}&sslmode=require"
    )
    code, out, err = _cli("yoyo-url", "--database", url)
    expected = "postgresql+psycopg://musician@db.example:5433/music?sslmode=require"
    assume(password not in expected and quote(password, safe="") not in expected)
    assert (code, out) == (0, expected + "\n")
    assert "PGPASSWORD" in err
    for shown in (password, quote(password, safe=""), quote(password)):
        assert shown not in out + err


def test_yoyo_url_makes_sqlite_paths_absolute_and_leaves_urls_without_password_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MUSICSTORE_DATABASE_URL", "sqlite:///data/generations.db")
    assert _cli("yoyo-url") == (0, f"sqlite:///{tmp_path}/data/generations.db\n", "")
    plain = "postgres://musician@db.example/music"
    assert _cli("yoyo-url", "-d", plain) == (0, "postgresql+psycopg://musician@db.example/music\n", "")


@pytest.mark.parametrize("name", ["take #1.db", "a%23b.db", "50% off.db", "über.db"])
def test_a_sqlite_file_whose_name_yoyo_would_decode_is_migrated_where_the_store_opens_it(
    tmp_path: Path, name: str
) -> None:
    """yoyo decodes a URL's path and ends it at a ``#``: ``migrate`` and ``yoyo-url`` hand it the store's file
    percent-encoded, so the file migrated is the one the store opens (``take `` and ``a#b.db`` were
    migrated instead, and the store refused its own, unmigrated file). The URL is ``sqlite_url``'s: a URL's
    path is percent-decoded (``a%23b.db`` in a URL is ``a#b.db``, for the store as for yoyo)."""
    from yoyo import get_backend, read_migrations

    from musicstore.urls import sqlite_url

    url = sqlite_url(tmp_path / name)
    with Store(url, migrate=True) as store:
        assert store.count_generations() == 0
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [name]
    code, out, _ = _cli("yoyo-url", "-d", url)
    backend = get_backend(out.strip())
    try:
        assert code == 0 and not backend.to_apply(read_migrations(str(migrations_path())))
    finally:
        backend.connection.close()


def test_migrations_path_is_the_folder_of_the_shipped_migrations() -> None:
    code, out, err = _cli("migrations-path")
    assert (code, err) == (0, "")
    folder = Path(out.strip())
    assert folder == migrations_path() and folder.is_absolute()
    assert {p.stem for p in folder.glob("*.py")} | {p.stem for p in folder.glob("*.sql")} >= set(
        shipped_migrations()
    )


@pytest.fixture(scope="module")
def wheel_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the built wheel alone; the wheel's dependencies come from this test's venv.

    Installing them again would download torch-sized wheels: a ``.pth`` line puts this venv's site-packages
    after the new one's (its editable musicstore hook is not run, so ``import musicstore`` finds the wheel).
    yoyo's console script is written as pip writes it for an installed yoyo-migrations.
    """
    venv = tmp_path_factory.mktemp("wheel-user") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        check=True,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(site) / "musicstore_test_deps.pth").write_text("\n".join(sorted(ours)) + "\n")
    yoyo = venv / "bin" / "yoyo"
    yoyo.write_text(f"#!{python}\nimport sys\nfrom yoyo.scripts.main import main\nsys.exit(main())\n")
    yoyo.chmod(0o755)
    return venv


def _run_documented_command(venv: Path, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    (command,) = WHEEL_USER_COMMAND.findall((ROOT / "docs" / "migrations.md").read_text())
    assert WHEEL_USER_COMMAND.findall((ROOT / "README.md").read_text()) == [command]
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", MUSICSTORE_DATABASE_URL=url)
    where = subprocess.run(
        ["musicstore", "migrations-path"], cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the wheel's copy, not this source tree
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.slow
def test_a_wheel_user_migrates_sqlite_with_the_documented_yoyo_command(
    wheel_venv: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    result = _run_documented_command(wheel_venv, "sqlite:///generations.db", empty)
    assert result.returncode == 0, result.stdout + result.stderr
    database = empty / "generations.db"
    with contextlib.closing(sqlite3.connect(database)) as conn:
        applied = sorted(r[0] for r in conn.execute("SELECT migration_id FROM _yoyo_migration"))
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert applied == shipped_migrations()
    with Store(f"sqlite:///{database}") as store:  # opens only when every shipped migration is applied
        assert store.count_generations() == 0


@pytest.fixture
def empty_postgres_url(musicstore_postgres_server: Any) -> Iterator[str]:
    """A new, empty database (no migrations) on the test server."""
    name = f"musicstore_wheel_{os.getpid()}"
    musicstore_postgres_server.admin(f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}")
    yield musicstore_postgres_server.url(name)
    musicstore_postgres_server.admin(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.mark.slow
@pytest.mark.postgres
def test_a_wheel_user_migrates_postgresql_with_the_documented_yoyo_command(
    wheel_venv: Path, tmp_path: Path, empty_postgres_url: str
) -> None:
    assert urlsplit(empty_postgres_url).scheme == "postgresql"
    result = _run_documented_command(wheel_venv, empty_postgres_url, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    import psycopg

    with psycopg.connect(empty_postgres_url) as conn:
        applied = sorted(r[0] for r in conn.execute("SELECT migration_id FROM _yoyo_migration"))
    assert applied == shipped_migrations()
    with Store(empty_postgres_url) as store:
        assert store.count_generations() == 0


CHECKOUT_COMMAND = 'yoyo apply --database "$(musicstore yoyo-url)"'


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_yoyo_apply_in_a_checkout_migrates_the_environment_url_on_both_backends(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """docs/migrations.md's command for a source checkout, run from the repository root as documented."""
    assert f"```sh\n   {CHECKOUT_COMMAND}\n   ```" in (ROOT / "docs" / "migrations.md").read_text()
    url = (
        f"sqlite:///{tmp_path / 'checkout.db'}"
        if backend == "sqlite"
        else str(request.getfixturevalue("empty_postgres_url"))
    )
    bindir = Path(sys.executable).parent
    env = {**os.environ, "MUSICSTORE_DATABASE_URL": url, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-c", CHECKOUT_COMMAND], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with Store(url) as store:  # opens only when every shipped migration is applied
        assert store.count_generations() == 0
