"""`SQLiteStore` beyond the shared protocol suite: durability, schema, migrations, plans."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import stat
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
import pytest

import fido
from fido._sqlite import SCHEMA_VERSION, SQLiteStore
from fido._sqlite_schema import BASELINE
from fido.scoring import History

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
US = timedelta(microseconds=1)
SHA = "44d88612fea8a8f36de82e1278abb02f" * 2
OTHER = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"


def ev(
    event_id: str,
    *,
    time: datetime = NOW,
    host: fido.Host | None = None,
    observables: tuple[str, ...] = (SHA,),
) -> fido.Event:
    return fido.Event(
        detector="edr",
        id=event_id,
        time=time,
        title="Trojan detected",
        host=host if host is not None else fido.Host(name="ws-042", ip="10.1.2.3"),
        observables=observables,
    )


def inc(incident_id: str, *events: fido.Event, **fields: Any) -> fido.Incident:
    return fido.Incident(
        id=incident_id,
        created_at=NOW,
        updated_at=fields.pop("updated_at", NOW),
        events=events,
        **fields,
    )


@contextlib.contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection to the file, committed and closed on exit."""
    db = sqlite3.connect(path)
    try:
        with db:
            yield db
    finally:
        db.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "fido.sqlite3"


@pytest.fixture
def store(path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(path) as made:
        yield made


# -- the basics ---------------------------------------------------------------------------


def test_repr_version_and_close(path: Path) -> None:
    store = SQLiteStore(path, timeout=1.0)
    assert repr(store) == f"SQLiteStore({str(path)!r})"
    assert store.path == str(path)
    assert store.schema_version == SCHEMA_VERSION == 6
    store.close()
    store.close()
    with pytest.raises(fido.FidoError, match="closed"):
        store.get_cursor("edr")
    with SQLiteStore(":memory:") as memory:
        assert repr(memory) == "SQLiteStore(':memory:')"
        assert memory.schema_version == SCHEMA_VERSION


def test_durable_across_reopen(path: Path) -> None:
    contain = fido.Action(name="contain", requires_approval=True)
    incident = inc(
        "inc-1",
        ev("d-1"),
        assessment=fido.Assessment(total=75, assessed_at=NOW),
        decision=fido.Decision(level="contain", actions=(contain,)),
        approvals=(fido.Approval(action=contain, requested_at=NOW),),
    )
    letter = fido.DeadLetter(reason="bad time", at=NOW, detector="edr", payload={"id": 1})
    with SQLiteStore(path) as store:
        store.add_events([ev("d-1"), ev("d-2")])
        store.save_incident(incident)
        store.save_incident(inc("inc-2", ev("d-3")), finished=False)
        store.add_dead_letter(letter)
        store.set_cursor("edr", "page-9")
    with SQLiteStore(path) as store:
        assert store.get_incident("inc-1") == incident
        assert [e.id for e in store.pending_events()] == ["d-2"]
        assert store.incident_for_event("edr", "d-1") == "inc-1"
        assert [i.id for i in store.unfinished_incidents()] == ["inc-2"]
        assert [i.id for i in store.pending_approvals()] == ["inc-1"]
        assert list(store.dead_letters()) == [letter]
        assert store.get_cursor("edr") == "page-9"
        history = store.history(observables=[fido.Observable.parse(SHA)], hosts=[], since=NOW)
        assert dict(history.sightings) == {fido.Observable.parse(SHA): 2}
        assert store.find_open_incident(hosts=["ws-042"], observables=[], start=NOW, end=NOW) in {
            "inc-1",
            "inc-2",
        }


def test_wal_mode_and_pragmas(store: SQLiteStore, path: Path) -> None:
    with raw(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db is not None
    assert store._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert store._db.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000


def test_two_stores_on_one_file_see_each_other(store: SQLiteStore, path: Path) -> None:
    with SQLiteStore(path) as other:
        assert store.add_event(ev("t-1")) is True
        assert other.add_event(ev("t-1")) is False
        other.save_incident(inc("inc-1", ev("t-1")))
        assert store.incident_for_event("edr", "t-1") == "inc-1"


def test_resave_replaces_the_incident_keys(store: SQLiteStore) -> None:
    # SQLiteStore keeps only the keys of the last save (MemoryStore never forgets a key).
    store.save_incident(inc("inc-1", ev("r-1", observables=(SHA, OTHER))))
    store.save_incident(inc("inc-1", ev("r-2", host=fido.Host(name="ws-007"))))
    other = fido.Observable.parse(OTHER)
    assert (
        store.find_open_incident(hosts=["ws-042"], observables=[other], start=NOW, end=NOW) is None
    )
    assert store.find_open_incident(hosts=["ws-007"], observables=[], start=NOW, end=NOW) == "inc-1"
    assert store.history(observables=[other], hosts=["ws-042"], since=NOW) == History()


def test_negative_limits_slice_like_memory_store(store: SQLiteStore) -> None:
    memory = fido.MemoryStore()
    for target in (store, memory):
        for n in range(3):
            target.save_incident(inc(f"inc-{n}", ev(f"l-{n}"), updated_at=NOW + n * HOUR))
            target.add_dead_letter(fido.DeadLetter(reason=f"bad {n}", at=NOW))
    for limit in (-1, -2, -5):
        assert store.incidents(limit=limit) == memory.incidents(limit=limit)
        assert store.dead_letters(limit=limit) == memory.dead_letters(limit=limit)


def test_hostile_identifiers_round_trip(store: SQLiteStore) -> None:
    # A lone surrogate (valid in a Python str, not in UTF-8) from an alert must not break
    # the store: such identifiers are kept as bytes, exactly.
    odd = "x\udc80"
    event = fido.Event(
        detector="e\ud800",
        id=odd,
        time=NOW,
        title="t\udfff",
        host=fido.Host(name=odd),
        observables=[fido.Observable("filename", "a\udc80.exe")],
    )
    assert store.add_event(event) is True
    assert store.add_event(event) is False
    assert store.pending_events() == [event]
    store.save_incident(inc(odd, event))
    assert store.incident_for_event("e\ud800", odd) == odd
    assert store.get_incident(odd) == inc(odd, event)
    assert store.find_open_incident(hosts=[odd], observables=[], start=NOW, end=NOW) == odd
    history = store.history(observables=event.observables, hosts=[odd], since=NOW)
    assert dict(history.sightings) == {event.observables[0]: 1}
    assert [(p.id, p.host) for p in history.incidents] == [(odd, odd)]
    assert [i.id for i in store.incidents(host=odd)] == [odd]
    store.set_cursor(odd, odd)
    assert store.get_cursor(odd) == odd
    store.add_dead_letter(fido.DeadLetter(reason=odd, at=NOW, event_id=odd, payload=odd))
    assert [(d.reason, d.event_id, d.payload) for d in store.dead_letters()] == [(odd, odd, odd)]


def test_many_keys_are_queried_in_chunks(store: SQLiteStore) -> None:
    hosts = [f"host-{i}" for i in range(1200)]
    observables = [fido.Observable("domain", f"d{i}.example") for i in range(1100)]
    store.save_incident(
        inc("inc-1", ev("k-1", host=fido.Host(name="host-1150"), observables=("d1050.example",)))
    )
    store.save_incident(
        inc("inc-2", ev("k-2", host=fido.Host(name="host-3")), updated_at=NOW - HOUR)
    )
    assert (
        store.find_open_incident(hosts=hosts, observables=observables, start=NOW, end=NOW)
        == "inc-1"
    )
    history = store.history(observables=observables, hosts=hosts, since=NOW - HOUR)
    assert dict(history.sightings) == {fido.Observable("domain", "d1050.example"): 1}
    assert sorted(p.host for p in history.incidents) == ["host-1150", "host-3"]


def test_threads_add_events_at_once(store: SQLiteStore) -> None:
    # 8 threads, 200 keys each, every key offered by two threads: exactly one wins.
    def work(t: int) -> int:
        events = [ev(f"e-{(t * 100 + i) % 800}") for i in range(200)]
        wins = sum(store.add_event(e) for e in events[:100])
        wins += sum(store.add_events(events[100:]))
        store.history(observables=[fido.Observable.parse(SHA)], hosts=["ws-042"], since=NOW)
        return wins

    barrier = threading.Barrier(8)

    def start(t: int) -> int:
        barrier.wait()
        return work(t)

    with ThreadPoolExecutor(max_workers=8) as pool:
        wins = list(pool.map(start, range(8)))
    assert sum(wins) == 800
    assert len(store.pending_events()) == 800


# -- refusing files -----------------------------------------------------------------------


def test_a_newer_database_is_refused(path: Path) -> None:
    SQLiteStore(path).close()
    with raw(path) as db:
        db.execute("UPDATE meta SET value = 99 WHERE key = 'schema_version'")
    with pytest.raises(fido.ConfigurationError) as caught:
        SQLiteStore(path)
    message = str(caught.value)
    assert str(path) in message
    assert "99" in message
    assert f"({SCHEMA_VERSION})" in message
    assert caught.value.file == str(path)


def test_a_file_that_is_not_a_database_is_refused(path: Path) -> None:
    content = b"host,user\nws-042,bdoe\n" * 100
    path.write_bytes(content)
    with pytest.raises(fido.ConfigurationError, match="not an SQLite database") as caught:
        SQLiteStore(path)
    assert str(path) in str(caught.value)
    assert path.read_bytes() == content


def test_another_sqlite_database_is_refused_untouched(path: Path) -> None:
    with raw(path) as db:
        db.execute("CREATE TABLE songs (title TEXT)")
    with pytest.raises(fido.ConfigurationError, match="not a fido one") as caught:
        SQLiteStore(path)
    assert str(path) in str(caught.value)
    with raw(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("songs",)]


def test_an_empty_file_becomes_a_database(path: Path) -> None:
    path.write_bytes(b"")
    with SQLiteStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(fido.ConfigurationError) as caught:
        SQLiteStore(tmp_path)
    assert str(tmp_path) in str(caught.value)


# -- migrations ---------------------------------------------------------------------------

# Version 0, as an older fido wrote it: no `finished` flag, no observable keys, host keys
# without the incident's state and times.
VERSION_0 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL) WITHOUT ROWID;
INSERT INTO meta VALUES ('schema_version', 0);
CREATE TABLE incidents (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
    total INTEGER NOT NULL, level TEXT NOT NULL,
    pending_approvals INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL
);
CREATE TABLE events (
    detector TEXT NOT NULL, id TEXT NOT NULL, incident_id TEXT REFERENCES incidents (id),
    data TEXT NOT NULL, PRIMARY KEY (detector, id)
);
CREATE TABLE incident_hosts (
    key TEXT NOT NULL, incident_id TEXT NOT NULL, PRIMARY KEY (key, incident_id)
);
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, detector TEXT, event_id TEXT,
    field TEXT, reason TEXT NOT NULL, payload TEXT NOT NULL
);
CREATE TABLE cursors (detector TEXT PRIMARY KEY, cursor TEXT, updated_at TEXT NOT NULL);
"""


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def write_version_0(path: Path, incidents: list[fido.Incident], pending: fido.Event) -> None:
    with raw(path) as db:
        db.executescript(VERSION_0)
        for incident in incidents:
            times = [e.time for e in incident.events]
            db.execute(
                "INSERT INTO incidents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    incident.id,
                    incident.status.value,
                    iso(incident.created_at),
                    iso(incident.updated_at),
                    iso(min(times)),
                    iso(max(times)),
                    incident.assessment.total,
                    incident.decision.level,
                    0,
                    json.dumps(incident.to_dict()),
                ),
            )
            for event in incident.events:
                db.execute(
                    "INSERT INTO events VALUES (?, ?, ?, ?)",
                    (event.detector, event.id, incident.id, json.dumps(event.to_dict())),
                )
            for host in incident.hosts:
                db.execute("INSERT INTO incident_hosts VALUES (?, ?)", (host.key, incident.id))
        db.execute(
            "INSERT INTO events VALUES (?, ?, NULL, ?)",
            (pending.detector, pending.id, json.dumps(pending.to_dict())),
        )
        db.execute(
            "INSERT INTO dead_letters (at, reason, payload) VALUES (?, 'bad', '{\"a\": 1}')",
            (iso(NOW),),
        )
        db.execute("INSERT INTO cursors VALUES ('edr', 'page-3', ?)", (iso(NOW),))


def structure(path: Path) -> dict[str, Any]:
    with raw(path) as db:
        names = db.execute("SELECT type, name FROM sqlite_master ORDER BY name").fetchall()
        shape: dict[str, Any] = {}
        for kind, name in names:
            pragma = "table_info" if kind == "table" else "index_info"
            rows = db.execute(f"PRAGMA {pragma}({name})").fetchall()
            shape[name] = (kind, sorted(row[1:] if kind == "table" else row[2:] for row in rows))
        return shape


def test_migration_from_version_0(path: Path, tmp_path: Path) -> None:
    old = inc(
        "inc-old",
        ev("m-1", observables=(SHA, OTHER)),
        ev("m-2", time=NOW + HOUR),
        assessment=fido.Assessment(total=60, assessed_at=NOW),
        decision=fido.Decision(level="ticket"),
    )
    closed = inc(
        "inc-closed",
        ev("m-3", host=fido.Host(name="ws-007", ip="10.1.2.7")),
        status=fido.IncidentStatus.CLOSED,
    )
    write_version_0(path, [old, closed], ev("m-4"))
    with SQLiteStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.get_incident("inc-old") == old
        assert store.get_incident("inc-closed") == closed
        assert store.unfinished_incidents() == []
        assert [e.id for e in store.pending_events()] == ["m-4"]
        assert store.incident_for_event("edr", "m-2") == "inc-old"
        assert store.get_cursor("edr") == "page-3"
        assert [d.payload for d in store.dead_letters()] == [{"a": 1}]
        # The backfilled keys answer the queries: observables and both host keys.
        sha, other = fido.Observable.parse(SHA), fido.Observable.parse(OTHER)
        history = store.history(observables=[sha, other], hosts=["10.1.2.7"], since=NOW)
        assert dict(history.sightings) == {sha: 2, other: 1}
        assert [(p.id, p.host, p.at) for p in history.incidents] == [
            ("inc-closed", "10.1.2.7", NOW)
        ]
        found = store.find_open_incident(
            hosts=[], observables=[other], start=NOW + HOUR, end=NOW + HOUR
        )
        assert found == "inc-old"
        assert (
            store.find_open_incident(hosts=["ws-007"], observables=[], start=NOW, end=NOW) is None
        )
        assert [i.id for i in store.incidents(host="10.1.2.3", min_total=50)] == ["inc-old"]
        store.save_incident(inc("inc-new", ev("m-4")), finished=False)
        assert [i.id for i in store.unfinished_incidents()] == ["inc-new"]
    fresh = tmp_path / "fresh.sqlite3"
    SQLiteStore(fresh).close()
    assert structure(path) == structure(fresh)


def write_version_1(path: Path, incidents: list[fido.Incident]) -> None:
    """Version 1, as fido 0.1 wrote it: each incident's `data` held its events and audit."""
    with raw(path) as db:
        for statement in BASELINE:
            db.execute(statement)
        db.execute("INSERT INTO meta VALUES ('schema_version', 1)")
        for incident in incidents:
            times = [e.time for e in incident.events]
            db.execute(
                "INSERT INTO incidents VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, 0, ?)",
                (
                    incident.id,
                    incident.status.value,
                    iso(incident.created_at),
                    iso(incident.updated_at),
                    iso(min(times)),
                    iso(max(times)),
                    incident.assessment.total,
                    incident.decision.level,
                    json.dumps(incident.to_dict()),
                ),
            )
            for event in incident.events:
                db.execute(
                    "INSERT INTO events VALUES (?, ?, ?, ?)",
                    (event.detector, event.id, incident.id, json.dumps(event.to_dict())),
                )
            for key in {k for h in incident.hosts for k in h.keys}:
                db.execute(
                    "INSERT INTO incident_hosts VALUES (?, ?, 1, ?)",
                    (incident.id, key, iso(max(times))),
                )
            for observable in incident.observables:
                db.execute(
                    "INSERT INTO incident_observables VALUES (?, ?, 1, ?)",
                    (incident.id, observable.key, iso(max(times))),
                )


