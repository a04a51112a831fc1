"""Regressions found by the prompts/URLs/tags hunt.

- ``tag_master`` on a WAV master tagged before (or holding another writer's ``LIST/INFO`` chunk) replaces its
  tags, as on FLAC: one ``LIST/INFO`` chunk, one ``id3 `` chunk, the new prompt read back; before, it raised
  mutagen's bare ``error: an ID3 tag already exists``; a FLAC kept the first tagging's ``SEED`` (or model
  version, generation id, creation time) where the second provenance had none. A file that is not the
  format its name says is ``InvalidInput`` naming it, not mutagen's own error (``FLACNoHeaderError``).
- A PostgreSQL URL naming several hosts with ports (libpq's ``host1:port1,host2:port2``, which yoyo cannot
  read) is refused saying so, with the form that works (``?host=h1,h2&port=p1,p2``); before, the message
  said the last port ("5433") was not a number from 0 to 65535, and ``h1,h2:5433`` or ``h1:1,[::1]:2`` were
  accepted, yoyo migrating other hosts or ports than the store used. A bracket left open in the host is
  named too.
- The dashboard's prompt search for an ASCII text answers alike on both backends: PostgreSQL's ``lower()``
  followed the server's locale, which (C.UTF-8, en_US...) lowers the Kelvin sign to ``k`` and ``İ`` to ``i``,
  so "kelvin" or "istanbul" found prompts there that SQLite (and a non-ASCII search, whose letter classes
  are each character's own cases) did not.
- A SQLite URL whose path decodes to a NUL (``sqlite:///a%00b.db``), which no file name can hold, is
  ``InvalidInput`` from ``resolve`` (and ``sqlite_url``); before, it was resolved to a path with a NUL, and
  ``Store`` said "no database at /tmp/a" + NUL + "b.db" while ``migrate`` said libsqlite's "unable to open
  database file".
- ``migrate`` (yoyo) connects with what the store (libpq) reads from a PostgreSQL URL: yoyo reads a host and a
  database name without percent-decoding them, a ``+`` in a parameter as a space and the URL's user,
  password, host and port over the query's, so ``/music%20db`` was migrated as a database "music%20db" (an
  error, or another database), a socket folder ``%2Frun%2Fpg`` as a host name, ``?password=a+b`` as
  "a b". ``DatabaseURL.yoyo_url`` spells such a URL with every setting as a parameter.
- ``read_wav_info`` reads another writer's Latin-1 INFO strings (and ids) as Latin-1 and refuses a file that
  is not a WAV file (``InvalidInput``); before, ``UnicodeDecodeError``, and a non-WAV file read as untagged.
"""

from __future__ import annotations

import itertools
import re
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
import soundfile as sf
from mutagen.flac import FLAC
from mutagen.wave import WAVE

from musicstore import Store
from musicstore.audio.tags import Provenance, read_wav_info, tag_master
from musicstore.errors import InvalidInput
from musicstore.migrate import migrate
from musicstore.ops.jobs import RESET_CONFIRMATION
from musicstore.urls import _connection, resolve, sqlite_url, yoyo_connection
from musicstore.web import reads as web_reads
from tests.conftest import new_job
from tests.test_key_order import icu_postgres_url  # noqa: F401 (a fixture)
from tests.test_schema import _from, _rollback, _sql


def _chunks(path: Path) -> list[bytes]:
    """The ids of a RIFF file's top-level chunks (``LIST`` as ``LIST/INFO`` where it is one)."""
    data = path.read_bytes()
    out, position = [], 12
    while position + 8 <= len(data):
        key, size = data[position : position + 4], struct.unpack("<I", data[position + 4 : position + 8])[0]
        out.append(key + b"/" + data[position + 8 : position + 12] if key == b"LIST" else key)
        position += 8 + size + size % 2
    return out


