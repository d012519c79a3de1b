"""Printing for the command line: plain tables for people, JSON for programs.

Alert content is attacker-controlled, so nothing reaches the terminal unescaped: table
cells and the lines of `describe_incident` are escaped where they are made (so that
columns stay aligned), `SafeStream` escapes whatever else a command prints for people,
`warn` does the same on standard error, and `print_json` escapes in JSON the characters
JSON itself leaves raw (C1 controls, DEL, bidirectional controls).
"""

from __future__ import annotations

import io
import json
import shutil
import sys
from typing import TYPE_CHECKING, Any, Final, TextIO

from fido._incident import ApprovalStatus, Incident
from fido._logging import UNSAFE_ABOVE_ASCII, printable
from fido._observable import Observable

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

__all__ = [
    "LiveLine",
    "SafeStream",
    "describe_incident",
    "json_text",
    "live_line",
    "print_json",
    "short_time",
    "table",
    "warn",
    "why",
]

# json.dumps escapes C0 controls itself; these it would leave raw with ensure_ascii=False.
_JSON_UNSAFE: Final = {c: f"\\u{c:04x}" for c in UNSAFE_ABOVE_ASCII}


def json_text(value: Any) -> str:
    """`value` as one line of JSON, UTF-8 kept, every terminal control escaped."""
    # those characters can only occur inside JSON strings, where \\uXXXX means the same
    return json.dumps(value, ensure_ascii=False, default=str).translate(_JSON_UNSAFE)


def print_json(value: Any, out: TextIO) -> None:
    """One JSON document on one line."""
    print(json_text(value), file=out)


def warn(message: str) -> None:
    """A message for standard error (escaped), above the live line if there is one."""
    line = _LIVE[0]
    if line is not None:
        line.clear()
    print(printable(message), file=sys.stderr)
    if line is not None:
        line.redraw()


class SafeStream(io.TextIOBase):
    """A text stream that escapes terminal controls in everything written to it."""

    def __init__(self, inner: TextIO) -> None:
        super().__init__()
        self.inner = inner

    def write(self, text: str) -> int:
        """Write `text`, escaped."""
        self.inner.write(printable(text))
        return len(text)

    def flush(self) -> None:
        """Flush the stream underneath."""
        self.inner.flush()

    def isatty(self) -> bool:
        """Whether the stream underneath is a terminal."""
        return self.inner.isatty()

    def writable(self) -> bool:
        """Always."""
        return True


class LiveLine:
    """The one line `fido run` keeps rewriting on a terminal (the progress line).

    It fits the terminal's width (read at each update, so a resize is followed), and
    `warn` and fido's log handler clear it before they write, then draw it again.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.text = ""

    def show(self, text: str) -> None:
        """Replace the line with `text` (escaped, cut to the terminal's width)."""
        width = max(shutil.get_terminal_size().columns - 1, 10)
        self.text = printable(text, newlines=False)[:width]
        self.redraw()

    def redraw(self) -> None:
        """Draw the line again (after something else was written)."""
        self.stream.write("\r\x1b[K" + self.text)
        self.stream.flush()

    def clear(self) -> None:
        """Erase the line, and leave the cursor at its start."""
        self.stream.write("\r\x1b[K")
        self.stream.flush()

    def __enter__(self) -> LiveLine:
        _LIVE[0] = self
        return self

    def __exit__(self, *exc: object) -> None:
        _LIVE[0] = None
        if self.text:  # the last figures stay, and what follows starts on a new line
            self.stream.write("\n")
            self.stream.flush()
            self.text = ""


_LIVE: list[LiveLine | None] = [None]


def live_line() -> LiveLine | None:
    """The live line being shown, if any."""
    return _LIVE[0]


def short_time(value: datetime | None) -> str:
    """`2026-11-28 09:14:03` in UTC (or `-`)."""
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M:%S}"


