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
import sqlite3
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import attrs
from cachetools import LRUCache

from fido._deadletter import DeadLetter
from fido._errors import ConflictError, FidoError, InvalidRecord
from fido._faults import crash_point
from fido._sqlite_schema import (
    GROWING,
    LINK_LAG,
    SCHEMA_VERSION,
    bind,
    connect,
    dump_audit,
    dump_json,
    dump_part,
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
                       audit_count, approval_due, finding_count, failure_count, empty_count,
                       links_seen)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    status = excluded.status, created_at = excluded.created_at,
    updated_at = excluded.updated_at, first_seen = excluded.first_seen,
    last_seen = excluded.last_seen, total = excluded.total, level = excluded.level,
    finished = excluded.finished, pending_approvals = excluded.pending_approvals,
    data = excluded.data, revision = excluded.revision,
    event_count = excluded.event_count, audit_count = excluded.audit_count,
    approval_due = excluded.approval_due, finding_count = excluded.finding_count,
    failure_count = excluded.failure_count, empty_count = excluded.empty_count,
    links_seen = excluded.links_seen
"""
_STORED: Final = """SELECT revision, event_count, audit_count, finding_count, failure_count,
    empty_count, status, level, first_seen, last_seen, links_seen
FROM incidents WHERE id = ?"""
_COUNTED: Final = ("events", "audit", *GROWING)
"""The record fields a save appends to, in the order of their counts in `_STORED`."""
_LOAD: Final = "SELECT id, data, revision, first_seen, last_seen, links_seen FROM incidents"
_UPDATE_INCIDENT: Final = """UPDATE incidents SET status = ?, created_at = ?, updated_at = ?,
    first_seen = ?, last_seen = ?, total = ?, level = ?, finished = ?, pending_approvals = ?,
    data = ?, revision = ?, event_count = ?, audit_count = ?, approval_due = ?,
    finding_count = ?, failure_count = ?, empty_count = ?, links_seen = ?
WHERE id = ? AND revision = ?"""
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
_LOOKUPS_OF: Final = """SELECT part, data FROM incident_lookups
WHERE incident_id = ? ORDER BY part, position"""
_ADD_LOOKUPS: Final = """INSERT INTO incident_lookups (incident_id, part, position, data)
VALUES (?, ?, ?, ?)"""
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
CACHED_RECORDS: Final = 200_000
"""How much of the incidents this store saved or read last stays decoded, in records: an
incident counts 4 (itself, its decision, its subjects and its assessment), each event 4
(an event weighs about four audit records), each audit record, score contribution,
finding, failure and empty look-up 1. A record weighs 0.15-0.2 KB decoded, so the cache
holds 30-40 MB at most (measured with `benchmarks/bench_durable.py`). Incidents that keep
growing are read and saved on each of their events; when they outgrow the cache, each
event decodes its whole incident again (with 2,000 hosts alerting every half hour, a
cache of 50,000 records made the run loop about 40% slower)."""


def cost(incident: Incident) -> int:
    """What a decoded incident weighs in the store's cache (see `CACHED_RECORDS`)."""
    return (
        4
        + 4 * len(incident.events)
        + len(incident.audit)
        + len(incident.assessment.contributions)
        + len(incident.findings)
        + len(incident.failures)
        + len(incident.empty_lookups)
    )


_DEAD_LETTERS: Final = """SELECT id, at, detector, event_id, field, reason, payload
FROM dead_letters ORDER BY id DESC{limit}"""
_OPEN_IN: Final = """SELECT incident_id FROM {table}
    WHERE key IN ({marks}) AND last_seen >= ? AND open = 1"""
_FIND_OPEN: Final = """SELECT i.updated_at, i.id
FROM ({hosts} UNION ALL {observables}) AS linked JOIN incidents AS i ON i.id = linked.incident_id
WHERE i.last_seen >= ? AND i.first_seen <= ? AND (? IS NULL OR i.first_seen >= ?)
ORDER BY i.updated_at DESC, i.id DESC LIMIT 1"""
_SIGHTINGS: Final = """SELECT key, count(*) FROM incident_observables
WHERE key IN ({marks}) AND incident_id IS NOT ? GROUP BY key"""
_PRIORS: Final = """SELECT h.key, h.incident_id, i.last_seen, i.total, i.level
FROM incident_hosts AS h JOIN incidents AS i ON i.id = h.incident_id
WHERE h.key IN ({marks}) AND h.last_seen >= ? AND i.last_seen >= ?
    AND h.incident_id IS NOT ?"""


CHECKPOINT_EVERY: Final = 0.5
"""Seconds between two checkpoints of the write-ahead log, while there are writes."""


