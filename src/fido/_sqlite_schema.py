"""The database behind `SQLiteStore`: the schema, its migrations, and the value codecs.

Version 6 (`SCHEMA_VERSION`) has these tables. Times are ISO 8601 UTC text with fixed
microseconds (`2026-11-28T12:00:00.000000+00:00`), so that text order is time order.
Identifiers (event, incident, host and observable keys) are text; a string that UTF-8
cannot encode (a lone surrogate from a hostile alert) is kept as a BLOB of its
`surrogatepass` encoding, so every Python string is stored exactly.

- `meta(key, value)`: `schema_version` is the schema's version.
- `events(detector, id, incident_id, data, position, claimed_by, claimed_until)`: every
  stored event, primary key `(detector, id)`. `incident_id` is NULL while the event is not
  yet part of a saved incident (`pending_events`, in rowid order, which is insertion
  order); `position` is its place among the incident's events. `data` is
  `Event.to_dict()` as JSON. `claimed_by` and `claimed_until` say which pipeline works on
  a pending event, until when (NULL once it is part of an incident).
- `incidents(id, status, created_at, updated_at, first_seen, last_seen, total, level,
  finished, pending_approvals, data, revision, event_count, audit_count, approval_due,
  finding_count, failure_count, empty_count, links_seen)`: one row per incident;
  `first_seen`/`last_seen` are the earliest and latest event times (created/updated time
  when it has no events), `total` and `level` the assessment's total and the decision's
  level, `finished` is 0 after a `save_incident(..., finished=False)`,
  `pending_approvals` counts the pending approvals, `data` is `Incident.to_dict()` as JSON
  without the records that only grow (events, audit trail, findings, failures, empty
  look-ups: those live in `events`, `incident_audit` and `incident_lookups`, so that
  saving an incident costs what changed, not what it holds), `revision` counts the saves,
  `event_count`, `audit_count`, `finding_count`, `failure_count` and `empty_count` say how
  many of each are stored, `approval_due` is the earliest `expires_at` of its pending
  approvals (NULL if none), and `links_seen` is the `last_seen` its link rows were last
  brought up to (see below).
- `incident_audit(incident_id, position, data)`: the audit trail, appended: each row
  holds the `StageRecord`s one save added (a JSON list), `position` is the place of its
  first record in the trail; unique on `(incident_id, position)` (an ordinary rowid table
  with a unique index: its rows are too large for a WITHOUT ROWID table).
- `incident_lookups(incident_id, part, position, data)`: the findings, failures and empty
  look-ups (`part` is `findings`, `failures` or `empty_lookups`), appended like the audit
  trail: each row holds what one save added to one part; unique on `(incident_id, part,
  position)`, a rowid table like the audit trail's.
- `incident_hosts(incident_id, key, open, last_seen)` and
  `incident_observables(incident_id, key, open, last_seen)`: one row per host key
  (`Host.keys`) or observable key (`Observable.key`) of an incident, primary key
  `(incident_id, key)`. `open` (the incident is joinable: open, or suppressed by its
  score rather than the allowlist) repeats the incident's, so that correlation and
  history find their candidates in one range of one index. `last_seen` lags the
  incident's by at most `LINK_LAG`: rewriting every key of an incident on each event it
  gains would make a save cost what the incident holds, so the rows are brought up to
  date only when they fall `LINK_LAG` behind (or the incident's `open` changes). Queries
  look `LINK_LAG` further back in the index and check the incident's own `last_seen`.
- `dead_letters(id, at, detector, event_id, field, reason, payload)`: `id` autoincrements
  (newest first is `id DESC`); `payload` is JSON.
- `cursors(detector, cursor, updated_at)`: the detectors' polling cursors.

Indexes: `incidents(updated_at, id)` and `incidents(status, updated_at, id)` for listings;
partial indexes for pending approvals, unfinished incidents and pending events;
`(key, last_seen, open)` on both link tables, covering (the primary key's `incident_id`
rides along in a WITHOUT ROWID table's index): sightings of an observable, prior
incidents per host since a time, and open incidents by host or observable in a
correlation window; `incidents(id, last_seen, total, level)`, so that those queries check
and read each candidate incident without its row.

Migrations: `MIGRATIONS[n]` takes a database from version n to n + 1. A new database gets
the version-1 schema (`BASELINE`, frozen) and then the migrations after it, so each later
version is one function appended to `MIGRATIONS`. `connect` applies what is missing in one
transaction when the store opens.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeAlias

import attrs

from fido import _serde
from fido._errors import ConfigurationError, InvalidRecord, shorten
from fido._event import Event
from fido._incident import (
    ALLOWLISTED,
    INCIDENT_SCHEMA,
    ApprovalStatus,
    Incident,
    IncidentStatus,
    StageRecord,
)

__all__ = [
    "BASELINE",
    "GROWING",
    "LINK_LAG",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "bind",
    "connect",
    "dump_audit",
    "dump_json",
    "dump_part",
    "event_keys",
    "incident_row",
    "iso",
    "joinable",
    "load_event",
    "load_incident",
    "load_json",
    "span",
    "text",
]

GROWING: Final = ("findings", "failures", "empty_lookups")
"""The incident's record fields, besides events and audit, that only ever grow: each save
appends what it added to `incident_lookups`."""

LINK_LAG: Final = timedelta(hours=1)
"""How far a link row's `last_seen` may lag its incident's (see the module's docstring)."""

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


_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def dump_json(data: Any) -> str:
    """Compact ASCII JSON (ASCII: a lone surrogate in an alert stays an escape)."""
    return _ENCODER.encode(data)


def load_json(data: str | bytes, what: str, record: str) -> Any:
    """Parse a stored JSON column.

    Raises:
        InvalidRecord: The column is not JSON (`what` names the row in the message).
    """
    try:
        return json.loads(data)
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise InvalidRecord(f"{what} is not valid JSON: {exc}", record=record) from None


def _load_full_incident(incident_id: str | bytes, data: str | bytes) -> Incident:
    """An incident from a version 0 or 1 row, whose `data` held everything."""
    what = f"the stored incident {shorten(text(incident_id))}"
    parsed = load_json(data, what, "Incident")
    try:
        return Incident.from_dict(parsed)
    except InvalidRecord as exc:
        raise InvalidRecord(f"{what}: {exc.message}", record="Incident", field=exc.field) from None


def load_incident(
    incident_id: str | bytes,
    data: str | bytes,
    events: Iterable[tuple[str | bytes, str | bytes, str | bytes]],
    audit: Iterable[str | bytes],
    lookups: Iterable[tuple[str, str | bytes]] = (),
) -> Incident:
    """An incident from its stored row, its event, audit and look-up rows, in order.

    Raises:
        InvalidRecord: A row is corrupt; the message names the incident (or the event).
    """
    what = f"the stored incident {shorten(text(incident_id))}"
    parsed = load_json(data, what, "Incident")
    try:
        if lookups:
            if not isinstance(parsed, dict):
                raise InvalidRecord("an incident is a JSON object", record="Incident")
            for part, row in lookups:
                if part not in GROWING:
                    raise InvalidRecord(f"{what}: an unknown part {part!r}", record="Incident")
                found = parsed.get(part) or []
                if not isinstance(found, list):
                    raise InvalidRecord(f"{part} is a JSON list", record="Incident", field=part)
                parsed[part] = found + _records(load_json(row, what, "Incident"), what)
        bare = Incident.from_dict(parsed)
        trail = tuple(
            _serde.load_record(StageRecord, record)
            for row in audit
            for record in _records(load_json(row, what, "Incident"), what)
        )
    except InvalidRecord as exc:
        raise InvalidRecord(f"{what}: {exc.message}", record="Incident", field=exc.field) from None
    return attrs.evolve(bare, events=tuple(load_event(*row) for row in events), audit=trail)


def _records(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidRecord(f"{what}: an audit row is a JSON list", record="Incident")
    return value


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


def joinable(status: str, level: str | bytes) -> bool:
    """`Incident.joinable` from the stored status and decision level."""
    if status == IncidentStatus.OPEN.value:
        return True
    return status == IncidentStatus.SUPPRESSED.value and text(level) != ALLOWLISTED


def span(incident: Incident) -> tuple[str, str]:
    """The incident's first and last event times (its created and updated times if none)."""
    times = [e.time for e in incident.events]
    if not times:
        return iso(incident.created_at), iso(incident.updated_at)
    return iso(min(times)), iso(max(times))


_APART: Final = frozenset({"events", "audit", *GROWING})


def incident_row(
    incident: Incident,
    *,
    finished: bool,
    revision: int,
    first: str,
    last: str,
    links_seen: str,
) -> tuple[Any, ...]:
    """The `incidents` row of an incident, in the column order of the table.

    `first` and `last` are its first and last event times (`span`), `links_seen` the
    `last_seen` its link rows hold.
    """
    waiting = [a for a in incident.approvals if a.status is ApprovalStatus.PENDING]
    due = [a.expires_at for a in waiting if a.expires_at is not None]
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
        len(waiting),
        dump_json({"schema": INCIDENT_SCHEMA, **_serde.dump(incident, without=_APART)}),
        revision,
        len(incident.events),
        len(incident.audit),
        iso(min(due)) if due else None,
        len(incident.findings),
        len(incident.failures),
        len(incident.empty_lookups),
        links_seen,
    )


def dump_part(part: str, records: tuple[Any, ...]) -> str:
    """An `incident_lookups` row's `data`: the findings (failures, ...) one save added."""
    return dump_json(_serde.field_dumper(Incident, part)(records))


def dump_audit(records: Sequence[StageRecord]) -> str:
    """An `incident_audit` row's `data`: the records one save added."""
    return dump_json([_serde.dump(record) for record in records])


def event_keys(events: Sequence[Event]) -> tuple[list[str | bytes], list[str | bytes]]:
    """The host keys (`Host.keys`) and observable keys of some events, without repeats."""
    hosts: dict[str | bytes, None] = {}
    observables: dict[str | bytes, None] = {}
    for event in events:
        if event.host is not None:
            for key in event.host.keys:
                hosts[bind(key)] = None
        for observable in event.observables:
            observables[bind(observable.key)] = None
    return list(hosts), list(observables)


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
    for incident_id, data in db.execute("SELECT id, data FROM incidents").fetchall():
        incident = _load_full_incident(incident_id, data)
        state = (int(incident.status is IncidentStatus.OPEN), span(incident)[1])
        hosts = dict.fromkeys(bind(k) for h in incident.hosts for k in h.keys)
        observables = dict.fromkeys(bind(o.key) for o in incident.observables)
        db.executemany(
            f"INSERT INTO incident_hosts {columns}", [(incident_id, k, *state) for k in hosts]
        )
        db.executemany(
            f"INSERT INTO incident_observables {columns}",
            [(incident_id, k, *state) for k in observables],
        )


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    """Version 1 to 2: events and audit trails move out of the incident's `data`.

    Version 1 rewrote an incident's whole JSON, every event's row and every key on each
    save, so a long-running incident cost more with every event it gained. Version 2
    keeps the events' positions in `events`, the audit trail in `incident_audit`, and a
    save revision and the counts on the incident, so that a save writes what is new.
    """
    db.execute("ALTER TABLE incidents ADD COLUMN revision INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE incidents ADD COLUMN event_count INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE incidents ADD COLUMN audit_count INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE incidents ADD COLUMN approval_due TEXT")
    db.execute("ALTER TABLE events ADD COLUMN position INTEGER")
    for statement in _V2_STATEMENTS:
        db.execute(statement)
    for incident_id, data in db.execute("SELECT id, data FROM incidents").fetchall():
        incident = _load_full_incident(incident_id, data)
        for position, event in enumerate(incident.events):
            event_key = (bind(event.detector), bind(event.id))
            updated = db.execute(
                "UPDATE events SET incident_id = ?, position = ? WHERE detector = ? AND id = ?",
                (incident_id, position, *event_key),
            )
            if updated.rowcount == 0:
                db.execute(
                    "INSERT INTO events (detector, id, incident_id, data, position)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (*event_key, incident_id, dump_json(event.to_dict()), position),
                )
        if incident.audit:
            db.execute(
                "INSERT INTO incident_audit (incident_id, position, data) VALUES (?, 0, ?)",
                (incident_id, dump_audit(incident.audit)),
            )
        body = attrs.evolve(incident, events=(), audit=())
        due = [
            a.expires_at
            for a in incident.approvals
            if a.status is ApprovalStatus.PENDING and a.expires_at is not None
        ]
        db.execute(
            "UPDATE incidents SET data = ?, revision = 1, event_count = ?, audit_count = ?,"
            " approval_due = ? WHERE id = ?",
            (
                dump_json({"schema": INCIDENT_SCHEMA, **_serde.dump(body)}),
                len(incident.events),
                len(incident.audit),
                iso(min(due)) if due else None,
                incident_id,
            ),
        )


_V2_STATEMENTS: Final = (
    """CREATE TABLE incident_audit (
    incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (incident_id, position)
) WITHOUT ROWID""",
    (
        "CREATE INDEX events_by_incident ON events (incident_id, position)"
        " WHERE incident_id IS NOT NULL"
    ),
    (
        "CREATE INDEX incidents_approval_due ON incidents (approval_due)"
        " WHERE approval_due IS NOT NULL"
    ),
)


def _migrate_2_to_3(db: sqlite3.Connection) -> None:
    """Version 2 to 3: event claims, and incidents suppressed by their score are joinable.

    Pending events get an owner and a time (`claimed_by`, `claimed_until`), so that two
    pipelines on one database never process the same alert at once. The link tables'
    `open` flag now means joinable, which takes in the incidents the score suppressed.
    """
    db.execute("ALTER TABLE events ADD COLUMN claimed_by TEXT")
    db.execute("ALTER TABLE events ADD COLUMN claimed_until TEXT")
    for table in ("incident_hosts", "incident_observables"):
        db.execute(
            f"UPDATE {table} SET open = 1 WHERE incident_id IN"  # noqa: S608 - our names
            " (SELECT id FROM incidents WHERE status = ? AND level != ?)",
            (IncidentStatus.SUPPRESSED.value, ALLOWLISTED),
        )


def _migrate_3_to_4(db: sqlite3.Connection) -> None:
    """Version 3 to 4: findings, failures and empty look-ups move out of the incident's `data`.

    Version 3 rewrote them all on each save, so an incident that kept gaining events (and
    so look-ups) cost more with every event. Version 4 appends what a save adds to
    `incident_lookups`, and counts them on the incident. Link rows may now lag the
    incident's `last_seen` (`links_seen` says how far they are up to date).
    """
    for column in ("finding_count", "failure_count", "empty_count"):
        db.execute(f"ALTER TABLE incidents ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE incidents ADD COLUMN links_seen TEXT NOT NULL DEFAULT ''")
    db.execute(_V4_LOOKUPS)
    db.execute("UPDATE incidents SET links_seen = last_seen")
    for incident_id, data in db.execute("SELECT id, data FROM incidents").fetchall():
        what = f"the stored incident {shorten(text(incident_id))}"
        parsed = load_json(data, what, "Incident")
        if not isinstance(parsed, dict):
            raise InvalidRecord(f"{what} is not a JSON object", record="Incident")
        counts = []
        for part in GROWING:
            records = parsed.pop(part, None) or []
            if not isinstance(records, list):
                raise InvalidRecord(f"{what}: {part} is not a list", record="Incident", field=part)
            if records:
                db.execute(
                    "INSERT INTO incident_lookups (incident_id, part, position, data)"
                    " VALUES (?, ?, 0, ?)",
                    (incident_id, part, dump_json(records)),
                )
            counts.append(len(records))
        db.execute(
            "UPDATE incidents SET data = ?, finding_count = ?, failure_count = ?,"
            " empty_count = ? WHERE id = ?",
            (dump_json(parsed), *counts, incident_id),
        )


_V4_LOOKUPS: Final = """CREATE TABLE incident_lookups (
    incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    part TEXT NOT NULL,
    position INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (incident_id, part, position)
) WITHOUT ROWID"""


def _migrate_4_to_5(db: sqlite3.Connection) -> None:
    """Version 4 to 5: the audit trail and the look-ups in ordinary (rowid) tables.

    Their rows are a few hundred bytes to a few kilobytes of JSON; a WITHOUT ROWID table
    keeps whole rows in its b-tree, where rows that large leave pages part empty as they
    split (the audit trail took about three times the room of its data). Version 5 keeps
    them in rowid tables with a unique index on the same key: a third less on disk, and
    less to write per save.
    """
    for table, key in (
        ("incident_audit", "incident_id, position"),
        ("incident_lookups", "incident_id, part, position"),
    ):
        db.execute(f"ALTER TABLE {table} RENAME TO {table}_v4")
        db.execute(_V5_TABLES[table])
        db.execute(
            f"INSERT INTO {table} SELECT * FROM {table}_v4 ORDER BY {key}"  # noqa: S608
        )
        db.execute(f"DROP TABLE {table}_v4")
    for statement in _V5_INDEXES:
        db.execute(statement)


_V5_TABLES: Final = {
    "incident_audit": """CREATE TABLE incident_audit (
    incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    data TEXT NOT NULL
)""",
    "incident_lookups": """CREATE TABLE incident_lookups (
    incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    part TEXT NOT NULL,
    position INTEGER NOT NULL,
    data TEXT NOT NULL
)""",
}
_V5_INDEXES: Final = (
    "CREATE UNIQUE INDEX incident_audit_by_position ON incident_audit (incident_id, position)",
    (
        "CREATE UNIQUE INDEX incident_lookups_by_position"
        " ON incident_lookups (incident_id, part, position)"
    ),
)


def _migrate_5_to_6(db: sqlite3.Connection) -> None:
    """Version 5 to 6: an index that answers the history queries without the incidents' rows.

    The scorer's query for earlier incidents on a host joins each link row to its
    incident's `last_seen`, `total` and `level`; without this index each of those reads an
    incident's row (kilobytes of JSON in its page), with it one index entry: about 2.5
    times faster at 300,000 incidents, where a host had some 13 earlier ones. Correlation's
    check of each candidate's `last_seen` uses it too.
    """
    db.execute(_V6_INDEX)


_V6_INDEX: Final = "CREATE INDEX incidents_by_id_seen ON incidents (id, last_seen, total, level)"


MIGRATIONS: Final[tuple[Migration, ...]] = (
    _migrate_0_to_1,
    _migrate_1_to_2,
    _migrate_2_to_3,
    _migrate_3_to_4,
    _migrate_4_to_5,
    _migrate_5_to_6,
)
"""`MIGRATIONS[n]` takes the schema from version n to n + 1. Append; never edit."""

SCHEMA_VERSION: Final = len(MIGRATIONS)
"""The schema version this fido writes (and the newest it reads)."""


# -- opening --------------------------------------------------------------------------------

_UNREADABLE: Final = frozenset({sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT})
CACHE_KIB: Final = 16_384
"""The connection's page cache, in KiB (16 MiB: the indexes that every event searches)."""
AUTOCHECKPOINT_PAGES: Final = 16_384
"""Log pages after which a commit checkpoints by itself (the store's checkpoint thread
normally does it long before: see `SQLiteStore`)."""


def connect(path: str, *, timeout: float) -> sqlite3.Connection:
    """Open (creating or migrating as needed) the database at `path`.

    The connection is in autocommit mode (`isolation_level=None`): the store issues its
    own `BEGIN`/`COMMIT`. It may be used from any thread, under the caller's lock.

    Raises:
        ConfigurationError: The file cannot be opened, is not an SQLite database, is not a
            fido database, or has a schema newer than this fido reads.
    """
    _create_private(path)
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


def _create_private(path: str) -> None:
    """Create a missing database file readable by its owner only (0600).

    SQLite gives the `-wal` and `-shm` files the permissions of the database file, so
    they are private too. An existing file is left as it is.
    """
    if path == ":memory:" or path.startswith("file:") or not path:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError:
        return  # a directory, a missing parent: sqlite3.connect says what is wrong
    os.close(fd)


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
    db.execute(f"PRAGMA cache_size = {-CACHE_KIB}")
    db.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
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
