"""Claims of docs/usage.md, queue.md, async.md, operations.md and testing.md that the code did not keep: each
test quotes the claim it holds the code to."""

from __future__ import annotations

from pathlib import Path

import pytest

import musicstore
import musicstore.compat
from musicstore import InvalidInput, Store
from musicstore.aio import AsyncStore
from musicstore.urls import URL_ENV


@pytest.mark.parametrize("value", ["", "   "])
def test_a_set_but_empty_database_variable_is_refused_never_read_as_the_default(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # usage.md: "an empty URL ("", an unset variable's value) is InvalidInput, never read as the default":
    # MUSICSTORE_DATABASE_URL=$PROD_URL with $PROD_URL unset migrated and opened data/generations.db
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(URL_ENV, value)
    openings = (musicstore.migrate, musicstore.init_db, Store, AsyncStore, musicstore.compat.default_store)
    for opening in openings:
        with pytest.raises(InvalidInput, match=URL_ENV):
            opening()
    assert not (tmp_path / "data").exists()