def audit(*stages: str) -> tuple[fido.StageRecord, ...]:
    return tuple(
        fido.StageRecord(stage=s, started_at=NOW, duration=HOUR / 3600, outcome="ok")
        for s in stages
    )


def test_migration_from_version_1(path: Path, tmp_path: Path) -> None:
    old = inc(
        "inc-v1",
        ev("v-2", time=NOW + HOUR),  # events keep the incident's order, not the rows'
        ev("v-1"),
        audit=audit("validate", "dedup", "correlate"),
        assessment=fido.Assessment(total=40, assessed_at=NOW),
    )
    write_version_1(path, [old])
    with SQLiteStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.get_incident("inc-v1") == old
        grown = attrs.evolve(old, events=(*old.events, ev("v-3")), audit=old.audit * 2)
        store.save_incident(grown)
    with SQLiteStore(path) as reopened:
        assert reopened.get_incident("inc-v1") == grown
        assert reopened.incident_for_event("edr", "v-3") == "inc-v1"
    fresh = tmp_path / "fresh.sqlite3"
    SQLiteStore(fresh).close()
    assert structure(path) == structure(fresh)


def test_migration_from_version_2(path: Path, tmp_path: Path) -> None:
    """Version 2 had no claims, and its `open` flags left out incidents the score suppressed."""
    suppressed = inc(
        "inc-quiet",
        ev("q-1"),
        status=fido.IncidentStatus.SUPPRESSED,
        decision=fido.Decision(level="suppress"),
    )
    allowlisted = inc(
        "inc-allowed",
        ev("q-2", host=fido.Host(name="scanner-1")),
        status=fido.IncidentStatus.SUPPRESSED,
        decision=fido.Decision(level="allowlisted"),
    )
    with SQLiteStore(path) as store:
        store.save_incident(suppressed)
        store.save_incident(allowlisted)
        store.add_event(ev("q-3"))
    with raw(path) as db:  # back to version 2, as fido 0.2 left it
        back_to_version_3(db)
        db.execute("ALTER TABLE events DROP COLUMN claimed_by")
        db.execute("ALTER TABLE events DROP COLUMN claimed_until")
        db.execute("UPDATE incident_hosts SET open = 0")
        db.execute("UPDATE incident_observables SET open = 0")
        db.execute("UPDATE meta SET value = 2 WHERE key = 'schema_version'")
    with SQLiteStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.find_open_incident(hosts=["ws-042"], observables=[], start=NOW, end=NOW) == (
            "inc-quiet"
        )
        assert (
            store.find_open_incident(hosts=["scanner-1"], observables=[], start=NOW, end=NOW)
            is None
        )
        assert store.claim_event("edr", "q-3", owner="a", until=NOW + HOUR, now=NOW) == "a"
    fresh = tmp_path / "fresh.sqlite3"
    SQLiteStore(fresh).close()
    assert structure(path) == structure(fresh)


