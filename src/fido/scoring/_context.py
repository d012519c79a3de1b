"""What the scoring rules read: the incident's facts, grouped once per assessment.

The scorer runs tens of thousands of times a second, so everything a rule would otherwise
recompute (the incident's observables, hosts and users, each subject's key and its
defanged text) is computed here once.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Final

from fido import _serde
from fido._assessment import make_contribution
from fido._entities import Host
from fido._findings import HostContext, Reputation, UserContext, Verdict
from fido._observable import Observable

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from fido._entities import User
    from fido._findings import Finding, Subject
    from fido._incident import Incident
    from fido.scoring._history import History
    from fido.scoring._policy import Policy

__all__ = ["VERDICT_NAMES", "Context", "apportion", "contribution", "subject_key"]

_TYPE_ORDER: Final = {Reputation: 0, HostContext: 1, UserContext: 2}
VERDICT_NAMES: Final = {v: v.value for v in Verdict}

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
    if subject is None:
        return "an unnamed subject"
    if isinstance(subject, Observable):
        return subject.defanged()
    if isinstance(subject, Host):
        return f"host {subject.key}"
    return f"user {subject}"


def apportion(values: list[float]) -> list[int]:
    """Integers that add up to `round(sum(values))`, each within 1 of its value.

    Largest remainders get the extra points; ties go to the earlier value.
    """
    floors = [math.floor(v) for v in values]
    missing = round(sum(values)) - sum(floors)
    order = sorted(range(len(values)), key=lambda i: (floors[i] - values[i], i))
    for i in order[:missing]:
        floors[i] += 1
    return floors


class Context:
    """The inputs of one assessment, grouped for the rules.

    Attributes:
        incident: The incident being assessed.
        history: Earlier sightings and incidents.
        policy: The policy.
        now: The time of the assessment.
        observables: The incident's observables.
        hosts: The incident's hosts, one per host key (the first seen).
        users: The incident's users, one per account key (the first seen).
        reputations: Reputation findings by subject key, in a canonical order.
        host_contexts: HostContext findings by subject key, in a canonical order.
        user_contexts: UserContext findings by subject key, in a canonical order.
    """

    __slots__ = (
        "_described",
        "history",
        "host_contexts",
        "hosts",
        "incident",
        "now",
        "observables",
        "policy",
        "reputations",
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
        self.now = now
        observables: dict[Observable, None] = {}
        hosts: dict[str, Host] = {}
        users: dict[str, User] = {}
        for event in incident.events:
            for observable in event.observables:
                observables[observable] = None
            if event.user is not None:
                users.setdefault(event.user.key, event.user)
        for host in incident.hosts:  # a host another one describes more fully is left out
            hosts.setdefault(host.key, host)
        self.observables: tuple[Observable, ...] = tuple(observables)
        self.hosts: tuple[Host, ...] = tuple(hosts.values())
        self.users: tuple[User, ...] = tuple(users.values())
        self.reputations: dict[str, list[Reputation]] = {}
        self.host_contexts: dict[str, list[HostContext]] = {}
        self.user_contexts: dict[str, list[UserContext]] = {}
        self._described: dict[str, str] = {}
        for key, finding in _canonical(findings):
            if isinstance(finding, Reputation):
                self.reputations.setdefault(key, []).append(finding)
            elif isinstance(finding, HostContext):
                self.host_contexts.setdefault(key, []).append(finding)
            else:
                self.user_contexts.setdefault(key, []).append(finding)

    def describe(self, key: str, subject: Subject | None) -> str:
        """A subject for an explanation; indicators defanged, since people read this."""
        text = self._described.get(key)
        if text is None:
            text = self._described[key] = _describe(subject)
        return text


def _canonical(findings: Iterable[Finding]) -> list[tuple[str, Finding]]:
    """The findings with their subject keys, in an order that ignores their arrival order.

    A cheap key settles almost every case; only when two findings share it (one source
    saying two things about one subject) is the full content compared.
    """
    keyed = []
    for finding in findings:
        key = subject_key(finding.subject)
        verdict = VERDICT_NAMES[finding.verdict] if isinstance(finding, Reputation) else ""
        keyed.append(((_TYPE_ORDER[type(finding)], finding.source, key, verdict), key, finding))
    keyed.sort(key=lambda item: item[0])
    if len({item[0] for item in keyed}) < len(keyed):
        keyed.sort(key=lambda item: (item[0], json.dumps(_serde.dump(item[2]), sort_keys=True)))
    return [(key, finding) for _, key, finding in keyed]
