"""Issue 10's property 9 beyond the store: every public callable outside ``Store``/``AsyncStore`` (the audio
functions, the file stores, maintenance, the worker loops, delivery, rendering, the dashboard's factory,
metrics, URLs, migrations) refuses a wrong argument with a ``MusicstoreError`` (``InvalidInput`` mostly) and
changes nothing: no row, no file, no temp file. A bare TypeError, ValueError, AttributeError, OverflowError,
UnicodeEncodeError, RecursionError or OSError escaping is a failure.

tests/test_input_properties.py fuzzes the store's operations (and ``export_generation``, ``ExportOptions``);
this file the rest: hypothesis picks a callable from the catalogue below, one of its parameters (the
catalogue names every parameter of each signature, or says why one is not fuzzed) and a hostile value, the
others valid; then a targeted test per bug fixed.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore import InvalidInput, MusicstoreError, Store, Worker, migrate
from musicstore.errors import shown
from musicstore.testing import FakeClock

# --- hostile values -----------------------------------------------------------------------------------------


class BadStr:
    def __str__(self) -> str:
        raise RuntimeError("__str__ failed")

    def __repr__(self) -> str:
        return "BadStr()"


class BadFspath:
    """An os.PathLike whose ``__fspath__`` raises."""

    def __fspath__(self) -> str:
        raise RuntimeError("__fspath__ failed")


class BytesPath:
    """An os.PathLike that gives bytes."""

    def __fspath__(self) -> bytes:
        return b"/tmp/x"


class BadIndex:
    def __index__(self) -> int:
        raise RuntimeError("__index__ failed")


class BadFloat:
    def __float__(self) -> float:
        raise RuntimeError("__float__ failed")


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


# each refused wherever it goes: a repr that recurses (a 3,000-deep list), an int whose str() raises
# (over 4,300 digits), objects whose conversions raise
_NASTY_VALUES = [
    _deep(3_000),
    10**5_000,
    -(10**5_000),
    BadStr(),
    BadFspath(),
    BadIndex(),
    BadFloat(),
    object(),
    1j,
]


def _nasty(index: int) -> Any:
    return _NASTY_VALUES[index]


_NASTY = st.integers(0, len(_NASTY_VALUES) - 1).map(_nasty)  # sampled_from and a bound method repr them
_OTHERS = st.sampled_from([b"bytes", bytearray(b"x"), [1], ("a",), {"a": 1}, {1, 2}, Decimal("nan")])
_SURROGATE = st.sampled_from(["\ud800", "a\udfffb"])
_NUL = st.sampled_from(["a\x00b", "\x00"])


def not_str(*, none_ok: bool = False) -> st.SearchStrategy[Any]:
    values = st.booleans() | st.integers() | st.floats() | _NASTY | _OTHERS
    return values if none_ok else values | st.none()


def bad_text(*, none_ok: bool = False, blank_ok: bool = True) -> st.SearchStrategy[Any]:
    values = not_str(none_ok=none_ok) | _SURROGATE | _NUL
    return values if blank_ok else values | st.sampled_from(["", " \t"])


def bad_path(*, none_ok: bool = False) -> st.SearchStrategy[Any]:
    """Not a str path, or one no OS takes: NUL, a lone surrogate, a name over 255 bytes, a path over 4,095."""
    paths = st.sampled_from([BadFspath(), BytesPath(), b"/tmp/x", "x" * 256, "é" * 128, "a/" * 2_100 + "b"])
    return not_str(none_ok=none_ok) | _SURROGATE | _NUL | paths


def bad_flag() -> st.SearchStrategy[Any]:
    return st.none() | st.integers() | st.floats() | st.text(max_size=3) | _NASTY | _OTHERS


def bad_int(low: int, high: int | None = None, *, none_ok: bool = False) -> st.SearchStrategy[Any]:
    nasty = _NASTY if high is not None else _NASTY.filter(lambda v: not (isinstance(v, int) and v > 0))
    values = (
        st.booleans() | st.floats() | st.text(max_size=3) | nasty | _OTHERS | st.integers(max_value=low - 1)
    )
    values |= st.sampled_from([Fraction(1, 2), Decimal("1")])
    if high is not None:
        values |= st.integers(min_value=high + 1) | st.just(10**400)
    return values if none_ok else values | st.none()


def bad_number(
    low: float, high: float | None = None, *, none_ok: bool = False, low_ok: bool = True
) -> st.SearchStrategy[Any]:
    """Not a real number (bool, str, NaN, an object...) or outside [low, high]."""
    values = st.booleans() | st.text(max_size=3) | _NASTY | _OTHERS | st.sampled_from([math.nan])
    values |= st.floats(max_value=low, exclude_max=low_ok) | st.integers(max_value=math.ceil(low) - 1)
    if high is not None:
        values |= st.floats(min_value=high, exclude_min=True) | st.sampled_from([math.inf, 10**400])
    return values if none_ok else values | st.none()


def bad_callable() -> st.SearchStrategy[Any]:
    """Not a callable (None is one's absence where it is optional)."""
    return (
        st.booleans()
        | st.integers()
        | st.text(max_size=3)
        | _OTHERS
        | st.just(1j)
        | st.builds(_deep, st.just(3_000))
    )


def bad_object() -> st.SearchStrategy[Any]:
    """A value where an object of a given class (options, a spec, a store...) goes."""
    return st.booleans() | st.integers() | st.text(max_size=3) | _NASTY | _OTHERS


# --- the environment the calls run in: one folder, one SQLite store, a clip, a finished generation ----------

_ID = "01a20180-5e48-7dc6-afbf-cdf54fb09fcb"
RATE = 16_000


@dataclass
class Env:
    folder: Path
    url: str
    store: Store
    root: Path
    clip: Any
    master: Path
    generation_id: str
    backup_file: Path
    extra: dict[str, Any] = field(default_factory=dict)


def _clip() -> Any:
    from musicstore.audio import synthesize_music

    return synthesize_music(1.0, RATE, seed=1)


def _spec() -> Any:
    from musicstore.audio import RenditionSpec

    return RenditionSpec("mp3")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    from musicstore.maintenance.backup import backup
    from musicstore.recording import export_generation

    folder = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{folder}/db.sqlite"
    migrate(url)
    root = folder / "root"
    root.mkdir()
    clip = _clip()
    with Store(url, clock=FakeClock()) as store:
        store.create_generation("p", model_name="m", duration_seconds=1.0, sample_rate=RATE)
        job = store.claim_next("w")
        assert job is not None
        recorded = export_generation(store, job, clip, root=root, worker_id="w")
        store.create_generation("still pending", model_name="m", duration_seconds=1.0)
        backup(url, folder / "copy.db")
        migrate(f"sqlite:///{folder}/target.db")
        with Store(f"sqlite:///{folder}/target.db") as target:
            made = Env(folder, url, store, root, clip, recorded.result.path, job.id, folder / "copy.db")
            made.extra["target"] = target
            yield made


def files_under(folder: Path) -> set[tuple[str, int]]:
    """Every file (and link) under ``folder`` with its size: temp files included."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in [*filenames, *dirnames]:
            path = Path(dirpath, name)
            found.add((str(path.relative_to(folder)), 0 if path.is_dir() else path.lstat().st_size))
    return found


def snapshot(env: Env) -> tuple[Any, ...]:
    return (
        env.store.list_generations(limit=100).items,
        env.store.list_renditions(env.generation_id),
        files_under(env.folder),
    )


# --- the catalogue ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    call: Callable[..., Any]
    valid: Callable[[Env], dict[str, Any]]
    hostile: dict[str, st.SearchStrategy[Any]]
    fixed: frozenset[str] = frozenset()
    """Parameters not fuzzed: the thing the call acts on (the audio, the store), given valid always."""


def _audio(**more: Any) -> Callable[[Env], dict[str, Any]]:
    return lambda env: {"audio": env.clip, "sample_rate": RATE, **more}


def _run_worker(worker_class: Any, async_: bool) -> Callable[..., Any]:
    """The worker made (its checks run at construction); an AsyncWorker needs an AsyncStore."""
    if not async_:
        made: Callable[..., Any] = worker_class
        return made

    def make(store: Any, **arguments: Any) -> Any:
        from musicstore import AsyncStore

        async def build() -> Any:
            opened = await AsyncStore.open(store.url.url)
            try:
                return worker_class(opened, **arguments)
            finally:
                await opened.close()

        return asyncio.run(build())

    return make


def _catalogue() -> dict[str, Case]:
    from musicstore import audio, filestore, rendering
    from musicstore.delivery import Delivery
    from musicstore.maintenance.backup import backup, integrity, restore
    from musicstore.maintenance.reconcile import reconcile
    from musicstore.maintenance.relocate import copy_files
    from musicstore.maintenance.retention import cleanup
    from musicstore.maintenance.transfer import check_rows, copy_store
    from musicstore.maintenance.usage import disk_usage
    from musicstore.metrics import read_metrics
    from musicstore.urls import sqlite_url
    from musicstore.web import create_app
    from musicstore.worker import AsyncWorker

    rate, scale = bad_int(8_000, 384_000), bad_number(0.0, None, none_ok=True, low_ok=False)
    s3 = {
        "bucket": "bucket",
        "endpoint_url": "http://127.0.0.1:9",
        "access_key_id": "a",
        "secret_access_key": "s",
    }
    return {
        "as_audio": Case(audio.as_audio, lambda e: {"audio": e.clip}, {"scale": scale}, frozenset({"audio"})),
        "check_sample_rate": Case(
            audio.check_sample_rate, lambda e: {"sample_rate": RATE}, {"sample_rate": rate}
        ),
        "analyze_audio": Case(
            audio.analyze_audio,
            _audio(),
            {"sample_rate": rate, "tempo": bad_flag(), "scale": scale, "subtype": bad_text(none_ok=True)},
            frozenset({"audio"}),
        ),
        "analyze_file": Case(
            audio.analyze_file, lambda e: {"path": e.master}, {"path": bad_path(), "tempo": bad_flag()}
        ),
        "click_track": Case(
            audio.click_track,
            lambda e: {"bpm": 120.0, "seconds": 0.5, "sample_rate": RATE},
            {
                "bpm": bad_number(0.0, 1_000.0, low_ok=False),
                "seconds": bad_number(0.0, 3_600.0, low_ok=False),
                "sample_rate": rate,
                "amplitude": bad_number(0.0, 100.0),
            },
        ),
        "synthesize_music": Case(
            audio.synthesize_music,
            lambda e: {"seconds": 0.5, "sample_rate": RATE},
            {
                "seconds": bad_number(0.0, 3_600.0, low_ok=False),
                "sample_rate": rate,
                "bpm": bad_number(0.0, 1_000.0, low_ok=False) | st.just(5e-324),
                "channels": bad_int(1, 8),
                "seed": bad_int(0, None),
                "drums": bad_number(0.0, 100.0),
            },
        ),
        "compute_peaks": Case(
            audio.compute_peaks,
            _audio(),
            {
                "sample_rate": rate,
                "samples_per_pixel": bad_int(1, 1 << 20),
                "bits": bad_int(8, 16).filter(lambda v: v != 8),
                "split_channels": bad_flag(),
                "block_frames": bad_int(1, None),
                "scale": scale,
            },
            frozenset({"audio"}),
        ),
        "file_peaks": Case(
            audio.file_peaks,
            lambda e: {"path": e.master},
            {
                "path": bad_path(),
                "samples_per_pixel": bad_int(1, 1 << 20),
                "bits": bad_int(8, 16).filter(lambda v: v != 8),
                "split_channels": bad_flag(),
                "block_frames": bad_int(1, None),
            },
        ),
        "estimate_tempo": Case(
            audio.estimate_tempo,
            _audio(),
            {"sample_rate": rate, "bpm_range": bad_object() | st.just((180.0, 60.0)), "scale": scale},
            frozenset({"audio"}),
        ),
        "integrated_loudness": Case(
            audio.integrated_loudness, _audio(), {"sample_rate": rate, "scale": scale}, frozenset({"audio"})
        ),
        "true_peak": Case(
            audio.true_peak, lambda e: {"audio": e.clip}, {"scale": scale}, frozenset({"audio"})
        ),
        "get_profile": Case(audio.get_profile, lambda e: {"profile": "streaming"}, {"profile": bad_text()}),
        "layout_path": Case(
            audio.layout_path,
            lambda e: {"root": e.root, "generation_id": _ID},
            {
                "root": bad_path(),
                "generation_id": bad_text() | st.just("../x"),
                "ext": bad_text() | st.just("mp3"),
                "when": bad_object() | st.just(datetime(2026, 1, 1)),
            },
        ),
        "LoudnessProfile": Case(
            audio.LoudnessProfile,
            lambda e: {"target_lufs": -14.0},
            {
                "target_lufs": bad_number(-70.0, 0.0, low_ok=False),
                "ceiling_dbtp": bad_number(-20.0, 0.0),
                "tolerance_lu": bad_number(0.0, 3.0, low_ok=False),
                "name": bad_text(blank_ok=False),
            },
        ),
        "RenditionSpec": Case(
            audio.RenditionSpec,
            lambda e: {"format": "mp3"},
            {
                "format": bad_text(),
                "bitrate_kbps": bad_int(1, 10_000, none_ok=True),
                "bitrate_mode": bad_text(),
                "quality": bad_object(),
                "subtype": bad_text(),
                "compression_level": bad_object(),
                "sample_rate": bad_int(8_000, 384_000, none_ok=True),
            },
        ),
        "export_audio": Case(
            audio.export_audio,
            _audio(path="out/x.wav"),
            {
                "sample_rate": rate,
                "path": bad_path(),
                "options": bad_object(),
                "scale": scale,
                "frames_seen": bad_callable(),
            },
            frozenset({"audio"}),
        ),
        "export_batch": Case(
            audio.export_batch,
            lambda e: {"audio": e.clip[None], "sample_rate": RATE, "paths": ["out/y.wav"]},
            {
                "sample_rate": rate,
                "paths": bad_object() | st.builds(lambda p: [p], bad_path()),
                "options": bad_object(),
                "scale": scale,
                "workers": bad_int(1, 1_024, none_ok=True),
            },
            frozenset({"audio"}),
        ),
        "render_file": Case(
            audio.render_file,
            lambda e: {"master": e.master, "path": "out/r.mp3", "spec": _spec()},
            {
                "master": bad_path(),
                "path": bad_path(),
                "spec": bad_object(),
                "profile": bad_text(),
                "provenance": bad_object(),
                "options": bad_object(),
                "sha256": bad_text(none_ok=True) | st.just("0" * 63),
            },
        ),
        "LocalFileStore": Case(
            filestore.LocalFileStore, lambda e: {"root": e.root}, {"root": bad_path(), "create": bad_flag()}
        ),
        "open_filestore": Case(
            filestore.open_filestore,
            lambda e: {"url": "s3://bucket/p/", **{k: v for k, v in s3.items() if k != "bucket"}},
            {
                "url": bad_path(),
                "endpoint_url": bad_text(none_ok=True),
                "region": bad_text(none_ok=True),
                "access_key_id": bad_text(none_ok=True),
                "secret_access_key": bad_text(none_ok=True),
                "session_token": bad_text(none_ok=True),
                "multipart_threshold": bad_int(5 << 20, 5 << 30, none_ok=True),
                "part_size": bad_int(5 << 20, 5 << 30, none_ok=True),
                "create": bad_flag(),
            },
        ),
        "S3FileStore": Case(
            filestore.S3FileStore,
            lambda e: dict(s3),
            {
                "bucket": bad_text() | st.sampled_from(["", "a/b", "k:secret"]),
                "prefix": not_str() | st.just("p"),
                "endpoint_url": bad_text(none_ok=True),
                "region": bad_text(none_ok=True),
                "access_key_id": bad_text(none_ok=True),
                "secret_access_key": bad_text(none_ok=True),
                "session_token": bad_text(none_ok=True),
                "multipart_threshold": bad_int(5 << 20, 5 << 30),
                "part_size": bad_int(5 << 20, 5 << 30),
                "max_attempts": bad_int(1, 100),
            },
        ),
        "local_path": Case(filestore.local_path, lambda e: {"url": e.root.as_uri()}, {"url": not_str()}),
        "store_url": Case(filestore.store_url, lambda e: {"url": e.root.as_uri()}, {"url": not_str()}),
        "check_key": Case(
            filestore.check_key,
            lambda e: {"key": "a/b.wav"},
            {"key": bad_text() | st.just("../x")},
            frozenset({"what"}),
        ),
        "reconcile": Case(
            reconcile,
            lambda e: {"store": e.store, "root": e.root},
            {
                "root": bad_path(),
                "repair": bad_flag(),
                "quarantine": bad_path(none_ok=True),
                "delete_orphans": bad_flag(),
                "stale_after_seconds": bad_number(0.0, None),
                "max_items": bad_int(0, None),
                "batch": bad_int(1, None),
                "progress": bad_callable(),
                "verify_checksums": bad_flag(),
            },
            frozenset({"store"}),
        ),
        "disk_usage": Case(
            disk_usage,
            lambda e: {"store": e.store, "root": e.root},
            {"root": bad_path(), "batch": bad_int(1, None), "progress": bad_callable()},
            frozenset({"store"}),
        ),
        "cleanup": Case(
            cleanup,
            lambda e: {"store": e.store, "root": e.root, "statuses": ["failed"]},
            {
                "root": bad_path(),
                "older_than": bad_object() | st.just(-1),
                "statuses": st.sampled_from([["processing"], [], ["nope"], [5]]) | bad_object(),
                "model_name": bad_text(none_ok=True, blank_ok=False),
                "max_total_bytes": bad_int(0, None, none_ok=True),
                "dry_run": bad_flag(),
                "batch": bad_int(1, None),
                "max_items": bad_int(0, None),
                "progress": bad_callable(),
            },
            frozenset({"store"}),
        ),
        "copy_files": Case(
            copy_files,
            lambda e: {"store": e.store, "to": e.folder / "copies", "dry_run": True},
            {
                "to": bad_path(),
                "source": bad_path(none_ok=True),
                "only_from": bad_path(none_ok=True),
                "dry_run": bad_flag(),
                "batch": bad_int(1, None),
                "max_items": bad_int(0, None),
                "progress": bad_callable(),
            },
            frozenset({"store"}),
        ),
        "copy_store": Case(
            copy_store,
            lambda e: {"source": e.store, "target": e.extra["target"]},
            {"batch": bad_int(1, None), "progress": bad_callable()},
            frozenset({"source", "target"}),
        ),
        "check_rows": Case(
            check_rows, lambda e: {"source": e.store}, {"batch": bad_int(1, None)}, frozenset({"source"})
        ),
        "backup": Case(
            backup,
            lambda e: {"url": e.url, "destination": e.folder / "b.db", "overwrite": True},
            {
                "destination": bad_path(),
                "pages": bad_int(-1, None).filter(lambda v: v != 0),
                "overwrite": bad_flag(),
                "progress": bad_callable(),
            },
            frozenset({"url"}),
        ),
        "restore": Case(
            restore,
            lambda e: {"backup_path": e.backup_file, "url": f"sqlite:///{e.folder}/r.db", "overwrite": True},
            {"backup_path": bad_path(), "overwrite": bad_flag(), "progress": bad_callable()},
            frozenset({"url"}),
        ),
        "integrity": Case(integrity, lambda e: {"path": e.backup_file}, {"path": bad_path()}),
        "Worker": Case(
            Worker,
            lambda e: {"store": e.store, "worker_id": "w", "handler": print},
            {
                "store": bad_object() | st.none(),
                "worker_id": bad_text(blank_ok=False),
                "handler": bad_callable() | st.none(),
                "lease_seconds": bad_number(0.0, 30 * 86_400.0, none_ok=True, low_ok=False),
                "max_attempts": bad_int(1, None),
                "claim_options": bad_object().filter(lambda v: not isinstance(v, dict)),
                "backoff": bad_object(),
            },
        ),
        "AsyncWorker": Case(
            _run_worker(AsyncWorker, True),
            lambda e: {"store": e.store, "worker_id": "w", "handler": print},
            {
                "worker_id": bad_text(blank_ok=False),
                "handler": bad_callable() | st.none(),
                "lease_seconds": bad_number(0.0, 30 * 86_400.0, none_ok=True, low_ok=False),
                "max_attempts": bad_int(1, None),
                "claim_options": bad_object().filter(lambda v: not isinstance(v, dict)),
                "backoff": bad_object(),
            },
            frozenset({"store"}),
        ),
        "Delivery": Case(
            Delivery,
            lambda e: {"store": e.store, "root": e.root},
            {
                "root": bad_path(none_ok=True),
                "files": bad_object().filter(lambda v: v not in ([], {})),
                "options": bad_object(),
            },
            frozenset({"store"}),
        ),
        "create_app": Case(
            create_app,
            lambda e: {"store_or_url": e.store, "root": e.root},
            {
                "root": bad_path(none_ok=True),
                "token": bad_text(blank_ok=False).filter(lambda v: v is not None),
                "options": bad_object(),
                "allowed_hosts": st.one_of(
                    st.text(max_size=8),  # one name, not a list of them
                    st.binary(max_size=8),
                    st.integers(),
                    st.lists(
                        st.sampled_from(["bad name", "*.com", "", "a/b", 7, None, "é.example"]), min_size=1
                    ),
                ),
            },
            frozenset({"store_or_url"}),
        ),
        "read_metrics": Case(
            read_metrics,
            lambda e: {"store": e.store},
            {
                "window": bad_number(0.0, 366 * 86_400.0, low_ok=False),
                "window_limit": bad_int(1, 1_000_000),
                "sample": bad_int(1, 100_000),
                "rows": bad_flag(),
            },
            frozenset({"store"}),
        ),
        "render_generation": Case(
            rendering.render_generation,
            lambda e: {"store": e.store, "generation_id": e.generation_id, "root": e.root},
            {
                "generation_id": bad_text(),
                "root": bad_path(none_ok=True),
                "formats": bad_object() | st.just(["nope"]),
                "profile": bad_text(),
                "bitrate_kbps": bad_int(1, 10_000, none_ok=True),
                "options": bad_object(),
                "files": bad_object().filter(lambda v: v not in ([], {})),
            },
            frozenset({"store"}),
        ),
        "render_peaks": Case(
            rendering.render_peaks,
            lambda e: {"store": e.store, "generation_id": e.generation_id, "root": e.root},
            {
                "generation_id": bad_text(),
                "root": bad_path(none_ok=True),
                "samples_per_pixel": bad_int(1, 1 << 20),
                "bits": bad_int(8, 16).filter(lambda v: v != 8),
                "split_channels": bad_flag(),
                "files": bad_object().filter(lambda v: v not in ([], {})),
            },
            frozenset({"store"}),
        ),
        "sqlite_url": Case(sqlite_url, lambda e: {"path": e.folder / "a.db"}, {"path": bad_path()}),
        "migrate": Case(
            migrate,
            lambda e: {"url": e.url},
            {"url": not_str(none_ok=True) | _NUL, "lock_timeout": bad_number(0.0, 86_400.0)},
        ),
    }


CASES = _catalogue()
HOSTILE = [(name, param) for name, case in CASES.items() for param in case.hostile]


def test_the_catalogue_names_every_parameter() -> None:
    """Each callable's every parameter is fuzzed, or named as fixed (what the call acts on)."""
    from musicstore.worker import AsyncWorker

    for name, case in CASES.items():
        target = AsyncWorker if name == "AsyncWorker" else case.call
        params = {
            p.name
            for p in inspect.signature(target).parameters.values()
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        }
        assert set(case.hostile) | case.fixed == params, name


_SETTINGS = settings(
    max_examples=1_000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_SETTINGS
@given(data=st.data())
def test_a_wrong_argument_raises_a_typed_error_and_changes_nothing(env: Env, data: st.DataObject) -> None:
    name, param = data.draw(st.sampled_from(HOSTILE), label="parameter")
    case = CASES[name]
    value = data.draw(case.hostile[param], label=f"{name}({param}=...)")
    before = snapshot(env)
    cwd = os.getcwd()
    os.chdir(env.folder)  # a relative path given lands in the scratch folder, where it is seen
    try:
        with pytest.raises(MusicstoreError):
            case.call(**{**case.valid(env), param: value})
    finally:
        os.chdir(cwd)
    assert snapshot(env) == before


def test_the_valid_arguments_are_accepted(env: Env) -> None:
    """Each catalogue entry's valid arguments pass (else every hostile case would pass vacuously)."""
    cwd = os.getcwd()
    os.chdir(env.folder)
    try:
        (env.folder / "out").mkdir(exist_ok=True)
        for name, case in CASES.items():
            try:
                case.call(**case.valid(env))
            except Exception as exc:
                raise AssertionError(f"{name}: {exc!r}") from exc
    finally:
        os.chdir(cwd)


# --- targeted: a path argument no OS takes ------------------------------------------------------------------

_BAD_PATHS = [BadFspath(), BytesPath(), "a\ud800b", "x" * 256, "a/" * 2_100 + "b"]


def _path_calls(env: Env) -> dict[str, Callable[[Any], Any]]:
    from musicstore import audio
    from musicstore.delivery import Delivery
    from musicstore.filestore import LocalFileStore, open_filestore
    from musicstore.maintenance.backup import backup, integrity, restore
    from musicstore.maintenance.reconcile import reconcile
    from musicstore.maintenance.relocate import copy_files
    from musicstore.maintenance.usage import disk_usage
    from musicstore.rendering import render_generation
    from musicstore.urls import sqlite_url

    return {
        "analyze_file": audio.analyze_file,
        "file_peaks": audio.file_peaks,
        "render_file": lambda p: audio.render_file(p, env.folder / "r.mp3", _spec()),
        "export_audio": lambda p: audio.export_audio(env.clip, RATE, p),
        "layout_path": lambda p: audio.layout_path(p, _ID),
        "LocalFileStore": LocalFileStore,
        "open_filestore": open_filestore,
        "reconcile": lambda p: reconcile(env.store, p),
        "reconcile quarantine": lambda p: reconcile(env.store, env.root, quarantine=p),
        "disk_usage": lambda p: disk_usage(env.store, p),
        "copy_files": lambda p: copy_files(env.store, p, dry_run=True),
        "backup": lambda p: backup(env.url, p),
        "restore": lambda p: restore(p, f"sqlite:///{env.folder}/restored.db"),
        "integrity": integrity,
        "sqlite_url": sqlite_url,
        "Delivery": lambda p: Delivery(env.store, root=p),
        "render_generation": lambda p: render_generation(env.store, env.generation_id, root=p),
    }


@pytest.mark.parametrize(
    "path", _BAD_PATHS, ids=["fspath raises", "fspath bytes", "surrogate", "long name", "long"]
)
def test_a_path_no_os_takes_is_invalid_input_and_nothing_is_written(env: Env, path: Any) -> None:
    """A path whose ``__fspath__`` raised or gave bytes, with a lone surrogate, a name over 255 bytes or over
    4,095 bytes in all: RuntimeError, TypeError, UnicodeEncodeError or OSError (ENAMETOOLONG, from
    ``Path.is_file``/``is_dir``) escaped each of these."""
    before = snapshot(env)
    cwd = os.getcwd()
    os.chdir(env.folder)
    try:
        for name, call in _path_calls(env).items():
            try:
                call(path)
            except InvalidInput:
                continue
            except Exception as exc:
                raise AssertionError(f"{name}: {type(exc).__name__}: {str(exc)[:100]}") from None
            raise AssertionError(f"{name}: accepted")
    finally:
        os.chdir(cwd)
    assert snapshot(env) == before


# --- targeted: the file stores' arguments -------------------------------------------------------------------

_S3 = {
    "bucket": "bucket",
    "endpoint_url": "http://127.0.0.1:9",
    "access_key_id": "a",
    "secret_access_key": "s",
}
SECRET = "hunter2-SECRET-value"


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("bucket", 5),
        ("bucket", None),
        ("bucket", "a/b"),
        ("prefix", []),  # taken for "" and spelt into the URL: s3://bucket/[]
        ("prefix", None),
        ("endpoint_url", 5),
        ("region", True),
        ("access_key_id", 5),
        ("secret_access_key", 5),
        ("secret_access_key", [SECRET]),
        ("secret_access_key", SECRET + "\ud800"),
        ("session_token", b"token"),
        ("multipart_threshold", 10**30),
        ("part_size", 6 << 30),
        ("max_attempts", None),
        ("max_attempts", "3"),
        ("max_attempts", 0),
        ("max_attempts", 1.5),
        ("max_attempts", 10**5_000),
    ],
    ids=lambda v: v if isinstance(v, str) else shown(v)[:30],
)
def test_s3_file_store_refuses_a_wrong_argument_without_echoing_a_secret(param: str, value: Any) -> None:
    """TypeError, AttributeError, UnicodeEncodeError or botocore's own error escaped; a list prefix was
    silently the URL's; a threshold of 10**30 was taken (a stream held in memory up to it)."""
    from musicstore.filestore import S3FileStore

    with pytest.raises(InvalidInput, match=param.split("_", maxsplit=1)[0]) as caught:
        S3FileStore(**{**_S3, param: value})
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("create", [None, 1, "no"])
def test_a_local_store_refuses_a_create_that_is_not_a_bool(tmp_path: Path, create: Any) -> None:
    from musicstore.filestore import LocalFileStore, open_filestore

    with pytest.raises(InvalidInput, match="create"):
        LocalFileStore(tmp_path / "new", create=create)
    with pytest.raises(InvalidInput, match="create"):
        open_filestore(str(tmp_path / "new"), create=create)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("url", [None, 5, b"file:///tmp", ["file:///tmp"]], ids=repr)