def back_to_version_5(db: sqlite3.Connection) -> None:
    """Undo migration 5 to 6: no index on the incidents' ids with their scores."""
    db.execute("DROP INDEX incidents_by_id_seen")
    db.execute("UPDATE meta SET value = 5 WHERE key = 'schema_version'")


def back_to_version_4(db: sqlite3.Connection) -> None:
    """Undo migrations 4 to 5 and on: audit trail and look-ups in WITHOUT ROWID tables."""
    back_to_version_5(db)
    for table, columns, key in (
        ("incident_audit", "position INTEGER NOT NULL,", "incident_id, position"),
        (
            "incident_lookups",
            "part TEXT NOT NULL, position INTEGER NOT NULL,",
            "incident_id, part, position",
        ),
    ):
        db.execute(f"ALTER TABLE {table} RENAME TO {table}_v5")
        db.execute(
            f"CREATE TABLE {table} (incident_id TEXT NOT NULL REFERENCES incidents (id)"
            f" ON DELETE CASCADE, {columns} data TEXT NOT NULL, PRIMARY KEY ({key}))"
            " WITHOUT ROWID"
        )
        db.execute(f"INSERT INTO {table} SELECT * FROM {table}_v5")  # noqa: S608 - our names
        db.execute(f"DROP TABLE {table}_v5")
    db.execute("UPDATE meta SET value = 4 WHERE key = 'schema_version'")


