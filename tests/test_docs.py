"""Every ```python block in docs/*.md runs, file by file, top to bottom, in a fresh directory."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
PAGES = sorted(p for p in DOCS.glob("*.md") if BLOCK.search(p.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_doc_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MUSICSTORE_DATABASE_URL", raising=False)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    blocks = BLOCK.findall(page.read_text())
    for number, code in enumerate(blocks, 1):
        exec(compile(code, f"{page.name} block {number}", "exec"), namespace)
    assert blocks and os.getcwd() == str(tmp_path)