def _master(path: Path) -> Path:
    x = (np.random.default_rng(0).standard_normal((4800, 2)) * 0.1).astype(np.float32)
    sf.write(path, x, 48_000, subtype="PCM_16")
    return path


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_tagging_a_tagged_master_again_replaces_its_tags(tmp_path: Path, suffix: str) -> None:
    path = _master(tmp_path / f"master{suffix}")
    before, _ = sf.read(path, dtype="float32")
    tag_master(path, Provenance("first prompt", model_name="m1", seed=1), -20.0, -1.0)
    size = tag_master(path, Provenance("second prompt\nline two", model_name="m2"), -14.0, -0.5)
    assert size == path.stat().st_size
    after, _ = sf.read(path, dtype="float32")
    assert np.array_equal(before, after)
    if suffix == ".wav":
        assert _chunks(path).count(b"LIST/INFO") == 1 and _chunks(path).count(b"id3 ") == 1
        assert read_wav_info(path)["INAM"] == "second prompt\nline two"
        tags: Any = WAVE(path).tags  # type: ignore[no-untyped-call]
        assert tags["TIT2"].text == ["second prompt\nline two"]
        assert {frame.desc: frame.text for frame in tags.getall("TXXX")}.get("SEED") is None
        assert tags.getall("TXXX:MODEL")[0].text == ["m2"]
        assert tags.getall("TXXX:REPLAYGAIN_TRACK_GAIN")[0].text == ["-4.00 dB"]
    else:
        flac = FLAC(path)  # type: ignore[no-untyped-call]
        assert flac["TITLE"] == ["second prompt\nline two"] and flac["MODEL"] == ["m2"]
        assert flac["REPLAYGAIN_TRACK_GAIN"] == ["-4.00 dB"]
        assert "SEED" not in flac  # the first tagging's seed, which the second provenance has not


