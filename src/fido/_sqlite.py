"""`SQLiteStore`: the durable store, in one SQLite file (the standard library's `sqlite3`).

The schema, its migrations and how values are stored are described in
`fido._sqlite_schema`. In short: events, incidents (as `to_dict()` JSON, with the columns
that queries filter on beside it), their host and observable keys, dead letters and
cursors; times as sortable ISO 8601 UTC text; indexes for every query the pipeline runs
per event, so that they stay fast with millions of rows.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import attrs
from cachetools import LRUCache

from fido._deadletter import DeadLetter
from fido._errors import ConflictError, FidoError, InvalidRecord
from fido._faults import crash_point
from fido._sqlite_schema import (
    SCHEMA_VERSION,
    bind,
    connect,
    dump_audit,
    dump_json,
    event_keys,
    incident_row,
    iso,
    joinable,
    load_event,
    load_incident,
    load_json,
    span,
    text,
)
from fido.scoring._history import History, PriorIncident

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterable, Iterator, Sequence
    from types import TracebackType

    from fido._event import Event
    from fido._incident import Incident, IncidentStatus
    from fido._observable import Observable

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

_CHUNK: Final = 500
"""Keys per `IN (...)` list: well under SQLite's oldest limit of 999 parameters."""

_SAVE_INCIDENT: Final = """
INSERT INTO incidents (id, status, created_at, updated_at, first_seen, last_seen, total,
                       level, finished, pending_approvals, data, revision, event_count,
                       audit_count, approval_due)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    status = excluded.status, created_at = excluded.created_at,
    updated_at = excluded.updated_at, first_seen = excluded.first_seen,
    last_seen = excluded.last_seen, total = excluded.total, level = excluded.level,
    finished = excluded.finished, pending_approvals = excluded.pending_approvals,
    data = excluded.data, revision = excluded.revision,
    event_count = excluded.event_count, audit_count = excluded.audit_count,
    approval_due = excluded.approval_due
"""
_STORED: Final = """SELECT revision, event_count, audit_count, status, last_seen, level
FROM incidents WHERE id = ?"""
_ADD_EVENT: Final = """INSERT INTO events (detector, id, data, claimed_by, claimed_until)
VALUES (?, ?, ?, ?, ?) ON CONFLICT (detector, id) DO NOTHING"""
_CLAIM: Final = """UPDATE events SET claimed_by = ?, claimed_until = ?
WHERE detector = ? AND id = ? AND incident_id IS NULL
    AND (claimed_by IS NULL OR claimed_until <= ? OR claimed_by = ? OR claimed_by = ?)"""
_CLAIMED: Final = "SELECT incident_id, claimed_by FROM events WHERE detector = ? AND id = ?"
_PLACE_EVENT: Final = """UPDATE events SET incident_id = ?, position = ?, claimed_by = NULL,
    claimed_until = NULL WHERE detector = ? AND id = ?"""
_EVENTS_OF: Final = """SELECT detector, id, data FROM events
WHERE incident_id = ? ORDER BY position"""
_AUDIT_OF: Final = "SELECT data FROM incident_audit WHERE incident_id = ? ORDER BY position"
_LINKS: Final = (
    (
        "UPDATE incident_hosts SET open = ?, last_seen = ? WHERE incident_id = ?",
        (
            "INSERT INTO incident_hosts (incident_id, key, open, last_seen) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING"
        ),
    ),
    (
        "UPDATE incident_observables SET open = ?, last_seen = ? WHERE incident_id = ?",
        (
            "INSERT INTO incident_observables (incident_id, key, open, last_seen)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
        ),
    ),
)
"""For each link table: bring its rows up to the incident's state; add a key."""
_CACHED: Final = 4_096
"""How much of the incidents this store saved or read last stays decoded, counted in
incidents plus their events (see `SQLiteStore`)."""
_DEAD_LETTERS: Final = """SELECT id, at, detector, event_id, field, reason, payload
FROM dead_letters ORDER BY id DESC{limit}"""
_OPEN_IN: Final = """SELECT incident_id FROM {table}
    WHERE key IN ({marks}) AND last_seen >= ? AND open = 1"""
