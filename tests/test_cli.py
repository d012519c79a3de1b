from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import fido
from fido._cli import _Handler, main
from fido._cli.output import LiveLine, SafeStream, json_text, live_line, table
from fido._logging import (
    EVENT_ID,
    LOG_FORMAT,
    ContextFilter,
    SafeFormatter,
    get_logger,
    printable,
)


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


HOSTILE = "a\x1b[2J\x1b]0;pwned\x07b\x9b31m\u202eevil\u2066\r\x7f"


def test_printable_escapes_every_terminal_control() -> None:
    escaped = printable(HOSTILE + "\nnext\tline")
    assert escaped == (
        "a\\x1b[2J\\x1b]0;pwned\\x07b\\x9b31m\\u202eevil\\u2066\\x0d\\x7f\nnext\tline"
    )
    assert printable(escaped) == escaped  # idempotent
    assert printable("two\nlines", newlines=False) == "two\\nlines"
    assert printable("Müller, 東京, emoji 🙂") == "Müller, 東京, emoji 🙂"  # text is text


def test_json_output_escapes_what_json_leaves_raw() -> None:
    text = json_text({"title": HOSTILE, "name": "Müller"})
    assert all(c not in text for c in "\x1b\x07\x9b\u202e\u2066\r\x7f")
    assert "Müller" in text
    assert json.loads(text) == {"title": HOSTILE, "name": "Müller"}


def test_tables_and_streams_for_people_are_escaped() -> None:
    out = io.StringIO()
    table(["id", "title"], [["inc-1", HOSTILE], ["inc-2", "plain"]], out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert "\x1b" not in out.getvalue()
    # columns stay aligned: the width is measured on the escaped text
    assert lines[1].index("a\\x1b") == lines[2].index("plain")
    safe = io.StringIO()
    print(HOSTILE, file=SafeStream(safe))
    assert safe.getvalue() == printable(HOSTILE) + "\n"


def test_the_live_line_fits_the_terminal_and_gives_way_to_logs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os
    import shutil

    monkeypatch.setattr(shutil, "get_terminal_size", lambda *a: os.terminal_size((40, 24)))
    stream = io.StringIO()
    with LiveLine(stream) as line:
        assert live_line() is line
        line.show("processed 1 | " + "x" * 100 + HOSTILE)
        assert line.text == ("processed 1 | " + "x" * 100)[:39]
        written = len(stream.getvalue())
        logger = logging.getLogger("fido.test")
        handler = _Handler(stream)
        handler.setFormatter(SafeFormatter(LOG_FORMAT))
        handler.addFilter(ContextFilter())
        logger.addHandler(handler)
        try:
            logger.warning("a log line")
        finally:
            logger.removeHandler(handler)
        after = stream.getvalue()[written:]
        # the line is erased, the record written on a line of its own, the line drawn again
        assert after.startswith("\r\x1b[K")
        assert after.index("WARNING fido.test [- -] a log line\n") == len("\r\x1b[K") + 24
        assert after.endswith("\r\x1b[K" + line.text)
        last = line.text
    assert live_line() is None
    assert stream.getvalue().endswith(last + "\n")  # the last figures stay


def test_any_fido_record_formats_with_the_documented_format() -> None:
    """A logger made without get_logger (another library's, say) still formats."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(fido.ContextFilter())
    plain = logging.getLogger("fido.test.plain")
    plain.addHandler(handler)
    plain.setLevel(logging.INFO)
    token = EVENT_ID.set("ev-1")
    try:
        plain.info("no ids given")
        get_logger("fido.test.plain").info("ids given", extra={"incident_id": "inc-9"})
    finally:
        EVENT_ID.reset(token)
        plain.removeHandler(handler)
        plain.setLevel(logging.NOTSET)
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("INFO fido.test.plain [ev-1 -] no ids given")
    assert lines[1].endswith("INFO fido.test.plain [ev-1 inc-9] ids given")
    record = logging.LogRecord("fido.x", logging.INFO, __file__, 1, "bad \x1b[2J", None, None)
    assert ContextFilter().filter(record)
    assert "\x1b" not in SafeFormatter(LOG_FORMAT).format(record)


# Loggers that are not fido's own, with the reason they are created directly.
JUSTIFIED = {
    "src/fido/_logging.py": "get_logger itself",
    "src/fido/_cli/__init__.py": "the CLI sets the handler of the `fido` logger (logs nothing)",
    "src/fido/_cli/commands.py": "the CLI sets the level of the `fido` logger (logs nothing)",
    "src/fido/testing/_conformance.py": "the root logger: the kit checks what reaches it",
    "src/fido/adapters/enrichers/threatgrid.py": "httpx's logger: its request lines hold the key",
}


def test_fido_loggers_are_made_with_get_logger() -> None:
    """Every `fido.*` logger carries the ids: none is made with `logging.getLogger`."""
    root = Path(__file__).parents[1]
    found = sorted(
        str(path.relative_to(root))
        for path in (root / "src" / "fido").rglob("*.py")
        if "logging.getLogger(" in path.read_text(encoding="utf-8")
    )
    assert found == sorted(JUSTIFIED)