def back_to_version_3(db: sqlite3.Connection) -> None:
    """Undo migrations 3 to 4 and on: the look-ups back in the incident's `data`."""
    back_to_version_4(db)
    parts: dict[str, dict[str, list[Any]]] = {}
    for incident_id, part, data in db.execute(
        "SELECT incident_id, part, data FROM incident_lookups ORDER BY incident_id, part, position"
    ):
        parts.setdefault(incident_id, {}).setdefault(part, []).extend(json.loads(data))
    for incident_id, data in db.execute("SELECT id, data FROM incidents").fetchall():
        parsed = json.loads(data)
        for part in ("findings", "failures", "empty_lookups"):
            parsed[part] = parts.get(incident_id, {}).get(part, [])
        db.execute("UPDATE incidents SET data = ? WHERE id = ?", (json.dumps(parsed), incident_id))
    db.execute("DROP TABLE incident_lookups")
    for column in ("finding_count", "failure_count", "empty_count", "links_seen"):
        db.execute(f"ALTER TABLE incidents DROP COLUMN {column}")
    db.execute("UPDATE meta SET value = 3 WHERE key = 'schema_version'")


def looked_up(incident: fido.Incident, *names: str) -> fido.Incident:
    """The incident with a finding, a failure and an empty look-up per name."""
    subject = fido.Observable.parse(SHA)
    return attrs.evolve(
        incident,
        findings=(
            *incident.findings,
            *(
                fido.Reputation(source=n, verdict=fido.Verdict.MALICIOUS, subject=subject)
                for n in names
            ),
        ),
        failures=(
            *incident.failures,
            *(
                fido.EnrichmentFailure(
                    enricher=n,
                    subject=subject,
                    kind=fido.FailureKind.TIMEOUT,
                    message="slow",
                    at=NOW,
                )
                for n in names
            ),
        ),
        empty_lookups=(
            *incident.empty_lookups,
            *(fido.EmptyLookup(enricher=n, subject=subject, at=NOW) for n in names),
        ),
    )


