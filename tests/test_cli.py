from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import fido
from fido._cli import main


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(args), out=out)
    return code, out.getvalue()


def test_version() -> None:
    assert run("version") == (0, f"fido {fido.__version__} (Python {sys.version.split()[0]})\n")
    code, text = run("version", "--json")
    assert code == 0
    assert json.loads(text)["fido"] == fido.__version__


def test_observable() -> None:
    code, text = run("observable", "hxxp://evil[.]example/a", "10.0.0.1", "nonsense")
    assert code == 1
    lines = text.splitlines()
    assert lines[0] == "url       hxxp://evil[.]example/a"
    assert lines[1] == "ipv4      10[.]0[.]0[.]1  (internal)"
    assert lines[2].startswith("invalid   cannot infer the kind")


def test_observable_json_and_kind() -> None:
    code, text = run("observable", "--json", "--kind", "domain", "update.zip")
    assert code == 0
    assert json.loads(text) == {
        "input": "update.zip",
        "kind": "domain",
        "value": "update.zip",
        "defanged": "update[.]zip",
        "internal": False,
    }
    code, text = run("observable", "--json", "zz")
    assert code == 1
    assert "error" in json.loads(text)


def test_main_puts_the_fido_logger_back_as_it_was() -> None:
    # the CLI may run inside a caller's process: its logging setup must not outlive it
    logger = logging.getLogger("fido")
    before = (logger.handlers[:], logger.propagate, logger.level)
    assert run("-vv", "version")[0] == 0
    assert (logger.handlers[:], logger.propagate, logger.level) == before


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["observable", "--kind", "hash", "x"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


SCRIPT = str(Path(sys.executable).parent / "fido")


@pytest.mark.parametrize("command", [[SCRIPT], [sys.executable, "-m", "fido"]])
def test_real_entry_points(command: list[str]) -> None:
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [*command, "observable", "evil[.]example"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "domain    evil[.]example\n"
    result = subprocess.run(  # noqa: S603
        [*command, "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "observable" in result.stdout
