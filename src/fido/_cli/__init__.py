"""The `fido` command line (also `python -m fido`).

Exit codes: 0 success; 1 the command ran but something failed or was invalid (an alert,
a check, an approval, an unknown incident); 2 the command line itself was wrong
(argparse's code); 3 the configuration is wrong; 4 another `fido run` holds the store;
130 interrupted.

Logging: `-v` INFO, `-vv` DEBUG, `-q` errors only, before or after the command; without
them, the configuration's `[logging] level` once it is loaded (INFO until then).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from typing import TYPE_CHECKING, TextIO

from fido._cli.output import live_line, print_json, warn
from fido._errors import ConfigurationError, FidoError, InvalidObservable, StoreBusy
from fido._logging import LOG_FORMAT, ContextFilter, SafeFormatter
from fido._observable import Observable, ObservableKind
from fido._version import __version__

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = ["main"]

CONFIG_ERROR = 3
STORE_BUSY = 4


def _version(args: argparse.Namespace, out: TextIO) -> int:
    if args.json:
        print(json.dumps({"fido": __version__, "python": sys.version.split()[0]}), file=out)
    else:
        print(f"fido {__version__} (Python {sys.version.split()[0]})", file=out)
    return 0


def _observable(args: argparse.Namespace, out: TextIO) -> int:
    status = 0
    rows: list[dict[str, object]] = []
    for text in args.text:
        try:
            observable = Observable.parse(text, args.kind)
        except InvalidObservable as exc:
            status = 1
            rows.append({"input": text, "error": str(exc)})
            continue
        rows.append(
            {
                "input": text,
                "kind": observable.kind.value,
                "value": observable.value,
                "defanged": observable.defanged(),
                "internal": observable.is_internal,
            }
        )
    if args.json:
        for row in rows:
            print_json(row, out)
        return status
    for row in rows:
        if "error" in row:
            print(f"invalid   {row['error']}", file=out)
        else:
            internal = "  (internal)" if row["internal"] else ""
            print(f"{row['kind']:<9} {row['defanged']}{internal}", file=out)
    return status


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Standard error, escaped; the live progress line is cleared first, then redrawn."""

    def emit(self, record: logging.LogRecord) -> None:
        line = live_line()
        if line is not None:
            line.clear()
        super().emit(record)
        if line is not None:
            line.redraw()


@contextlib.contextmanager
def _logging(verbosity: int | None) -> Iterator[None]:
    """Log to standard error for the command's duration, then restore the `fido` logger.

    `main` may run inside a caller's process (a test, a notebook, a service that embeds
    the CLI): their logging configuration is theirs, so it is put back as it was.
    `verbosity` None (no -v, no -q): INFO, until the configuration's level replaces it.
    """
    logger = logging.getLogger("fido")
    saved = (logger.handlers[:], logger.propagate, logger.level)
    handler = _Handler(sys.stderr)
    handler.setFormatter(SafeFormatter(LOG_FORMAT))
    handler.addFilter(ContextFilter())
    logger.handlers[:] = [handler]
    logger.propagate = False
    levels = {-1: logging.ERROR, 0: logging.INFO, 1: logging.INFO}
    logger.setLevel(logging.INFO if verbosity is None else levels.get(verbosity, logging.DEBUG))
    try:
        yield
    finally:
        logger.handlers[:], logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])


def _with_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        metavar="CONFIG",
        help="the configuration file (default: $FIDO_CONFIG, else ./fido.toml)",
    )


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON (one object per line)")


def _verbosity(parser: argparse.ArgumentParser, *, after: bool) -> None:
    """-v and -q, before the command (on the main parser) or after it (on each command)."""
    suffix = "_after" if after else ""
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        dest=f"verbose{suffix}",
        help="log more (-v info, -vv debug) to standard error",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", dest=f"quiet{suffix}", help="log errors only"
    )