def test_migration_from_version_3(path: Path, tmp_path: Path) -> None:
    """Version 3 kept the findings, failures and empty look-ups in the incident's `data`."""
    old = looked_up(inc("inc-v3", ev("l-1"), audit=audit("record")), "feed", "cmdb")
    bare = inc("inc-bare", ev("l-2", host=fido.Host(name="ws-007")))
    with SQLiteStore(path) as store:
        store.save_incident(old)
        store.save_incident(bare)
    with raw(path) as db:
        back_to_version_3(db)
        assert (
            "findings" in db.execute("SELECT data FROM incidents WHERE id = 'inc-v3'").fetchone()[0]
        )
    with SQLiteStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.get_incident("inc-v3") == old
        assert store.get_incident("inc-bare") == bare
        assert store.find_open_incident(hosts=["ws-007"], observables=[], start=NOW, end=NOW) == (
            "inc-bare"
        )
        grown = looked_up(old, "intel")
        store.save_incident(grown)
    with SQLiteStore(path) as other:
        assert other.get_incident("inc-v3") == grown
    with raw(path) as db:
        data = db.execute("SELECT data FROM incidents WHERE id = 'inc-v3'").fetchone()[0]
        assert "findings" not in json.loads(data)
        rows = db.execute(
            "SELECT part, position FROM incident_lookups WHERE incident_id = 'inc-v3'"
            " ORDER BY part, position"
        ).fetchall()
    assert rows == [
        ("empty_lookups", 0),
        ("empty_lookups", 2),
        ("failures", 0),
        ("failures", 2),
        ("findings", 0),
        ("findings", 2),
    ]
    fresh = tmp_path / "fresh.sqlite3"
    SQLiteStore(fresh).close()
    assert structure(path) == structure(fresh)


def test_migration_from_version_4(path: Path, tmp_path: Path) -> None:
    """Version 4 kept the audit trail and the look-ups in WITHOUT ROWID tables."""
    first = looked_up(inc("inc-v4", ev("w-1"), audit=audit("validate", "record")), "feed")
    grown = looked_up(
        attrs.evolve(first, events=(*first.events, ev("w-2")), audit=first.audit * 2), "cmdb"
    )
    other = looked_up(inc("inc-other", ev("w-3"), audit=audit("record")), "intel")
    with SQLiteStore(path) as store:
        store.save_incident(first)
        store.save_incident(grown, expected=1)  # a second row in each table
        store.save_incident(other)
    with raw(path) as db:
        back_to_version_4(db)
        schema = "SELECT sql FROM sqlite_master WHERE name = 'incident_audit'"
        assert "WITHOUT ROWID" in db.execute(schema).fetchone()[0]
    with SQLiteStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.get_incident("inc-v4") == grown
        assert store.get_incident("inc-other") == other
        later = attrs.evolve(grown, audit=(*grown.audit, *audit("record")))
        store.save_incident(later, expected=2)
    with SQLiteStore(path) as reopened:
        assert reopened.get_incident("inc-v4") == later
    with raw(path) as db:
        rows = db.execute(
            "SELECT position FROM incident_audit WHERE incident_id = 'inc-v4' ORDER BY position"
        ).fetchall()
        assert rows == [(0,), (2,), (4,)]
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("INSERT INTO incident_audit VALUES ('inc-v4', 4, '[]')")
    fresh = tmp_path / "fresh.sqlite3"
    SQLiteStore(fresh).close()
    assert structure(path) == structure(fresh)


