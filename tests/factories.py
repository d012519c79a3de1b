"""Small builders for tests: events, incidents and findings with sensible defaults."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import fido

if TYPE_CHECKING:
    from collections.abc import Iterable

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SHA256 = "44d88612fea8a8f36de82e1278abb02f" * 2
_ids = itertools.count(1)


def event(**overrides: Any) -> fido.Event:
    """An EDR alert on ws-042 for bdoe with one SHA-256, unless told otherwise."""
    fields: dict[str, Any] = {
        "detector": "edr",
        "id": f"alert-{next(_ids)}",
        "time": NOW,
        "title": "Trojan detected",
        "severity": fido.Severity.HIGH,
        "host": fido.Host(name="ws-042", ip="10.1.2.3"),
        "user": fido.User(name="bdoe"),
        "observables": [SHA256],
    }
    fields.update(overrides)
    return fido.Event(**fields)


def incident(
    *events: fido.Event, findings: Iterable[fido.Finding] = (), **fields: Any
) -> fido.Incident:
    """An incident holding the events (one default event when none is given)."""
    chosen = events or (event(),)
    return fido.Incident(
        id=fields.pop("id", f"inc-{next(_ids)}"),
        created_at=fields.pop("created_at", NOW),
        updated_at=fields.pop("updated_at", NOW),
        events=tuple(chosen),
        findings=tuple(findings),
        **fields,
    )


def sha() -> fido.Observable:
    return fido.Observable.parse(SHA256)


def reputation(
    verdict: fido.Verdict = fido.Verdict.MALICIOUS,
    *,
    source: str = "vt",
    reliability: fido.Reliability = fido.Reliability.C,
    subject: fido.Subject | None = None,
    **fields: Any,
) -> fido.Reputation:
    return fido.Reputation(
        source=source,
        verdict=verdict,
        reliability=reliability,
        subject=subject if subject is not None else sha(),
        fetched_at=NOW,
        **fields,
    )


def host_context(host: fido.Host | None = None, **fields: Any) -> fido.HostContext:
    fields.setdefault("source", "cmdb")
    return fido.HostContext(
        subject=host or fido.Host(name="ws-042", ip="10.1.2.3"), fetched_at=NOW, **fields
    )


def user_context(user: fido.User | None = None, **fields: Any) -> fido.UserContext:
    fields.setdefault("source", "ad")
    return fido.UserContext(subject=user or fido.User("bdoe"), fetched_at=NOW, **fields)
