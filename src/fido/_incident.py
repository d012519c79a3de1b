"""The `Incident`: what the pipeline makes of one or more correlated events, with its record."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import attrs

from fido import _serde
from fido._assessment import Action, Assessment, Decision
from fido._enums import Enum
from fido._errors import InvalidRecord
from fido._event import Event
from fido._findings import Finding, Subject
from fido._severity import Severity

if TYPE_CHECKING:
    from fido._entities import Host, User
    from fido._observable import Observable

__all__ = [
    "INCIDENT_SCHEMA",
    "Approval",
    "ApprovalStatus",
    "EmptyLookup",
    "EnrichmentFailure",
    "FailureKind",
    "Incident",
    "IncidentStatus",
    "ResponseRecord",
    "ResponseStatus",
    "StageRecord",
    "covers",
]

INCIDENT_SCHEMA: Final = 1
"""The version of the dict form that `Incident.to_dict` writes."""

ALLOWLISTED: Final = "allowlisted"
"""The decision level of an incident the allowlist suppressed."""


class IncidentStatus(Enum):
    """Where an incident stands."""

    OPEN = "open"
    """Being handled, or handled and awaiting an analyst."""
    SUPPRESSED = "suppressed"
    """An allowlist entry (or the policy) withheld every action; kept with the reason."""
    CLOSED = "closed"
    """Resolved."""


class FailureKind(Enum):
    """Why an enricher gave no finding for a subject."""

    ERROR = "error"
    """The enricher raised."""
    TIMEOUT = "timeout"
    """The enricher did not answer within its timeout."""
    SKIPPED = "skipped"
    """The look-up was not attempted (circuit open, quota spent)."""


class ResponseStatus(Enum):
    """The outcome of handing one action to one responder."""

    STARTED = "started"
    """Recorded before the responder is called; replaced by the outcome. A STARTED record
    left by a crash means the outcome is unknown: fido does not call again (it could send
    twice) and reports it instead."""
    DONE = "done"
    """The responder returned."""
    FAILED = "failed"
    """The responder raised, or was not called at all (no worker thread was free): it did
    not act, so the next event on the incident tries again."""
    SKIPPED = "skipped"
    """No responder is configured for the action."""
    UNKNOWN = "unknown"
    """The responder did not answer within `limits.respond_timeout`: it may have acted or
    not. As for STARTED, fido does not call again (it could send twice); check by hand."""


class ApprovalStatus(Enum):
    """Where an approval stands. Each is answered once."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


@attrs.frozen(kw_only=True)
class EnrichmentFailure:
    """A look-up that gave no finding, recorded on the incident instead of stopping it.

    Args:
        enricher: The enricher's name.
        subject: What it was asked about.
        kind: Error, timeout or skipped.
        message: What happened (never a credential).
        at: When.
    """

    enricher: str
    subject: Subject
    kind: FailureKind
    message: str
    at: datetime


@attrs.frozen(kw_only=True)
class EmptyLookup:
    """A look-up that found nothing: remembered so that the subject is not asked again.

    Args:
        enricher: The enricher's name.
        subject: What it was asked about.
        at: When.
    """

    enricher: str
    subject: Subject
    at: datetime


@attrs.frozen(kw_only=True)
class StageRecord:
    """One entry of an incident's audit trail: a stage ran.

    Args:
        stage: The stage's name (`validate`, `dedup`, `allowlist`, `correlate`, `enrich`,
            `score`, `decide`, `respond`, `record`, or `approve`).
        started_at: When it started.
        duration: How long it took.
        outcome: `ok`, `suppressed`, `failed`, `skipped`, ... as the stage reports it.
        detail: A few words more.
        event_id: The event being handled, for stages that run per event.
    """

    stage: str
    started_at: datetime
    duration: timedelta
    outcome: str
    detail: str = ""
    event_id: str | None = None


@attrs.frozen(kw_only=True)
class ResponseRecord:
    """One action handed to one responder.

    Args:
        action: The action's name.
        responder: The responder's name.
        status: Done, failed or skipped.
        at: When.
        key: The idempotency key, `incident/action/responder`.
        detail: What the responder reported, or why it failed.
    """

    action: str
    responder: str
    status: ResponseStatus
    at: datetime
    key: str
    detail: str = ""


@attrs.frozen(kw_only=True)
class Approval:
    """An action that waits for a person's decision.

    Args:
        action: The action awaiting approval.
        status: Pending, approved, rejected or expired.
        requested_at: When the approval was requested.
        expires_at: When it expires if nobody answers (None: never).
        answered_at: When it was answered (or expired).
        by: Who answered.
        note: What they said.
    """

    action: Action
    status: ApprovalStatus = ApprovalStatus.PENDING
    requested_at: datetime
    expires_at: datetime | None = None
    answered_at: datetime | None = None
    by: str | None = None
    note: str | None = None