class _Checkpointer:
    """Copies the write-ahead log into the database, in a thread and connection of its own.

    SQLite does it in the writer's commit once the log reaches `wal_autocheckpoint` pages,
    which makes one commit in a thousand wait for the disk (and for `fsync`). Here the
    writer only appends to the log; this thread runs a passive checkpoint (it never
    blocks the writer nor waits for it) at most every `CHECKPOINT_EVERY` seconds while
    there are writes. The writer's own automatic checkpoint stays on, at a higher mark,
    should this thread ever fall behind.
    """

    def __init__(self, path: str, timeout: float) -> None:
        self._path = path
        self._timeout = timeout
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def poke(self) -> None:
        """There was a write: checkpoint soon (the thread starts on the first one)."""
        if self._thread is None:
            with self._lock:
                if not self._stop.is_set() and self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="fido-sqlite-checkpoint", daemon=True
                    )
                    self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(
                self._path, timeout=self._timeout, check_same_thread=False, isolation_level=None
            )
        except sqlite3.Error:  # the writer's own checkpoints still run
            return
        try:
            while not self._stop.is_set():
                self._wake.wait()
                if self._stop.wait(CHECKPOINT_EVERY):
                    break
                self._wake.clear()
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    continue  # busy or gone: the next write tries again
        finally:
            db.close()

    def close(self) -> None:
        """Stop the thread (after the checkpoint it may be running)."""
        with self._lock:
            self._stop.set()
            self._wake.set()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=self._timeout)


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


class _Row(NamedTuple):
    """What an incident's stored row says of its records and span (see `_STORED`)."""

    events: int
    audit: int
    findings: int
    failures: int
    empty: int
    status: str
    level: str | bytes
    first_seen: str
    last_seen: str
    links_seen: str

    @classmethod
    def of(cls, incident: Incident, first: str, last: str, links: str) -> _Row:
        """The row of an incident as read, with its stored span."""
        return cls(
            *_counts(incident),
            incident.status.value,
            bind(incident.decision.level),
            first,
            last,
            links,
        )


def _counts(incident: Incident) -> tuple[int, int, int, int, int]:
    """How many events, audit records, findings, failures and empty look-ups it holds."""
    return (
        len(incident.events),
        len(incident.audit),
        len(incident.findings),
        len(incident.failures),
        len(incident.empty_lookups),
    )


class _Seen(NamedTuple):
    """What the store last wrote or read of an incident, at a revision."""

    revision: int
    incident: Incident
    row: _Row


def _extends(incident: Incident, before: Incident) -> bool:
    """Whether `incident` is `before` with records added (and maybe other fields changed).

    Tuples compare their items by identity first, so the check is cheap when the
    incident was built on `before` (as the pipeline does).
    """
    for field in _COUNTED:
        had = getattr(before, field)
        if getattr(incident, field)[: len(had)] != had:
            return False
    return True


