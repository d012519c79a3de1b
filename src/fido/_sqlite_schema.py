"""The database behind `SQLiteStore`: the schema, its migrations, and the value codecs.

Version 1 (`SCHEMA_VERSION`) has these tables. Times are ISO 8601 UTC text with fixed
microseconds (`2026-11-28T12:00:00.000000+00:00`), so that text order is time order.
Identifiers (event, incident, host and observable keys) are text; a string that UTF-8
cannot encode (a lone surrogate from a hostile alert) is kept as a BLOB of its
`surrogatepass` encoding, so every Python string is stored exactly.

- `meta(key, value)`: `schema_version` is the schema's version.
- `events(detector, id, incident_id, data)`: every stored event, primary key
  `(detector, id)`. `incident_id` is NULL while the event is not yet part of a saved
  incident (`pending_events`, in rowid order, which is insertion order). `data` is
  `Event.to_dict()` as JSON.
- `incidents(id, status, created_at, updated_at, first_seen, last_seen, total, level,
  finished, pending_approvals, data)`: one row per incident; `first_seen`/`last_seen` are
  the earliest and latest event times (created/updated time when it has no events),
  `total` and `level` the assessment's total and the decision's level, `finished` is 0
  after a `save_incident(..., finished=False)`, `pending_approvals` counts the pending
  approvals, `data` is `Incident.to_dict()` as JSON.
- `incident_hosts(incident_id, key, open, last_seen)` and
  `incident_observables(incident_id, key, open, last_seen)`: one row per host key
  (`Host.keys`) or observable key (`Observable.key`) of an incident, primary key
  `(incident_id, key)`, replaced by each `save_incident`. `open` (the status is OPEN) and
  `last_seen` repeat the incident's, so that correlation and history find their
  candidates in one range of one index.
- `dead_letters(id, at, detector, event_id, field, reason, payload)`: `id` autoincrements
  (newest first is `id DESC`); `payload` is JSON.
- `cursors(detector, cursor, updated_at)`: the detectors' polling cursors.

Indexes: `incidents(updated_at, id)` and `incidents(status, updated_at, id)` for listings;
partial indexes for pending approvals, unfinished incidents and pending events;
`(key, last_seen, open)` on both link tables, covering (the primary key's `incident_id`
rides along in a WITHOUT ROWID table's index): sightings of an observable, prior
incidents per host since a time, and open incidents by host or observable in a
correlation window.

Migrations: `MIGRATIONS[n]` takes a database from version n to n + 1. A new database gets
the version-1 schema (`BASELINE`, frozen) and then the migrations after it, so version 2 is
one function appended to `MIGRATIONS`. `connect` applies what is missing in one
transaction when the store opens.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, TypeAlias

from fido._errors import ConfigurationError, InvalidRecord, shorten
from fido._event import Event
from fido._incident import ApprovalStatus, Incident, IncidentStatus

__all__ = [
    "BASELINE",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "bind",
    "connect",
    "dump_json",
    "incident_row",
    "iso",
    "links",
    "load_event",
    "load_incident",
    "load_json",
    "text",
]

Migration: TypeAlias = Callable[[sqlite3.Connection], None]
"""A forward migration: runs inside the opening transaction, on the previous version."""

# -- values ---------------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    """A time as sortable ISO 8601 UTC text (a naive time is taken to be UTC, as in `Event`)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def bind(value: str) -> str | bytes:
    """An identifier as an SQL parameter: itself, or its bytes if UTF-8 cannot encode it."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")
    return value


def text(value: str | bytes) -> str:
    """The inverse of `bind`, for a value read back from the database."""
    return value.decode("utf-8", "surrogatepass") if isinstance(value, bytes) else value


def dump_json(data: Any) -> str:
    """Compact ASCII JSON (ASCII: a lone surrogate in an alert stays an escape)."""
    return json.dumps(data, separators=(",", ":"))


def load_json(data: str | bytes, what: str, record: str) -> Any:
    """Parse a stored JSON column.

    Raises:
        InvalidRecord: The column is not JSON (`what` names the row in the message).
    """
    try:
        return json.loads(data)
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise InvalidRecord(f"{what} is not valid JSON: {exc}", record=record) from None


def load_incident(incident_id: str | bytes, data: str | bytes) -> Incident:
    """An incident from its stored row.

    Raises:
        InvalidRecord: The row is corrupt; the message names the incident.
    """
    what = f"the stored incident {shorten(text(incident_id))}"
    parsed = load_json(data, what, "Incident")
    try:
        return Incident.from_dict(parsed)
    except InvalidRecord as exc:
        raise InvalidRecord(f"{what}: {exc.message}", record="Incident", field=exc.field) from None


def load_event(detector: str | bytes, event_id: str | bytes, data: str | bytes) -> Event:
    """An event from its stored row.

    Raises:
        InvalidRecord: The row is corrupt; the message names the event.
    """
    what = f"the stored event {shorten((text(detector), text(event_id)))}"
    parsed = load_json(data, what, "Event")
    try:
        return Event.from_dict(parsed)
    except ValueError as exc:  # InvalidEvent
        raise InvalidRecord(f"{what}: {exc}", record="Event") from None


def _span(incident: Incident) -> tuple[str, str]:
    times = [e.time for e in incident.events]
    if not times:
        return iso(incident.created_at), iso(incident.updated_at)
    return iso(min(times)), iso(max(times))


def incident_row(incident: Incident, *, finished: bool) -> tuple[Any, ...]:
    """The `incidents` row of an incident, in the column order of `BASELINE`."""
    first, last = _span(incident)
    pending = sum(1 for a in incident.approvals if a.status is ApprovalStatus.PENDING)
    return (
        bind(incident.id),
        incident.status.value,
        iso(incident.created_at),
        iso(incident.updated_at),
        first,
        last,
        incident.assessment.total,
        bind(incident.decision.level),
        int(finished),
        pending,
        dump_json(incident.to_dict()),
    )


def links(incident: Incident) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The `incident_hosts` and `incident_observables` rows of an incident."""
    last = _span(incident)[1]
    opened = int(incident.status is IncidentStatus.OPEN)
    key = bind(incident.id)
    hosts = dict.fromkeys(k for h in incident.hosts for k in h.keys)
    observables = dict.fromkeys(o.key for o in incident.observables)
    return (
        [(key, bind(h), opened, last) for h in hosts],
        [(key, bind(o), opened, last) for o in observables],
    )


