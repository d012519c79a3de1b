"""The `Store` protocol: where the pipeline keeps events, incidents, dead letters and cursors.

No stage knows which store it talks to (memory, SQLite, PostgreSQL): they all go through
these methods. A store's methods may be plain or `async`; the pipeline awaits what returns
an awaitable. Plain methods are called on the pipeline's event loop, so they must be quick
(an in-process store, or SQLite in WAL mode); a store that waits on the network should be
async.

Several pipelines may share one store (a `fido run` service and `fido approve` from the
command line, two webhook workers): three things keep them from undoing or repeating each
other's work, and every store implements them the same way (the conformance suite in
`tests/test_store_conformance.py` checks `MemoryStore` and `SQLiteStore` alike):

- **Claims.** The pipeline that stores an event claims it (`add_event(..., owner=, until=)`)
  for `limits.claim_timeout`. Another pipeline that gets the same alert before its incident
  is saved finds it claimed and waits for the incident; only when the claim lapses (a
  crash) or its owner is known to be gone does it take the event over (`claim_event`).
- **Revisions.** Every save of an incident bumps its `revision`; a save with
  `expected=incident.revision` raises `ConflictError` if another save came in between, and
  the pipeline reloads the incident and does its work again.
- **The runner.** One run loop per store: `acquire_runner`/`release_runner` (optional
  methods; a store without them lets any number of run loops share it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeAlias, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Iterable, Sequence
    from datetime import datetime

    from fido._deadletter import DeadLetter
    from fido._event import Event
    from fido._incident import Incident, IncidentStatus
    from fido._observable import Observable
    from fido.scoring._history import History

__all__ = ["RunnerStore", "Store"]

T = TypeVar("T")
Maybe: TypeAlias = "T | Awaitable[T]"


@runtime_checkable
class Store(Protocol):
    """**Protocol:** the pipeline's memory of events, incidents, dead letters and cursors.

    Implementations: `MemoryStore` (the default), `SQLiteStore`. Records are value
    snapshots: changing an incident after saving it does not change the stored one.
    Stored records never hold a secret (adapters never put one in a finding or a
    response).
    """

    def add_event(
        self, event: Event, *, owner: str | None = None, until: datetime | None = None
    ) -> Maybe[bool]:
        """Store an event before it is processed; False if `(detector, id)` is stored already.

        Atomic: of two concurrent calls with the same key, exactly one returns True. With
        `owner`, the event it adds is claimed by `owner` until `until` (see `claim_event`).
        """
        ...

    def add_events(
        self, events: Sequence[Event], *, owner: str | None = None, until: datetime | None = None
    ) -> Maybe[Sequence[bool]]:
        """`add_event` for a batch, in one transaction where the store has them."""
        ...

    def claim_event(
        self,
        detector: str,
        event_id: str,
        *,
        owner: str,
        until: datetime,
        now: datetime,
        steal: str | None = None,
    ) -> Maybe[str | None]:
        """Claim a stored event that is not yet part of an incident, atomically.

        The claim goes to `owner` (until `until`) when the event is unclaimed, its claim
        lapsed (`until` at or before `now`), or it is held by `owner` itself or by `steal`
        (an owner the caller knows is gone). Renewing one's own claim is a claim.

        Returns:
            Who holds the claim after the call (`owner` when it is now the caller's), or
            None when the event is part of a saved incident (or is not stored).
        """
        ...

    def incident_for_event(self, detector: str, event_id: str) -> Maybe[str | None]:
        """The id of the incident that holds the event, if it was processed."""
        ...

    def pending_events(self) -> Maybe[Sequence[Event]]:
        """Events stored but not yet part of a saved incident (a crash came in between)."""
        ...

    def add_dead_letter(self, letter: DeadLetter) -> Maybe[None]:
        """Keep an alert that could not become an event, with its reason."""
        ...

    def dead_letters(self, *, limit: int | None = None) -> Maybe[Sequence[DeadLetter]]:
        """The dead letters, newest first."""
        ...

    def save_incident(
        self, incident: Incident, *, finished: bool = True, expected: int | None = None
    ) -> Maybe[int]:
        """Insert or replace an incident, and mark its events as part of it.

        `finished=False` marks a save in the middle of processing (the write-ahead record
        before a responder is called): if the process dies, `unfinished_incidents` returns
        it so that the pipeline can finish it.

        `expected` is the revision the caller's copy started from (`incident.revision`
        as read; 0 for a new incident): the save is refused if the stored incident's
        revision is another (someone saved it meanwhile). None saves whatever is stored.

        Returns:
            The incident's new revision (what `get_incident` sets on `revision`).

        Raises:
            ConflictError: The stored revision is not `expected`; nothing was written.
        """
        ...

    def unfinished_incidents(self) -> Maybe[Sequence[Incident]]:
        """Incidents whose last save was not a finished one (a crash came in between)."""
        ...

    def get_incident(self, incident_id: str) -> Maybe[Incident | None]:
        """One incident, or None."""
        ...

    def find_open_incident(
        self,
        *,
        hosts: Iterable[str],
        observables: Iterable[Observable],
        start: datetime,
        end: datetime,
        first_after: datetime | None = None,
    ) -> Maybe[str | None]:
        """The id of the incident to correlate with, if any.

        It is joinable (`Incident.joinable`: open, or suppressed by its score rather than
        by the allowlist), it shares a host key (any of `Host.keys`: the name or the IP)
        or an observable, its last event is at or after `start`, its first event at or
        before `end`, and (if given) its first event at or after `first_after`. Of
        several, the most recently updated (then the greatest id).
        """
        ...

    def incidents(
        self,
        *,
        status: IncidentStatus | None = None,
        host: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        min_total: int | None = None,
        limit: int | None = None,
    ) -> Maybe[Sequence[Incident]]:
        """Incidents matching every filter given, newest first (by `updated_at`)."""
        ...

    def pending_approvals(self) -> Maybe[Sequence[Incident]]:
        """The incidents with at least one pending approval."""
        ...

    def overdue_approvals(self, now: datetime) -> Maybe[Sequence[Incident]]:
        """The incidents with a pending approval whose `expires_at` is at or before `now`.

        The run loop asks this every half minute: it must not cost more as the pending
        approvals pile up (the SQLite store keeps the earliest expiry in an index).
        """
        ...

    def history(
        self,
        *,
        observables: Iterable[Observable],
        hosts: Iterable[str],
        since: datetime,
        exclude: str | None = None,
    ) -> Maybe[History]:
        """What the scorer needs from the past.

        `sightings`: for each observable, in how many other incidents it appears;
        `incidents`: other incidents on these host keys whose last event is after `since`
        (a host is known by each of its `Host.keys`: its name and its IP).
        """
        ...

    def get_cursor(self, detector: str) -> Maybe[str | None]:
        """A detector's persisted polling cursor."""
        ...

    def set_cursor(self, detector: str, cursor: str | None) -> Maybe[None]:
        """Persist a detector's polling cursor (after its events are stored)."""
        ...

    def close(self) -> Maybe[None]:
        """Release the store's resources."""
        ...


class RunnerStore(Protocol):
    """**Protocol:** the optional runner methods of a `Store`: one run loop per store.

    `Pipeline.run` calls `acquire_runner` when it starts (and again every few seconds, to
    renew the hold) and `release_runner` when it stops, when the store has them. The
    owner is `host/pid/token`. A store must let the hold go when its holder dies:
    `SQLiteStore` holds an `flock` on a file beside the database (the system releases it
    with the process); a networked store would expire a hold that is not renewed.
    """

    def acquire_runner(self, owner: str, since: datetime) -> Maybe[tuple[str, datetime] | None]:
        """Become the store's runner (or renew the hold): None on success.

        Returns:
            None when `owner` holds the store now; else the holder's owner and since when.
        """
        ...

    def release_runner(self, owner: str) -> Maybe[None]:
        """Let the store go, if `owner` holds it."""
        ...
