"""Claims of docs/storage.md, renditions.md, dashboard.md, architecture.md and README.md that the code did not
keep (or that the page got wrong): each test quotes the claim it holds the code to."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from musicstore import InvalidInput, Store
from musicstore.audio import RenditionSpec, export_audio, render_audio, render_file, synthesize_music
from musicstore.audio.renditions import read_master
from musicstore.errors import InvalidAudio
from musicstore.filestore import AsyncFileStore, check_filestore, open_filestore


@pytest.mark.parametrize(
    ("rate", "low", "high"), [(44_100, 32, 320), (48_000, 32, 320), (22_050, 8, 160), (11_025, 8, 64)]
)
def test_an_average_mp3_takes_the_bitrates_of_its_mpeg_versions_range(
    rate: int, low: int, high: int, tmp_path: Path
) -> None:
    # renditions.md: '"average" with any whole number of kbps in the MPEG version's range (the same 32–320,
    # 8–160, 8–64: an average 16 kbps MP3 of a 44.1 kHz master is InvalidInput, before anything is encoded';
    # the page said 8–320 whatever the rate, and 16 kbps at 44.1 kHz was refused
    clip = synthesize_music(0.5, rate, seed=1)
    for kbps in (low - 1, high + 1):
        if 8 <= kbps <= 320:  # outside 8–320 the spec itself refuses it
            spec = RenditionSpec("mp3", kbps, bitrate_mode="average")
            with pytest.raises(InvalidInput, match=f"{low}–{high} kbps"):
                render_audio(clip, rate, tmp_path / "a.mp3", spec)
            assert not (tmp_path / "a.mp3").exists()
    made = render_audio(clip, rate, tmp_path / "b.mp3", RenditionSpec("mp3", low, bitrate_mode="average"))
    assert made.codec["bitrate_kbps"] == low and (tmp_path / "b.mp3").is_file()
    resampled = RenditionSpec("mp3", 16, bitrate_mode="average", sample_rate=22_050)
    assert render_audio(clip, rate, tmp_path / "c.mp3", resampled).codec["bitrate_kbps"] == 16


@pytest.mark.parametrize("given", ["xyz", "0" * 63, "g" * 64, 123, b"\x00" * 32, "0" * 64 + "\n"])
def test_a_sha256_that_is_no_sha256_is_invalid_input_not_a_damaged_master(
    given: object, tmp_path: Path
) -> None:
    # renditions.md, Errors: "Everything is checked before anything is encoded or written: ... (InvalidInput);
    # ... a master that ... fails its sha256 ... (InvalidAudio)": a checksum that is not a SHA-256 at all (a
    # .digest() passed for its .hexdigest(), a number) is the caller's argument; it was reported as the master
    # having "changed or is damaged" (InvalidAudio)
    master = export_audio(synthesize_music(0.5, 32_000, seed=1), 32_000, tmp_path / "m.wav")
    with pytest.raises(InvalidInput, match="SHA-256"):
        render_file(master.path, tmp_path / "o.mp3", RenditionSpec("mp3"), sha256=given)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="SHA-256"):
        read_master(master.path.read_bytes(), "m.wav", sha256=given)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.wav"]


def test_a_master_that_fails_a_well_formed_sha256_is_invalid_audio(tmp_path: Path) -> None:
    master = export_audio(synthesize_music(0.5, 32_000, seed=1), 32_000, tmp_path / "m.wav")
    recorded = hashlib.sha256(master.path.read_bytes()).hexdigest()
    with pytest.raises(InvalidAudio, match="does not match its recorded sha256"):
        render_file(master.path, tmp_path / "o.mp3", RenditionSpec("mp3"), sha256="0" * 64)
    for spelling in (recorded, recorded.upper()):  # upper-case hex was, and is, read as the same checksum
        assert render_file(master.path, tmp_path / "o.mp3", RenditionSpec("mp3"), sha256=spelling).bytes > 0
        (tmp_path / "o.mp3").unlink()


@pytest.mark.parametrize(
    "url",
    [
        "s3:/my-bucket/music",
        "s3:my-bucket",
        "S3:/my-bucket",
        "file:/srv/audio",
        "file:srv/audio",
        "gs:/bucket/x",
    ],
)
def test_a_url_with_one_slash_is_refused_never_made_a_local_folder(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # storage.md: the URLs are a folder path, file:///PATH and s3://BUCKET/PREFIX. pathlib.Path makes
    # "s3:/my-bucket/music" of "s3://my-bucket/music" (and "file:/srv/audio" of "file:///srv/audio"): given as
    # a Path, or mistyped, it was taken for a relative folder and created in the working directory, where
    # every export then went (recorded as file:// rows), the bucket never written
    monkeypatch.chdir(tmp_path)
    for given in (url, Path(url)):
        with pytest.raises(InvalidInput, match="is not a URL"):
            open_filestore(given)
        with pytest.raises(InvalidInput, match="is not a URL"):
            check_filestore(given)
    assert list(tmp_path.iterdir()) == []
    # a bucket URL given as a Path
    with pytest.raises(InvalidInput, match="is not a URL"):
        open_filestore(Path("s3://my-bucket/music"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["audio", "a:b", "s3", "file", "s3-audio/x", "c:/x", "./s3:/x"])
def test_a_folder_whose_name_holds_a_colon_is_still_a_folder(name: str, tmp_path: Path) -> None:
    store = open_filestore(tmp_path / name)
    assert store.url.startswith("file:///") and (tmp_path / name).is_dir()
    store.close()


@pytest.mark.parametrize("store_kind", ["local", "s3"])
def test_metadata_names_are_those_the_page_gives(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # storage.md: "lower-case names (a-z 0-9 - _, 1 to 64 of them, the first a letter or digit: _lufs and -x
    # are InvalidInput)"; the page gave the characters alone, and _lufs, -x, 65-character names were refused
    where = tmp_path / "audio" if store_kind == "local" else request.getfixturevalue("musicstore_s3_url")
    store = open_filestore(where)
    try:
        kept = {"lufs": "-16.0", "0db": "1", "a-b_c": "x", "n" * 64: "y"}
        assert store.put("k.wav", b"x", metadata=kept).metadata == kept
        assert store.head("k.wav").metadata == kept
        for name in ("_lufs", "-x", "n" * 65, "", "Lufs", "é"):
            with pytest.raises(InvalidInput, match="metadata name"):
                store.put("other.wav", b"x", metadata={name: "1"})
        assert [info.key for info in store.list()] == ["k.wav"]
    finally:
        store.close()


def test_the_architecture_diagram_places_every_top_level_name() -> None:
    # architecture.md's picture of the layers left out waiting (database) and worker (composition), which its
    # table and tests/test_architecture.py place, and said the vocabulary imports nothing of musicstore's
    # (validate imports errors, models ids...: it imports within its own layer, as the table says)
    from tests.test_architecture import LAYERS

    page = (Path(__file__).resolve().parent.parent / "docs" / "architecture.md").read_text()
    diagram = page.split("```", 2)[1]
    words = set(diagram.replace("/", " ").split())
    for layer, names in LAYERS.items():
        assert layer in words, layer
        for name in names:
            assert name.startswith("__") or name in words, (layer, name)
    assert "imports nothing of musicstore's" not in diagram and "imports only its own layer" in diagram


def test_an_async_file_store_wraps_a_file_store_and_nothing_else(tmp_path: Path) -> None:
    # storage.md: "AsyncFileStore(store) gives the same operations as coroutines" of a FileStore: a path was
    # an AttributeError ('str' object has no attribute 'url'), and an AsyncFileStore wrapped again answered
    # head() with a coroutine object in place of its ObjectInfo (never awaited)
    store = open_filestore(tmp_path / "audio")
    wrapped = AsyncFileStore(store)
    for given in (str(tmp_path / "audio"), tmp_path / "audio", None, wrapped):
        with pytest.raises(InvalidInput, match="AsyncFileStore takes a FileStore"):
            AsyncFileStore(given)  # type: ignore[arg-type]
    store.put("k.wav", b"x")
    assert asyncio.run(wrapped.head("k.wav")).size == 1
    store.close()


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("ΚΟΣΜΟΣ", ["κοσμος ambient", "ΚΟΣΜΟΣ drone"]),  # the final sigma is a lower case of Σ
        ("κοσμοσ", ["κοσμος ambient", "ΚΟΣΜΟΣ drone"]),
        ("ǆemal", ["ǅemal drums"]),  # a title-case digraph: its lower and upper case are ǆ, Ǆ
        ("ǄEMAL", ["ǅemal drums"]),
        ("straße", ["STRAẞE ambient", "straße loop"]),
        ("S", ["STRAẞE ambient", "straße loop", "ǅemal drums", "ſ long s"]),  # ASCII: ASCII folds only
    ],
)
def test_a_prompt_search_folds_every_letters_case(db_url: str, query: str, found: list[str]) -> None:
    # dashboard.md: "a substring, every letter's case folded on both backends, accented ones too: each
    # letter matches its own upper and lower case": ΚΟΣΜΟΣ did not find κοσμος (its final ς, whose upper case
    # is Σ, was not among Σ's cases), nor ǆemal ǅemal (a title case, neither ǆ's upper nor its lower)
    from musicstore.web import reads as web_reads

    prompts = ["κοσμος ambient", "ΚΟΣΜΟΣ drone", "ǅemal drums", "STRAẞE ambient", "straße loop", "ſ long s"]
    with Store(db_url) as store:
        made = {store.create_generation(p, model_name="m", duration_seconds=1).id: p for p in prompts}
        with store.transaction(write=False) as tx:
            page = tx.run(web_reads.table_page, web_reads.Filters(text=query), limit=50)
    assert sorted(made[g.id] for g in page.items) == sorted(found)