def test_local_path_refuses_a_url_that_is_not_a_str(url: Any) -> None:
    from musicstore.filestore import local_path

    with pytest.raises(InvalidInput, match="str"):
        local_path(url)


# --- targeted: the worker loops -----------------------------------------------------------------------------


@pytest.mark.parametrize("handler", [None, 5, "print"], ids=repr)
def test_a_worker_refuses_a_handler_that_is_not_callable_and_spends_no_attempt(
    tmp_path: Path, handler: Any
) -> None:
    """Worker(store, "w", None) was made; its run claimed each job and failed it with the TypeError of
    calling None, an attempt spent per job."""
    from musicstore import AsyncStore
    from musicstore.worker import AsyncWorker

    url = f"sqlite:///{tmp_path}/db.sqlite"
    migrate(url)
    with Store(url) as store:
        job = store.create_generation("p", model_name="m", duration_seconds=1.0)
        with pytest.raises(InvalidInput, match="handler"):
            Worker(store, "w", handler)

        async def make() -> None:
            opened = await AsyncStore.open(url)
            try:
                with pytest.raises(InvalidInput, match="handler"):
                    AsyncWorker(opened, "w", handler)
            finally:
                await opened.close()

        asyncio.run(make())
        after = store.get_generation(job.id)
        assert after is not None and after.status.value == "pending" and after.attempts == 0