def _clip(text: str, width: int) -> str:
    text = printable(" ".join(text.split()), newlines=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    out: TextIO,
    widths: dict[int, int] | None = None,
) -> None:
    """A plain table: columns padded to their widest cell (some clipped to `widths`)."""
    limits = widths or {}
    cells = [[_clip(str(c), limits.get(i, 200)) for i, c in enumerate(row)] for row in rows]
    sizes = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(sizes[i]) for i, h in enumerate(headers)).rstrip(), file=out)
    for row in cells:
        print("  ".join(c.ljust(sizes[i]) for i, c in enumerate(row)).rstrip(), file=out)


def why(incident: Incident, count: int = 3) -> str:
    """The incident's strongest reasons, in one line.

    Without any, the decision's reason: an allowlisted incident says which entry matched.
    """
    reasons = [
        c for c in incident.assessment.contributions if not c.rule.endswith((".cap", ".floor"))
    ]
    top = sorted(reasons, key=lambda c: -abs(c.points))[:count]
    text = "; ".join(f"{c.points:+d} {c.reason}" for c in top) or incident.decision.reason
    return printable(text, newlines=False)


def _line(out: TextIO, text: str) -> None:
    """One line for people: terminal controls and newlines in it are escaped."""
    print(printable(text, newlines=False), file=out)


def describe_incident(incident: Incident, out: TextIO) -> None:
    """Everything about one incident, for `fido show`."""
    decision = incident.decision
    _line(out, f"Incident {incident.id}  [{incident.status.value}]")
    _line(out, f"  {incident.title}")
    _line(
        out,
        f"  created {short_time(incident.created_at)}, updated "
        f"{short_time(incident.updated_at)} UTC",
    )
    _line(
        out,
        f"  hosts: {', '.join(h.key for h in incident.hosts) or '-'}; users: "
        f"{', '.join(str(u) for u in incident.users) or '-'}",
    )
    _line(out, f"  detectors: {', '.join(incident.detectors)}; events: {len(incident.events)}")
    if incident.observables:
        shown = ", ".join(o.defanged() for o in incident.observables[:12])
        more = len(incident.observables) - 12
        _line(out, f"  indicators: {shown}{f' (+{more} more)' if more > 0 else ''}")
    if incident.suppressed_by:
        _line(out, f"  suppressed: {incident.suppressed_by}")
    print(file=out)
    print(printable(incident.assessment.explain()), file=out)
    print(file=out)
    _line(
        out,
        f"Decision: {decision.level or '-'}; actions: {', '.join(decision.action_names) or 'none'}",
    )
    if decision.recommendation:
        _line(out, f"Recommendation: {decision.recommendation}")
    if decision.reason:
        _line(out, f"Why: {decision.reason}")
    if incident.findings:
        print("\nFindings:", file=out)
        for f in incident.findings:
            what = getattr(f, "verdict", None)
            label = what.value if what is not None else type(f).__name__
            subject = f.subject.defanged() if isinstance(f.subject, Observable) else str(f.subject)
            cached = " (cached)" if f.from_cache else ""
            _line(out, f"  {f.source}: {subject} -> {label}{cached}")
    if incident.failures:
        print("\nLook-ups without an answer:", file=out)
        for failure in incident.failures:
            _line(out, f"  {failure.enricher}: {failure.kind.value}: {failure.message}")
    if incident.responses:
        print("\nResponses:", file=out)
        for r in incident.responses:
            detail = f" ({r.detail})" if r.detail else ""
            _line(
                out,
                f"  {short_time(r.at)}  {r.action} by {r.responder}: {r.status.value}{detail}",
            )
    if incident.approvals:
        print("\nApprovals:", file=out)
        for a in incident.approvals:
            answered = ""
            if a.status is not ApprovalStatus.PENDING:
                answered = f" by {a.by or '-'} at {short_time(a.answered_at)}"
            expires = f", expires {short_time(a.expires_at)}" if a.expires_at else ""
            note = f": {a.note}" if a.note else ""
            _line(out, f"  {a.action.name}: {a.status.value}{answered}{expires}{note}")
    print("\nAudit trail:", file=out)
    for step in incident.audit:
        ms = step.duration.total_seconds() * 1000
        _line(
            out,
            f"  {short_time(step.started_at)}  {step.stage:<10} {step.outcome:<10} "
            f"{ms:7.1f} ms  {step.detail}",
        )