def test_a_wav_master_with_another_writers_info_chunk_gets_one(tmp_path: Path) -> None:
    path = _master(tmp_path / "master.wav")
    data = bytearray(path.read_bytes())
    text = b"Lavf60\x00"
    info = b"INFO" + b"ISFT" + struct.pack("<I", len(text)) + text + b"\x00"
    data += b"LIST" + struct.pack("<I", len(info)) + info
    data[4:8] = struct.pack("<I", len(data) - 8)
    path.write_bytes(bytes(data))
    tag_master(path, Provenance("a prompt"), -18.0, -1.0)
    assert _chunks(path).count(b"LIST/INFO") == 1
    assert read_wav_info(path) == {"INAM": "a prompt", "ICMT": "a prompt", "ISFT": "musicstore"}


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_a_master_that_is_not_its_format_is_invalid_input(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"master{suffix}"
    path.write_bytes(b"RIFF\x04\x00\x00\x00WAVE" if suffix == ".flac" else b"fLaC" + bytes(64))
    with pytest.raises(InvalidInput, match=path.name):
        tag_master(path, Provenance("a prompt"), -18.0, -1.0)
    assert path.read_bytes()[:4] in (b"RIFF", b"fLaC")


@pytest.mark.parametrize(
    ("netloc", "query"),
    [
        ("h1:5432,h2:5433", "host=h1,h2&port=5432,5433"),
        ("h1:5432,h2,h3:6543", "host=h1,h2,h3&port=5432,,6543"),
        ("h1,h2:5433", "host=h1,h2&port=,5433"),  # yoyo read port 5433 for both, libpq h1's default
        ("h1:1,[::1]:2", "host=h1,::1&port=1,2"),  # urllib took "2" for the port of one host
        ("[::1],h2", "host=::1,h2"),
        ("[::1]:5432,h2", "host=::1,h2&port=5432,"),
    ],
)
def test_a_url_with_several_hosts_is_refused_with_the_form_that_works(netloc: str, query: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        resolve(f"postgresql://user:Secr3t-pw@{netloc}/db?sslmode=require")
    message = str(raised.value)
    assert "several hosts" in message and f"postgresql://user:***@/db?sslmode=require&{query}" in message
    assert "Secr3t-pw" not in message and "not a number" not in message
    assert resolve(f"postgresql://user:Secr3t-pw@/db?sslmode=require&{query}").dialect == "postgres"


def test_several_hosts_without_ports_stay_accepted() -> None:
    """yoyo passes ``h1,h2`` to libpq as one host= value, which libpq reads as the URL does."""
    assert resolve("postgresql://user:pw@h1,h2/db").yoyo_url == "postgresql+psycopg://user:pw@h1,h2/db"


def test_a_bracket_left_open_in_the_host_is_named() -> None:
    with pytest.raises(InvalidInput, match=r"\[ without its \]") as raised:
        resolve("postgresql://user:Secr3t-pw@[::1/db")
    assert "Secr3t-pw" not in str(raised.value) and "not a number" not in str(raised.value)


_names = itertools.count()


def _ascii_lower(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text)


@pytest.mark.parametrize("query", ["k", "kelvin", "istanbul", "i", "KETTLE", "İstanbul", "\u212aelvin"])
def test_the_prompt_search_folds_the_same_letters_on_both_backends(db_url: str, query: str) -> None:
    prompts = ["\u212aelvin-cold drone", "İstanbul nights", "kettle drum loop", "STRAẞE ambient"]
    with Store(db_url) as store:
        made = {new_job(store, prompt).id: prompt for prompt in prompts}
        with store.transaction(write=False) as tx:
            page = tx.run(web_reads.table_page, web_reads.Filters(text=query), limit=50)
    found = sorted(made[g.id] for g in page.items)
    if query.isascii():  # ASCII letters folded only, as SQLite's lower() and LIKE do
        expected = sorted(p for p in prompts if query.lower() in _ascii_lower(p))
    else:  # each letter in its own cases (web_reads.glob_pattern, regex_pattern)
        expected = sorted(p for p in prompts if re.search(web_reads.regex_pattern(query), p))
    assert found == expected


@pytest.mark.parametrize("path", ["a%00b.db", "%00", "dir%00/x.db"])
def test_a_sqlite_path_with_a_nul_is_invalid_input(path: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/{path}"
    for call in (resolve, Store, migrate):
        with pytest.raises(InvalidInput, match="NUL") as raised:
            call(url)
        assert "\x00" not in str(raised.value)
    with pytest.raises(InvalidInput, match="NUL"):
        sqlite_url(tmp_path / "a\x00b.db")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:pw@%2Frun%2FPgSock:5433/music%20db?application_name=a+b",
        "postgresql://u@h/db?password=a+b&sslmode=require",
        "postgresql://u:pw@h1:5432/db?host=h2&port=5433&user=v&dbname=other",
        "postgresql://u@[fe80::1%25eth0]:5432/db",
        "postgresql://u@h/d%2Fb",
        "postgresql://musician@db.example:5433/music?sslmode=require",  # spelled as it was
    ],
)
def test_yoyo_connects_with_what_libpq_reads(url: str) -> None:
    target = resolve(url)
    assert yoyo_connection(target.yoyo_url) == _connection(target.url)
    if url.startswith("postgresql://musician"):
        assert target.yoyo_url == "postgresql+psycopg://musician@db.example:5433/music?sslmode=require"


def test_a_percent_encoded_database_name_is_migrated_where_the_store_opens_it(
    musicstore_postgres_server: Any, musicstore_postgres_url: str
) -> None:
    server = musicstore_postgres_server
    name = f"music db {next(_names)}"
    base = musicstore_postgres_url.rpartition("/")[0]
    server.admin(f'CREATE DATABASE "{name}"')  # empty: nothing migrated
    try:
        url = f"{base}/{quote(name, safe='')}"
        migrate(url)
        with Store(url) as store:
            assert store.get_database_stats().total == 0
    finally:
        server.admin(f'DROP DATABASE "{name}" WITH (FORCE)')


def _with_info(wav: bytes, entries: list[tuple[bytes, bytes]]) -> bytes:
    """``wav`` with a ``LIST/INFO`` chunk of ``entries`` appended (its RIFF size mended)."""
    body = b"INFO" + b"".join(
        key + struct.pack("<I", len(value)) + value + b"\x00" * (len(value) % 2) for key, value in entries
    )
    out = wav + b"LIST" + struct.pack("<I", len(body)) + body
    return out[:4] + struct.pack("<I", len(out) - 8) + out[8:]


def test_read_wav_info_reads_another_writers_latin1_strings_and_refuses_a_file_that_is_not_wav(
    tmp_path: Path,
) -> None:
    """INFO strings an older writer put in its code page (Latin-1 bytes, not UTF-8) are read as Latin-1, and
    an id with a byte over 127 as its Latin-1 letters; a file that is not a WAV file is InvalidInput. Before,
    ``UnicodeDecodeError`` for the first two, and the third read as a WAV without tags."""
    plain = tmp_path / "plain.wav"
    sf.write(plain, np.zeros(16, dtype=np.float32), 8000, subtype="PCM_16")
    tagged = tmp_path / "tagged.wav"
    tagged.write_bytes(
        _with_info(plain.read_bytes(), [(b"INAM", "Café, naïve".encode("latin-1")), (b"IC\xd6P", b"ok")])
    )
    assert sf.info(str(tagged)).frames == 16  # still a WAV file libsndfile reads
    assert read_wav_info(tagged) == {"INAM": "Café, naïve", "ICÖP": "ok"}
    utf8 = tmp_path / "utf8.wav"
    utf8.write_bytes(_with_info(plain.read_bytes(), [(b"INAM", "Café ♫".encode())]))
    assert read_wav_info(utf8) == {"INAM": "Café ♫"}
    other = tmp_path / "notes.wav"
    other.write_bytes(b"these are notes, not audio" * 4)
    with pytest.raises(InvalidInput, match="not a WAV file"):
        read_wav_info(other)


def test_trending_prompts_cut_rows_that_share_a_moment_by_id_on_both_backends(db_url: str) -> None:
    """The dashboard's trending prompts are the newest ``limit`` rows' prompts: rows created at one moment
    are taken newest id first, on both backends (before, the rows a limit cut among such ties were the
    database's pick: PostgreSQL's index held a row claimed since, a new version of it, as the newest of its
    moment, SQLite's by its rowid)."""
    moment = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    with Store(db_url, clock=lambda: moment) as store:
        made = [new_job(store, f"tied prompt {i}") for i in range(7)]
        claimed = store.claim_next("gpu-0")
        assert claimed is not None and claimed.id == made[0].id
        with store.transaction(write=False) as tx:
            newest = tx.run(web_reads.recent_prompts_op, moment, 3)
    by_id = sorted(made, key=lambda g: g.id, reverse=True)
    assert newest == [g.prompt for g in by_id[:3]]


# --- PostgreSQL: prompt totals in shards, so creates do not queue on one row (migration 0020) -----------


def _sessions_on_two_shards(url: str) -> tuple[Any, Any, list[Any]]:
    """Two open connections whose backends fall on different shards (``mod(pg_backend_pid(), 16)``), and every
    connection opened (to close)."""
    import psycopg

    opened: list[Any] = []
    by_shard: dict[int, Any] = {}
    while len(by_shard) < 2:
        conn = psycopg.connect(url, autocommit=True)
        opened.append(conn)
        ((pid,),) = conn.execute("SELECT pg_backend_pid()").fetchall()
        by_shard.setdefault(int(pid) % 16, conn)
    first, second = by_shard.values()
    return first, second, opened


_NEW_PROMPT = (
    "INSERT INTO prompts (digest, text, used_count, first_used_at, last_used_at)"
    " VALUES (sha256(convert_to(%(text)s, 'UTF8')), %(text)s, 1, now(), now())"
)


def test_a_new_prompt_does_not_wait_for_another_sessions_uncommitted_one(postgres_url: str) -> None:
    """Each new prompt (each create of a generation with a prompt not seen before) updated the one row of
    prompt_totals in its transaction, so a second session's create waited for the first's commit (here:
    lock_timeout). Sessions on different shards now update different rows."""
    import psycopg

    first, second, opened = _sessions_on_two_shards(postgres_url)
    try:
        with first.transaction():
            first.execute(_NEW_PROMPT, {"text": "held open by the first session"})
            second.execute("SET lock_timeout = '1s'")
            try:
                second.execute(_NEW_PROMPT, {"text": "the second session's prompt"})
            except psycopg.errors.LockNotAvailable:
                pytest.fail("the second session's new prompt waited for the first session's transaction")
        with Store(postgres_url) as store:
            stats = store.get_database_stats()
        assert (stats.unique_prompts, stats.prompt_uses) == (2, 2)
    finally:
        for conn in opened:
            conn.close()


PROMPTS_RUN = 40


def _create_prompts(url: str, n: int) -> int:
    """``PROMPTS_RUN`` generations: half with prompts of this process's own, half with shared prompts."""
    with Store(url, busy_timeout=30) as store:
        for i in range(PROMPTS_RUN):
            prompt = f"own {n} {i}" if i % 2 else f"shared {i % 6}"
            store.create_generation(prompt, model_name="m", duration_seconds=1.0)
    return PROMPTS_RUN


def test_prompt_totals_equal_a_count_of_the_prompts_after_concurrent_creates(db_url: str) -> None:
    """Four processes (on PostgreSQL as many sessions, on several shards) create generations with new and
    shared prompts at once; the totals equal the prompts table counted, as they do after a reset."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(4) as pool:
        made = sum(pool.starmap(_create_prompts, [(db_url, n) for n in range(4)]))
    count = "SELECT count(*), coalesce(sum(used_count), 0) FROM prompts"
    ((prompts, uses),) = _sql(db_url, count)
    with Store(db_url) as store:
        stats = store.get_database_stats()
        assert (
            (stats.unique_prompts, stats.prompt_uses) == (prompts, uses) == (4 * PROMPTS_RUN // 2 + 3, made)
        )
        store.reset_database(confirm=RESET_CONFIRMATION)
        stats = store.get_database_stats()
    assert (stats.unique_prompts, stats.prompt_uses) == (0, 0) == tuple(_sql(db_url, count)[0])


def test_0020_keeps_the_prompt_totals_through_its_rollback_and_reapplication(db_url: str) -> None:
    """Prompts counted on several shards (PostgreSQL: sessions on two shards, and the store's), rolled back
    to one row holding their sum, then sharded again: the totals are a count of the prompts all along, and
    the triggers of either version keep them so."""
    count = "SELECT count(*), coalesce(sum(used_count), 0) FROM prompts"
    totals = "SELECT coalesce(sum(prompts), 0), coalesce(sum(uses), 0) FROM prompt_totals"
    with Store(db_url) as store:
        for i in range(6):
            store.create_generation(f"prompt {i % 4}", model_name="m", duration_seconds=1.0)
    if db_url.startswith("postgres"):
        first, second, opened = _sessions_on_two_shards(db_url)
        try:
            for n, conn in enumerate((first, second)):
                conn.execute(_NEW_PROMPT, {"text": f"session {n}"})
        finally:
            for conn in opened:
                conn.close()
        ((shards,),) = _sql(db_url, "SELECT count(*) FROM prompt_totals WHERE prompts <> 0")
        assert int(str(shards)) >= 2
    expected = _sql(db_url, count)
    assert _sql(db_url, totals) == expected
    _rollback(db_url, "0020")
    assert _sql(db_url, totals) == expected
    assert _sql(db_url, "SELECT id FROM prompt_totals") == [(1,)]
    if db_url.startswith("postgres"):
        _sql(db_url, _NEW_PROMPT.replace("%(text)s", "'after the rollback'"))
        expected = _sql(db_url, count)
        assert _sql(db_url, totals) == expected
    assert migrate(db_url) == _from("0020")
    with Store(db_url) as store:
        store.create_generation("after 0020 again", model_name="m", duration_seconds=1.0)
        stats = store.get_database_stats()
    assert _sql(db_url, totals) == _sql(db_url, count) == [(stats.unique_prompts, stats.prompt_uses)]


# --- models in byte order on every backend (migration 0022) ------------------------------------------------

MODELS = ["m-b", "m_b", "MusicGen", "musicgen", "a", "B", "é"]


@pytest.fixture(params=["sqlite", "postgres", "postgres-icu"])
def collated_url(request: pytest.FixtureRequest) -> str:
    fixture = {"sqlite": "sqlite_url", "postgres": "postgres_url", "postgres-icu": "icu_postgres_url"}
    url: str = request.getfixturevalue(fixture[request.param])
    return url


def test_figures_by_model_list_models_in_byte_order_on_every_backend(collated_url: str) -> None:
    """``storage_stats().by_model`` and the metrics' counts by model come in the order of the running totals'
    primary key: by the model's bytes on SQLite, by the database's collation on PostgreSQL (a locale's
    order: ``m_b`` before ``m-b``, ``a`` before ``B``), so the same figures listed the models differently by
    backend (the dashboard, /metrics, disk usage)."""
    from musicstore.maintenance.usage import storage_stats
    from musicstore.metrics import read_metrics

    with Store(collated_url) as store:
        for model in MODELS:
            store.create_generation("p", model_name=model, duration_seconds=1.0)
        by_model = list(storage_stats(store).by_model)
        metrics = [model for model, _ in read_metrics(store).by_model]
    assert by_model == metrics == sorted(MODELS)


def test_0022_rolls_back_and_applies_again_on_model_totals(collated_url: str) -> None:
    with Store(collated_url) as store:
        for model in MODELS:
            store.create_generation("p", model_name=model, duration_seconds=1.0)
    rows = "SELECT * FROM generation_model_totals"
    before = sorted(_sql(collated_url, rows), key=repr)
    by_name = "SELECT DISTINCT model_name FROM generation_model_totals ORDER BY model_name"
    _rollback(collated_url, "0022")
    assert sorted(_sql(collated_url, rows), key=repr) == before
    if "icu" in collated_url:
        assert [m for (m,) in _sql(collated_url, by_name)] != sorted(MODELS)  # the locale's order
    assert migrate(collated_url) == _from("0022")
    assert sorted(_sql(collated_url, rows), key=repr) == before
    assert [m for (m,) in _sql(collated_url, by_name)] == sorted(MODELS)
    with Store(collated_url) as store:
        store.create_generation("p", model_name="m_b", duration_seconds=1.0)  # the trigger's upsert
        from musicstore.maintenance.usage import storage_stats

        assert storage_stats(store).by_model["m_b"].generations == 2