# -- the schema -----------------------------------------------------------------------------

_LINK_TABLES: Final = tuple(
    f"""CREATE TABLE {table} (
    incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    open INTEGER NOT NULL,
    last_seen TEXT NOT NULL,
    PRIMARY KEY (incident_id, key)
) WITHOUT ROWID"""
    for table in ("incident_hosts", "incident_observables")
)

_V1_INDEXES: Final = (
    "CREATE INDEX IF NOT EXISTS incidents_by_updated ON incidents (updated_at, id)",
    "CREATE INDEX IF NOT EXISTS incidents_by_status ON incidents (status, updated_at, id)",
    (
        "CREATE INDEX IF NOT EXISTS incidents_pending_approvals ON incidents (pending_approvals)"
        " WHERE pending_approvals > 0"
    ),
    "CREATE INDEX IF NOT EXISTS incidents_unfinished ON incidents (id) WHERE finished = 0",
    "CREATE INDEX IF NOT EXISTS events_pending ON events (incident_id) WHERE incident_id IS NULL",
    "CREATE INDEX IF NOT EXISTS hosts_by_key ON incident_hosts (key, last_seen, open)",
    "CREATE INDEX IF NOT EXISTS observables_by_key ON incident_observables (key, last_seen, open)",
)

BASELINE: Final[tuple[str, ...]] = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL) WITHOUT ROWID",
    """CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    total INTEGER NOT NULL,
    level TEXT NOT NULL,
    finished INTEGER NOT NULL DEFAULT 1,
    pending_approvals INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL
)""",
    """CREATE TABLE events (
    detector TEXT NOT NULL,
    id TEXT NOT NULL,
    incident_id TEXT REFERENCES incidents (id),
    data TEXT NOT NULL,
    PRIMARY KEY (detector, id)
)""",
    *_LINK_TABLES,
    """CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    detector TEXT,
    event_id TEXT,
    field TEXT,
    reason TEXT NOT NULL,
    payload TEXT NOT NULL
)""",
    """CREATE TABLE cursors (
    detector TEXT PRIMARY KEY,
    cursor TEXT,
    updated_at TEXT NOT NULL
)""",
    *_V1_INDEXES,
)
"""The version-1 schema, which a new database gets. Frozen: later versions are migrations."""

