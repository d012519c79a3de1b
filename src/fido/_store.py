"""The `Store` protocol: where the pipeline keeps events, incidents, dead letters and cursors.

No stage knows which store it talks to (memory, SQLite, PostgreSQL): they all go through
these methods. A store's methods may be plain or `async`; the pipeline awaits what returns
an awaitable. Plain methods are called on the pipeline's event loop, so they must be quick
(an in-process store, or SQLite in WAL mode); a store that waits on the network should be
async.
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

__all__ = ["Store"]

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

    def add_event(self, event: Event) -> Maybe[bool]:
        """Store an event before it is processed; False if `(detector, id)` is stored already.

        Atomic: of two concurrent calls with the same key, exactly one returns True.
        """
        ...

    def add_events(self, events: Sequence[Event]) -> Maybe[Sequence[bool]]:
        """`add_event` for a batch, in one transaction where the store has them."""
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

    def save_incident(self, incident: Incident, *, finished: bool = True) -> Maybe[None]:
        """Insert or replace an incident, and mark its events as part of it.

        `finished=False` marks a save in the middle of processing (the write-ahead record
        before a responder is called): if the process dies, `unfinished_incidents` returns
        it so that the pipeline can finish it.
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
        """The id of the open incident to correlate with, if any.

        It shares a host key (any of `Host.keys`: the name or the IP) or an observable, its
        last event is at or after `start`, its
        first event at or before `end`, and (if given) its first event at or after
        `first_after`. Of several, the most recently updated (then the greatest id).
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
