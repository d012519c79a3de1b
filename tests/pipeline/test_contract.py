"""The public contract of DESIGN.md runs as written: from a script and inside a running loop."""

from __future__ import annotations

import asyncio
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SNIPPET = HERE / "contract.py"
DESIGN = HERE.parents[2] / "shared" / "DESIGN.md"


def design_snippet() -> str:
    text = DESIGN.read_text()
    start = text.index("## The public contract")
    body = text[text.index("```python", start) + len("```python\n") :]
    return body[: body.index("```")]


def test_the_copy_is_the_design() -> None:
    if not DESIGN.exists():
        pytest.skip("the design document lives beside the repository only in development")
    copy = SNIPPET.read_text().split("\n", 2)[2]
    assert copy == design_snippet()


def test_runs_as_a_script() -> None:
    result = subprocess.run(  # noqa: S603 - our own file
        [sys.executable, str(SNIPPET)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "50 10 0"  # threat, machine, user
    assert "threat 20 severity high edr" in lines
    assert "machine 10 host ws-042 is not in any inventory policy" in lines
    incident_id = lines[-1].split("'")[5]
    assert incident_id.startswith("inc-")
    assert lines[-1] == (
        f"['notify', 'ticket'] [('{incident_id}', 'notify'), ('{incident_id}', 'ticket')]"
    )


def test_runs_inside_a_running_event_loop(capsys: pytest.CaptureFixture[str]) -> None:
    async def notebook_cell() -> None:
        asyncio.get_running_loop()  # a loop is running, as in Jupyter
        runpy.run_path(str(SNIPPET), run_name="__main__")

    asyncio.run(notebook_cell())
    assert "['notify', 'ticket']" in capsys.readouterr().out
