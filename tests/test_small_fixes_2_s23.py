"""Small fixes from earlier hunts (session 23): typed, truthful errors for a folder or a missing file given
to the audio readers, a truncated W64 file refused, the dashboard's model filter for a name with a newline.
Each test failed before its fix."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore import InvalidAudio, InvalidInput, StorageError
from musicstore.audio import file_peaks
from musicstore.audio.analysis import analyze_file
from musicstore.audio.renditions import read_master


def test_analyze_file_and_file_peaks_name_a_folder_and_agree_on_a_missing_file(tmp_path: Path) -> None:
    """``analyze_file`` of a folder said "no such file", and ``file_peaks`` of a missing file raised
    ``InvalidInput`` where ``analyze_file`` (and the docs) say ``StorageError``: both now raise
    ``StorageError`` naming a folder as a folder (``file_peaks``' error stays an ``InvalidInput`` too)."""
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    missing = tmp_path / "missing.wav"
    with pytest.raises(StorageError, match=r"folder\.wav: is a folder, not a file"):
        analyze_file(folder)
    with pytest.raises(StorageError, match=r"folder\.wav: is a folder, not a file"):
        file_peaks(folder)
    with pytest.raises(StorageError, match=r"missing\.wav: no such file"):
        analyze_file(missing)
    with pytest.raises(StorageError, match=r"missing\.wav: no such file") as raised:
        file_peaks(missing)
    assert isinstance(raised.value, InvalidInput)  # what it raised until then: callers catching it still do
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.wav"]


@pytest.mark.parametrize("cut", [1, 1_000, 3_999])
def test_a_truncated_w64_file_is_refused_as_a_truncated_wav_is(tmp_path: Path, cut: int) -> None:
    """A Sony Wave64 file (W64, which libsndfile reads and writes) cut short was read as a shorter clip
    without a word, where a WAV (RIFF, RIFX, RF64) cut short is ``InvalidAudio``: its data chunk's size is
    now checked too. The whole file still reads."""
    whole = tmp_path / "whole.w64"
    frames = np.full((1_000, 2), 0.25, dtype=np.float32)
    sf.write(whole, frames, 16_000, format="W64", subtype="PCM_16")
    data = whole.read_bytes()
    assert analyze_file(whole).frames == 1_000
    assert file_peaks(whole).frames == 1_000
    assert read_master(data, "whole.w64")[0].shape == (2, 1_000)
    cut_file = tmp_path / "cut.w64"
    cut_file.write_bytes(data[: len(data) - cut])
    with pytest.raises(InvalidAudio, match="truncated"):
        analyze_file(cut_file)
    with pytest.raises(InvalidAudio, match="truncated"):
        file_peaks(cut_file)
    with pytest.raises(InvalidAudio, match="truncated"):
        read_master(cut_file.read_bytes(), "cut.w64")


@settings(max_examples=100, deadline=None)
@given(fmt=st.sampled_from(["W64", "WAV"]), kept=st.integers(min_value=0, max_value=10**6))
def test_a_w64_or_wav_master_cut_anywhere_is_invalid_audio(fmt: str, kept: int) -> None:
    """Property: a W64 (or WAV) master cut at any byte is ``InvalidAudio`` (truncated, or no audio file at
    all), never read as a shorter clip; a cut inside the data chunk's header was read as no frames."""
    buffer = io.BytesIO()
    sf.write(buffer, np.full((1_000, 2), 0.25, dtype=np.float32), 16_000, format=fmt, subtype="PCM_16")
    data = buffer.getvalue()
    with pytest.raises(InvalidAudio):
        read_master(data[: kept % len(data)], f"cut.{fmt.lower()}")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_model_whose_name_holds_a_newline_can_be_picked_from_the_filter(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The generations page's model filter: a browser sends the picked option's value with its line breaks
    as CRLF (a form's urlencoded submission), so a model named with a newline matched no row and the page
    showed none of its generations, the select showing a model of that CRLF name. The page now takes the
    model whose name, so sent, is what came (an exact name wins)."""
    pytest.importorskip("starlette")
    pytest.importorskip("jinja2")
    from starlette.testclient import TestClient

    from musicstore import Store
    from musicstore.web import create_app

    names = ["two\nlines", "one line", "cr\ronly", "exact\r\ncrlf"]
    with Store(str(request.getfixturevalue(f"{backend}_url"))) as store:
        made = {
            name: store.create_generation("a drone", model_name=name, duration_seconds=1) for name in names
        }
        with TestClient(create_app(store, root=tmp_path)) as client:
            page = client.get("/generations").text
            assert '<option value="two\nlines">' in page  # the value the browser parses, then sends as CRLF
            for name, sent in [
                ("two\nlines", "two\r\nlines"),
                ("cr\ronly", "cr\r\nonly"),
                ("exact\r\ncrlf", "exact\r\ncrlf"),
                ("one line", "one line"),
            ]:
                response = client.get("/generations", params={"model": sent})
                assert response.status_code == 200, response.text
                assert made[name].id in response.text, name
                assert [g for g in names if made[g].id in response.text] == [name]
                assert response.text.count(" selected>") == 1  # the model's own option, no added one
                assert f'<option value="{name}" selected>' in response.text, name


@pytest.mark.slow
def test_a_model_whose_name_holds_a_newline_is_picked_in_a_real_browser(
    sqlite_url: str, tmp_path: Path, musicstore_browser: Any, musicstore_live_server: Callable[[Any], Any]
) -> None:
    """The same in Chromium: pick the model named with a newline in the filter, press Filter, and the page
    lists its generation (and only it) with that model selected."""
    pytest.importorskip("selenium")
    from selenium.webdriver.support.ui import Select

    from musicstore import Store
    from musicstore.web import create_app

    with Store(sqlite_url) as store:
        wanted = store.create_generation("a drone", model_name="two\nlines", duration_seconds=1)
        other = store.create_generation("a drone", model_name="other", duration_seconds=1)
        base = musicstore_live_server(create_app(store, root=tmp_path)).url
        browser = musicstore_browser
        browser.get(base + "/generations")
        select = Select(browser.find_element("id", "filter-model"))
        select.select_by_index(["", "other", "two\nlines"].index("two\nlines"))
        browser.find_element("id", "filter-apply").click()
        deadline = time.monotonic() + 30
        while "model=" not in browser.execute_script("return location.search"):
            assert time.monotonic() < deadline, "the form was not submitted"
            time.sleep(0.05)
        while browser.execute_script("return document.readyState") != "complete":  # the new page's rows
            assert time.monotonic() < deadline, "the filtered page did not load"
            time.sleep(0.05)
        assert "model=two%0D%0Alines" in browser.execute_script("return location.search")  # what it sends
        rows = browser.find_elements("css selector", "#generations tbody tr[data-id]")
        assert [row.get_attribute("data-id") for row in rows] == [wanted.id]
        assert other.id not in browser.page_source
        picked = browser.execute_script("return document.getElementById('filter-model').value")
        assert picked == "two\nlines"