_FIND_OPEN: Final = """SELECT updated_at, id FROM incidents
WHERE id IN ({hosts} UNION {observables})
    AND first_seen <= ? AND (? IS NULL OR first_seen >= ?)
ORDER BY updated_at DESC, id DESC LIMIT 1"""
_SIGHTINGS: Final = """SELECT key, count(*) FROM incident_observables
WHERE key IN ({marks}) AND incident_id IS NOT ? GROUP BY key"""
_PRIORS: Final = """SELECT h.key, h.incident_id, h.last_seen, i.total, i.level
FROM incident_hosts AS h JOIN incidents AS i ON i.id = h.incident_id
WHERE h.key IN ({marks}) AND h.last_seen >= ? AND h.incident_id IS NOT ?"""


def _holder(data: bytes, when: datetime) -> tuple[str, datetime]:
    """Who holds the runner lock, from what the lock file says (it may be half written)."""
    try:
        found = json.loads(data)
        return str(found["owner"]), datetime.fromisoformat(found["since"])
    except (ValueError, KeyError, TypeError):
        return "unknown", when


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _chunks(keys: Iterable[str]) -> list[tuple[str | bytes, ...]]:
    unique = [bind(k) for k in dict.fromkeys(keys)]
    return [tuple(unique[i : i + _CHUNK]) for i in range(0, len(unique), _CHUNK)]


def _bind_optional(value: str | None) -> str | bytes | None:
    return None if value is None else bind(value)


def _text_optional(value: str | bytes | None) -> str | None:
    return None if value is None else text(value)


def _sliced(rows: list[Any], limit: int | None) -> list[Any]:
    # Negative limits slice like a list, as in MemoryStore (SQL LIMIT handles the rest).
    return rows[:limit] if limit is not None and limit < 0 else rows


def _limit(limit: int | None) -> tuple[str, tuple[int, ...]]:
    return (" LIMIT ?", (limit,)) if limit is not None and limit >= 0 else ("", ())


