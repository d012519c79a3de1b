"""The Python examples in the README and the getting-started page run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def blocks(path: Path) -> list[str]:
    return [b for b in BLOCK.findall(path.read_text()) if "await " not in b.split("#")[0]]


@pytest.mark.parametrize(
    ("page", "index"),
    [
        (p, i)
        for p in ("README.md", "docs/getting-started.md")
        for i in range(len(blocks(ROOT / p)))
    ],
)
def test_example_runs(page: str, index: int, tmp_path: Path) -> None:
    code = blocks(ROOT / page)[index]
    if page.endswith("getting-started.md") and index > 0:
        code = blocks(ROOT / page)[0] + code  # the error example builds on the first one
    script = tmp_path / "example.py"
    script.write_text(code)
    result = subprocess.run(  # noqa: S603 - our own docs
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
