"""The review of session 27's change: each bug with the test that failed before its fix."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from musicstore import Store
from musicstore.errors import DatabaseError


@pytest.mark.parametrize("damaged", ["[]", '""', '[["a", 1]]', '["ab"]', '{"a": ' + "[" * 100_000 + "}"])
def test_metadata_that_is_json_but_no_object_is_a_database_error(tmp_path: Path, damaged: str) -> None:
    """A damaged row's metadata that is JSON but no object (an array, a string) was read as a dict made of it
    (``dict([])`` is ``{}``, ``dict([["a", 1]])`` is ``{"a": 1}``) where the promise is ``DatabaseError``
    'not a JSON object'; one nested past the parser's depth raised a bare ``RecursionError``."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with Store(url, migrate=True) as store:
        generation = store.create_generation("p", model_name="m", duration_seconds=1, metadata={"a": 1})
    with closing(sqlite3.connect(tmp_path / "db.sqlite")) as conn:
        conn.execute("PRAGMA ignore_check_constraints = ON")
        conn.execute("UPDATE generations SET metadata = ? WHERE id = ?", (damaged, generation.id))
        conn.commit()
    with Store(url) as store, pytest.raises(DatabaseError, match=r"not a JSON object.*damaged"):
        store.get_generation(generation.id)
