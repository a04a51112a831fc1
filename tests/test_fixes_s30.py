"""Defects left open by session 29, each fixed with the test that showed it:

- a rendition format named in upper case (``MP3``) was refused by ``musicstore render`` and the API
  (``render_generation``, ``RenditionSpec``) while ``musicstore demo --renditions MP3`` took it: every path
  now takes a format in any case, as its canonical lower-case name (``codecs.format_name``);
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from musicstore import Store
from musicstore.audio import RenditionSpec
from musicstore.audio.codecs import rendition_specs
from musicstore.cli import main
from musicstore.errors import InvalidInput
from musicstore.rendering import render_generation
from tests.test_rendition_store import exported

# --- 1: rendition format names in any case -------------------------------------------------------------


def test_a_rendition_format_in_upper_case_is_its_lower_case_name_in_the_api(
    sqlite_url: str, tmp_path: Path
) -> None:
    assert RenditionSpec("MP3").format == "mp3" and RenditionSpec("Flac", subtype="PCM_24").format == "flac"
    assert [(s.format, s.bitrate_kbps) for s in rendition_specs(["OPUS", "Wav"], 96)] == [
        ("opus", 96),
        ("wav", None),
    ]
    with pytest.raises(InvalidInput, match=r"unknown rendition format 'MP4'; use one of \['mp3'"):
        RenditionSpec("MP4")
    with Store(sqlite_url) as store:
        done = exported(store, tmp_path)
        (made,) = render_generation(store, done.id, root=tmp_path, formats=["FLAC"])
        assert made.format == "flac" and made.storage_key.endswith(".flac")
        (again,) = render_generation(store, done.id, root=tmp_path, formats="flac")  # the same request
        assert again.id == made.id


def test_musicstore_render_takes_a_format_in_upper_case_as_the_demo_does(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store(sqlite_url) as store:
        done = exported(store, tmp_path)
    where = ["--database", sqlite_url, "--output-root", str(tmp_path)]
    assert main(["render", done.id, "--format", "MP3", "--bitrate", "128k", "--json", *where]) == 0
    (made,) = json.loads(capsys.readouterr().out)["renditions"]
    assert made["format"] == "mp3" and made["bitrate_kbps"] == 128
    assert main(["render", done.id, "--format", "ogg", *where]) == 2  # a usage error naming the formats
    err = capsys.readouterr().err
    assert "unknown rendition format 'ogg'" in err and "'mp3', 'opus', 'vorbis', 'flac', 'wav'" in err
