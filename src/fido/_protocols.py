"""The adapter protocols: what a detector, an enricher and a responder look like.

An adapter is any object with these members: no base class to inherit, no registration.
Methods may be plain or `async`: the pipeline awaits what returns an awaitable and runs
plain methods in worker threads, so a blocking library never stalls the others.

Lifecycle: an adapter that holds resources (an HTTP client, an LDAP connection) may offer
`close()` or `async aclose()`; `Pipeline.close()` calls them. Adapters may also be used as
(async) context managers on their own.

Secrets: an adapter takes its credentials explicitly and never lets them reach its `repr`,
its log records or its errors. `fido.testing.check_enricher` (and the detector and
responder twins) verify this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Iterable, Sequence

    from fido._assessment import Action
    from fido._deadletter import DeadLetter
    from fido._event import Event
    from fido._findings import Finding, Subject
    from fido._incident import Incident

__all__ = ["Cursor", "Detector", "Enricher", "PollResult", "Responder"]

SubjectT = TypeVar("SubjectT", contravariant=True)
"""The subjects an enricher's `enrich` takes (it may declare a narrower type, such as
`Observable`, when its `accepts` only lets those through)."""

Cursor: TypeAlias = "str | None"
"""Where a detector's polling stands: its own opaque string (an offset, a token, a time)."""

PollResult: TypeAlias = "tuple[Sequence[Event | DeadLetter], Cursor]"
"""What `Detector.poll` returns: the new events (and dead letters) and the next cursor."""


@runtime_checkable
class Detector(Protocol):
    """**Protocol:** a source of alerts (an EDR, an IDS, a SIEM rule, a log file).

    Attributes:
        name: The detector's name; every event it makes carries it as `event.detector`.
    """

    name: str

    def parse(self, payload: Any) -> Iterable[Event | DeadLetter]:
        """Turn one payload the caller already holds (a webhook body, a log line) into events.

        Pure: no I/O, no clock, the same payload always gives the same events. An item of
        the payload that cannot become an event is yielded as a `DeadLetter` (see
        `DeadLetter.from_error`), so that the others still count.

        Raises:
            DetectorError: The payload as a whole cannot be read (not this product's
                format). `InvalidEvent` is also accepted.
        """
        ...

    def poll(self, cursor: Cursor) -> PollResult | Awaitable[PollResult]:
        """Fetch what is new since `cursor` (None the first time) from the product.

        Returns the new events (and dead letters) and the next cursor. The pipeline
        persists the cursor only after the events are stored, so a crash re-polls from
        the last stored cursor (at least once; deduplication makes it exactly once).
        Detectors that are only fed by `parse` return `((), cursor)`.

        Raises:
            DetectorError: The product could not be reached or answered wrongly. The
                pipeline backs off and retries; it never loses the cursor.
        """
        ...


@runtime_checkable
class Enricher(Protocol[SubjectT]):
    """**Protocol:** a source of context about subjects (threat intelligence, a directory).

    Generic in the subjects `enrich` takes: an enricher of observables only is an
    `Enricher[Observable]`; the pipeline takes any `Enricher[Any]`.

    Attributes:
        name: The enricher's name; its findings carry it as `source`.
    """

    name: str

    def accepts(self, subject: Subject) -> bool:
        """Whether `enrich` can look up this subject (fast, no I/O, never raises).

        For example a VirusTotal enricher accepts hashes, domains, URLs and external IP
        addresses; a directory accepts users. Decline internal addresses
        (`observable.is_internal`) when sending them out would leak them.
        """
        ...

    def enrich(self, subject: SubjectT) -> Finding | Awaitable[Finding | None] | None:
        """Look the subject up: a finding, or None when the source knows nothing of it.

        Must be safe to call concurrently and may be retried: looking something up twice
        has no side effect. The pipeline applies a timeout (the enricher's `timeout`
        attribute in seconds if it has one, else the pipeline's) and fills in the
        finding's `subject` and `fetched_at` if it leaves them out.

        Raises:
            EnrichmentError: The look-up failed (naming the adapter and the subject, never
                the credential); with `skipped=True` when it was not attempted (circuit
                open, quota spent). The incident records the failure and goes on.
        """
        ...


@runtime_checkable
class Responder(Protocol):
    """**Protocol:** something that carries out an action (notify, open a ticket, contain).

    Attributes:
        name: The responder's name.
    """

    name: str

    def respond(self, incident: Incident, action: Action) -> str | Awaitable[str | None] | None:
        """Carry out `action` for `incident`; optionally return a detail (a ticket key).

        The pipeline calls each responder once per (incident, action): the idempotency key
        `f"{incident.id}/{action.name}/{responder.name}"` is recorded before the call, so a
        retry or a restart never sends twice. Responders that can, should pass that key on
        to their product (a PagerDuty `dedup_key`, say). Alert content in the incident is
        attacker-controlled: escape it for the output (HTML, Slack mrkdwn, Jira markup)
        and defang indicators (`observable.defanged()`).

        Raises:
            ResponderError: The action could not be carried out. It is recorded on the
                incident as failed.
        """
        ...
