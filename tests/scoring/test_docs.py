"""The scoring docs show real output: the worked example is what the example prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_worked_example_matches_the_docs() -> None:
    result = subprocess.run(  # noqa: S603 - our own example
        [sys.executable, str(ROOT / "examples" / "explain_a_score.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    docs = (ROOT / "docs" / "scoring.md").read_text()
    assert result.stdout.strip() in docs
    assert "Total 63/100" in result.stdout
