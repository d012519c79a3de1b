"""What the scoring rules read: the incident's facts, grouped once per assessment.

The scorer runs tens of thousands of times a second, so everything a rule would otherwise
recompute (the incident's hosts and users, the highest severity, the best category, the
findings grouped by subject) is gathered here in one pass over the events and one over
the findings.

Findings arrive in any order and the assessment must not depend on it: the groups are
put in a canonical order where order matters (by source, then by content), and every
rule that picks one finding among several breaks ties the same way.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Final, TypeVar

from fido import _serde
from fido._assessment import make_contribution, printable
from fido._entities import Host, User
from fido._errors import ScoringError
from fido._findings import HostContext, Reputation, UserContext
from fido._observable import Observable

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from fido._event import Event
    from fido._findings import Finding, Subject
    from fido._incident import Incident
    from fido.scoring._compiled import Compiled
    from fido.scoring._history import History
    from fido.scoring._policy import Policy

__all__ = ["Context", "apportion", "canonical", "contribution", "printable", "subject_key"]

F = TypeVar("F", Reputation, HostContext, UserContext)

_KINDS: Final = (Reputation, HostContext, UserContext)

contribution = make_contribution


def subject_key(subject: Subject | None) -> str:
    """A stable text key for a subject (hosts and users by their correlation key)."""
    if subject is None:
        return ""
    if isinstance(subject, Observable):
        return subject.key
    if isinstance(subject, Host):
        return f"host:{subject.key}"
    return f"user:{subject.key}"


def _describe(subject: Subject | None) -> str:
    """A subject for an explanation; indicators defanged, since people read this."""
    if type(subject) is Observable:
        text = subject.defanged()
        return text if text.isprintable() else printable(text)
    if subject is None:
        return "an unnamed subject"
    if isinstance(subject, Observable):
        return printable(subject.defanged())
    if isinstance(subject, Host):
        return f"host {printable(subject.key)}"
    return f"user {printable(str(subject))}"


def apportion(values: list[float]) -> list[int]:
    """Integers that add up to `round(sum(values))`, each within 1 of its value.

    Largest remainders get the extra points; ties go to the earlier value. `round` is
    Python's: halves go to the even neighbour.
    """
    floors = list(map(math.floor, values))
    missing = round(sum(values)) - sum(floors)
    if missing:
        order = sorted(range(len(values)), key=lambda i: (floors[i] - values[i], i))
        for i in order[:missing]:
            floors[i] += 1
    return floors


def _content(finding: Finding) -> str:
    return json.dumps(_serde.dump(finding), sort_keys=True)


def canonical(findings: list[F]) -> list[F]:
    """The findings in an order that ignores their arrival order: by source, then content.

    The content is compared only when one source said two things about one subject.
    """
    if len(findings) < 2:
        return findings
    ordered = sorted(findings, key=_source)
    sources = [f.source for f in ordered]
    if len(set(sources)) < len(sources):
        ordered.sort(key=lambda f: (f.source, _content(f)))
    return ordered


def _source(finding: Finding) -> str:
    return finding.source


def _kind(finding: object) -> type:
    """The finding type of a finding, for subclasses of the finding types too."""
    for kind in _KINDS:
        if isinstance(finding, kind):
            return kind
    raise ScoringError(
        "findings are Reputation, HostContext or UserContext records, "
        f"not {type(finding).__name__}",
        rule="context",
    )


class Context:
    """The inputs of one assessment, grouped for the rules.

    Attributes:
        incident: The incident being assessed.
        events: Its events.
        history: Earlier sightings and incidents.
        policy: The policy.
        compiled: The policy's lookup tables.
        now: The time of the assessment.
        top: The event with the highest severity (the first of those), if any.
        category: The best category as `(points, reason, rule, detector)`, if any scores.
        hosts: The incident's hosts (`Incident.hosts`).
        last_host: The last host the events name (usually the only one), if any.
        host_keys: Its keys (`Host.keys`), worked out once.
        users: The incident's users by account key (`User.key`), the first seen of each.
        reputations: Reputation findings by subject key (each subject's own order).
        host_contexts: HostContext findings on a host (see `host_findings`).
        user_contexts: UserContext findings by account key.
        described: Subjects described so far, by key (see `describe`).
    """

    __slots__ = (
        "category",
        "compiled",
        "described",
        "events",
        "history",
        "host_contexts",
        "host_keys",
        "hosts",
        "incident",
        "last_host",
        "now",
        "policy",
        "reputations",
        "top",
        "user_contexts",
        "users",
    )

    def __init__(
        self,
        incident: Incident,
        findings: Iterable[Finding],
        history: History,
        policy: Policy,
        now: datetime,
    ) -> None:
        self.incident = incident
        self.history = history
        self.policy = policy
        compiled: Compiled = policy.compiled
        self.compiled = compiled
        self.now = now
        events: tuple[Event, ...] = incident.events
        self.events = events
        severity, categories = compiled.severity, compiled.categories
        top: Event | None = None
        top_rank = -1
        category: tuple[int, str, str, str] | None = None
        users: dict[str, User] = {}
        account: User | None = None  # the last account seen: events usually share one
        account_key = ""
        host: Host | None = None
        one_host = True  # every event on the same Host object (or on none): the usual case
        for event in events:
            rank = severity[event.severity][0]
            if rank > top_rank:
                top, top_rank = event, rank
            name = event.category
            if name is not None:
                found = categories.get(name)
                if found is not None and (category is None or found[0] > category[0]):
                    category = (*found, event.detector)
            user = event.user
            if user is not None and user is not account:
                account = user
                key = account_key = user.key
                if key not in users:
                    users[key] = user
            on = event.host
            if on is not None and on is not host:
                one_host = host is None
                host = on
        self.top = top
        self.category = category
        self.users = users
        if one_host:
            self.hosts: tuple[Host, ...] = () if host is None else (host,)
        else:
            self.hosts = incident.hosts
        self.last_host = host
        self.host_keys: tuple[str, ...] = () if host is None else host.keys
        reputations: dict[str, list[Reputation]] = {}
        host_contexts: list[HostContext] = []
        user_contexts: dict[str, list[UserContext]] = {}
        for finding in findings:
            kind = type(finding)
            if kind not in _KINDS:
                kind = _kind(finding)  # a subclass of a finding type, or not a finding
            subject = finding.subject
            if kind is Reputation:
                if type(subject) is Observable:
                    key = subject.key
                elif subject is None:  # each source's unnamed verdicts stand alone
                    key = f"?{finding.source}"
                else:
                    key = subject_key(subject)
                group = reputations.get(key)
                if group is None:
                    reputations[key] = [finding]  # type: ignore[list-item]
                else:
                    group.append(finding)  # type: ignore[arg-type]
            elif kind is HostContext:
                if isinstance(subject, Host):
                    host_contexts.append(finding)  # type: ignore[arg-type]
            elif isinstance(subject, User):
                key = account_key if subject is account else subject.key
                on_user = user_contexts.get(key)
                if on_user is None:
                    user_contexts[key] = [finding]  # type: ignore[list-item]
                else:
                    on_user.append(finding)  # type: ignore[arg-type]
        self.reputations = reputations
        self.host_contexts = host_contexts
        self.user_contexts = user_contexts
        self.described: dict[str, str] = {}

    def describe(self, key: str, subject: Subject | None) -> str:
        """A subject for an explanation; indicators defanged, since people read this.

        Described once per key and assessment: the first subject described under a key
        gives the text.
        """
        text = self.described.get(key)
        if text is None:
            text = self.described[key] = _describe(subject)
        return text

    def keys_of(self, host: Host) -> tuple[str, ...]:
        """`host.keys`, worked out once for the incident's usual single Host object."""
        return self.host_keys if host is self.last_host else host.keys

    def host_findings(self, host: Host) -> list[HostContext]:
        """The HostContext findings on any of the host's keys, in canonical order."""
        found = self.host_contexts
        if not found:
            return []
        keys = self.host_keys if host is self.last_host else host.keys
        if not keys:
            return []
        if len(found) == 1 and found[0].subject is host:  # the usual case
            return found
        return canonical([f for f in found if f.subject is host or self._shares(f, keys)])

    def _shares(self, finding: HostContext, keys: tuple[str, ...]) -> bool:
        subject: Host = finding.subject  # type: ignore[assignment]  # checked in __init__
        return not set(keys).isdisjoint(self.keys_of(subject))