def _parser() -> argparse.ArgumentParser:
    from fido._cli.commands import COMMANDS, positive, when

    parser = argparse.ArgumentParser(
        prog="fido",
        description="fido: automated security incident response.",
        epilog="Exit codes: 0 success, 1 something failed or was invalid, 2 wrong command "
        "line, 3 wrong configuration, 4 another fido run holds the store, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"fido {__version__}")
    _verbosity(parser, after=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="the main job: poll the detectors and respond",
        description="Poll every detector, process what arrives, "
        "respond; until SIGINT/SIGTERM (or, with --once, until there "
        "is nothing new). Prints a summary and what was decided.",
    )
    run.add_argument("config", metavar="CONFIG", help="the configuration file")
    run.add_argument(
        "--once",
        action="store_true",
        help="stop once every detector has nothing new and the work is done",
    )
    run.add_argument("--no-progress", action="store_true", help="no live progress line")
    run.add_argument(
        "--wait-for-store",
        action="store_true",
        help="if another fido run holds the store, wait for it to stop (a standby) "
        "rather than exit 4",
    )
    _json(run)
    run.set_defaults(handler=COMMANDS["run"])

    process = commands.add_parser(
        "process",
        help="process one batch of alerts from a file",
        description="Process the alerts of a JSON-lines file (fido "
        "events, or a detector's format with --detector).",
    )
    process.add_argument("config", metavar="CONFIG", help="the configuration file")
    process.add_argument("alerts", metavar="ALERTS.jsonl", help="the alerts, one per line")
    process.add_argument(
        "--detector", metavar="NAME", help="parse the file with this configured detector"
    )
    _json(process)
    process.set_defaults(handler=COMMANDS["process"])

    incidents = commands.add_parser(
        "incidents", help="list incidents", description="List stored incidents, newest first."
    )
    _with_config(incidents)
    incidents.add_argument("--status", choices=["open", "suppressed", "closed"])
    incidents.add_argument("--host", help="a host name or IP")
    incidents.add_argument("--min-score", type=int, metavar="N", help="total score of at least N")
    incidents.add_argument(
        "--since", type=when, metavar="WHEN", help="updated since (2026-11-28 or 2h)"
    )
    incidents.add_argument("--until", type=when, metavar="WHEN", help="updated until")
    incidents.add_argument(
        "--limit", type=positive, default=50, metavar="N", help="at most N (default 50)"
    )
    _json(incidents)
    incidents.set_defaults(handler=COMMANDS["incidents"])

    show = commands.add_parser("show", help="one incident, with its score explained")
    _with_config(show)
    show.add_argument("id", metavar="ID", help="the incident id")
    _json(show)
    show.set_defaults(handler=COMMANDS["show"])

    pending = commands.add_parser("pending", help="actions waiting for approval")
    _with_config(pending)
    _json(pending)
    pending.set_defaults(handler=COMMANDS["pending"])

    for name, verb in (("approve", "approve and carry out"), ("reject", "refuse")):
        answer = commands.add_parser(name, help=f"{verb} a pending action")
        _with_config(answer)
        answer.add_argument("id", metavar="ID", help="the incident id")
        answer.add_argument("action", metavar="ACTION", help="the action, such as contain")
        answer.add_argument("--by", required=True, help="who answers (recorded)")
        answer.add_argument("--note", help="why (recorded)")
        _json(answer)
        answer.set_defaults(handler=COMMANDS[name])

    replay = commands.add_parser(
        "replay",
        help="what a new policy would change",
        description="Re-score stored incidents under a new policy "
        "and list the decisions that would change, and why.",
    )
    _with_config(replay)
    replay.add_argument(
        "--policy",
        required=True,
        metavar="NEW.toml",
        help="the new policy (it changes the configured one)",
    )
    replay.add_argument("--since", type=when, metavar="WHEN", help="incidents updated since")
    replay.add_argument(
        "--limit", type=positive, default=10_000, metavar="N", help="at most N incidents"
    )
    _json(replay)
    replay.set_defaults(handler=COMMANDS["replay"])

    check = commands.add_parser("check", help="validate a configuration and test its adapters")
    check.add_argument("config", metavar="CONFIG", help="the configuration file")
    check.add_argument("--offline", action="store_true", help="build only, test no connection")
    check.add_argument("--timeout", type=float, default=10.0, help="seconds per test")
    _json(check)
    check.set_defaults(handler=COMMANDS["check"])

    letters = commands.add_parser("dead-letters", help="alerts that could not become events")
    _with_config(letters)
    letters.add_argument(
        "--limit", type=positive, default=50, metavar="N", help="at most N (default 50)"
    )
    _json(letters)
    letters.set_defaults(handler=COMMANDS["dead-letters"])

    version = commands.add_parser("version", help="print the version of fido and Python")
    _json(version)
    version.set_defaults(handler=_version)

    observable = commands.add_parser(
        "observable",
        help="parse indicators: infer the kind, refang, normalize, defang",
        description="Parse each TEXT as an indicator and print its kind and defanged value.",
    )
    observable.add_argument("text", nargs="+", metavar="TEXT", help="an indicator, defanged or not")
    observable.add_argument(
        "--kind",
        choices=[k.value for k in ObservableKind],
        help="the kind, instead of inferring it",
    )
    _json(observable)
    observable.set_defaults(handler=_observable)
    for command in commands.choices.values():
        _verbosity(command, after=True)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments (default: `sys.argv[1:]`).
        out: Where to print results (default: standard output). Errors and the progress
            line go to standard error.

    Returns:
        The exit code.
    """
    args = _parser().parse_args(argv)
    verbose = args.verbose + args.verbose_after
    quiet = args.quiet or args.quiet_after
    args.verbosity = -1 if quiet else verbose if verbose else None
    stream = sys.stdout if out is None else out
    with _logging(args.verbosity):
        # JSON escapes what it must itself; everything else is for people: escaped
        return _main(args, stream if getattr(args, "json", False) else _safe(stream))


def _safe(stream: TextIO) -> TextIO:
    from typing import cast

    from fido._cli.output import SafeStream

    return cast("TextIO", SafeStream(stream))


def _main(args: argparse.Namespace, stream: TextIO) -> int:
    try:
        code: int = args.handler(args, stream)
    except ConfigurationError as exc:
        warn(f"fido: configuration: {exc}")
        return CONFIG_ERROR
    except StoreBusy as exc:
        warn(f"fido: {exc}")
        return STORE_BUSY
    except FidoError as exc:
        warn(f"fido: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`fido incidents --json | head`): not an error of ours;
        # point stdout at /dev/null so that the interpreter's final flush stays quiet
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code
