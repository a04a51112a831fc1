"""The dashboard in a real browser: Debian's Chromium, headless, driven through chromedriver (selenium).

Each page renders without console errors, the audio element loads the file and reports its duration, the
waveform and chart canvases are drawn, filters and paging work by clicking, and a hostile prompt renders as
text. Screenshots go to ``$MUSICSTORE_ARTIFACTS`` (default ``.artifacts/screenshots``). Skipped where
Chromium or its driver is missing; required on CI (the ``musicstore_browser`` fixture).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("selenium")

from musicstore import Store, migrate
from musicstore.testing._browser import artifacts_dir, console_errors
from musicstore.web import create_app
from tests.test_web import HOSTILE, Data, populate

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Data]]:
    folder = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{folder / 'jobs.db'}"
    migrate(url)
    with Store(url) as store:
        data = populate(store, folder / "audio")
    yield url, data


@pytest.fixture
def site(
    database: tuple[str, Data], musicstore_live_server: Callable[[Any], Any]
) -> Iterator[tuple[str, Data]]:
    url, data = database
    with Store(url) as store:
        server = musicstore_live_server(create_app(store, root=data.root))
        yield server.url, data


@pytest.fixture
def browser(musicstore_browser: Any) -> Any:
    console_errors(musicstore_browser)  # drop what earlier tests left
    return musicstore_browser


def _shot(driver: Any, name: str) -> None:
    folder = artifacts_dir(ROOT / ".artifacts" / "screenshots")
    driver.save_screenshot(str(folder / f"{name}.png"))


def _wait(driver: Any, script: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {script}")
        time.sleep(0.05)


def _load(driver: Any, url: str) -> None:
    driver.get(url)
    _wait(driver, "return document.readyState === 'complete'")


def _ids(driver: Any) -> list[str]:
    rows = driver.find_elements("css selector", "#generations tbody tr[data-id]")
    return [row.get_attribute("data-id") for row in rows]


def test_every_page_renders_without_console_errors(browser: Any, site: tuple[str, Data]) -> None:
    base, data = site
    pages = {
        "overview": "/",
        "generations": "/generations",
        "generation": f"/generations/{data.completed[1]}",
        "failed": f"/generations/{data.failed}",
        "prompts": "/prompts",
        "workers": "/workers",
    }
    for name, path in pages.items():
        _load(browser, base + path)
        assert browser.find_element("tag name", "h1").text, name
        if name == "generation":
            _wait(browser, "return document.getElementById('waveform').dataset.state === 'drawn'")
        _shot(browser, name)
        assert console_errors(browser) == [], name
    _load(browser, base + "/generations/01a20180-5e48-7dc6-afbf-cdf54fb09fcb")
    assert browser.find_element("tag name", "h1").text == "404"


def test_the_audio_element_loads_the_file_and_reports_its_duration(
    browser: Any, site: tuple[str, Data]
) -> None:
    base, data = site
    _load(browser, f"{base}/generations/{data.completed[1]}")
    duration = _wait(
        browser,
        "const a = document.getElementById('audio');"
        " return a.readyState >= 1 && isFinite(a.duration) && a.duration",
    )
    assert duration == pytest.approx(2.0, abs=0.01)
    assert browser.find_element("id", "audio-duration").text == "2.00 s"
    # it plays: a seek within the file is served (Range) and the position moves
    browser.execute_script("const a = document.getElementById('audio'); a.currentTime = 1.0; a.play();")
    _wait(browser, "return document.getElementById('audio').currentTime > 1.05")
    assert browser.execute_script("return document.getElementById('audio').error") is None
    assert console_errors(browser) == []


def test_the_waveform_canvas_is_drawn(browser: Any, site: tuple[str, Data]) -> None:
    base, data = site
    _load(browser, f"{base}/generations/{data.completed[1]}")
    _wait(browser, "return document.getElementById('waveform').dataset.state === 'drawn'")
    painted = browser.execute_script(
        """const c = document.getElementById('waveform');
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
        return [n, c.width * c.height];"""
    )
    assert painted[0] > 0.05 * painted[1], painted  # a real waveform covers a good part of the canvas
    # the overview's charts too
    _load(browser, base + "/")
    for chart in ("chart-hours", "chart-days"):
        _wait(browser, f"return document.getElementById('{chart}').dataset.state === 'drawn'")
        count = browser.execute_script(
            f"""const c = document.getElementById('{chart}');
            const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++; return n;"""
        )
        assert count > 100, chart
    assert console_errors(browser) == []


def test_filters_and_paging_by_clicking(browser: Any, site: tuple[str, Data]) -> None:
    from selenium.webdriver.support.ui import Select

    base, data = site
    newest_first = list(reversed(data.all_ids))
    _load(browser, base + "/generations?limit=3")
    seen = _ids(browser)
    assert seen == newest_first[:3]
    while browser.find_elements("id", "page-next"):
        browser.find_element("id", "page-next").click()
        _wait(browser, "return document.readyState === 'complete'")
        seen += _ids(browser)
    assert seen == newest_first
    _shot(browser, "generations-last-page")

    _load(browser, base + "/generations")
    Select(browser.find_element("id", "filter-status")).select_by_value("completed")
    browser.find_element("id", "filter-apply").click()
    _wait(browser, "return location.search.includes('status=completed')")
    assert _ids(browser) == list(reversed(data.completed))
    assert {b.text for b in browser.find_elements("css selector", "#generations .badge")} == {"completed"}

    Select(browser.find_element("id", "filter-status")).select_by_value("")
    Select(browser.find_element("id", "filter-model")).select_by_value("musicgen-small")
    browser.find_element("id", "filter-q").send_keys("LoFi")
    browser.find_element("id", "filter-apply").click()
    _wait(browser, "return location.search.includes('q=LoFi')")
    assert _ids(browser) == [data.completed[1]]
    _shot(browser, "generations-filtered")
    assert console_errors(browser) == []


def test_a_hostile_prompt_renders_as_text(browser: Any, site: tuple[str, Data]) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    base, data = site
    for path in (
        f"/generations/{data.hostile}",
        "/generations",
        "/",
        "/prompts",
        f"/generations/{data.failed}",
    ):
        _load(browser, base + path)
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018 (an alert would be the injected script running)
        assert browser.execute_script("return document.querySelectorAll('main img').length") == 0, path
        assert HOSTILE in browser.find_element("tag name", "main").text, path
    _load(browser, f"{base}/generations/{data.hostile}")
    assert browser.find_element("id", "prompt").text == HOSTILE
    _shot(browser, "hostile-prompt")
    assert console_errors(browser) == []