def test_migration_from_version_5(path: Path, tmp_path: Path) -> None:
    """Version 5 read each earlier incident's row for the scorer's history."""
    earlier = inc("inc-earlier", ev("v-1"), assessment=fido.Assessment(total=40, assessed_at=NOW))
    now = inc("inc-now", ev("v-2"))
    with SQLiteStore(path) as store:
        store.save_incident(earlier)
        store.save_incident(now)
    with raw(path) as db:
        back_to_version_5(db)
    with SQLiteStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        found = store.history(observables=[], hosts=["ws-042"], since=NOW - HOUR, exclude="inc-now")
        assert [(p.id, p.total) for p in found.incidents] == [("inc-earlier", 40)]
        details = plans(
            store,
            lambda: store.history(observables=[], hosts=["ws-042"], since=NOW, exclude="inc-now"),
        )
        assert any("incidents_by_id_seen" in d for d in details), details
    fresh = tmp_path / "fresh.sqlite3"
    SQLiteStore(fresh).close()
    assert structure(path) == structure(fresh)


def test_a_save_writes_only_the_new_look_ups(store: SQLiteStore, path: Path) -> None:
    first = looked_up(inc("inc-1", ev("n-1")), *(f"feed-{i}" for i in range(20)))
    store.save_incident(first)
    grown = looked_up(attrs.evolve(first, events=(*first.events, ev("n-2"))), "late")
    db = store._db
    assert db is not None
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    try:
        store.save_incident(grown)
    finally:
        db.set_trace_callback(None)
    saved = next(s for s in statements if s.lstrip().startswith("INSERT INTO incidents"))
    assert "feed-3" not in saved, "the incident's row leaves its look-ups out"
    added = [s for s in statements if s.startswith("INSERT INTO incident_lookups")]
    assert len(added) == 3, "one row per part, of what this save added"
    assert all("late" in s and "feed-3" not in s for s in added)
    with SQLiteStore(path) as other:
        assert other.get_incident("inc-1") == grown


def test_link_rows_lag_but_queries_do_not(store: SQLiteStore) -> None:
    """Link rows are rewritten only when they fall LINK_LAG behind; queries stay exact."""
    first = inc("inc-1", ev("g-1"))
    store.save_incident(first)
    db = store._db
    assert db is not None
    current = first
    for minutes in (10, 20, 59):  # within the lag: no link row is rewritten
        current = attrs.evolve(
            current, events=(*current.events, ev(f"g-{minutes}", time=NOW + minutes * MINUTE))
        )
        statements: list[str] = []
        db.set_trace_callback(statements.append)
        try:
            store.save_incident(current)
        finally:
            db.set_trace_callback(None)
        assert not [s for s in statements if s.startswith("UPDATE incident_hosts")]
    latest = NOW + 59 * MINUTE
    # exact on the incident's own last_seen, although its link rows say NOW
    assert store.find_open_incident(hosts=["ws-042"], observables=[], start=latest, end=latest) == (
        "inc-1"
    )
    assert (
        store.find_open_incident(
            hosts=["ws-042"], observables=[], start=latest + US, end=latest + US
        )
        is None
    )
    history = store.history(observables=[], hosts=["ws-042"], since=latest)
    assert [(p.id, p.at) for p in history.incidents] == [("inc-1", latest)]
    assert store.history(observables=[], hosts=["ws-042"], since=latest + US).incidents == ()
    # a lag past LINK_LAG brings the rows up to date
    later = attrs.evolve(current, events=(*current.events, ev("g-late", time=NOW + 2 * HOUR)))
    statements = []
    db.set_trace_callback(statements.append)
    try:
        store.save_incident(later)
    finally:
        db.set_trace_callback(None)
    assert [s for s in statements if s.startswith("UPDATE incident_hosts")]
    rows = db.execute("SELECT DISTINCT last_seen FROM incident_hosts").fetchall()
    assert rows == [("2026-11-28T14:00:00.000000+00:00",)]
    # closing it reaches every row at once
    closed = attrs.evolve(later, status=fido.IncidentStatus.CLOSED)
    store.save_incident(closed)
    at = NOW + 2 * HOUR
    assert store.find_open_incident(hosts=["ws-042"], observables=[], start=at, end=at) is None


def test_a_save_writes_what_changed(store: SQLiteStore, path: Path) -> None:
    first = inc("inc-1", ev("w-1"), audit=audit("validate", "record"))
    store.save_incident(first)
    grown = attrs.evolve(
        first,
        events=(*first.events, ev("w-2", host=fido.Host(name="ws-9"), observables=(OTHER,))),
        audit=(*first.audit, *audit("validate", "correlate", "record")),
        status=fido.IncidentStatus.CLOSED,
    )
    db = store._db
    assert db is not None
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    try:
        store.save_incident(grown)
    finally:
        db.set_trace_callback(None)
    audit_rows = [s for s in statements if s.startswith("INSERT INTO incident_audit")]
    assert len(audit_rows) == 1, "one row of the new audit records"
    assert "correlate" in audit_rows[0]
    assert not [s for s in statements if s.startswith("DELETE")]
    assert sum("UPDATE events" in s for s in statements) == 1, "only the new event"
    with SQLiteStore(path) as other:
        assert other.get_incident("inc-1") == grown
        # the keys of the old and the new event, all in the incident's new state
        assert other.find_open_incident(hosts=["ws-9"], observables=[], start=NOW, end=NOW) is None
        history = other.history(observables=[], hosts=["ws-042", "10.1.2.3", "ws-9"], since=NOW)
        assert sorted(p.host for p in history.incidents) == ["10.1.2.3", "ws-042", "ws-9"]


