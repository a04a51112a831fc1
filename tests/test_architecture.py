"""The layers of docs/architecture.md hold: no module imports a layer it may not use, and every module of the
package belongs to a layer (a new module has to be placed, here and in the docs)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "musicstore"

LAYERS = {
    "vocabulary": [
        "errors",
        "models",
        "ids",
        "validate",
        "urls",
        "storage_names",
        "masking",
        "interrupt",
        "processes",
    ],
    "database": [
        "queries",
        "ops",
        "runner",
        "store",
        "aio",
        "drivers",
        "migrate",
        "compat",
        "backends",
        "waiting",
    ],
    "files": ["filestore"],
    "audio": ["audio"],
    "composition": ["recording", "rendering", "delivery", "maintenance", "metrics", "worker"],
    "faces": ["cli", "testing", "web", "__main__", "__init__"],
}
"""Each layer and the top-level names (module or package) it holds; ``ops_x`` counts as ``ops``."""

MAY_IMPORT = {
    "vocabulary": {"vocabulary"},
    "database": {"vocabulary", "database"},
    "files": {"vocabulary", "files"},
    "audio": {"vocabulary", "files", "audio"},
    "composition": {"vocabulary", "database", "files", "audio", "composition"},
    "faces": set(LAYERS),
}


def layer_of(module: str) -> str:
    """The layer of ``musicstore.X...`` by its first name below the package."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    for layer, names in LAYERS.items():
        if any(top == name or top.startswith(f"{name}_") for name in names):
            return layer
    raise LookupError(f"{module} is in no layer of tests/test_architecture.py (and docs/architecture.md)")


def module_name(path: Path) -> str:
    parts = ["musicstore", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 2 else parts)


def imported(path: Path) -> set[str]:
    """Every musicstore module ``path`` imports, at the top or inside a function, resolved to absolute."""
    name = module_name(path)
    package = (
        [p for p in name.split(".") if p != "__init__"]
        if path.name == "__init__.py"
        else name.split(".")[:-1]
    )
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "musicstore"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] == "musicstore":
                found |= (
                    {f"{target}.{alias.name}" for alias in node.names} if target == "musicstore" else {target}
                )
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_a_module_imports_only_the_layers_below_or_beside_it(path: Path) -> None:
    layer = layer_of(module_name(path))
    for target in imported(path):
        assert layer_of(target) in MAY_IMPORT[layer], f"{module_name(path)} ({layer}) imports {target}"


def test_the_rules_see_a_violation() -> None:
    """The checker itself: vocabulary importing the store, audio importing the database, are caught."""
    assert layer_of("musicstore.store") not in MAY_IMPORT[layer_of("musicstore.models")]
    assert layer_of("musicstore.ops") not in MAY_IMPORT[layer_of("musicstore.audio.export")]
    assert layer_of("musicstore.cli") not in MAY_IMPORT[layer_of("musicstore.maintenance.usage")]
    assert "musicstore.store" in imported(PACKAGE / "recording" / "__init__.py")
    assert "musicstore.interrupt" in imported(PACKAGE / "__init__.py")
    with pytest.raises(LookupError):
        layer_of("musicstore.somewhere_new")


def test_the_architecture_page_names_every_layer_and_top_level_name() -> None:
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    for layer, names in LAYERS.items():
        assert layer in page.lower(), layer
        for name in names:
            if not name.startswith("__"):
                assert f"`{name}" in page, name


MAX_MODULE_LINES = 450
"""Issue 11: no package module over ~450 lines, no benchmark over ~400, ~15 top-level modules at most."""


def test_modules_stay_small_enough_to_read_and_the_top_level_short() -> None:
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"split these by concern (docs/architecture.md): {long}"
    benchmarks = PACKAGE.parent / "benchmarks"
    long = {
        path.name: lines
        for path in benchmarks.glob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert long == {}, f"split these benchmarks (benchmarks/README.md): {long}"
    top = sorted(path.stem for path in PACKAGE.glob("*.py") if not path.stem.startswith("__"))
    assert len(top) <= 15, f"group these top-level modules into packages: {top}"