def _row(incident: Incident, before: _Row | None) -> _Row:
    """The stored row's state after saving `incident` on `before` (None: written whole).

    The span grows with the new events only; the link rows' `last_seen` is brought up
    to date when it lags by `LINK_LAG` or when the incident's `open` changes.
    """
    counts = _counts(incident)
    status, level = incident.status.value, bind(incident.decision.level)
    if before is None or not before.events or not incident.events:
        first, last = span(incident)
    else:
        new = incident.events[before.events :]
        first, last = before.first_seen, before.last_seen
        if new:
            times = [e.time for e in new]
            first, last = min(first, iso(min(times))), max(last, iso(max(times)))
    links = last
    if before is not None and joinable(before.status, before.level) == incident.joinable:
        lagging = before.links_seen < iso(datetime.fromisoformat(last) - LINK_LAG)
        links = last if lagging else before.links_seen
    return _Row(*counts, status, level, first, last, links)


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
        self._seen: LRUCache[str, _Seen] = LRUCache(
            maxsize=CACHED_RECORDS, getsizeof=lambda seen: cost(seen.incident)
        )
        self._runner: tuple[str, datetime] | None = None
        self._runner_fd: int | None = None
        self._checkpointer = (
            None if self._path == ":memory:" else _Checkpointer(self._path, timeout)
        )

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
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """For reads that need no snapshot of their own: each statement is one."""
        with self._lock:
            yield self._open()

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
            if write and self._checkpointer is not None:
                self._checkpointer.poke()

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
        with self._reading() as db:
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
        with self._transaction(write=True) as db:
            revision, row = self._save(db, incident, finished=finished, expected=expected)
        self._remember(incident, revision, row)
        return revision

    def save_incidents(
        self, saves: Sequence[tuple[Incident, bool, int | None]]
    ) -> list[int | ConflictError]:
        """Several saves (`(incident, finished, expected)`) in one transaction.

        Each is what `save_incident` does; one refused for its revision has its
        `ConflictError` in its place in the result, and the others are written. Any
        other error rolls the whole batch back and is raised.

        Returns:
            For each save, in order, its new revision or its `ConflictError`.
        """
        results: list[tuple[int, _Row] | ConflictError] = []
        with self._transaction(write=True) as db:
            for incident, finished, expected in saves:
                try:
                    results.append(self._save(db, incident, finished=finished, expected=expected))
                except ConflictError as conflict:
                    results.append(conflict)
        revisions: list[int | ConflictError] = []
        for (incident, _, _), result in zip(saves, results, strict=True):
            if isinstance(result, ConflictError):
                revisions.append(result)
            else:
                self._remember(incident, *result)
                revisions.append(result[0])
        return revisions

    def _remember(self, incident: Incident, revision: int, row: _Row) -> None:
        with self._lock:
            snapshot = attrs.evolve(incident, revision=revision)
            if cost(snapshot) <= CACHED_RECORDS // 4:
                self._seen[incident.id] = _Seen(revision, snapshot, row)
            else:  # one huge incident must not push out every other
                self._seen.pop(incident.id, None)

    def _save(
        self, db: sqlite3.Connection, incident: Incident, *, finished: bool, expected: int | None
    ) -> tuple[int, _Row]:
        """One save, in the caller's transaction (see `save_incident`).

        When the caller's copy was built on what this store last saw of the incident (the
        pipeline's case), the row is updated on the condition that its revision is still
        that one, and only what was added is written; otherwise the stored row is read
        first, and the incident written whole if it changed elsewhere.
        """
        key = bind(incident.id)
        seen = self._seen.get(incident.id)
        if seen is not None and expected == seen.revision and _extends(incident, seen.incident):
            row = _row(incident, seen.row)
            values = self._values(incident, row, finished=finished, revision=expected + 1)
            updated = db.execute(_UPDATE_INCIDENT, (*values[1:], key, expected))
            if updated.rowcount == 1:
                self._write(db, incident, key, seen.row, row)
                if finished:
                    crash_point("saving")
                return expected + 1, row
        stored = db.execute(_STORED, (key,)).fetchone()
        revision = 0 if stored is None else stored[0]
        if expected is not None and expected != revision:
            raise ConflictError(
                "the incident was saved by someone else since it was read",
                incident_id=incident.id,
                expected=expected,
                found=revision,
            )
        before: _Row | None = None
        if seen is not None and stored is not None and seen.revision == revision:
            known = _Row(*stored[1:6], *stored[6:])
            if _extends(incident, seen.incident) and known == seen.row:
                before = known
        if before is None and stored is not None:  # changed elsewhere since: write it whole
            db.execute(
                "UPDATE events SET incident_id = NULL, position = NULL WHERE incident_id = ?",
                (key,),
            )
            for table in (
                "incident_audit",
                "incident_lookups",
                "incident_hosts",
                "incident_observables",
            ):
                db.execute(f"DELETE FROM {table} WHERE incident_id = ?", (key,))  # noqa: S608
        row = _row(incident, before)
        db.execute(
            _SAVE_INCIDENT, self._values(incident, row, finished=finished, revision=revision + 1)
        )
        self._write(db, incident, key, before, row)
        if finished:
            crash_point("saving")
        return revision + 1, row

    @staticmethod
    def _values(incident: Incident, row: _Row, *, finished: bool, revision: int) -> tuple[Any, ...]:
        return incident_row(
            incident,
            finished=finished,
            revision=revision,
            first=row.first_seen,
            last=row.last_seen,
            links_seen=row.links_seen,
        )

    @staticmethod
    def _write(
        db: sqlite3.Connection, incident: Incident, key: str | bytes, before: _Row | None, row: _Row
    ) -> None:
        """What a save adds besides the incident's row: new events, records and keys."""
        counts = (0, 0, 0, 0, 0) if before is None else before[:5]
        is_open = int(incident.joinable)
        if before is not None and (
            row.links_seen != before.links_seen
            or joinable(before.status, before.level) != bool(is_open)
        ):
            for update, _ in _LINKS:  # the link rows fell behind, or `open` changed
                db.execute(update, (is_open, row.last_seen, key))
        new_events = incident.events[counts[0] :]
        for position, event in enumerate(new_events, start=counts[0]):
            event_key = (bind(event.detector), bind(event.id))
            updated = db.execute(_PLACE_EVENT, (key, position, *event_key))
            if updated.rowcount == 0:
                db.execute(
                    "INSERT INTO events (detector, id, incident_id, data, position)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (*event_key, key, dump_json(event.to_dict()), position),
                )
        if len(incident.audit) > counts[1]:
            db.execute(
                "INSERT INTO incident_audit (incident_id, position, data) VALUES (?, ?, ?)",
                (key, counts[1], dump_audit(incident.audit[counts[1] :])),
            )
        for part, start in zip(GROWING, counts[2:], strict=True):
            added = getattr(incident, part)[start:]
            if added:
                db.execute(_ADD_LOOKUPS, (key, part, start, dump_part(part, added)))
        hosts, observables = event_keys(new_events)
        for (_, insert), keys in zip(_LINKS, (hosts, observables), strict=True):
            if keys:
                db.executemany(insert, [(key, k, is_open, row.last_seen) for k in keys])

    def unfinished_incidents(self) -> list[Incident]:
        """Incidents whose last save was not a finished one, by id."""
        return self._load(_LOAD + " WHERE finished = 0 ORDER BY id")

    def get_incident(self, incident_id: str) -> Incident | None:
        """One incident, or None."""
        key = bind(incident_id)
        with self._lock:
            seen = self._seen.get(incident_id)
            if seen is not None:
                row = (
                    self._open()
                    .execute("SELECT revision FROM incidents WHERE id = ?", (key,))
                    .fetchone()
                )
                if row is not None and row[0] == seen.revision:
                    return attrs.evolve(seen.incident, revision=seen.revision)
            found = self._load(_LOAD + " WHERE id = ?", (key,))
            if not found:
                return None
            return found[0]

    def _open(self) -> sqlite3.Connection:
        """The connection, for one statement outside a transaction (under `_lock`)."""
        if self._db is None:
            raise FidoError(f"{self!r} is closed")
        return self._db

    def _load(
        self, sql: str, params: Sequence[Any] = (), limit: int | None = None
    ) -> list[Incident]:
        loaded = []
        spans = []
        with self._transaction() as db:
            rows = _sliced(db.execute(sql, params).fetchall(), limit)
            for incident_id, data, revision, *span_of in rows:
                incident = load_incident(
                    incident_id,
                    data,
                    db.execute(_EVENTS_OF, (incident_id,)).fetchall(),
                    [row[0] for row in db.execute(_AUDIT_OF, (incident_id,))],
                    db.execute(_LOOKUPS_OF, (incident_id,)).fetchall(),
                )
                incident.revision = revision
                loaded.append(incident)
                spans.append(span_of)
        if len(loaded) == 1:  # a single read is likely the next save's base
            found = loaded[0]
            self._remember(found, found.revision, _Row.of(found, *spans[0]))
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
        # Link rows may lag by LINK_LAG: look that much further back, then check the
        # incident's own last_seen.
        linked = iso(start - LINK_LAG)
        window = (iso(start), iso(end), *[None if first_after is None else iso(first_after)] * 2)
        best: tuple[str, str] | None = None
        with self._reading() as db:  # each chunk on its own, as in `history`
            for some_hosts, some_observables in itertools.zip_longest(
                host_chunks, observable_chunks, fillvalue=()
            ):
                sql = _FIND_OPEN.format(
                    hosts=_OPEN_IN.format(table="incident_hosts", marks=_marks(len(some_hosts))),
                    observables=_OPEN_IN.format(
                        table="incident_observables", marks=_marks(len(some_observables))
                    ),
                )
                params = (*some_hosts, linked, *some_observables, linked, *window)
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
        sql = _LOAD
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._load(
            sql + " ORDER BY updated_at DESC, id DESC" + clause, (*params, *limited), limit
        )

    def pending_approvals(self) -> list[Incident]:
        """The incidents with at least one pending approval, in the order first saved."""
        return self._load(
            # `+rowid`: sort the few matches rather than scan the table in rowid order.
            _LOAD + " WHERE pending_approvals > 0 ORDER BY +rowid"
        )

    def overdue_approvals(self, now: datetime) -> list[Incident]:
        """The incidents with a pending approval due at or before `now` (an indexed query)."""
        return self._load(
            _LOAD
            + " WHERE approval_due IS NOT NULL AND approval_due <= ? ORDER BY approval_due, id",
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
        # Each query on its own (no transaction of their own: a save another process makes
        # between them shows in one and not the other, which the scorer cannot tell from
        # a save made a moment earlier or later).
        with self._reading() as db:
            for chunk in _chunks(by_key):
                sql = _SIGHTINGS.format(marks=_marks(len(chunk)))
                for key, count in db.execute(sql, (*chunk, excluded)):
                    sightings[by_key[text(key)]] = count
            for chunk in _chunks(hosts):
                sql = _PRIORS.format(marks=_marks(len(chunk)))
                found.extend(db.execute(sql, (*chunk, iso(since - LINK_LAG), iso(since), excluded)))
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
        with self._reading() as db:
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
        if self._checkpointer is not None:
            self._checkpointer.close()
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
            self._seen.clear()
