"""Session 36: a cursor is one the store handed out, written as it wrote it; the CLI's numbers are ASCII.

A keyset cursor was decoded leniently: ``int()`` read `` 12``, ``+12``, ``1_2`` and other scripts' digits,
and base64 skipped characters outside its alphabet, so text the store never handed out was taken as a page's
start. The library's and the dashboard's decoders were two copies of that code; they are one now, which
encodes what it decoded again and compares. ``--max-bytes`` and ``--older-than`` read ``٥MB`` as 5 MB (the
regular expression's ``\\d`` is any script's digit); so did the CLI's other numbers and units (sample rates,
bitrates, ``--jitter``), the dashboard's day, and the layout's date in a key. Storage URLs with a tab or a
newline were read with it dropped (``urlsplit``), database URLs with a blank at their ends were taken, an S3
region with a last newline or an endpoint with blanks passed botocore's checks, and a ``tzinfo`` whose
offset is None was read as aware by ``Provenance`` and ``layout_path``.
"""

from __future__ import annotations

import argparse
import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from musicstore import InvalidInput, Store
from musicstore.cli import parse_duration, parse_size
from musicstore.cli.arguments import bitrate, fraction, owner_limit, sample_rate
from musicstore.filestore import open_filestore
from musicstore.maintenance.usage import _day
from musicstore.models import to_micros
from musicstore.ops.reads import decode_cursor, encode_cursor
from musicstore.storage_names import store_url
from musicstore.web.reads import decode_cursor as dashboard_cursor
from musicstore.web.reads import parse_day
from tests.conftest import new_job

_IDS = st.uuids().map(str)
_TIMES = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)
)


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@given(created_at=_TIMES, generation_id=_IDS)
def test_a_cursor_decodes_to_what_was_encoded(created_at: datetime, generation_id: str) -> None:
    cursor = encode_cursor(created_at, generation_id)
    assert decode_cursor(cursor) == (created_at, generation_id)
    assert dashboard_cursor(cursor) == (created_at, generation_id)


@given(
    created_at=_TIMES,
    generation_id=_IDS,
    change=st.sampled_from([" {}", "+{}", "{} ", "0{}", "٠{}"]),
    underscore=st.booleans(),
)
def test_a_cursor_written_otherwise_is_refused(
    created_at: datetime, generation_id: str, change: str, underscore: bool
) -> None:
    micros = str(to_micros(created_at))
    written = change.format(micros[0] + "_" + micros[1:] if underscore and len(micros) > 1 else micros)
    cursor = _cursor(f"{written}:{generation_id}")
    assert decode_cursor(cursor) is None
    with pytest.raises(InvalidInput, match="not one this dashboard handed out"):
        dashboard_cursor(cursor)


@pytest.mark.parametrize("change", ["padding", "outside the alphabet", "other digits"])
def test_the_store_refuses_a_cursor_it_did_not_hand_out(store: Store, change: str) -> None:
    for i in range(3):
        new_job(store, f"song {i}")
    page = store.list_generations(limit=1)
    cursor = page.next_cursor
    assert cursor is not None and len(store.list_generations(limit=1, cursor=cursor).items) == 1
    micros, generation_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(":")
    arabic = micros.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    other: dict[str, str] = {
        "padding": cursor + "=" * (4 - len(cursor) % 4 or 4),
        "outside the alphabet": cursor[:4] + "!" + cursor[4:],
        "other digits": _cursor(f"{arabic}:{generation_id}"),
    }
    with pytest.raises(InvalidInput, match="not one this store handed out"):
        store.list_generations(limit=1, cursor=other[change])