_BASELINE_VERSION: Final = 1


def _migrate_0_to_1(db: sqlite3.Connection) -> None:
    """Version 0 to 1: the `finished` flag, observables, and hosts with their times.

    Version 0 had no `finished` column (every save was a finished one), no
    `incident_observables` table, and `incident_hosts(key, incident_id)` without the
    incident's state and times. Both link tables are rebuilt from the stored incidents.
    """
    db.execute("ALTER TABLE incidents ADD COLUMN finished INTEGER NOT NULL DEFAULT 1")
    db.execute("DROP TABLE IF EXISTS incident_hosts")
    db.execute("DROP TABLE IF EXISTS incident_observables")
    for statement in (*_LINK_TABLES, *_V1_INDEXES):
        db.execute(statement)
    # Self-contained (not `links`): a later version may change what `links` returns.
    columns = "(incident_id, key, open, last_seen) VALUES (?, ?, ?, ?)"
    for incident_id, data in db.execute("SELECT id, data FROM incidents"):
        incident = load_incident(incident_id, data)
        state = (int(incident.status is IncidentStatus.OPEN), _span(incident)[1])
        hosts = dict.fromkeys(bind(k) for h in incident.hosts for k in h.keys)
        observables = dict.fromkeys(bind(o.key) for o in incident.observables)
        db.executemany(
            f"INSERT INTO incident_hosts {columns}", [(incident_id, k, *state) for k in hosts]
        )
        db.executemany(
            f"INSERT INTO incident_observables {columns}",
            [(incident_id, k, *state) for k in observables],
        )


MIGRATIONS: Final[tuple[Migration, ...]] = (_migrate_0_to_1,)
"""`MIGRATIONS[n]` takes the schema from version n to n + 1. Append; never edit."""

SCHEMA_VERSION: Final = len(MIGRATIONS)
"""The schema version this fido writes (and the newest it reads)."""


# -- opening --------------------------------------------------------------------------------

_UNREADABLE: Final = frozenset({sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT})


def connect(path: str, *, timeout: float) -> sqlite3.Connection:
    """Open (creating or migrating as needed) the database at `path`.

    The connection is in autocommit mode (`isolation_level=None`): the store issues its
    own `BEGIN`/`COMMIT`. It may be used from any thread, under the caller's lock.

    Raises:
        ConfigurationError: The file cannot be opened, is not an SQLite database, is not a
            fido database, or has a schema newer than this fido reads.
    """
    try:
        db = sqlite3.connect(path, timeout=timeout, check_same_thread=False, isolation_level=None)
    except sqlite3.Error as exc:
        raise ConfigurationError(f"cannot open the database: {exc}", file=path) from None
    try:
        _prepare(db, path, timeout)
    except sqlite3.DatabaseError as exc:
        db.close()
        if exc.sqlite_errorcode in _UNREADABLE:
            raise ConfigurationError(
                f"not an SQLite database (or a damaged one): {exc}", file=path
            ) from None
        raise
    except BaseException:
        db.close()
        raise
    return db


def _version(db: sqlite3.Connection, path: str) -> int | None:
    """The schema version, or None for an empty database."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return None
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:  # no meta table, or not ours
        row = None
    value = None if row is None else row[0]
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or value < 0:
        raise ConfigurationError(
            "an SQLite database, but not a fido one (no schema version)", file=path
        )
    return value


def _refuse_newer(version: int | None, path: str) -> None:
    if version is not None and version > SCHEMA_VERSION:
        raise ConfigurationError(
            f"the database has schema version {version}, newer than this fido reads"
            f" ({SCHEMA_VERSION}): upgrade fido",
            file=path,
        )


def _prepare(db: sqlite3.Connection, path: str, timeout: float) -> None:
    version = _version(db, path)  # before any pragma: refuse a foreign file untouched
    _refuse_newer(version, path)
    db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    if version == SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        version = _version(db, path)  # another process may have migrated meanwhile
        _refuse_newer(version, path)
        if version is None:
            for statement in BASELINE:
                db.execute(statement)
            version = _BASELINE_VERSION
        for step in range(version, SCHEMA_VERSION):
            MIGRATIONS[step](db)
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (SCHEMA_VERSION,),
        )
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
