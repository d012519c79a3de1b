"""Printing for the command line: plain tables for people, JSON for programs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TextIO

from fido._incident import ApprovalStatus, Incident
from fido._observable import Observable

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

__all__ = ["describe_incident", "print_json", "short_time", "table", "why"]


def print_json(value: Any, out: TextIO) -> None:
    """One JSON document on one line."""
    print(json.dumps(value, ensure_ascii=False, default=str), file=out)


def short_time(value: datetime | None) -> str:
    """`2026-11-28 09:14:03` in UTC (or `-`)."""
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M:%S}"


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
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
    """The incident's strongest reasons, in one line."""
    reasons = [
        c for c in incident.assessment.contributions if not c.rule.endswith((".cap", ".floor"))
    ]
    top = sorted(reasons, key=lambda c: -abs(c.points))[:count]
    return "; ".join(f"{c.points:+d} {c.reason}" for c in top)


def describe_incident(incident: Incident, out: TextIO) -> None:
    """Everything about one incident, for `fido show`."""
    decision = incident.decision
    print(f"Incident {incident.id}  [{incident.status.value}]", file=out)
    print(f"  {incident.title}", file=out)
    print(
        f"  created {short_time(incident.created_at)}, updated "
        f"{short_time(incident.updated_at)} UTC",
        file=out,
    )
    print(
        f"  hosts: {', '.join(h.key for h in incident.hosts) or '-'}; users: "
        f"{', '.join(str(u) for u in incident.users) or '-'}",
        file=out,
    )
    print(f"  detectors: {', '.join(incident.detectors)}; events: {len(incident.events)}", file=out)
    if incident.observables:
        shown = ", ".join(o.defanged() for o in incident.observables[:12])
        more = len(incident.observables) - 12
        print(f"  indicators: {shown}{f' (+{more} more)' if more > 0 else ''}", file=out)
    if incident.suppressed_by:
        print(f"  suppressed: {incident.suppressed_by}", file=out)
    print("", file=out)
    print(incident.assessment.explain(), file=out)
    print("", file=out)
    print(
        f"Decision: {decision.level or '-'}; actions: {', '.join(decision.action_names) or 'none'}",
        file=out,
    )
    if decision.recommendation:
        print(f"Recommendation: {decision.recommendation}", file=out)
    if decision.reason:
        print(f"Why: {decision.reason}", file=out)
    if incident.findings:
        print("\nFindings:", file=out)
        for f in incident.findings:
            what = getattr(f, "verdict", None)
            label = what.value if what is not None else type(f).__name__
            subject = f.subject.defanged() if isinstance(f.subject, Observable) else str(f.subject)
            cached = " (cached)" if f.from_cache else ""
            print(f"  {f.source}: {subject} -> {label}{cached}", file=out)
    if incident.failures:
        print("\nLook-ups without an answer:", file=out)
        for failure in incident.failures:
            print(f"  {failure.enricher}: {failure.kind.value}: {failure.message}", file=out)
    if incident.responses:
        print("\nResponses:", file=out)
        for r in incident.responses:
            detail = f" ({r.detail})" if r.detail else ""
            print(
                f"  {short_time(r.at)}  {r.action} by {r.responder}: {r.status.value}{detail}",
                file=out,
            )
    if incident.approvals:
        print("\nApprovals:", file=out)
        for a in incident.approvals:
            answered = ""
            if a.status is not ApprovalStatus.PENDING:
                answered = f" by {a.by or '-'} at {short_time(a.answered_at)}"
            expires = f", expires {short_time(a.expires_at)}" if a.expires_at else ""
            note = f": {a.note}" if a.note else ""
            print(f"  {a.action.name}: {a.status.value}{answered}{expires}{note}", file=out)
    print("\nAudit trail:", file=out)
    for step in incident.audit:
        ms = step.duration.total_seconds() * 1000
        print(
            f"  {short_time(step.started_at)}  {step.stage:<10} {step.outcome:<10} "
            f"{ms:7.1f} ms  {step.detail}",
            file=out,
        )