class SQLiteStore:
    """A `Store` in one SQLite file: durable, shared by processes, fast with millions of rows.

    It runs in WAL mode (readers never wait for the writer) with `synchronous=NORMAL`
    (a power cut may lose the last transactions, never corrupt the file) and foreign
    keys on. One connection serves every thread, under a lock: the pipeline calls the
    store from its event-loop thread, the command line from the main thread. Every
    method is one transaction, and `add_events` is one for the whole batch.

    Saving an incident costs what changed since this store last saw it: the new events
    and audit records, the new host and observable keys, and the incident's own row
    (without its events). The incidents saved or read last (up to 4,096 incidents and
    events in all) stay decoded, checked against the stored revision on every read, so
    another process's save (an approval from the command line) is always seen.

    Opening a file written by an older fido migrates it (in one transaction); a file
    written by a newer fido is refused. Records are value snapshots, as in every store.

    Args:
        path: The database file (created if missing), or `":memory:"` for a private
            database that lives as long as the store.
        timeout: Seconds to wait for another process's write lock before failing.

    Raises:
        ConfigurationError: The file cannot be opened, is not an SQLite database, is not a
            fido database, or was written by a newer fido (the message names the file and
            both schema versions).

    Example:
        >>> with SQLiteStore(":memory:") as store:
        ...     store.get_cursor("edr") is None
        True
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self._path = os.fspath(path)
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = connect(self._path, timeout=timeout)
        # id -> (revision, snapshot): what this store last wrote or read of an incident.
        # A save whose incident extends the snapshot writes only the new events and audit
        # records; a read of an unchanged revision decodes nothing.
        self._seen: LRUCache[str, tuple[int, Incident]] = LRUCache(
            maxsize=_CACHED, getsizeof=lambda seen: 1 + len(seen[1].events)
        )
        self._runner: tuple[str, datetime] | None = None
        self._runner_fd: int | None = None

    def __repr__(self) -> str:
        return f"SQLiteStore({self._path!r})"

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def path(self) -> str:
        """The database file, as given."""
        return self._path

    @property
    def schema_version(self) -> int:
        """The database's schema version (`SCHEMA_VERSION` once open)."""
        with self._transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0])

    @contextlib.contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._db
            if db is None:
                raise FidoError(f"{self!r} is closed")
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    # -- events ---------------------------------------------------------------------------

    def add_event(
        self, event: Event, *, owner: str | None = None, until: datetime | None = None
    ) -> bool:
        """Store an event before it is processed; False if `(detector, id)` is stored already.

        With `owner`, the event it adds is claimed by `owner` until `until`.
        """
        return self.add_events((event,), owner=owner, until=until)[0]

    def add_events(
        self, events: Sequence[Event], *, owner: str | None = None, until: datetime | None = None
    ) -> list[bool]:
        """`add_event` for a batch, in one transaction (of duplicates, the first wins)."""
        claim = (None, None) if owner is None or until is None else (bind(owner), iso(until))
        rows = [(bind(e.detector), bind(e.id), dump_json(e.to_dict()), *claim) for e in events]
        with self._transaction(write=True) as db:
            return [db.execute(_ADD_EVENT, row).rowcount == 1 for row in rows]

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
        """Claim a stored event not yet part of an incident (see `Store.claim_event`)."""
        key = (bind(detector), bind(event_id))
        mine = bind(owner)
        other = mine if steal is None else bind(steal)
        with self._transaction(write=True) as db:
            claimed = db.execute(_CLAIM, (mine, iso(until), *key, iso(now), mine, other))
            if claimed.rowcount == 1:
                return owner
            row = db.execute(_CLAIMED, key).fetchone()
        if row is None or row[0] is not None or row[1] is None:
            return None
        return text(row[1])

    def incident_for_event(self, detector: str, event_id: str) -> str | None:
        """The id of the incident that holds the event, if it was processed."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT incident_id FROM events WHERE detector = ? AND id = ?",
                (bind(detector), bind(event_id)),
            ).fetchone()
        return None if row is None else _text_optional(row[0])

    def pending_events(self) -> list[Event]:
        """Events stored but not yet part of a saved incident, in the order they were added."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT detector, id, data FROM events WHERE incident_id IS NULL ORDER BY rowid"
            ).fetchall()
        return [load_event(*row) for row in rows]

    # -- dead letters ---------------------------------------------------------------------

    def add_dead_letter(self, letter: DeadLetter) -> None:
        """Keep an alert that could not become an event, with its reason."""
        row = (
            iso(letter.at),
            _bind_optional(letter.detector),
            _bind_optional(letter.event_id),
            _bind_optional(letter.field),
            bind(letter.reason),
            dump_json(letter.payload),
        )
        with self._transaction(write=True) as db:
            db.execute(
                "INSERT INTO dead_letters (at, detector, event_id, field, reason, payload)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                row,
            )

    def dead_letters(self, *, limit: int | None = None) -> list[DeadLetter]:
        """The dead letters, newest first."""
        clause, params = _limit(limit)
        with self._transaction() as db:
            rows = db.execute(_DEAD_LETTERS.format(limit=clause), params).fetchall()
        return [self._letter(*row) for row in _sliced(rows, limit)]

    @staticmethod
    def _letter(
        number: int,
        at: str,
        detector: str | bytes | None,
        event_id: str | bytes | None,
        field: str | bytes | None,
        reason: str | bytes,
        payload: str,
    ) -> DeadLetter:
        try:
            when = datetime.fromisoformat(at)
        except (TypeError, ValueError):
            raise InvalidRecord(
                f"the stored dead letter {number} has a malformed time", record="DeadLetter"
            ) from None
        return DeadLetter(
            reason=text(reason),
            at=when,
            detector=_text_optional(detector),
            event_id=_text_optional(event_id),
            field=_text_optional(field),
            payload=load_json(payload, f"the stored dead letter {number}", "DeadLetter"),
        )

    # -- incidents ------------------------------------------------------------------------

    def save_incident(
        self, incident: Incident, *, finished: bool = True, expected: int | None = None
    ) -> int:
        """Insert or replace an incident, mark its events as part of it, and index it.

        The incident's host and observable rows are those of this save. `finished=False`
        marks a save in the middle of processing (see `unfinished_incidents`). With
        `expected`, the save is refused (`ConflictError`) unless the stored revision is
        that one. Returns the new revision.
        """
        key = bind(incident.id)
        last_seen = span(incident)[1]
        is_open = int(incident.joinable)
        with self._transaction(write=True) as db:
            stored = db.execute(_STORED, (key,)).fetchone()
            revision = 0 if stored is None else stored[0]
            if expected is not None and expected != revision:
                raise ConflictError(
                    "the incident was saved by someone else since it was read",
                    incident_id=incident.id,
                    expected=expected,
                    found=revision,
                )
            start_events = start_audit = 0
            extends = stored is not None and self._extends(incident, *stored[:3])
            if extends:
                start_events, start_audit = stored[1], stored[2]
                moved = joinable(stored[3], stored[5]) != bool(is_open) or stored[4] != last_seen
            else:  # new, or changed elsewhere since: write it whole
                db.execute(
                    "UPDATE events SET incident_id = NULL, position = NULL WHERE incident_id = ?",
                    (key,),
                )
                db.execute("DELETE FROM incident_audit WHERE incident_id = ?", (key,))
                db.execute("DELETE FROM incident_hosts WHERE incident_id = ?", (key,))
                db.execute("DELETE FROM incident_observables WHERE incident_id = ?", (key,))
            db.execute(
                _SAVE_INCIDENT, incident_row(incident, finished=finished, revision=revision + 1)
            )
            new_events = incident.events[start_events:]
            for position, event in enumerate(new_events, start=start_events):
                event_key = (bind(event.detector), bind(event.id))
                updated = db.execute(_PLACE_EVENT, (key, position, *event_key))
                if updated.rowcount == 0:
                    db.execute(
                        "INSERT INTO events (detector, id, incident_id, data, position)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (*event_key, key, dump_json(event.to_dict()), position),
                    )
            if len(incident.audit) > start_audit:
                db.execute(
                    "INSERT INTO incident_audit (incident_id, position, data) VALUES (?, ?, ?)",
                    (key, start_audit, dump_audit(incident.audit[start_audit:])),
                )
            hosts, observables = event_keys(new_events)
            for (update, insert), keys in zip(_LINKS, (hosts, observables), strict=True):
                if extends and moved:
                    db.execute(update, (is_open, last_seen, key))
                db.executemany(insert, [(key, k, is_open, last_seen) for k in keys])
            if finished:
                crash_point("saving")
            self._seen[incident.id] = (revision + 1, attrs.evolve(incident, revision=revision + 1))
        return revision + 1

    def _extends(self, incident: Incident, revision: int, events: int, audit: int) -> bool:
        """Whether the stored incident is what this store last saw, and `incident` only adds.

        Tuples compare their items by identity first, so the check is cheap when the
        incident was built on the snapshot (as the pipeline does).
        """
        seen = self._seen.get(incident.id)
        if seen is None or seen[0] != revision:
            return False
        before = seen[1]
        return (
            len(before.events) == events
            and len(before.audit) == audit
            and incident.events[:events] == before.events
            and incident.audit[:audit] == before.audit
        )

    def unfinished_incidents(self) -> list[Incident]:
        """Incidents whose last save was not a finished one, by id."""
        return self._load("SELECT id, data, revision FROM incidents WHERE finished = 0 ORDER BY id")

    def get_incident(self, incident_id: str) -> Incident | None:
        """One incident, or None."""
        key = bind(incident_id)
        with self._lock:
            seen = self._seen.get(incident_id)
            if seen is not None:
                db = self._open()
                row = db.execute("SELECT revision FROM incidents WHERE id = ?", (key,)).fetchone()
                if row is not None and row[0] == seen[0]:
                    return attrs.evolve(seen[1], revision=seen[0])
            found = self._load("SELECT id, data, revision FROM incidents WHERE id = ?", (key,))
            if not found:
                return None
            return found[0]

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            raise FidoError(f"{self!r} is closed")
        return self._db

    def _load(
        self, sql: str, params: Sequence[Any] = (), limit: int | None = None
    ) -> list[Incident]:
        loaded = []
        with self._transaction() as db:
            rows = _sliced(db.execute(sql, params).fetchall(), limit)
            for incident_id, data, revision in rows:
                incident = load_incident(
                    incident_id,
                    data,
                    db.execute(_EVENTS_OF, (incident_id,)).fetchall(),
                    [row[0] for row in db.execute(_AUDIT_OF, (incident_id,))],
                )
                incident.revision = revision
                loaded.append(incident)
                if len(rows) == 1:  # a single read is likely the next save's base
                    self._seen[incident.id] = (revision, attrs.evolve(incident))
        return loaded

    def find_open_incident(
        self,
        *,
        hosts: Iterable[str],
        observables: Iterable[Observable],
        start: datetime,
        end: datetime,
        first_after: datetime | None = None,
    ) -> str | None:
        """The id of the open incident to correlate with, if any (see `Store`)."""
        host_chunks = _chunks(hosts)
        observable_chunks = _chunks(o.key for o in observables)
        since = iso(start)
        window = (iso(end), *[None if first_after is None else iso(first_after)] * 2)
        best: tuple[str, str] | None = None
        with self._transaction() as db:
            for some_hosts, some_observables in itertools.zip_longest(
                host_chunks, observable_chunks, fillvalue=()
            ):
                sql = _FIND_OPEN.format(
                    hosts=_OPEN_IN.format(table="incident_hosts", marks=_marks(len(some_hosts))),
                    observables=_OPEN_IN.format(
                        table="incident_observables", marks=_marks(len(some_observables))
                    ),
                )
                params = (*some_hosts, since, *some_observables, since, *window)
                row = db.execute(sql, params).fetchone()
                if row is not None and (best is None or (row[0], text(row[1])) > best):
                    best = (row[0], text(row[1]))
        return None if best is None else best[1]

    def incidents(
        self,
        *,
        status: IncidentStatus | None = None,
        host: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        min_total: int | None = None,
        limit: int | None = None,
    ) -> list[Incident]:
        """Incidents matching every filter given, newest first (by `updated_at`, then id)."""
        where: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("status = ?", None if status is None else status.value),
            (
                "id IN (SELECT incident_id FROM incident_hosts WHERE key = ?)",
                None if host is None else bind(host),
            ),
            ("updated_at >= ?", None if since is None else iso(since)),
            ("updated_at <= ?", None if until is None else iso(until)),
            ("total >= ?", min_total),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        clause, limited = _limit(limit)
        sql = "SELECT id, data, revision FROM incidents"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._load(
            sql + " ORDER BY updated_at DESC, id DESC" + clause, (*params, *limited), limit
        )

    def pending_approvals(self) -> list[Incident]:
        """The incidents with at least one pending approval, in the order first saved."""
        return self._load(
            # `+rowid`: sort the few matches rather than scan the table in rowid order.
            "SELECT id, data, revision FROM incidents WHERE pending_approvals > 0 ORDER BY +rowid"
        )

    def overdue_approvals(self, now: datetime) -> list[Incident]:
        """The incidents with a pending approval due at or before `now` (an indexed query)."""
        return self._load(
            "SELECT id, data, revision FROM incidents"
            " WHERE approval_due IS NOT NULL AND approval_due <= ? ORDER BY approval_due, id",
            (iso(now),),
        )

    def history(
        self,
        *,
        observables: Iterable[Observable],
        hosts: Iterable[str],
        since: datetime,
        exclude: str | None = None,
    ) -> History:
        """What the scorer needs from the past (see `Store`): two indexed queries."""
        by_key: dict[str, Observable] = {}
        for observable in observables:
            by_key.setdefault(observable.key, observable)
        excluded = None if exclude is None else bind(exclude)
        sightings: dict[Observable, int] = {}
        found: list[tuple[Any, ...]] = []
        with self._transaction() as db:
            for chunk in _chunks(by_key):
                sql = _SIGHTINGS.format(marks=_marks(len(chunk)))
                for key, count in db.execute(sql, (*chunk, excluded)):
                    sightings[by_key[text(key)]] = count
            for chunk in _chunks(hosts):
                sql = _PRIORS.format(marks=_marks(len(chunk)))
                found.extend(db.execute(sql, (*chunk, iso(since), excluded)))
        priors = [
            PriorIncident(
                id=text(incident_id),
                host=text(key),
                at=datetime.fromisoformat(last),
                total=total,
                level=text(level),
            )
            for key, incident_id, last, total, level in found
        ]
        priors.sort(key=lambda p: (p.at, p.id, p.host))
        return History(sightings=sightings, incidents=priors)

    # -- cursors --------------------------------------------------------------------------

    def get_cursor(self, detector: str) -> str | None:
        """A detector's persisted polling cursor."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT cursor FROM cursors WHERE detector = ?", (bind(detector),)
            ).fetchone()
        return None if row is None else _text_optional(row[0])

    def set_cursor(self, detector: str, cursor: str | None) -> None:
        """Persist a detector's polling cursor (after its events are stored)."""
        with self._transaction(write=True) as db:
            db.execute(
                "INSERT INTO cursors (detector, cursor, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (detector) DO UPDATE"
                " SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                (bind(detector), _bind_optional(cursor), iso(datetime.now(UTC))),
            )

    # -- the runner -----------------------------------------------------------------------

    @property
    def runner_lock(self) -> str | None:
        """The file whose `flock` makes one run loop per database (None for `:memory:`)."""
        return None if self._path == ":memory:" else f"{self._path}.run.lock"

    def acquire_runner(self, owner: str, since: datetime) -> tuple[str, datetime] | None:
        """Become the database's one runner (see `RunnerStore`); None on success.

        The hold is an exclusive `flock` on `runner_lock`, which also names the holder
        (so that a refused runner can say who has it). The system releases it when the
        holder's process ends, however it ends: a crashed run never blocks the next one.
        """
        with self._lock:
            if self._runner is not None:
                return None if self._runner[0] == owner else self._runner
            lock = self.runner_lock
            if lock is None:
                self._runner = (owner, since)
                return None
            try:
                import fcntl
            except ImportError:  # pragma: no cover - no flock here: no guard either
                self._runner = (owner, since)
                return None
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _holder(os.pread(fd, 4096, 0), since)
                os.close(fd)
                return holder
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"owner": owner, "since": iso(since)}).encode(), 0)
            self._runner, self._runner_fd = (owner, since), fd
            return None

    def release_runner(self, owner: str) -> None:
        """Let the database go, if `owner` holds it (the lock file is emptied)."""
        with self._lock:
            if self._runner is None or self._runner[0] != owner:
                return
            self._runner = None
            fd, self._runner_fd = self._runner_fd, None
            if fd is not None:
                os.ftruncate(fd, 0)
                os.close(fd)  # closing the last descriptor releases the flock

    def close(self) -> None:
        """Close the database (idempotent). The store cannot be used afterwards."""
        if self._runner is not None:
            self.release_runner(self._runner[0])
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
            self._seen.clear()