@pytest.mark.parametrize("text", ["٥", "١٢MB", "1.٥GB", "５GB", "٥KiB"])
def test_a_size_is_ascii_digits(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a size"):
        parse_size(text)


@pytest.mark.parametrize("text", ["٥d", "1.٥h", "３０d"])
def test_a_duration_is_ascii_digits(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        parse_duration(text)


def test_the_ascii_forms_still_parse() -> None:
    assert parse_size("1.5GB") == 1_500_000_000 and parse_duration("1.5h") == timedelta(minutes=90)


def test_a_key_in_another_scripts_digits_is_not_the_date_layout() -> None:
    modified = datetime(2026, 3, 4, 5, 6, tzinfo=UTC).timestamp()
    assert _day("٢٠٢٦/٠١/٠٢/x.wav", modified) == "2026-03-04"  # its modification time's day, not 2026-01-02
    assert _day("2026/01/02/x.wav", modified) == "2026-01-02"


# --- the CLI's other numbers and units: printable ASCII ---------------------------------------------------

KELVIN = "\u212a"  # lower-cases to an ASCII k


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (parse_size, f"2{KELVIN}iB"),
        (parse_size, f"5{KELVIN}B"),
        (parse_size, "5\u3000MB"),
        (parse_size, "5\x1fMB"),
        (parse_duration, "30\x1cd"),
        (parse_duration, "30\u2003d"),
        (sample_rate, f"44.1{KELVIN}"),
        (sample_rate, "４８000"),
        (bitrate, "١٩٢k"),
        (bitrate, "१२८"),
        (bitrate, f"192{KELVIN}"),
        (fraction, "٠.٥"),
        (fraction, "0_0.2_5"),
        (fraction, "25e-2"),
        (fraction, "nan"),
        (fraction, "\u30000.3"),
        (owner_limit, "NONE"),
        (owner_limit, "None"),
    ],
)
def test_a_cli_value_is_printable_ascii_as_documented(parse: Callable[[str], Any], text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse(text)


def test_the_documented_forms_still_parse() -> None:
    assert (parse_size(" 5 MB "), parse_size("2GiB"), parse_duration(" 45s ")) == (
        5_000_000, 2 * 2**30, timedelta(seconds=45)
    )  # fmt: skip
    assert (sample_rate("44.1k"), sample_rate("44.1K"), sample_rate("48000")) == (44100, 44100, 48000)
    assert (bitrate("192"), bitrate("192k"), bitrate("192K")) == (192, 192, 192)
    assert (fraction("0.5"), fraction(".25"), fraction("1"), fraction("0")) == (0.5, 0.25, 1.0, 0.0)
    assert (owner_limit("none"), owner_limit(" 5 "), owner_limit("0")) == (None, 5, 0)


def test_jitter_on_the_command_line_is_a_plain_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from musicstore.cli import EXIT_USAGE, main

    url = f"sqlite:///{tmp_path}/db.sqlite"
    Store(url, migrate=True).close()
    for value in ["٠.٥", "25e-2", "0_0.5"]:
        assert main(["requeue-expired", "-d", url, "--backoff", "10s", "--jitter", value]) == EXIT_USAGE
        assert "--jitter" in capsys.readouterr().err
    assert main(["requeue-expired", "-d", url, "--backoff", "10s", "--jitter", "0.25"]) == 0


# --- the dashboard's day ---------------------------------------------------------------------------------


@pytest.mark.parametrize("day", ["２０２４-01-15", "٢٠٢٤-01-15", "2024-01-1٥", "2024-01- 5", " 2024-01-05"])
def test_a_dashboard_day_is_ascii_digits(day: str) -> None:
    with pytest.raises(InvalidInput, match="YYYY-MM-DD"):
        parse_day(day)


def test_a_dashboard_day_as_documented() -> None:
    start = datetime(2024, 1, 5, tzinfo=UTC)
    assert parse_day("2024-01-05") == parse_day("2024-1-5") == (start, start + timedelta(days=1))


# --- storage URLs: a control character is refused, not dropped -------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["s3://my-bu\tcket/music", "s3://my-bucket/mus\nic", "s3://my-bucket/music\r", "file:///srv/au\tdio",
     "file:///srv/audio\n", "s3://my-bucket//music", "s3://my-bucket//"],
)  # fmt: skip
def test_a_storage_url_is_taken_as_written_or_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as refused:
        store_url(url)
    assert url not in str(refused.value)  # not echoed: a URL may hold a secret
    if url.startswith("file:"):
        with pytest.raises(InvalidInput):
            open_filestore(url.replace("/srv/", f"{tmp_path}/"))
        assert list(tmp_path.iterdir()) == []


def test_a_folder_name_with_a_newline_is_percent_encoded(tmp_path: Path) -> None:
    folder = tmp_path / "au\ndio"
    files = open_filestore(folder.as_uri())
    files.put("a.wav", b"RIFF")
    assert (folder / "a.wav").read_bytes() == b"RIFF" and store_url(folder.as_uri()) == folder.as_uri()


