"""The demo works only on the jobs it enqueued: it never claims, exports or completes anyone else's."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from musicstore import InvalidInput, Status, Store, migrate
from musicstore.cli.demo import run_demo


def _foreign(store: Store) -> str:
    job = store.create_generation(
        "someone else's job", model_name="m", duration_seconds=1, sample_rate=32_000, channels=1
    )
    return job.id


def test_a_database_with_pending_jobs_is_refused_and_left_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    migrate(url)
    with Store(url) as store:
        foreign = _foreign(store)
        before = store.get_generation(foreign)
    with pytest.raises(InvalidInput, match="1 pending job"):
        run_demo(url, count=1, output_root=tmp_path / "out", echo=lambda _: None)
    with Store(url) as store:
        assert store.get_generation(foreign) == before
        assert store.count_generations() == 1
    assert not (tmp_path / "out").exists()


def test_a_job_enqueued_by_someone_else_meanwhile_is_handed_back_and_the_demo_stops(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    foreign: list[str] = []

    def enqueue_once(done: int) -> None:
        if not foreign:
            with Store(url) as other:
                foreign.append(_foreign(other))

    with pytest.raises(InvalidInput, match="handed it back"):
        run_demo(
            url,
            count=2,
            seconds=1.0,
            output_root=tmp_path / "out",
            echo=lambda _: None,
            progress=enqueue_once,
        )
    with Store(url) as store:
        job = store.get_generation(foreign[0])
        assert store.count_generations(status="completed") == 2
    assert job is not None and job.status is Status.PENDING and job.file_path is None
    assert len(list((tmp_path / "out").rglob("*.wav"))) == 2


def test_demo_makes_and_records_each_jobs_renditions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/demo.db"
    jobs: list[dict[str, Any]] = []
    lines: list[str] = []
    root = tmp_path / "out"
    run_demo(
        url, count=2, seconds=1.0, output_root=root, echo=lines.append, renditions="mp3,opus", collect=jobs
    )
    assert len(jobs) == 2
    with Store(url) as store:
        for job in jobs:
            made = job["renditions"]
            assert [r.format for r in made] == ["mp3", "opus"]
            assert store.list_renditions(job["generation"].id) == sorted(made, key=lambda r: r.format)
            for r in made:
                assert (root / r.storage_key).stat().st_size == r.file_size_bytes
                assert r.true_peak_dbtp is not None and r.true_peak_dbtp <= -1.0
    assert any(line.startswith("rendition") for line in lines)  # the renditions' table


def test_demo_refuses_an_unknown_rendition_format_before_anything(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/demo.db"
    with pytest.raises(InvalidInput, match="aac"):
        run_demo(url, count=1, output_root=tmp_path / "out", echo=lambda _: None, renditions="mp3,aac")
    assert not (tmp_path / "demo.db").exists() and not (tmp_path / "out").exists()


def test_cli_demo_to_s3_with_renditions_as_json(
    musicstore_s3_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from musicstore.cli import demo, main
    from musicstore.filestore import open_filestore

    monkeypatch.setattr(demo, "run_demo", functools.partial(demo.run_demo, seconds=1.0))  # short clips
    url = f"sqlite:///{tmp_path}/demo.db"
    args = ["demo", "--count", "1", "--renditions", "opus", "--profile", "podcast", "--json"]
    assert main([*args, "-d", url, "-o", musicstore_s3_url]) == 0
    document = json.loads(capsys.readouterr().out)  # one JSON document, nothing else on stdout
    (job,) = document["generations"]
    assert job["storage_url"] == musicstore_s3_url and document["stats"]["total"] == 1
    (made,) = job["renditions"]
    assert made["format"] == "opus" and made["profile"] == "podcast"
    objects = open_filestore(musicstore_s3_url)
    try:
        peaks = job["generation"]["metadata"]["peaks"][
            "key"
        ]  # the export's waveform peaks, beside the master
        normalized = job["generation"]["metadata"]["peaks"]["normalized"]["key"]  # and their normalised form
        assert {o.key for o in objects.list()} == {job["key"], peaks, normalized, made["storage_key"]}
        assert objects.head(made["storage_key"]).checksum == made["checksum"]
    finally:
        objects.close()


def test_no_renditions_is_the_default_and_an_empty_list() -> None:
    from musicstore.cli.demo import rendition_formats

    assert rendition_formats("") == rendition_formats(()) == [] and rendition_formats(" ") == []
    assert rendition_formats("mp3, OPUS,mp3") == ["mp3", "opus"]
    with pytest.raises(InvalidInput):
        rendition_formats("mp3,,opus")