def test_saves_from_two_stores_interleave(path: Path) -> None:
    """Another process's save (an approval from the command line) is seen, never undone."""
    with SQLiteStore(path) as run, SQLiteStore(path) as cli:
        base = inc("inc-1", ev("x-1"), audit=audit("record"))
        base.revision = run.save_incident(base, expected=0)
        seen = cli.get_incident("inc-1")
        assert seen is not None
        approved = attrs.evolve(seen, audit=audit("record", "approve"))
        assert cli.save_incident(approved, expected=seen.revision) == 2
        assert run.get_incident("inc-1") == approved  # not the stale copy it saved
        # the run's next save, built on its stale copy, is refused: it would undo the other
        stale = attrs.evolve(base, events=(*base.events, ev("x-2")), audit=audit("record", "x"))
        with pytest.raises(fido.ConflictError) as info:
            run.save_incident(stale, expected=stale.revision)
        assert (info.value.expected, info.value.found) == (1, 2)
        assert cli.get_incident("inc-1") == approved
        assert run.pending_events() == []  # x-2 was never stored, nor placed
        # the run reloads, does its work again on the latest state, and saves that
        latest = run.get_incident("inc-1")
        assert latest is not None
        latest.events = (*latest.events, ev("x-2"))
        assert run.save_incident(latest, expected=latest.revision) == 3
    with SQLiteStore(path) as reopened:
        final = reopened.get_incident("inc-1")
        assert final is not None
        assert final.audit == audit("record", "approve")
        assert [e.id for e in final.events] == ["x-1", "x-2"]
        assert final.revision == 3


def test_claims_are_shared_by_two_stores_on_one_file(path: Path) -> None:
    with SQLiteStore(path) as one, SQLiteStore(path) as two:
        later = NOW + HOUR
        assert one.add_event(ev("c-1"), owner="one", until=later) is True
        assert two.add_event(ev("c-1"), owner="two", until=later) is False
        assert two.claim_event("edr", "c-1", owner="two", until=later, now=NOW) == "one"
        assert two.claim_event("edr", "c-1", owner="two", until=later, now=later) == "two"
        assert one.claim_event("edr", "c-1", owner="one", until=later, now=NOW) == "two"


