"""The Python examples in the README and docs/ run as pasted (on the real encoders)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SNIPPETS = [
    pytest.param(code, id=f"{doc.name}-{i}")
    for doc in DOCS
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), re.S))
]


@pytest.mark.pretrained
@pytest.mark.parametrize("code", SNIPPETS)
def test_python_snippet_runs(code: str, tmp_path: Path) -> None:
    # Run where a user would: a folder holding the sample catalog, in a fresh interpreter.
    (tmp_path / "sample_catalog").symlink_to(ROOT / "sample_catalog")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_readme_has_a_python_example() -> None:
    assert SNIPPETS, "no ```python block found in README.md or docs/"