@pytest.mark.parametrize("store", [None, 5, "sqlite:///x.db"], ids=repr)
def test_a_worker_refuses_what_is_no_store(store: Any) -> None:
    """Worker(None, ...) was made; its run raised AttributeError."""
    from musicstore.worker import AsyncWorker

    with pytest.raises(InvalidInput, match="Store"):
        Worker(store, "w", print)
    with pytest.raises(InvalidInput, match="Store"):
        AsyncWorker(store, "w", print)  # type: ignore[arg-type]


# --- targeted: the audio functions' arguments ---------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: __import__("musicstore.audio").audio.synthesize_music(0.5, RATE, bpm=5e-324),
        lambda: __import__("musicstore.audio").audio.synthesize_music(0.5, RATE, channels=10**400),
        lambda: __import__("musicstore.audio").audio.synthesize_music(0.5, RATE, drums=10**400),
        lambda: __import__("musicstore.audio").audio.click_track(10**400, 0.5, RATE),
        lambda: __import__("musicstore.audio").audio.click_track(120.0, 10**400, RATE),
        lambda: __import__("musicstore.audio").audio.analyze_audio(_clip(), RATE, tempo="yes"),
        lambda: __import__("musicstore.audio").audio.analyze_audio(_clip(), RATE, tempo=None),
        lambda: __import__("musicstore.audio").audio.analyze_audio(_clip(), RATE, subtype=5),
        lambda: __import__("musicstore.audio").audio.RenditionSpec("mp3", bitrate_kbps=10**5_000),
        lambda: __import__("musicstore.audio").audio.check_sample_rate(10**5_000),
    ],
    ids=[
        "bpm 5e-324 (NaN beats: ValueError)",
        "channels 10**400 (OverflowError)",
        "drums 10**400 (OverflowError)",
        "click bpm 10**400 (OverflowError)",
        "click seconds 10**400 (OverflowError)",
        "tempo 'yes' (taken as True)",
        "tempo None (taken as False)",
        "subtype 5 (kept as the label)",
        "bitrate 10**5000 (ValueError at render)",
        "sample rate 10**5000 (ValueError in the message)",
    ],
)
def test_an_audio_function_refuses_a_wrong_argument(call: Callable[[], Any]) -> None:
    with pytest.raises(InvalidInput):
        call()