# --- database URLs, S3 settings and datetimes (a second hunt, of the library's own inputs) ----------------


@pytest.mark.parametrize(
    "url",
    ["sqlite:///jobs.db\n", "sqlite:///jobs.db ", " sqlite:///jobs.db", "sqlite:///jobs.db\t",
     "sqlite:///jobs.db\r\n", "postgresql://u:s3cret@localhost/db\n"],
)  # fmt: skip
def test_a_database_url_with_a_blank_at_its_ends_is_refused(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret file's last newline was part of the SQLite file's name: a fresh empty database beside the
    real one, migrated and used."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInput, match="at its ends") as refused:
        Store(url, migrate=True)
    assert "s3cret" not in str(refused.value)
    monkeypatch.setenv("MUSICSTORE_DATABASE_URL", url)
    with pytest.raises(InvalidInput, match="at its ends"):
        Store(migrate=True)
    assert list(tmp_path.iterdir()) == []


def test_a_percent_encoded_space_or_newline_ends_the_files_name(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path}/my%20jobs%0A", migrate=True) as store:
        assert store.count_generations() == 0
    assert (tmp_path / "my jobs\n").is_file()


@pytest.mark.parametrize(
    "settings",
    [
        {"region": "us-east-1\n"},
        {"endpoint_url": " http://127.0.0.1:9000"},
        {"endpoint_url": "\x01http://127.0.0.1:9000"},
        {"endpoint_url": "\x0c\x1f http://127.0.0.1:9000"},
        {"endpoint_url": "http://\u212aeys.example:9000"},
        {"endpoint_url": "http://127.0.0.1:9000 "},
    ],
    ids=["region newline", "space", "SOH", "FF US", "Kelvin", "trailing space"],
)
def test_a_malformed_s3_endpoint_or_region_is_refused_when_the_store_is_made(
    settings: dict[str, Any],
) -> None:
    """urllib strips leading control characters and spaces and lower-cases the Kelvin sign before botocore's
    checks; botocore's region pattern ends in $, which a last newline passes."""
    pytest.importorskip("boto3")
    from musicstore import StorageError
    from musicstore.filestore.s3_settings import check_settings

    with pytest.raises(StorageError, match="cannot make an S3 client"):
        check_settings("my-bucket", "music/", **settings)


@pytest.mark.parametrize("blank", ["", "  "])
def test_aws_endpoint_url_set_but_empty_is_refused(blank: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compose file's ``${S3_ENDPOINT}`` not set: the store was made for AWS S3 itself."""
    pytest.importorskip("boto3")
    from musicstore.filestore.s3_settings import check_settings

    monkeypatch.setenv("AWS_ENDPOINT_URL", blank)
    with pytest.raises(InvalidInput, match="AWS_ENDPOINT_URL is set but empty"):
        check_settings("my-bucket", "music/")
    assert check_settings("my-bucket", "music/", endpoint_url="http://127.0.0.1:9000")["endpoint_url"] == (
        "http://127.0.0.1:9000"
    )  # given, the variable is not read


class _NoOffset(tzinfo):
    """A tzinfo whose offset is None: a naive datetime by Python's rules (read in the host's zone)."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


def test_a_datetime_whose_offset_is_none_is_naive_to_provenance_and_the_layout(tmp_path: Path) -> None:
    from musicstore.audio import layout_path
    from musicstore.audio.tags import Provenance

    when = datetime(2026, 1, 31, 22, 0, tzinfo=_NoOffset())
    with pytest.raises(InvalidInput, match="timezone-aware"):
        Provenance("a prompt", created_at=when)
    with pytest.raises(InvalidInput, match="timezone-aware"):
        layout_path(tmp_path, "abc", when=when)
    with pytest.raises(InvalidInput, match="years 1 to 9999"):
        layout_path(tmp_path, "abc", when=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))
    aware = datetime(2026, 1, 31, 22, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert layout_path(tmp_path, "abc", when=aware) == tmp_path / "2026" / "02" / "01" / "abc.wav"
    assert Provenance("a prompt", created_at=aware).created_at == datetime(2026, 2, 1, 3, 0, tzinfo=UTC)