@attrs.define(kw_only=True)
class Incident:
    """One or more correlated events, and everything the pipeline did about them.

    The pipeline creates and fills incidents; analysts read them, and the store keeps
    them. Record fields are tuples, in the order things happened.

    Args:
        id: The incident's id.
        created_at: When the first event arrived.
        updated_at: When the incident last changed.
        status: Open, suppressed or closed.
        events: The correlated events, in arrival order.
        findings: What the enrichers found, with provenance.
        failures: Look-ups that gave no finding, and why.
        empty_lookups: Look-ups that found nothing (not repeated for later events).
        assessment: The latest assessment (empty until scored).
        decision: The latest decision (empty until decided).
        responses: Every action handed to a responder, and the outcome.
        approvals: Actions that waited (or wait) for a person.
        audit: Every stage that ran, when, for how long, with what outcome.
        suppressed_by: Why the incident was suppressed (the allowlist entry), if it was.
        revision: How many times the store had saved the incident when this copy was read
            (0: never saved). Set by the store; not part of the data (`to_dict`) nor of
            equality. A save with `expected=incident.revision` refuses to undo another's.
    """

    id: str
    created_at: datetime
    updated_at: datetime
    status: IncidentStatus = IncidentStatus.OPEN
    events: tuple[Event, ...] = ()
    findings: tuple[Finding, ...] = ()
    failures: tuple[EnrichmentFailure, ...] = ()
    empty_lookups: tuple[EmptyLookup, ...] = ()
    assessment: Assessment = attrs.field(factory=Assessment)
    decision: Decision = attrs.field(factory=Decision)
    responses: tuple[ResponseRecord, ...] = ()
    approvals: tuple[Approval, ...] = ()
    audit: tuple[StageRecord, ...] = ()
    suppressed_by: str | None = None
    revision: int = attrs.field(default=0, eq=False, metadata={"derived": True})

    @property
    def joinable(self) -> bool:
        """Whether a later correlated event may join it: open, or suppressed by its score.

        An incident the allowlist suppressed, or a closed one, is not joined.
        """
        if self.status is IncidentStatus.OPEN:
            return True
        return self.status is IncidentStatus.SUPPRESSED and self.decision.level != ALLOWLISTED

    @property
    def title(self) -> str:
        """The first event's title."""
        return self.events[0].title if self.events else ""

    @property
    def severity(self) -> Severity:
        """The highest severity among the events (INFO if there are none)."""
        return max((e.severity for e in self.events), default=Severity.INFO)

    @property
    def detectors(self) -> tuple[str, ...]:
        """The detectors that reported the events, without repeats."""
        return tuple(dict.fromkeys(e.detector for e in self.events))

    @property
    def hosts(self) -> tuple[Host, ...]:
        """The hosts of the events, without repeats.

        A host that another one describes more fully is left out: `Host(ip="10.1.2.3")`
        from a network sensor and `Host(name="ws-042", ip="10.1.2.3")` from an EDR are one
        machine, looked up and scored once.
        """
        hosts = tuple(dict.fromkeys(e.host for e in self.events if e.host is not None))
        if len(hosts) < 2:
            return hosts
        # Only a host that shares an identifier can cover another: index them by value,
        # so that an incident on many hosts costs a pass, not every pair.
        sharing: dict[tuple[str, str], list[Host]] = {}
        for host in hosts:
            for field in _IDENTIFIERS:
                value = getattr(host, field)
                if value is not None:
                    sharing.setdefault((field, value), []).append(host)
        kept = []
        for host in hosts:
            others = {
                id(o): o
                for field in _IDENTIFIERS
                if getattr(host, field) is not None
                for o in sharing[(field, getattr(host, field))]
                if o is not host
            }
            if not any(covers(o, host) for o in others.values()):
                kept.append(host)
        return tuple(kept)

    @property
    def users(self) -> tuple[User, ...]:
        """The users of the events, without repeats."""
        return tuple(dict.fromkeys(e.user for e in self.events if e.user is not None))

    @property
    def observables(self) -> tuple[Observable, ...]:
        """The observables of the events, without repeats, in first-seen order."""
        return tuple(dict.fromkeys(o for e in self.events for o in e.observables))

    @property
    def subjects(self) -> tuple[Subject, ...]:
        """What the enrichers look up: the observables, then the hosts, then the users."""
        return (*self.observables, *self.hosts, *self.users)

    def findings_for(self, subject: Subject) -> tuple[Finding, ...]:
        """The findings about one subject."""
        return tuple(f for f in self.findings if f.subject == subject)

    def to_dict(self) -> dict[str, Any]:
        """The incident as JSON data, with its schema version under `"schema"`.

        `Incident.from_dict(incident.to_dict()) == incident`, also through JSON.
        """
        return {"schema": INCIDENT_SCHEMA, **_serde.dump(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Incident:
        """Build an incident from the dict form that `to_dict` writes.

        Raises:
            InvalidRecord: The schema version is newer than this fido reads, or a field
                is missing, unknown or malformed.
        """
        if not isinstance(data, Mapping):
            raise InvalidRecord(f"an incident is a JSON object, not {type(data).__name__}")
        schema = data.get("schema", INCIDENT_SCHEMA)
        if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
            raise InvalidRecord(
                "the schema version is a positive integer", record="Incident", field="schema"
            )
        if schema > INCIDENT_SCHEMA:
            raise InvalidRecord(
                f"schema version {schema} is newer than this fido reads ({INCIDENT_SCHEMA})",
                record="Incident",
                field="schema",
            )
        return _serde.load_record(cls, {k: v for k, v in data.items() if k != "schema"})


_HOST_FIELDS: Final = ("name", "fqdn", "ip", "mac", "os")
_IDENTIFIERS: Final = ("name", "fqdn", "ip", "mac")  # a Host has at least one


def covers(wider: Host, narrower: Host) -> bool:
    """Whether `wider` has every field `narrower` has, with the same values, and more."""
    more = False
    for field in _HOST_FIELDS:
        mine, theirs = getattr(wider, field), getattr(narrower, field)
        if theirs is not None and mine != theirs:
            return False
        more = more or (mine is not None and theirs is None)
    return more