def test_synthesis_takes_a_huge_seed_and_fractions() -> None:
    """A seed is any whole number >= 0 (numpy takes it; 10**400 raised OverflowError); a Fraction level
    (a numbers.Real, accepted) made an array of objects numpy could not add (UFuncTypeError)."""
    from musicstore.audio import click_track, synthesize_music

    assert synthesize_music(0.25, RATE, seed=10**400).shape == (2, RATE // 4)
    half: Any = Fraction(1, 2)
    np.testing.assert_array_equal(
        click_track(120.0, 0.5, RATE, amplitude=half), click_track(120.0, 0.5, RATE, amplitude=0.5)
    )
    np.testing.assert_array_equal(
        synthesize_music(0.5, RATE, drums=half), synthesize_music(0.5, RATE, drums=0.5)
    )


@pytest.mark.parametrize("frames_seen", [5, "peaks", True], ids=repr)
def test_export_audio_refuses_a_frames_seen_that_is_not_callable(tmp_path: Path, frames_seen: Any) -> None:
    """It was called with the frames after the clip was measured and limited: a bare TypeError."""
    from musicstore.audio import export_audio

    with pytest.raises(InvalidInput, match="frames_seen"):
        export_audio(_clip(), RATE, tmp_path / "x.wav", frames_seen=frames_seen)
    assert not list(tmp_path.iterdir())


def test_analyze_file_refuses_a_tempo_that_is_not_a_bool(env: Env) -> None:
    from musicstore.audio import analyze_file

    with pytest.raises(InvalidInput, match="tempo"):
        analyze_file(env.master, tempo=1)  # type: ignore[arg-type]


# --- targeted: a refused value that has no repr -----------------------------------------------------------


@pytest.mark.parametrize("value", [_deep(3_000), 10**5_000], ids=["3000-deep list", "int of 5001 digits"])
def test_a_refused_value_without_a_repr_is_named_in_a_typed_error(env: Env, value: Any) -> None:
    """Messages quoted the refused value with ``!r``: its repr raised RecursionError (a deep list) or
    ValueError (an int over 4,300 digits), escaping in place of the InvalidInput."""
    from musicstore import audio
    from musicstore.filestore import LocalFileStore
    from musicstore.maintenance.retention import cleanup
    from musicstore.validate import status

    files = LocalFileStore(env.folder / "objects")
    calls: dict[str, Callable[[], Any]] = {
        "check_sample_rate": lambda: audio.check_sample_rate(value),
        "compute_peaks bits": lambda: audio.compute_peaks(env.clip, RATE, bits=value),
        "compute_peaks block_frames": lambda: audio.compute_peaks(env.clip, RATE, block_frames=[value]),  # type: ignore[arg-type]
        "synthesize_music bpm": lambda: audio.synthesize_music(0.5, RATE, bpm=[value]),  # type: ignore[arg-type]
        "LoudnessProfile": lambda: audio.LoudnessProfile(-14.0, name=[value]),  # type: ignore[arg-type]
        "RenditionOptions": lambda: audio.RenditionOptions(margin_db=[value]),  # type: ignore[arg-type]
        "layout_path": lambda: audio.layout_path(env.root, [value]),  # type: ignore[arg-type]
        "validate.status": lambda: status([value]),
        "cleanup statuses": lambda: cleanup(env.store, env.root, statuses=[[value]]),  # type: ignore[list-item]
        "put overwrite": lambda: files.put("a.wav", b"x", overwrite=[value]),  # type: ignore[arg-type]
        "put content_type": lambda: files.put("a.wav", b"x", content_type=[value]),  # type: ignore[arg-type]
        "presigned_url expires": lambda: files.presigned_url("a.wav", expires=[value]),  # type: ignore[arg-type]
        "presigned_url method": lambda: files.presigned_url("a.wav", method=[value]),  # type: ignore[arg-type]
        "list page_size": lambda: list(files.list(page_size=[value])),  # type: ignore[arg-type]
    }
    for name, call in calls.items():
        try:
            call()
        except InvalidInput:
            continue
        except Exception as exc:
            raise AssertionError(f"{name}: {type(exc).__name__}") from None
        raise AssertionError(f"{name}: accepted")
    assert not list((env.folder / "objects").iterdir())


# --- the CLI: a wrong-typed option is a usage error, never a traceback --------------------------------------

_NUMERIC_OPTIONS = [
    ("list", "--limit", ()),
    ("prompts", "--limit", ()),
    ("render", "--bitrate", (_ID,)),
    ("render", "--sample-rate", (_ID,)),
    ("serve", "--port", ("--check",)),
    ("reconcile", "--stale-after", ()),
    ("cleanup", "--older-than", ()),
    ("cleanup", "--max-bytes", ()),
    ("requeue-expired", "--max-attempts", ()),
    ("requeue-expired", "--backoff", ()),
    ("requeue-expired", "--jitter", ("--backoff", "10s")),
    ("demo", "--count", ()),
]


@pytest.mark.parametrize(
    ("command", "option", "rest"), _NUMERIC_OPTIONS, ids=lambda v: v if isinstance(v, str) else ""
)
def test_a_wrong_typed_option_is_a_usage_error(
    tmp_path: Path, command: str, option: str, rest: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    from musicstore.cli import EXIT_USAGE, main

    url = f"sqlite:///{tmp_path}/db.sqlite"
    migrate(url)
    for value in ["abc", "nan", "1e400", "-5", "\udcff", "9" * 400, "0x10", ""]:
        assert main([command, "-d", url, f"{option}={value}", *rest]) == EXIT_USAGE, (option, value)
        err = capsys.readouterr().err
        assert "Traceback" not in err and option in err, (option, value, err[-300:])
    assert [p.name for p in tmp_path.iterdir()] == ["db.sqlite"]  # no output folder, no file made


@pytest.mark.parametrize(
    "host", ["a" * 64, "\udcff", "a." + "b" * 70 + ".c"], ids=["label of 64", "surrogate", "long"]
)
def test_serve_refuses_a_host_no_resolver_takes_as_a_usage_error(
    tmp_path: Path, host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """getaddrinfo's UnicodeError (a label over 63 characters, a lone surrogate from an undecodable
    argument) escaped uvicorn as a traceback."""
    from musicstore.cli import EXIT_USAGE, main

    url = f"sqlite:///{tmp_path}/db.sqlite"
    migrate(url)
    assert main(["serve", "-d", url, "--check", "--host", host]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--host" in err and "Traceback" not in err
