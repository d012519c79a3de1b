"""`MemoryStore`: the default store, in process memory (tests, notebooks, short runs)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import attrs

from fido._errors import ConflictError
from fido._incident import ApprovalStatus, Incident, IncidentStatus
from fido.scoring._history import History, PriorIncident

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from fido._deadletter import DeadLetter
    from fido._event import Event
    from fido._observable import Observable

__all__ = ["MemoryStore"]


def _span(incident: Incident) -> tuple[datetime, datetime]:
    times = [e.time for e in incident.events]
    return (min(times), max(times)) if times else (incident.created_at, incident.updated_at)


def _added(incident: Incident, before: Incident | None) -> tuple[Event, ...] | None:
    """The events `incident` adds to `before`, or None when it does not extend it.

    Tuples compare their items by identity first, so this is cheap when the incident was
    built on the stored one (the pipeline's case).
    """
    if before is None:
        return None
    had = before.events
    if not had or incident.events[: len(had)] != had:
        return None
    return incident.events[len(had) :]


class MemoryStore:
    """A `Store` in process memory: fast, and gone when the process ends.

    Nothing is evicted: it is meant for tests, notebooks and bounded runs. For a service
    that runs all day, use `SQLiteStore`. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._events: dict[tuple[str, str], str | None] = {}
        self._pending: dict[tuple[str, str], Event] = {}
        self._incidents: dict[str, Incident] = {}
        self._spans: dict[str, tuple[datetime, datetime]] = {}
        self._by_host: dict[str, set[str]] = {}
        self._by_observable: dict[Observable, set[str]] = {}
        self._dead: list[DeadLetter] = []
        self._cursors: dict[str, str | None] = {}
        self._unfinished: set[str] = set()
        self._claims: dict[tuple[str, str], tuple[str, datetime]] = {}
        self._runner: tuple[str, datetime] | None = None

    def __repr__(self) -> str:
        return f"MemoryStore(incidents={len(self._incidents)}, events={len(self._events)})"

    def add_event(
        self, event: Event, *, owner: str | None = None, until: datetime | None = None
    ) -> bool:
        with self._lock:
            if event.key in self._events:
                return False
            self._events[event.key] = None
            self._pending[event.key] = event
            if owner is not None and until is not None:
                self._claims[event.key] = (owner, until)
            return True

    def add_events(
        self, events: Sequence[Event], *, owner: str | None = None, until: datetime | None = None
    ) -> list[bool]:
        with self._lock:
            return [self.add_event(event, owner=owner, until=until) for event in events]

    def claim_event(
        self,
        detector: str,
        event_id: str,
        *,
        owner: str,
        until: datetime,
        now: datetime,
        steal: str | None = None,
    ) -> str | None:
        key = (detector, event_id)
        with self._lock:
            if key not in self._pending:
                return None
            held = self._claims.get(key)
            if held is None or held[1] <= now or held[0] in (owner, steal):
                self._claims[key] = (owner, until)
                return owner
            return held[0]

    def incident_for_event(self, detector: str, event_id: str) -> str | None:
        with self._lock:
            return self._events.get((detector, event_id))

    def pending_events(self) -> Sequence[Event]:
        with self._lock:
            return list(self._pending.values())

    def add_dead_letter(self, letter: DeadLetter) -> None:
        with self._lock:
            self._dead.append(letter)

    def dead_letters(self, *, limit: int | None = None) -> Sequence[DeadLetter]:
        with self._lock:
            newest = self._dead[::-1]
        return newest if limit is None else newest[:limit]

    def save_incident(
        self, incident: Incident, *, finished: bool = True, expected: int | None = None
    ) -> int:
        with self._lock:
            stored = self._incidents.get(incident.id)
            revision = 0 if stored is None else stored.revision
            if expected is not None and expected != revision:
                raise ConflictError(
                    "the incident was saved by someone else since it was read",
                    incident_id=incident.id,
                    expected=expected,
                    found=revision,
                )
            snapshot = attrs.evolve(incident, revision=revision + 1)
            self._incidents[incident.id] = snapshot
            if finished:
                self._unfinished.discard(incident.id)
            else:
                self._unfinished.add(incident.id)
            # Index what the save adds: an incident that grows by an event costs that
            # event, not every event it holds.
            added = _added(incident, stored)
            if added is None:
                added = incident.events
                self._spans[incident.id] = _span(incident)
            elif added:
                first, last = self._spans[incident.id]
                times = [e.time for e in added]
                self._spans[incident.id] = (min(first, *times), max(last, *times))
            for event in added:
                self._events[event.key] = incident.id
                self._pending.pop(event.key, None)
                self._claims.pop(event.key, None)
                # A host another describes more fully has no key the wider one lacks, so
                # every event's host keys are the keys of `Incident.hosts`.
                if event.host is not None:
                    for key in event.host.keys:
                        self._by_host.setdefault(key, set()).add(incident.id)
                for observable in event.observables:
                    self._by_observable.setdefault(observable, set()).add(incident.id)
            return snapshot.revision

    def unfinished_incidents(self) -> Sequence[Incident]:
        with self._lock:
            return [attrs.evolve(self._incidents[i]) for i in sorted(self._unfinished)]

    def get_incident(self, incident_id: str) -> Incident | None:
        with self._lock:
            found = self._incidents.get(incident_id)
        return None if found is None else attrs.evolve(found)

    def find_open_incident(
        self,
        *,
        hosts: Iterable[str],
        observables: Iterable[Observable],
        start: datetime,
        end: datetime,
        first_after: datetime | None = None,
    ) -> str | None:
        with self._lock:
            ids: set[str] = set()
            for host in hosts:
                ids |= self._by_host.get(host, set())
            for observable in observables:
                ids |= self._by_observable.get(observable, set())
            best: Incident | None = None
            for incident_id in ids:
                incident = self._incidents[incident_id]
                if not incident.joinable:
                    continue
                first, last = self._spans[incident_id]
                if last < start or first > end:
                    continue
                if first_after is not None and first < first_after:
                    continue
                if best is None or (incident.updated_at, incident.id) > (best.updated_at, best.id):
                    best = incident
        return None if best is None else best.id

    def incidents(
        self,
        *,
        status: IncidentStatus | None = None,
        host: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        min_total: int | None = None,
        limit: int | None = None,
    ) -> Sequence[Incident]:
        with self._lock:
            chosen = list(self._incidents.values())
        if status is not None:
            chosen = [i for i in chosen if i.status is status]
        if host is not None:
            chosen = [i for i in chosen if any(host in h.keys for h in i.hosts)]
        if since is not None:
            chosen = [i for i in chosen if i.updated_at >= since]
        if until is not None:
            chosen = [i for i in chosen if i.updated_at <= until]
        if min_total is not None:
            chosen = [i for i in chosen if i.assessment.total >= min_total]
        chosen.sort(key=lambda i: (i.updated_at, i.id), reverse=True)
        if limit is not None:
            chosen = chosen[:limit]
        return [attrs.evolve(i) for i in chosen]

    def pending_approvals(self) -> Sequence[Incident]:
        with self._lock:
            return [
                attrs.evolve(i)
                for i in self._incidents.values()
                if any(a.status is ApprovalStatus.PENDING for a in i.approvals)
            ]

    def overdue_approvals(self, now: datetime) -> Sequence[Incident]:
        with self._lock:
            return [
                attrs.evolve(i)
                for i in self._incidents.values()
                if any(
                    a.status is ApprovalStatus.PENDING
                    and a.expires_at is not None
                    and a.expires_at <= now
                    for a in i.approvals
                )
            ]

    def history(
        self,
        *,
        observables: Iterable[Observable],
        hosts: Iterable[str],
        since: datetime,
        exclude: str | None = None,
    ) -> History:
        with self._lock:
            sightings = {}
            for observable in observables:
                seen = self._by_observable.get(observable)
                count = 0 if seen is None else len(seen) - (exclude in seen)
                if count:
                    sightings[observable] = count
            priors = []
            for host in set(hosts):
                for incident_id in self._by_host.get(host, set()):
                    if incident_id == exclude:
                        continue
                    incident = self._incidents[incident_id]
                    last = self._spans[incident_id][1]
                    if last >= since:
                        priors.append(
                            PriorIncident(
                                id=incident.id,
                                host=host,
                                at=last,
                                total=incident.assessment.total,
                                level=incident.decision.level,
                            )
                        )
        priors.sort(key=lambda p: (p.at, p.id))
        return History(sightings=sightings, incidents=priors)

    def get_cursor(self, detector: str) -> str | None:
        with self._lock:
            return self._cursors.get(detector)

    def set_cursor(self, detector: str, cursor: str | None) -> None:
        with self._lock:
            self._cursors[detector] = cursor

    def acquire_runner(self, owner: str, since: datetime) -> tuple[str, datetime] | None:
        """Become the store's one runner (see `RunnerStore`); None on success."""
        with self._lock:
            if self._runner is None or self._runner[0] == owner:
                self._runner = (owner, since if self._runner is None else self._runner[1])
                return None
            return self._runner

    def release_runner(self, owner: str) -> None:
        """Let the store go, if `owner` holds it."""
        with self._lock:
            if self._runner is not None and self._runner[0] == owner:
                self._runner = None

    def close(self) -> None:
        """Nothing to release."""
