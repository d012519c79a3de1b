"""`Digest`: what the stages need of an incident's whole past, kept up to date per event.

An incident may hold hundreds of events; the event that joins it must not cost what the
incident holds. The enrich and score stages need, of the whole incident: which look-ups
were answered (and which failed, how often), its observables, its hosts (without the ones
another describes more fully, as `Incident.hosts`) and their keys. A `Digest` holds these,
indexed, and follows the incident's record tuples as they grow: each journey adds what its
event and its look-ups brought, not what the incident had.

The record tuples only ever grow by appending (a journey builds the next incident on the
last one). A digest remembers how long each tuple was and its last item (by identity):
when the incident's tuple still has that item at that place, only the tail is new; when
it does not (another process saved the incident, which was read back whole), the digest
is built again from the incident.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Final

from cachetools import LRUCache

from fido._incident import FailureKind, covers
from fido.scoring._context import subject_key

if TYPE_CHECKING:
    from fido._entities import Host
    from fido._findings import Subject
    from fido._incident import Incident
    from fido._observable import Observable

__all__ = ["DIGESTED", "Digest", "Digests"]

DIGESTED: Final = 100_000
"""How much the digests of recent incidents may hold in all, in entries (keys, pairs)."""
_IDENTIFIERS: Final = ("name", "fqdn", "ip", "mac")
_TRACKED: Final = ("events", "findings", "failures", "empty_lookups")


class Digest:
    """The indexed state of one incident (see the module's docstring).

    Attributes:
        observables: The incident's observables by key, in first-seen order.
        answered: `(enricher, subject key)` pairs that gave a finding or nothing.
        tries: Failed look-ups (not skipped ones) per pair.
        skipped: Pairs whose look-up was skipped (circuit open, quota spent, a long wait)
            and not answered since: asked again when a later event joins.
        failed: The subjects of failed or skipped look-ups, by subject key.
        sightings: For each observable key asked about, in how many other incidents the
            store found it when it was asked (the score stage asks for each observable
            once, when it joins the incident: see `fido._stages.Score`).
    """

    __slots__ = (
        "_dropped",
        "_hosts",
        "_kept",
        "_marks",
        "_sharing",
        "answered",
        "failed",
        "observables",
        "sightings",
        "skipped",
        "tries",
    )

    def __init__(self) -> None:
        self._marks: dict[str, tuple[int, object]] = {}
        self.observables: dict[str, Observable] = {}
        self._hosts: dict[Host, None] = {}
        self._dropped: set[Host] = set()
        self._sharing: dict[tuple[str, str], list[Host]] = {}
        self._kept: tuple[Host, ...] | None = ()
        self.answered: set[tuple[str, str]] = set()
        self.tries: Counter[tuple[str, str]] = Counter()
        self.skipped: set[tuple[str, str]] = set()
        self.failed: dict[str, Subject] = {}
        self.sightings: dict[str, int] = {}

    @property
    def weight(self) -> int:
        """What the digest holds, in entries (for the cache's bound)."""
        return (
            1
            + len(self.observables)
            + len(self._hosts)
            + len(self.answered)
            + len(self.tries)
            + len(self.skipped)
            + len(self.sightings)
        )

    @property
    def hosts(self) -> tuple[Host, ...]:
        """`Incident.hosts`: the distinct hosts, less those another describes more fully."""
        if self._kept is None:
            self._kept = tuple(h for h in self._hosts if h not in self._dropped)
        return self._kept

    def host_keys(self) -> list[str]:
        """The keys of `hosts` (`Host.keys`), as the history query takes them."""
        return [k for h in self.hosts for k in h.keys]

    def keeps(self, host: Host) -> bool:
        """Whether `host` is one of `hosts` (not described more fully by another)."""
        return host in self._hosts and host not in self._dropped

    def follow(self, incident: Incident) -> Digest:
        """Bring the digest up to the incident's state; return it (or a new one).

        Returns:
            This digest with the incident's new records in it, or a digest built anew
            when the incident is not what this one followed.
        """
        tails: list[tuple[str, tuple[Any, ...]]] = []
        for name in _TRACKED:
            records: tuple[Any, ...] = getattr(incident, name)
            mark = self._marks.get(name, (0, None))
            count, last = mark
            if len(records) < count or (count and records[count - 1] is not last):
                fresh = Digest()
                fresh.follow(incident)
                return fresh
            if len(records) > count:
                tails.append((name, records[count:]))
                self._marks[name] = (len(records), records[-1])
        for name, added in tails:
            if name == "events":
                self._add_events(added)
            elif name == "failures":
                for failure in added:
                    key = subject_key(failure.subject)
                    if failure.kind is FailureKind.SKIPPED:
                        self.skipped.add((failure.enricher, key))
                    else:
                        self.tries[(failure.enricher, key)] += 1
                    self.failed.setdefault(key, failure.subject)
            elif name == "findings":
                self.answered.update((f.source, subject_key(f.subject)) for f in added)
            else:
                self.answered.update((e.enricher, subject_key(e.subject)) for e in added)
        return self

    def _add_events(self, events: tuple[Any, ...]) -> None:
        observables = self.observables
        for event in events:
            for observable in event.observables:
                key = observable.key
                if key not in observables:
                    observables[key] = observable
            host = event.host
            if host is not None and host not in self._hosts:
                self._add_host(host)

    def _add_host(self, host: Host) -> None:
        """`Incident.hosts`, one host at a time: covered hosts stay covered."""
        others: dict[int, Host] = {}
        for field in _IDENTIFIERS:
            value = getattr(host, field)
            if value is not None:
                sharing = self._sharing.setdefault((field, value), [])
                for other in sharing:
                    others[id(other)] = other
                sharing.append(host)
        self._hosts[host] = None
        for other in others.values():
            if covers(other, host):
                self._dropped.add(host)
            if covers(host, other):
                self._dropped.add(other)
        self._kept = None

    def retries(self) -> list[Subject]:
        """The subjects of failed look-ups not yet settled (see `settle`)."""
        return list(self.failed.values())

    def settle(self, key: str) -> None:
        """The failed look-ups of this subject are answered or out of tries: stop asking."""
        self.failed.pop(key, None)


class Digests:
    """The digests of recent incidents, by id, within `DIGESTED` entries."""

    def __init__(self, size: int = DIGESTED) -> None:
        self._cache: LRUCache[str, Digest] = LRUCache(maxsize=size, getsizeof=lambda d: d.weight)

    def of(self, incident: Incident) -> Digest:
        """The incident's digest, up to date (made if needed)."""
        digest = self._cache.get(incident.id)
        if digest is None:
            digest = Digest()
        digest = digest.follow(incident)
        # re-inserted: its weight changed, and a digest too big to keep is not kept
        self._cache.pop(incident.id, None)
        if digest.weight <= self._cache.maxsize // 4:
            self._cache[incident.id] = digest
        return digest

    def forget(self, incident_id: str) -> None:
        """Drop an incident's digest (its incident was read again, or is gone)."""
        self._cache.pop(incident_id, None)
