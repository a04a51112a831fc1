"""The 0.1 module paths still import, as the modules that hold that code now, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from musicstore.compat import OLD_MODULES


@pytest.mark.parametrize("old", sorted(OLD_MODULES))
def test_an_old_module_path_is_the_module_it_moved_to(old: str) -> None:
    new = importlib.import_module(OLD_MODULES[old])
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} is now {OLD_MODULES[old]}"):
        module = importlib.import_module(old)
    assert module is new
    assert new.__spec__ is not None and new.__spec__.name == OLD_MODULES[old]  # the new module is untouched


def test_from_an_old_path_import_a_name_in_a_fresh_process() -> None:
    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
        "try:\n from musicstore.record import export_generation\n"
        "except DeprecationWarning as w: print('warned', w)\n"
        "warnings.simplefilter('ignore')\n"
        "from musicstore.record import export_generation\n"
        "from musicstore.recording import export_generation as now\n"
        "print(export_generation is now)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["warned musicstore.record is now musicstore.recording", "True"]


def test_every_new_module_exists_and_no_old_file_is_left() -> None:
    for old, new in OLD_MODULES.items():
        importlib.import_module(new)
        assert importlib.util.find_spec(new) is not None
        spec = importlib.machinery.PathFinder.find_spec(
            old.rpartition(".")[2], importlib.import_module(old.rpartition(".")[0]).__path__
        )
        assert spec is None, f"{old} still exists as a file"