def test_one_runner_per_file_released_by_a_dead_process(path: Path) -> None:
    with SQLiteStore(path) as one, SQLiteStore(path) as two:
        assert one.acquire_runner("h/1/one", NOW) is None
        assert two.acquire_runner("h/2/two", NOW + HOUR) == ("h/1/one", NOW)
        one.release_runner("h/1/one")
        assert two.acquire_runner("h/2/two", NOW + HOUR) is None
        two.release_runner("h/2/two")
    # A process that takes the database and dies without letting go (SIGKILL) does not
    # keep it: the system releases the lock with the process.
    script = (
        "import os, sys; from datetime import datetime, UTC; import fido\n"
        "store = fido.SQLiteStore(sys.argv[1])\n"
        "assert store.acquire_runner('h/9/dead', datetime.now(UTC)) is None\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)  # noqa: S603
    with SQLiteStore(path) as after:
        assert after.acquire_runner("h/3/after", NOW) is None
        with SQLiteStore(path) as other:
            assert other.acquire_runner("h/4/other", NOW) == ("h/3/after", NOW)


def test_the_database_is_private(path: Path) -> None:
    with SQLiteStore(path) as store:
        store.add_event(ev("p-1"))
        for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            assert stat.S_IMODE(name.stat().st_mode) == 0o600, name


def test_an_event_left_out_of_a_resave_is_pending_again(store: SQLiteStore) -> None:
    store.save_incident(inc("inc-1", ev("y-1"), ev("y-2")))
    store.save_incident(inc("inc-1", ev("y-1")))
    assert [e.id for e in store.pending_events()] == ["y-2"]
    assert store.incident_for_event("edr", "y-2") is None
    incident = store.get_incident("inc-1")
    assert incident is not None
    assert [e.id for e in incident.events] == ["y-1"]


def test_a_failed_migration_leaves_the_file_as_it_was(path: Path) -> None:
    write_version_0(path, [inc("inc-1", ev("f-1"))], ev("f-2"))
    with raw(path) as db:
        db.execute("UPDATE incidents SET data = '{\"schema\": 1, \"id\": ' WHERE id = 'inc-1'")
    with pytest.raises(fido.InvalidRecord, match="inc-1"):
        SQLiteStore(path)
    with raw(path) as db:
        assert db.execute("SELECT value FROM meta").fetchone()[0] == 0
        columns = [row[1] for row in db.execute("PRAGMA table_info(incidents)")]
        assert "finished" not in columns


# -- corrupt rows -------------------------------------------------------------------------


def test_corrupt_json_is_an_invalid_record(store: SQLiteStore, path: Path) -> None:
    store.save_incident(inc("inc-1", ev("c-1")))
    store.add_event(ev("c-2"))
    store.add_dead_letter(fido.DeadLetter(reason="bad", at=NOW, payload={}))
    with raw(path) as db:
        # as another writer would, the edit bumps the revision (a store trusts it)
        db.execute(
            'UPDATE incidents SET data = \'{"id": "inc-1", \', revision = revision + 1'
            " WHERE id = 'inc-1'"
        )
        db.execute("UPDATE events SET data = 'nope' WHERE id = 'c-2'")
        db.execute("UPDATE dead_letters SET payload = '[1,'")
    with pytest.raises(fido.InvalidRecord, match="'inc-1' is not valid JSON"):
        store.get_incident("inc-1")
    with pytest.raises(fido.InvalidRecord, match="inc-1"):
        store.incidents()
    with pytest.raises(fido.InvalidRecord, match="c-2"):
        store.pending_events()
    with pytest.raises(fido.InvalidRecord, match="dead letter"):
        store.dead_letters()
    with raw(path) as db:
        db.execute(
            'UPDATE incidents SET data = \'{"schema": 1, "id": 3}\', revision = revision + 1'
            " WHERE id = 'inc-1'"
        )
    with pytest.raises(fido.InvalidRecord, match="inc-1") as caught:
        store.get_incident("inc-1")
    assert caught.value.record == "Incident"


# -- query plans --------------------------------------------------------------------------

BIG = ("incidents", "events", "incident_hosts", "incident_observables")
FULL_SCAN = re.compile(rf"SCAN ({'|'.join(BIG)})(?: AS \w+)?$")


def plans(store: SQLiteStore, call: Callable[[], object]) -> list[str]:
    """The query plan of every SELECT that `call` runs, one detail line per step."""
    db = store._db
    assert db is not None
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    try:
        call()
    finally:
        db.set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert selects
    return [row[3] for s in selects for row in db.execute(f"EXPLAIN QUERY PLAN {s}")]


def fill(store: SQLiteStore) -> None:
    action = fido.Action(name="contain", requires_approval=True)
    for i in range(20):
        store.save_incident(
            inc(
                f"inc-{i}",
                ev(f"q-{i}", time=NOW + i * HOUR, observables=(SHA, f"d{i}.example")),
                approvals=(fido.Approval(action=action, requested_at=NOW),) if i % 5 else (),
            ),
            finished=bool(i % 3),
        )
    store.add_events([ev("pending-1"), ev("pending-2")])
    store.add_dead_letter(fido.DeadLetter(reason="bad", at=NOW))


SHA_OBSERVABLE = fido.Observable.parse(SHA)
QUERIES: dict[str, tuple[Callable[[SQLiteStore], object], tuple[str, ...]]] = {
    "history": (
        lambda s: s.history(
            observables=[SHA_OBSERVABLE, fido.Observable.parse("d1.example")],
            hosts=["ws-042", "10.1.2.3"],
            since=NOW,
            exclude="inc-3",
        ),
        (
            "COVERING INDEX observables_by_key (key=?)",
            "hosts_by_key (key=? AND last_seen>?)",
            # each earlier incident's last_seen, total and level without its row
            "COVERING INDEX incidents_by_id_seen (id=? AND last_seen>?)",
        ),
    ),
    "find_open_incident": (
        lambda s: s.find_open_incident(
            hosts=["ws-042", "10.1.2.3"],
            observables=[SHA_OBSERVABLE],
            start=NOW,
            end=NOW + HOUR,
            first_after=NOW - HOUR,
        ),
        ("hosts_by_key (key=? AND last_seen>?)", "observables_by_key (key=? AND last_seen>?)"),
    ),
    "incidents by updated_at": (
        lambda s: s.incidents(since=NOW, until=NOW + HOUR, limit=10),
        ("incidents_by_updated",),
    ),
    "incidents by status": (
        lambda s: s.incidents(status=fido.IncidentStatus.OPEN, limit=10),
        ("incidents_by_status (status=?)",),
    ),
    "incidents by host": (lambda s: s.incidents(host="ws-042", min_total=10), ("hosts_by_key",)),
    "newest incidents": (lambda s: s.incidents(limit=10), ("incidents_by_updated",)),
    "pending approvals": (lambda s: s.pending_approvals(), ("incidents_pending_approvals",)),
    "overdue approvals": (
        lambda s: s.overdue_approvals(NOW + HOUR),
        ("USING INDEX incidents_approval_due",),
    ),
    "unfinished incidents": (lambda s: s.unfinished_incidents(), ("incidents_unfinished",)),
    "pending events": (lambda s: s.pending_events(), ("events_pending",)),
    "incident for event": (
        lambda s: s.incident_for_event("edr", "q-1"),
        ("(detector=? AND id=?)",),
    ),
    "get incident": (lambda s: s.get_incident("inc-1"), ("(id=?)",)),
}


@pytest.mark.parametrize("name", QUERIES)
def test_queries_use_indexes(name: str) -> None:
    call, expected = QUERIES[name]
    with SQLiteStore(":memory:") as store:
        fill(store)
        details = plans(store, lambda: call(store))
    assert not [d for d in details if FULL_SCAN.match(d)], details
    for fragment in expected:
        assert any(fragment in d for d in details), (fragment, details)
