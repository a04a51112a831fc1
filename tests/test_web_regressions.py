"""The dashboard's edges found by an acceptance-style hunt: tokens a cookie must quote, query values that
reached the database unchecked or overflowed, the CLI's port and exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("starlette")
pytest.importorskip("jinja2")
pytest.importorskip("prometheus_client")

from starlette.testclient import TestClient

from musicstore import Store
from musicstore.audio.peaks import PeaksSpec
from musicstore.web import create_app


@pytest.fixture
def web_store(sqlite_url: str) -> Iterator[Store]:
    with Store(sqlite_url) as store:
        store.create_generation(
            "lofi hip hop at 90 BPM",
            model_name="musicgen-small",
            duration_seconds=2,
            sample_rate=32_000,
            channels=2,
        )
        yield store


@pytest.mark.parametrize(
    "token",
    ["abc/def+ghi=jk==", 'tok en;with"quotes\\', "t\u00f4k\u00e9n-latin-1"],
    ids=["base64", "separators", "latin-1"],
)
def test_login_works_for_a_token_the_cookie_must_quote(web_store: Store, tmp_path: Path, token: str) -> None:
    # `openssl rand -base64 32` makes tokens with / + =, which a cookie value carries quoted
    with TestClient(create_app(web_store, root=tmp_path, token=token)) as client:
        assert client.get("/api/overview").status_code == 401
        login = client.get("/login", params={"token": token}, follow_redirects=False)
        assert login.status_code == 303
        assert client.get("/api/overview").status_code == 200  # the cookie /login set
        client.cookies.clear()
        wrong = {"Cookie": 'musicstore_token="abc/def+ghi=jk=x"'}
        assert client.get("/api/overview", headers=wrong).status_code == 401


@pytest.fixture(params=["sqlite", "postgres"])
def backend_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def test_a_search_text_with_nul_is_a_bad_request(backend_url: str, tmp_path: Path) -> None:
    # SQLite cut the LIKE pattern at the NUL and answered every row; PostgreSQL refused it (500)
    with Store(backend_url) as store:
        store.create_generation(
            "lofi", model_name="musicgen-small", duration_seconds=2, sample_rate=32_000, channels=2
        )
        with TestClient(create_app(store, root=tmp_path)) as client:
            for path in ("/api/generations", "/generations"):
                response = client.get(path, params={"q": "zz\x00zz"})
                assert response.status_code == 400, response.text
                assert "NUL" in response.text


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
def test_the_first_and_last_days_are_empty_pages(web_store: Store, tmp_path: Path, day: str) -> None:
    # 9999-12-31's end overflowed datetime: a 500
    with TestClient(create_app(web_store, root=tmp_path)) as client:
        assert client.get("/api/generations", params={"day": day}).json() == {
            "items": [],
            "next_cursor": None,
        }
        assert client.get("/api/generations", params={"day": day, "q": "lofi"}).json()["items"] == []
        assert client.get("/generations", params={"day": day}).status_code == 200


def test_a_full_last_page_has_no_next_link(web_store: Store, tmp_path: Path) -> None:
    # a last page that was full carried a cursor to an empty page (the listing and the search alike)
    for i in range(3):  # four rows with the fixture's
        web_store.create_generation(f"lofi {i}", model_name="musicgen-small", duration_seconds=2)
    with TestClient(create_app(web_store, root=tmp_path)) as client:
        for params in ({}, {"q": "lofi"}):
            first = client.get("/api/generations", params={**params, "limit": "2"}).json()
            assert len(first["items"]) == 2 and first["next_cursor"] is not None
            cursor = first["next_cursor"]
            last = client.get("/api/generations", params={**params, "limit": "2", "cursor": cursor}).json()
            assert len(last["items"]) == 2 and last["next_cursor"] is None, params


@pytest.mark.parametrize("limit", ["\u00b2", "\u0663", "\uff15", "1e2", " 5"])
def test_a_limit_that_is_not_ascii_digits_is_a_bad_request(
    web_store: Store, tmp_path: Path, limit: str
) -> None:
    # str.isdigit() passed "²" (int() then raised: a 500) and "٣" (read as 3)
    with TestClient(create_app(web_store, root=tmp_path)) as client:
        for path in ("/api/generations", "/generations"):
            response = client.get(path, params={"limit": limit})
            assert response.status_code == 400, (path, response.text)


@pytest.mark.parametrize("port", ["70000", "-1", "0", "http"])
def test_serve_refuses_a_port_out_of_range_as_a_usage_error(
    sqlite_url: str, port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # --check said "ready" for port 70000, and serving ended in uvicorn's OverflowError traceback
    from musicstore.cli import EXIT_USAGE, main

    assert main(["serve", "--database", sqlite_url, "--check", "--port", port]) == EXIT_USAGE
    assert "not a TCP port" in capsys.readouterr().err


def test_serve_on_a_port_in_use_is_an_error_not_exit_3(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # uvicorn exits 3 when it cannot bind, which the CLI documents as "no generation with that id"
    import socket

    from musicstore.cli import EXIT_ERROR, main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "--database", sqlite_url, "--port", str(port), "--log-level", "critical"])
    assert code == EXIT_ERROR
    assert f"could not listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_a_long_most_used_prompt_links_to_its_generations(web_store: Store, tmp_path: Path) -> None:
    # the link carried the whole prompt (up to 20,000 characters) as ?q=, which the table refuses over 200
    import html
    import re

    long_prompt = "epic orchestral score, " * 20 + "the end"
    made = web_store.create_generation(
        long_prompt, model_name="musicgen-small", duration_seconds=2, sample_rate=32_000, channels=2
    )
    with TestClient(create_app(web_store, root=tmp_path)) as client:
        page = client.get("/prompts").text
        links = [html.unescape(href) for href in re.findall(r'href="(/generations\?q=[^"]*)"', page)]
        assert len(links) == 2
        for link in links:
            table = client.get(link)
            assert table.status_code == 200, table.text
        assert any(made.id in client.get(link).text for link in links)


def _either_case(text: str, flips: list[bool]) -> str:
    return "".join(
        c.swapcase() if flip and len(c.swapcase()) == 1 else c for c, flip in zip(text, flips, strict=True)
    )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    text=st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12).filter(
        lambda t: t.strip() == t and t.strip() != ""
    ),
    data=st.data(),
)
def test_a_prompt_search_finds_its_text_in_any_case_of_its_letters(
    backend_url: str, tmp_path: Path, text: str, data: st.DataObject
) -> None:
    # SQLite's lower() folds ASCII only: "CAFÉ" did not find "CAFÉ DEL MAR", nor "café" "CAFÉ"; neither did
    # PostgreSQL's under the C locale
    flips = data.draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    prompt = f"before {_either_case(text, flips)} after"
    with Store(backend_url) as store:
        made = store.create_generation(
            prompt, model_name="m", duration_seconds=2, sample_rate=32_000, channels=2
        )
        store.create_generation(
            "unrelated", model_name="m", duration_seconds=2, sample_rate=32_000, channels=2
        )
        with TestClient(create_app(store, root=tmp_path)) as client:
            found = client.get("/api/generations", params={"q": text}).json()["items"]
        store.cancel(made.id)
    assert made.id in [g["id"] for g in found], (text, prompt)


@pytest.mark.parametrize("text", ["CAFÉ", "café", "Café del", "ÉTÉ", "été"])
def test_a_prompt_search_folds_accented_letters(backend_url: str, tmp_path: Path, text: str) -> None:
    with Store(backend_url) as store:
        made = store.create_generation(
            "CAFÉ DEL MAR, été", model_name="m", duration_seconds=2, sample_rate=32_000, channels=2
        )
        store.create_generation(
            "cafe without accent", model_name="m", duration_seconds=2, sample_rate=32_000, channels=2
        )
        with TestClient(create_app(store, root=tmp_path)) as client:
            found = client.get("/api/generations", params={"q": text}).json()["items"]
    assert [g["id"] for g in found] == [made.id]


@pytest.mark.parametrize(
    "text",
    ["*", "?", "[a]", "]", "a*b", "100%", "_x_", "!", "é*", "?É", "[é]", "é]", "^é-", "É[!%_\\"],
)
def test_a_prompt_search_takes_pattern_characters_literally(
    backend_url: str, tmp_path: Path, text: str
) -> None:
    with Store(backend_url) as store:
        made = store.create_generation(
            f"odd {text} prompt", model_name="m", duration_seconds=2, sample_rate=32_000, channels=2
        )
        store.create_generation(
            "abc plain", model_name="m", duration_seconds=2, sample_rate=32_000, channels=2
        )
        with TestClient(create_app(store, root=tmp_path)) as client:
            found = client.get("/api/generations", params={"q": text}).json()["items"]
    assert [g["id"] for g in found] == [made.id]


def test_the_login_token_is_masked_in_uvicorns_access_lines(web_store: Store, tmp_path: Path) -> None:
    # `musicstore serve` printed "GET /login?token=<the token> HTTP/1.1" 303 on stderr
    import io
    import logging

    from uvicorn.logging import AccessFormatter

    token = "s3cret/dashboard+token="
    create_app(web_store, root=tmp_path, token=token)
    access = logging.getLogger("uvicorn.access")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False)
    )
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        for path in (
            "/login?token=s3cret%2Fdashboard%2Btoken%3D",
            f"/login?token={token}",
            f"/?x=1&token={token}",
            "/login?%74oken=s3cret%2Fdashboard%2Btoken%3D",  # the name percent-encoded: the app reads it too
        ):
            # as uvicorn's httptools/h11 protocols log a request
            access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 303)
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and all("=***" in line for line in lines), lines
    assert "s3cret" not in out.getvalue()


def test_serve_prints_an_ipv6_address_as_a_url(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from musicstore.cli import EXIT_OK, main

    assert main(["serve", "--database", sqlite_url, "--check", "--host", "::1", "--port", "8766"]) == EXIT_OK
    assert "http://[::1]:8766/" in capsys.readouterr().out


def test_an_asset_is_cached_and_a_page_is_not(web_store: Store, tmp_path: Path) -> None:
    # the security headers added "no-store" beside the assets' "max-age=3600": two conflicting headers
    with TestClient(create_app(web_store, root=tmp_path)) as client:
        asset = client.get("/static/app.js")
        assert asset.headers.get_list("cache-control") == ["max-age=3600"]
        assert asset.headers["content-security-policy"].startswith("default-src 'self'")
        assert client.get("/").headers.get_list("cache-control") == ["no-store"]


def _exported(store: Store, root: Path, *, peaks: bool | PeaksSpec) -> str:
    import numpy as np

    from musicstore.recording import export_generation

    store.create_generation("a drone", model_name="m", duration_seconds=2, sample_rate=32_000, channels=2)
    claimed = store.claim_next("gpu-0", lease_seconds=300)
    assert claimed is not None
    t = np.arange(64_000) / 32_000
    tone = (0.3 * np.sin(2 * np.pi * 220 * t) * np.linspace(0, 1, t.size)).astype(np.float32)
    export_generation(store, claimed, np.stack([tone, tone]), root=root, peaks=peaks)
    return claimed.id


def test_the_waveform_comes_from_the_recorded_peaks_file(
    web_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the issue: "the waveform drawn from the peaks file"; it was computed from the master on each uncached
    # request (a whole download from a bucket; 1 s for a 30 s clip), the export's peaks file left unread
    root = tmp_path / "audio"
    with_peaks, without = _exported(web_store, root, peaks=True), _exported(web_store, root, peaks=False)
    row = web_store.get_generation(with_peaks)
    assert row is not None
    recorded = row.metadata["peaks"]
    app = create_app(web_store, root=root)
    with TestClient(app) as client:
        computed = client.get(f"/api/generations/{without}/peaks").json()
        assert computed["samples_per_pixel"] == 64 and computed["length"] == 1000  # from the audio file
        monkeypatch.setattr(app.dashboard, "computed_peaks", None)  # no decoding of the master from here on
        found = client.get(f"/api/generations/{with_peaks}/peaks").json()
    assert found["samples_per_pixel"] == recorded["samples_per_pixel"] == 256
    assert found["length"] == recorded["length"] == 250 and len(found["peaks"]) == 500
    assert found["frames"] == 64_000 and found["sample_rate"] == 32_000
    lows, highs = found["peaks"][0::2], found["peaks"][1::2]
    assert all(-1 <= low <= high <= 1 for low, high in zip(lows, highs, strict=True))
    assert max(highs) == pytest.approx(max(computed["peaks"]), abs=1 / 128)  # 8-bit peaks


def test_a_peaks_file_that_fails_its_checksum_is_not_drawn(
    web_store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import re

    root = tmp_path / "audio"
    # the audiowaveform file alone: with a normalised file recorded, the waveform is read from that one
    # (its own damage: tests/test_peaks_s31.py)
    generation_id = _exported(web_store, root, peaks=PeaksSpec(normalized=False))
    row = web_store.get_generation(generation_id)
    assert row is not None
    key = row.metadata["peaks"]["key"]
    peaks_file = root / key
    document = peaks_file.read_text()
    # one value changed, the document still well formed: only its SHA-256 tells
    tampered = re.sub(r'"data":\[(-?\d+)', lambda m: f'"data":[{(int(m[1]) + 50) % 100}', document, count=1)
    assert tampered != document
    peaks_file.write_text(tampered)
    with TestClient(create_app(web_store, root=root)) as client:
        found = client.get(f"/api/generations/{generation_id}/peaks").json()
    assert found["samples_per_pixel"] == 64 and found["length"] == 1000  # computed from the audio instead
    warned = [r.getMessage() for r in caplog.records if r.name == "musicstore.web.app"]
    assert len(warned) == 1 and key in warned[0] and "not used" in warned[0]  # said, not swallowed


def test_a_cached_waveform_is_not_drawn_once_its_master_is_gone(web_store: Store, tmp_path: Path) -> None:
    """The waveform cached by a first request was answered (200) after its master was deleted, where the
    audio, the page and a new app said 404 "its file is missing"."""
    root = tmp_path / "audio"
    ids = [_exported(web_store, root, peaks=True), _exported(web_store, root, peaks=False)]
    with TestClient(create_app(web_store, root=root)) as client:
        for generation_id in ids:
            assert client.get(f"/api/generations/{generation_id}/peaks").status_code == 200  # now cached
            row = web_store.get_generation(generation_id)
            assert row is not None and row.file_path is not None
            (root / row.file_path).unlink()
            gone = client.get(f"/api/generations/{generation_id}/peaks")
            assert (gone.status_code, gone.json()["error"]) == (404, "no audio: its file is missing")


@pytest.mark.parametrize("normalized", [False, True])
def test_a_peaks_file_with_no_data_is_not_drawn(web_store: Store, tmp_path: Path, normalized: bool) -> None:
    """A recorded peaks file whose ``data`` is empty (no channel) was a 500 "internal error" (numpy's
    reduction of nothing): an audiowaveform file is now one that cannot be read (computed from the audio
    instead), a normalised one the 500 that names it."""
    import hashlib
    import json

    root = tmp_path / "audio"
    generation_id = _exported(web_store, root, peaks=PeaksSpec(normalized=normalized))
    row = web_store.get_generation(generation_id)
    assert row is not None
    record = row.metadata["peaks"]
    part = record["normalized"] if normalized else record
    document = json.loads((root / part["key"]).read_text())
    empty = json.dumps({**document, "data": []}).encode()
    (root / part["key"]).write_bytes(empty)
    part["sha256"] = hashlib.sha256(empty).hexdigest()  # the record matches it: only its data is wrong
    web_store.merge_metadata(generation_id, {"peaks": record})
    with TestClient(create_app(web_store, root=root), raise_server_exceptions=False) as client:
        found = client.get(f"/api/generations/{generation_id}/peaks")
    if normalized:
        assert found.status_code == 500 and part["key"] in found.json()["error"]
    else:
        assert found.status_code == 200 and found.json()["length"] == 1000  # from the audio file


@pytest.fixture
def c_locale_postgres_url(musicstore_postgres_server: Any) -> Iterator[str]:
    """A migrated database whose character type is C: its lower() folds ASCII letters only."""
    import os

    from musicstore import migrate

    server = musicstore_postgres_server
    name = f"musicstore_c_locale_{os.getpid()}"
    server.admin(
        f"DROP DATABASE IF EXISTS {name}",
        f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'",
    )
    migrate(server.url(name))
    yield server.url(name)
    server.admin(f"DROP DATABASE {name} WITH (FORCE)")


def test_a_prompt_search_folds_accented_letters_under_the_c_locale(
    c_locale_postgres_url: str, tmp_path: Path
) -> None:
    with Store(c_locale_postgres_url) as store:
        made = store.create_generation(
            "CAFÉ DEL MAR, été", model_name="m", duration_seconds=2, sample_rate=32_000, channels=2
        )
        with TestClient(create_app(store, root=tmp_path)) as client:
            for text in ("CAFÉ", "café", "ÉTÉ", "Été", "del mar"):
                found = client.get("/api/generations", params={"q": text}).json()["items"]
                assert [g["id"] for g in found] == [made.id], text


@pytest.mark.parametrize("token", ["t\u20acken-euro-sign", "tok\U0001f600-emoji"], ids=["euro", "emoji"])
def test_login_works_for_a_token_beyond_latin_1(web_store: Store, tmp_path: Path, token: str) -> None:
    # the cookie carried the token as is: a header is latin-1, so /login with the right token was a 500
    with TestClient(create_app(web_store, root=tmp_path, token=token)) as client:
        assert (
            client.get("/api/overview", headers={b"Authorization": b"Bearer " + token.encode()}).status_code
            == 200
        )
        login = client.get("/login", params={"token": token}, follow_redirects=False)
        assert login.status_code == 303
        assert token not in login.headers["set-cookie"]
        assert client.get("/api/overview").status_code == 200  # the cookie /login set
        assert client.get("/static/app.js").status_code == 200


@pytest.mark.parametrize(
    "token", ["trailing-newline\n", " spaced-token", "spaced-token ", "tab\tin-token", "nul\x00token!"]
)
def test_a_token_no_header_can_carry_is_refused(web_store: Store, tmp_path: Path, token: str) -> None:
    # a token read from a file with its newline was accepted, and no Authorization header could ever match it
    from musicstore.errors import InvalidInput

    with pytest.raises(InvalidInput, match="token") as caught:
        create_app(web_store, root=tmp_path, token=token)
    assert token.strip() not in str(caught.value)


def test_serve_refuses_a_token_read_with_its_newline(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from musicstore.cli import EXIT_OK, main

    monkeypatch.setenv("MUSICSTORE_WEB_TOKEN", "from-a-secret-file\n")
    assert main(["serve", "--database", sqlite_url, "--check"]) != EXIT_OK
    err = capsys.readouterr().err
    assert "token" in err and "from-a-secret-file" not in err


RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: reverses what follows it, up to the end of its bidi paragraph


class _Texts(HTMLParser):
    """Each text of a page with the element it lies in (an attribute's value is no text)."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.texts: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in {"meta", "link", "input", "br", "img", "progress"}:  # void (progress: closed at once)
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.open:
            del self.open[len(self.open) - 1 - self.open[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        self.texts.append((self.open[-1] if self.open else "", data))


def _isolated(page: str, value: str) -> None:
    """Every text on ``page`` that shows ``value`` is a ``<bdi>`` of its own, but a select's ``<option>``
    (shown alone: an override in it reaches nothing else)."""
    parser = _Texts()
    parser.feed(page)
    where = [tag for tag, data in parser.texts if value in data]
    assert where, value
    assert {tag for tag in where if tag != "option"} <= {"bdi"}, (value, where)


def test_user_text_with_a_bidi_override_is_isolated_on_every_page(sqlite_url: str, tmp_path: Path) -> None:
    # escaped, so no injection, but an RLO in the model name reversed the rest of its line ("· 2.0 s · 32000
    # Hz ... owner ..."), in the stage the "reported ..." after it: each user-supplied field is a <bdi>
    text = {
        "prompt": f"a prompt {RLO}reversed",
        "model_name": f"musicgen{RLO}small",
        "model_version": f"v{RLO}1",
        "owner_key": f"team{RLO}a",
        "worker": f"gpu{RLO}0",
        "stage": f"sam{RLO}pling",
        "error": f"out of {RLO}memory",
        "key": f"k{RLO}ey",
        "value": f"va{RLO}lue",
    }
    with Store(sqlite_url) as store:
        job = store.create_generation(
            text["prompt"],
            model_name=text["model_name"],
            model_version=text["model_version"],
            owner_key=text["owner_key"],
            duration_seconds=2,
            metadata={text["key"]: text["value"]},
        )
        store.claim_next(text["worker"])
        store.fail(job.id, text["error"], worker_id=text["worker"])  # back to pending, its error kept
        store.claim_next(text["worker"])
        store.report_progress(job.id, text["worker"], 0.5, text["stage"])
        with TestClient(create_app(store, root=tmp_path)) as client:
            pages = {path: client.get(path).text for path in ("/generations", "/prompts", "/workers")}
            pages["one"] = client.get(f"/generations/{job.id}").text
    for value in text.values():
        _isolated(pages["one"], value)
    for value in ("prompt", "model_name"):
        _isolated(pages["/generations"], text[value])
    _isolated(pages["/prompts"], text["prompt"])
    for value in ("worker", "model_name", "stage"):
        _isolated(pages["/workers"], text[value])


@pytest.mark.parametrize("host", ["", " ", " 127.0.0.1", "::1\n"])
def test_serve_refuses_an_empty_host_as_a_usage_error(
    sqlite_url: str, host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # --host '' listened on every interface (uvicorn's reading of ""), with only a no-token warning
    from musicstore.cli import EXIT_USAGE, main

    assert main(["serve", "--database", sqlite_url, "--check", "--host", host]) == EXIT_USAGE
    assert "not an address" in capsys.readouterr().err


def test_serve_warns_that_a_token_on_the_command_line_shows_in_ps(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--token TOKEN is in the process's arguments, which every user of the host reads (ps): it served
    without a word, where $MUSICSTORE_WEB_TOKEN keeps it out of sight. --token still works."""
    from musicstore.cli import EXIT_OK, main

    monkeypatch.delenv("MUSICSTORE_WEB_TOKEN", raising=False)
    assert main(["serve", "--database", sqlite_url, "--check", "--token", "on-the-line"]) == EXIT_OK
    err = capsys.readouterr().err
    assert "--token is visible to every user of this host (ps); set $MUSICSTORE_WEB_TOKEN" in err
    assert "on-the-line" not in err
    monkeypatch.setenv("MUSICSTORE_WEB_TOKEN", "from-the-environment")
    assert main(["serve", "--database", sqlite_url, "--check"]) == EXIT_OK
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("where", ["bucket", "folder"])
def test_the_waveform_of_a_truncated_master_is_refused_not_drawn_short(
    sqlite_url: str, tmp_path: Path, where: str, request: pytest.FixtureRequest
) -> None:
    """A master cut short (its WAV data chunk declares more bytes than the file holds: a crash or a copy
    mid-write, recorded with the checksum of what is there) has no waveform: 404 with a clear error, as a
    file that is not audio. Before, a master in a bucket was read by ``sf.read``, which reads such a file
    without a word: the API drew the half that is there as the whole clip (200, frames halved); a master in
    a folder was refused already (``file_peaks``, 996ced8). The whole file beside it is drawn."""
    import io

    import numpy as np
    import soundfile as sf

    from musicstore.filestore import LocalFileStore, open_filestore
    from musicstore.ops.storage import record_storage

    if where == "bucket":
        files = open_filestore(request.getfixturevalue("musicstore_s3_url"))
    else:
        files = LocalFileStore(tmp_path / "audio")
    buffer = io.BytesIO()
    sf.write(buffer, np.full((32_000, 2), 0.25, dtype=np.float32), 32_000, format="WAV", subtype="PCM_16")
    whole = buffer.getvalue()
    ids = []
    with Store(sqlite_url) as store:
        for data in (whole[: len(whole) // 2], whole):
            store.create_generation(
                "a drone", model_name="m", duration_seconds=1, sample_rate=32_000, channels=2
            )
            claimed = store.claim_next("gpu-0")
            assert claimed is not None
            info = files.put(f"{claimed.id}.wav", data)
            assert info.checksum is not None
            store.complete_generation(claimed.id, file_path=info.key, file_size_bytes=info.size)
            store.run(record_storage, claimed.id, storage_url=files.url, key=info.key, checksum=info.checksum)
            ids.append(claimed.id)
        with TestClient(create_app(store), raise_server_exceptions=False) as client:
            cut = client.get(f"/api/generations/{ids[0]}/peaks")
            drawn = client.get(f"/api/generations/{ids[1]}/peaks")
    files.close()
    assert (cut.status_code, cut.json()) == (
        404,
        {"error": "no waveform: the audio file cannot be read as audio", "status": 404},
    )
    assert drawn.status_code == 200 and drawn.json()["frames"] == 32_000


@pytest.mark.parametrize("where", ["bucket", "folder"])
def test_the_waveform_of_a_master_gone_or_changed_is_a_clear_404_in_a_folder_and_a_bucket_alike(
    sqlite_url: str, tmp_path: Path, where: str, request: pytest.FixtureRequest
) -> None:
    """A master gone from its store is 404 'its file is missing', one whose bytes no longer hash to the
    recorded SHA-256 is 404 'no waveform' (the reason logged), wherever it is. Before, a master in a bucket
    gave 502 'could not be read from its storage' for both (ObjectNotFound, ChecksumMismatch: StorageErrors),
    as if the store were down, where a folder said the file is missing."""
    import io

    import numpy as np
    import soundfile as sf

    from musicstore.filestore import LocalFileStore, open_filestore
    from musicstore.ops.storage import record_storage

    if where == "bucket":
        files = open_filestore(request.getfixturevalue("musicstore_s3_url"))
    else:
        files = LocalFileStore(tmp_path / "audio")
    buffer = io.BytesIO()
    sf.write(buffer, np.full((32_000, 1), 0.25, dtype=np.float32), 32_000, format="WAV", subtype="PCM_16")
    whole = buffer.getvalue()
    ids = []
    with Store(sqlite_url) as store:
        for _ in range(2):
            store.create_generation(
                "a drone", model_name="m", duration_seconds=1, sample_rate=32_000, channels=1
            )
            claimed = store.claim_next("gpu-0")
            assert claimed is not None
            info = files.put(f"{claimed.id}.wav", whole)
            assert info.checksum is not None
            store.complete_generation(claimed.id, file_path=info.key, file_size_bytes=info.size)
            store.run(record_storage, claimed.id, storage_url=files.url, key=info.key, checksum=info.checksum)
            ids.append(claimed.id)
        files.delete(f"{ids[0]}.wav")
        files.delete(f"{ids[1]}.wav")
        files.put(f"{ids[1]}.wav", whole[:-2] + b"\x01\x02")  # other bytes, the same size
        with TestClient(create_app(store), raise_server_exceptions=False) as client:
            gone = client.get(f"/api/generations/{ids[0]}/peaks")
            changed = client.get(f"/api/generations/{ids[1]}/peaks")
    files.close()
    assert (gone.status_code, gone.json()["error"]) == (404, "no audio: its file is missing")
    if where == "bucket":  # a folder's waveform is read from the file as it is (no hash of the whole file)
        assert (changed.status_code, changed.json()["error"]) == (
            404,
            "no waveform: the audio file cannot be read as audio",
        )


def test_create_app_with_an_async_store_says_what_to_pass(sqlite_url: str) -> None:
    """An asyncio application (Starlette's own users) passing its AsyncStore gets an InvalidInput that names
    what the dashboard takes and what to do, as read_metrics does; before, it was told 'the database URL
    must be a str without NUL, got a AsyncStore', as if it had passed a mistyped URL."""
    import asyncio

    from musicstore.aio import AsyncStore
    from musicstore.errors import InvalidInput

    astore = AsyncStore(sqlite_url)
    try:
        with pytest.raises(InvalidInput) as raised:
            create_app(astore)  # type: ignore[arg-type]
    finally:
        asyncio.run(astore.close())
    message = str(raised.value)
    assert "create_app takes a musicstore Store or a database URL" in message
    assert "AsyncStore" in message and "URL" in message and "NUL" not in message
    with pytest.raises(InvalidInput, match="create_app takes a musicstore Store or a database URL"):
        create_app(42)  # type: ignore[arg-type]


def test_a_500_or_502_is_logged_with_its_reason(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A store or storage error answered 500 'the store could not answer' or 502 'could not be read from its
    storage' and logged nothing (the error handler swallowed it, where uvicorn logs other exceptions): the
    operator saw failing pages and no reason anywhere. Each is logged as an error naming the path and the
    reason (musicstore's messages, which carry no secret)."""
    import logging
    import sqlite3

    outside = tmp_path / "outside.wav"
    outside.write_bytes(b"RIFF")
    root = tmp_path / "audio"
    root.mkdir()
    (root / "link.wav").symlink_to(outside)  # a row's file that leaves the root: refused, 502
    with Store(sqlite_url) as store:
        store.create_generation("x", model_name="m", duration_seconds=1, sample_rate=32_000, channels=1)
        claimed = store.claim_next("gpu-0")
        assert claimed is not None
        store.complete_generation(claimed.id, file_path="link.wav", file_size_bytes=4)
        with TestClient(create_app(store, root=root), raise_server_exceptions=False) as client:
            caplog.set_level(logging.ERROR, logger="musicstore.web")
            assert client.get(f"/audio/{claimed.id}").status_code == 502
            database = sqlite_url.removeprefix("sqlite:///")
            with sqlite3.connect(database) as raw:  # the store broken under the app: its reads fail
                raw.execute("DROP TABLE generation_model_totals")
            assert client.get("/api/overview", params={"token": "x"}).status_code == 500
    logged = [r for r in caplog.records if r.name.startswith("musicstore.web") and r.levelno == logging.ERROR]
    assert len(logged) == 2, [r.getMessage() for r in caplog.records]
    assert f"/audio/{claimed.id}" in logged[0].getMessage()
    assert "outside the output root" in logged[0].getMessage()
    assert "/api/overview" in logged[1].getMessage() and "generation_model_totals" in logged[1].getMessage()
    assert "token" not in logged[1].getMessage()  # the path alone, never its query


def test_the_overviews_hours_count_every_completion_of_the_last_day(
    backend_url: str, musicstore_clock: Any, tmp_path: Path
) -> None:
    """The hourly chart's 'completed' is the store's throughput: every completion of the last 24 hours,
    whenever its row was created. It counted only rows created in the last 24 hours, so a queue working
    through a backlog older than a day showed no completion at all (4 here, in the last hour)."""
    clock = musicstore_clock
    with Store(backend_url, clock=clock) as store:
        for i in range(6):
            store.create_generation(
                f"p{i}", model_name="m", duration_seconds=1, sample_rate=32_000, channels=1
            )
        clock.advance(30 * 3600)  # a backlog more than a day old
        for i in range(5):
            claimed = store.claim_next("gpu-0", lease_seconds=60)
            assert claimed is not None
            if i < 4:
                store.complete_generation(claimed.id, file_path=f"{claimed.id}.wav", file_size_bytes=10)
            else:
                store.fail(claimed.id, "boom", retry=False, worker_id="gpu-0")
        store.create_generation("new", model_name="m", duration_seconds=1, sample_rate=32_000, channels=1)
        with TestClient(create_app(store, root=tmp_path)) as client:
            hours = client.get("/api/overview").json()["charts"]["hours"]
    series = dict(hours["series"])
    assert series["completed"][-1] == 4 and sum(series["completed"]) == 4
    assert sum(series["created"]) == 1  # the one created in the last 24 hours, as before


def test_metrics_count_every_completion_of_the_window(
    backend_url: str, musicstore_clock: Any, tmp_path: Path
) -> None:
    """musicstore_window_completions{window} counts the completions of the trailing window whenever their
    rows were created, so a rate is read off /metrics while the queue works through a backlog older than the
    window. The window's figures counted only rows created in it: with every job waiting more than an hour,
    /metrics (and read_metrics) showed no completion, though the workers finished 3 in that hour."""
    from prometheus_client.parser import text_string_to_metric_families

    from musicstore.metrics import metrics_text, read_metrics

    clock = musicstore_clock
    with Store(backend_url, clock=clock) as store:
        for i in range(4):
            store.create_generation(
                f"p{i}", model_name="m", duration_seconds=1, sample_rate=32_000, channels=1
            )
        clock.advance(2 * 3600)  # every job has waited two hours
        for _ in range(3):
            claimed = store.claim_next("gpu-0", lease_seconds=60)
            assert claimed is not None
            store.complete_generation(claimed.id, file_path=f"{claimed.id}.wav", file_size_bytes=10)
        clock.advance(3 * 3600 - 60)  # older than the window: not counted
        claimed = store.claim_next("gpu-0", lease_seconds=60)
        assert claimed is not None
        store.complete_generation(claimed.id, file_path=f"{claimed.id}.wav", file_size_bytes=10)
        assert read_metrics(store, window=3600).window.completions == 1
        assert read_metrics(store, window=4 * 3600).window.completions == 4
        text = metrics_text(store).decode()
        with TestClient(create_app(store, root=tmp_path)) as client:
            api = client.get("/api/overview").json()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    (sample,) = families["musicstore_window_completions"].samples
    assert sample.labels == {"window": "3600s"} and sample.value == 1
    assert api["window"]["completions"] == 4  # the overview's window is a day


def test_the_overviews_hours_count_every_creation_of_a_busy_day(
    sqlite_url: str, musicstore_clock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hourly 'created' series counts every row created in each hour. It counted the rows of the
    overview's snapshot, the newest 50,000 of the day, so on a busier day the earlier hours showed none (here
    the snapshot's limit is made 3 to see it with 5 rows)."""
    from musicstore.web import dashboard

    clock = musicstore_clock
    with Store(sqlite_url, clock=clock) as store:
        for i in range(5):
            store.create_generation(
                f"p{i}", model_name="m", duration_seconds=1, sample_rate=32_000, channels=1
            )
            clock.advance(3600)
        monkeypatch.setattr(dashboard, "OVERVIEW_ROWS", 3)  # read by Dashboard.overview_data
        with TestClient(create_app(store, root=tmp_path)) as client:
            hours = client.get("/api/overview").json()["charts"]["hours"]
    created = dict(hours["series"])["created"]
    assert sum(created) == 5 and created[-6:] == [1, 1, 1, 1, 1, 0]
