"""The `fido` command line (also `python -m fido`).

Exit codes: 0 success; 1 the command ran but something it was given was invalid (an
observable that does not parse); 2 the command line itself was wrong (argparse's code).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, TextIO

from fido._errors import InvalidObservable
from fido._observable import Observable, ObservableKind
from fido._version import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


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
            print(json.dumps(row), file=out)
        return status
    for row in rows:
        if "error" in row:
            print(f"invalid   {row['error']}", file=out)
        else:
            internal = "  (internal)" if row["internal"] else ""
            print(f"{row['kind']:<9} {row['defanged']}{internal}", file=out)
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fido",
        description="fido: automated security incident response.",
        epilog="Exit codes: 0 success, 1 invalid input, 2 wrong command line.",
    )
    parser.add_argument("--version", action="version", version=f"fido {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    version = commands.add_parser("version", help="print the version of fido and Python")
    version.add_argument("--json", action="store_true", help="print JSON")
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
    observable.add_argument("--json", action="store_true", help="print one JSON object per line")
    observable.set_defaults(handler=_observable)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments (default: `sys.argv[1:]`).
        out: Where to print (default: standard output).

    Returns:
        The exit code.
    """
    args = _parser().parse_args(argv)
    handler = args.handler
    code: int = handler(args, sys.stdout if out is None else out)
    return code
