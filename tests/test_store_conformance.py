"""One suite for the `Store` protocol, run against every store: same calls, same results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs
import pytest

import fido
from fido._sqlite import SQLiteStore
from fido.scoring import History, PriorIncident
from tests import factories

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

AnyStore: TypeAlias = fido.MemoryStore | SQLiteStore

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
US = timedelta(microseconds=1)
SHA = "44d88612fea8a8f36de82e1278abb02f" * 2
OTHER = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
WS42 = fido.Host(name="ws-042", ip="10.1.2.3")
WS7 = fido.Host(name="ws-007", ip="10.1.2.7")


@pytest.fixture(params=["memory", "sqlite-memory", "sqlite-file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AnyStore]:
    made: AnyStore
    if request.param == "memory":
        made = fido.MemoryStore()
    elif request.param == "sqlite-memory":
        made = SQLiteStore(":memory:")
    else:
        made = SQLiteStore(tmp_path / "fido.sqlite3")
    yield made
    made.close()


def ev(
    event_id: str,
    *,
    time: datetime = NOW,
    host: fido.Host | None = WS42,
    observables: tuple[str, ...] = (SHA,),
    detector: str = "edr",
    title: str = "Trojan detected",
) -> fido.Event:
    return fido.Event(
        detector=detector,
        id=event_id,
        time=time,
        title=title,
        severity=fido.Severity.HIGH,
        host=host,
        user=fido.User(name="bdoe"),
        observables=observables,
    )


def inc(
    incident_id: str,
    *events: fido.Event,
    updated_at: datetime = NOW,
    status: fido.IncidentStatus = fido.IncidentStatus.OPEN,
    total: int = 0,
    level: str = "",
    **fields: Any,
) -> fido.Incident:
    return fido.Incident(
        id=incident_id,
        created_at=fields.pop("created_at", NOW),
        updated_at=updated_at,
        status=status,
        events=events,
        assessment=fido.Assessment(total=total, assessed_at=NOW) if total else fido.Assessment(),
        decision=fido.Decision(level=level),
        **fields,
    )


def rich() -> fido.Incident:
    """An incident with something in every record field."""
    contain = fido.Action(name="contain", requires_approval=True, approval_timeout=HOUR)
    return fido.Incident(
        id="inc-rich",
        created_at=NOW,
        updated_at=NOW + HOUR,
        events=(ev("r-1"), ev("r-2", detector="proxy", observables=("evil.example",))),
        findings=(factories.reputation(), factories.host_context(), factories.user_context()),
        failures=(
            fido.EnrichmentFailure(
                enricher="vt",
                subject=fido.Observable.parse("evil.example"),
                kind=fido.FailureKind.TIMEOUT,
                message="no answer in 5 s",
                at=NOW,
            ),
        ),
        assessment=fido.Assessment(
            threat=80,
            machine=40,
            user=20,
            total=72,
            contributions=(
                fido.Contribution(
                    dimension=fido.Dimension.THREAT,
                    points=80,
                    reason="malicious",
                    source="vt",
                    rule="threat.verdict.malicious",
                ),
            ),
            combination="weighted",
            policy="default",
            policy_version="1",
            assessed_at=NOW,
        ),
        decision=fido.Decision(
            level="contain",
            actions=(fido.Action(name="ticket", params={"queue": "SOC"}), contain),
            recommendation="isolate",
            reason="score 72 >= 70",
        ),
        responses=(
            fido.ResponseRecord(
                action="ticket",
                responder="jira",
                status=fido.ResponseStatus.DONE,
                at=NOW,
                key="inc-rich/ticket/jira",
                detail="SOC-1",
            ),
        ),
        approvals=(fido.Approval(action=contain, requested_at=NOW, expires_at=NOW + HOUR),),
        audit=(
            fido.StageRecord(
                stage="score", started_at=NOW, duration=timedelta(milliseconds=3), outcome="ok"
            ),
        ),
    )


def test_is_a_store(store: AnyStore) -> None:
    assert isinstance(store, fido.Store)


# -- events -------------------------------------------------------------------------------


def test_add_event_once(store: AnyStore) -> None:
    assert store.add_event(ev("a-1")) is True
    assert store.add_event(ev("a-1", title="same key, other content")) is False
    assert store.add_event(ev("a-1", detector="ids")) is True
    assert store.incident_for_event("edr", "a-1") is None
    assert store.incident_for_event("edr", "unknown") is None
    assert [e.title for e in store.pending_events()] == ["Trojan detected", "Trojan detected"]


def test_add_events_batch_first_wins(store: AnyStore) -> None:
    assert store.add_event(ev("b-0")) is True
    batch = [ev("b-1"), ev("b-0"), ev("b-2"), ev("b-1", title="second"), ev("b-3")]
    assert list(store.add_events(batch)) == [True, False, True, False, True]
    pending = store.pending_events()
    assert [e.id for e in pending] == ["b-0", "b-1", "b-2", "b-3"]
    assert pending[1].title == "Trojan detected"
    assert list(store.add_events([])) == []


def test_pending_events_until_saved(store: AnyStore) -> None:
    events = [ev(f"p-{i}", time=NOW + i * US) for i in range(4)]
    store.add_events(events)
    assert list(store.pending_events()) == events
    store.save_incident(inc("inc-1", events[0], events[2]))
    assert list(store.pending_events()) == [events[1], events[3]]
    assert store.incident_for_event("edr", "p-0") == "inc-1"
    assert store.incident_for_event("edr", "p-1") is None
    store.save_incident(inc("inc-2", events[1], events[3]))
    assert list(store.pending_events()) == []


def test_save_marks_events_never_added(store: AnyStore) -> None:
    store.save_incident(inc("inc-1", ev("n-1")))
    assert store.incident_for_event("edr", "n-1") == "inc-1"
    assert store.add_event(ev("n-1")) is False
    assert list(store.pending_events()) == []


# -- incidents ----------------------------------------------------------------------------


def test_save_and_get_round_trip(store: AnyStore) -> None:
    incident = rich()
    store.save_incident(incident)
    assert store.get_incident("inc-rich") == incident
    assert store.get_incident("inc-unknown") is None
    incident.status = fido.IncidentStatus.CLOSED
    store.save_incident(incident)
    got = store.get_incident("inc-rich")
    assert got is not None
    assert got.status is fido.IncidentStatus.CLOSED
    assert got == incident


def test_records_are_snapshots(store: AnyStore) -> None:
    incident = inc("inc-1", ev("s-1"))
    store.save_incident(incident)
    incident.status = fido.IncidentStatus.CLOSED
    incident.events = (*incident.events, ev("s-2"))
    got = store.get_incident("inc-1")
    assert got is not None
    assert got.status is fido.IncidentStatus.OPEN
    assert [e.id for e in got.events] == ["s-1"]
    got.status = fido.IncidentStatus.SUPPRESSED
    again = store.get_incident("inc-1")
    assert again is not None
    assert again.status is fido.IncidentStatus.OPEN


def test_unfinished_incidents(store: AnyStore) -> None:
    store.save_incident(inc("inc-b", ev("u-1")), finished=False)
    store.save_incident(inc("inc-a", ev("u-2")), finished=False)
    store.save_incident(inc("inc-c", ev("u-3")))
    assert [i.id for i in store.unfinished_incidents()] == ["inc-a", "inc-b"]
    store.save_incident(inc("inc-b", ev("u-1"), status=fido.IncidentStatus.CLOSED))
    assert [i.id for i in store.unfinished_incidents()] == ["inc-a"]
    store.save_incident(inc("inc-c", ev("u-3")), finished=False)
    unfinished = store.unfinished_incidents()
    assert [i.id for i in unfinished] == ["inc-a", "inc-c"]
    assert unfinished[0] == inc("inc-a", ev("u-2"))


# -- correlation --------------------------------------------------------------------------


def find(store: AnyStore, **kwargs: Any) -> str | None:
    arguments: dict[str, Any] = {
        "hosts": (),
        "observables": (),
        "start": NOW - HOUR,
        "end": NOW + HOUR,
    }
    arguments.update(kwargs)
    return store.find_open_incident(**arguments)


def test_find_open_by_host_key_or_observable(store: AnyStore) -> None:
    store.save_incident(inc("inc-1", ev("f-1", observables=())))
    store.save_incident(inc("inc-2", ev("f-2", host=None, observables=(OTHER,))))
    assert find(store, hosts=["ws-042"]) == "inc-1"
    assert find(store, hosts=["10.1.2.3"]) == "inc-1"
    assert find(store, hosts=["ws-999", "10.9.9.9"]) is None
    assert find(store, observables=[fido.Observable.parse(OTHER)]) == "inc-2"
    assert find(store, observables=[fido.Observable.parse(SHA)]) is None
    assert find(store) is None


def test_find_open_window_edges(store: AnyStore) -> None:
    first, last = NOW, NOW + HOUR
    store.save_incident(inc("inc-1", ev("w-1", time=first), ev("w-2", time=last)))
    hosts = ["ws-042"]
    assert find(store, hosts=hosts, start=last, end=last + HOUR) == "inc-1"
    assert find(store, hosts=hosts, start=last + US, end=last + HOUR) is None
    assert find(store, hosts=hosts, start=first - HOUR, end=first) == "inc-1"
    assert find(store, hosts=hosts, start=first - HOUR, end=first - US) is None
    assert find(store, hosts=hosts, first_after=first) == "inc-1"
    assert find(store, hosts=hosts, first_after=first + US) is None
    assert find(store, hosts=hosts, first_after=None) == "inc-1"
    # Other time zones are the same instants.
    paris = first.astimezone(timezone(timedelta(hours=1)))
    assert find(store, hosts=hosts, start=paris - HOUR, end=paris) == "inc-1"


def test_find_open_only_joinable(store: AnyStore) -> None:
    suppressed = fido.IncidentStatus.SUPPRESSED
    store.save_incident(inc("inc-1", ev("o-1"), status=fido.IncidentStatus.CLOSED))
    store.save_incident(inc("inc-2", ev("o-2"), status=suppressed, level="allowlisted"))
    assert find(store, hosts=["ws-042"]) is None
    store.save_incident(inc("inc-1", ev("o-1")))
    assert find(store, hosts=["ws-042"]) == "inc-1"
    store.save_incident(inc("inc-1", ev("o-1"), status=fido.IncidentStatus.CLOSED))
    assert find(store, hosts=["ws-042"]) is None
    # suppressed by its score (the policy's lowest level), not by the allowlist: joinable
    store.save_incident(inc("inc-3", ev("o-3"), status=suppressed, level="suppress"))
    assert find(store, hosts=["ws-042"]) == "inc-3"
    store.save_incident(inc("inc-3", ev("o-3"), status=suppressed, level="allowlisted"))
    assert find(store, hosts=["ws-042"]) is None


def test_find_open_most_recent_wins(store: AnyStore) -> None:
    store.save_incident(inc("inc-1", ev("m-1"), updated_at=NOW + 2 * US))
    store.save_incident(inc("inc-2", ev("m-2"), updated_at=NOW + US))
    store.save_incident(inc("inc-0", ev("m-3"), updated_at=NOW + 2 * US))
    assert find(store, hosts=["ws-042"], observables=[fido.Observable.parse(SHA)]) == "inc-1"
    store.save_incident(inc("inc-2", ev("m-2"), updated_at=NOW + 3 * US))
    assert find(store, hosts=["10.1.2.3"]) == "inc-2"


def test_find_open_incident_without_events_spans_its_times(store: AnyStore) -> None:
    # No events: no keys either, so nothing can find it; it must not break the others.
    store.save_incident(inc("inc-empty"))
    store.save_incident(inc("inc-1", ev("e-1")))
    assert find(store, hosts=["ws-042"]) == "inc-1"


def test_a_growing_incident_is_found_by_what_it_gained(store: AnyStore) -> None:
    """Saves that add events (as the pipeline makes them) index the new hosts and times."""
    first = inc("inc-1", ev("g-1"))
    store.save_incident(first)
    grown = attrs.evolve(
        first,
        events=(*first.events, ev("g-2", time=NOW + 3 * HOUR, host=WS7, observables=(OTHER,))),
        revision=1,
    )
    store.save_incident(grown, expected=1)
    later = {"start": NOW + 3 * HOUR, "end": NOW + 4 * HOUR}
    assert find(store, hosts=["ws-007"], **later) == "inc-1"
    assert find(store, observables=[fido.Observable.parse(OTHER)], **later) == "inc-1"
    assert find(store, hosts=["ws-042"], **later) == "inc-1"  # the span covers both
    assert find(store, hosts=["ws-042"], first_after=NOW + US) is None
    history = store.history(observables=[], hosts=["ws-007"], since=NOW + 2 * HOUR)
    assert [(p.id, p.at) for p in history.incidents] == [("inc-1", NOW + 3 * HOUR)]
    # Saved whole with other events (as another process may): its span is theirs.
    rewritten = attrs.evolve(first, events=(ev("g-3", time=NOW + 9 * HOUR),), revision=2)
    store.save_incident(rewritten, expected=2)
    assert find(store, hosts=["ws-042"], start=NOW + 9 * HOUR, end=NOW + 9 * HOUR) == "inc-1"
    assert find(store, hosts=["ws-042"], **later) is None
    assert store.get_incident("inc-1") == rewritten


# -- listings -----------------------------------------------------------------------------


def listing(store: AnyStore) -> None:
    store.save_incident(inc("inc-1", ev("l-1"), updated_at=NOW, total=10))
    store.save_incident(
        inc("inc-2", ev("l-2", host=WS7), updated_at=NOW + HOUR, total=50, level="notify")
    )
    store.save_incident(
        inc("inc-3", ev("l-3"), updated_at=NOW + HOUR, status=fido.IncidentStatus.CLOSED, total=90)
    )
    store.save_incident(inc("inc-4", ev("l-4", host=None), updated_at=NOW + 2 * HOUR, total=70))


def ids(incidents: Any) -> list[str]:
    return [i.id for i in incidents]


def test_incidents_newest_first(store: AnyStore) -> None:
    listing(store)
    assert ids(store.incidents()) == ["inc-4", "inc-3", "inc-2", "inc-1"]
    assert ids(store.incidents(limit=2)) == ["inc-4", "inc-3"]
    assert ids(store.incidents(limit=0)) == []
    assert ids(store.incidents(limit=10)) == ["inc-4", "inc-3", "inc-2", "inc-1"]
    assert store.incidents(limit=1)[0] == inc(
        "inc-4", ev("l-4", host=None), updated_at=NOW + 2 * HOUR, total=70
    )


def test_incidents_filters(store: AnyStore) -> None:
    listing(store)
    closed, open_ = fido.IncidentStatus.CLOSED, fido.IncidentStatus.OPEN
    assert ids(store.incidents(status=closed)) == ["inc-3"]
    assert ids(store.incidents(status=open_)) == ["inc-4", "inc-2", "inc-1"]
    assert ids(store.incidents(status=fido.IncidentStatus.SUPPRESSED)) == []
    assert ids(store.incidents(host="ws-042")) == ["inc-3", "inc-1"]
    assert ids(store.incidents(host="10.1.2.7")) == ["inc-2"]
    assert ids(store.incidents(host="nowhere")) == []
    assert ids(store.incidents(since=NOW + HOUR)) == ["inc-4", "inc-3", "inc-2"]
    assert ids(store.incidents(until=NOW + HOUR)) == ["inc-3", "inc-2", "inc-1"]
    assert ids(store.incidents(since=NOW + HOUR, until=NOW + HOUR)) == ["inc-3", "inc-2"]
    assert ids(store.incidents(min_total=50)) == ["inc-4", "inc-3", "inc-2"]
    assert ids(store.incidents(min_total=91)) == []
    assert ids(store.incidents(status=open_, host="ws-042", min_total=5, limit=5)) == ["inc-1"]


def test_pending_approvals(store: AnyStore) -> None:
    action = fido.Action(name="contain", requires_approval=True)
    waiting = fido.Approval(action=action, requested_at=NOW)
    answered = fido.Approval(
        action=action, status=fido.ApprovalStatus.APPROVED, requested_at=NOW, by="ana"
    )
    store.save_incident(inc("inc-2", ev("a-2"), approvals=(waiting,)))
    store.save_incident(inc("inc-1", ev("a-1"), approvals=(answered,)))
    store.save_incident(inc("inc-0", ev("a-0"), approvals=(answered, waiting)))
    store.save_incident(inc("inc-3", ev("a-3")))
    assert ids(store.pending_approvals()) == ["inc-2", "inc-0"]
    store.save_incident(inc("inc-2", ev("a-2"), approvals=(answered,)))
    pending = store.pending_approvals()
    assert ids(pending) == ["inc-0"]
    assert pending[0].approvals == (answered, waiting)


def test_overdue_approvals(store: AnyStore) -> None:
    action = fido.Action(name="contain", requires_approval=True)

    def waiting(hours: int | None) -> fido.Approval:
        expires = None if hours is None else NOW + hours * HOUR
        return fido.Approval(action=action, requested_at=NOW, expires_at=expires)

    answered = fido.Approval(
        action=action,
        status=fido.ApprovalStatus.APPROVED,
        requested_at=NOW,
        by="ana",
        expires_at=NOW,
    )
    store.save_incident(inc("inc-1", ev("o-1"), approvals=(waiting(1),)))
    store.save_incident(inc("inc-2", ev("o-2"), approvals=(waiting(3), waiting(2))))
    store.save_incident(inc("inc-3", ev("o-3"), approvals=(waiting(None),)))
    store.save_incident(inc("inc-4", ev("o-4"), approvals=(answered,)))
    assert ids(store.overdue_approvals(NOW)) == []
    assert ids(store.overdue_approvals(NOW + HOUR)) == ["inc-1"]  # due at the very time
    assert sorted(ids(store.overdue_approvals(NOW + 2 * HOUR))) == ["inc-1", "inc-2"]
    store.save_incident(inc("inc-1", ev("o-1"), approvals=(answered,)))  # answered now
    assert ids(store.overdue_approvals(NOW + 5 * HOUR)) == ["inc-2"]


# -- history ------------------------------------------------------------------------------


def priors(history: History) -> list[PriorIncident]:
    return sorted(history.incidents, key=lambda p: (p.at, p.id, p.host))


def test_history_sightings_exclude_the_incident(store: AnyStore) -> None:
    sha, other = fido.Observable.parse(SHA), fido.Observable.parse(OTHER)
    store.save_incident(inc("inc-1", ev("h-1", observables=(SHA, OTHER))))
    store.save_incident(inc("inc-2", ev("h-2", observables=(SHA,))))
    store.save_incident(inc("inc-3", ev("h-3", observables=(SHA,))))
    fresh = fido.Observable.parse("evil.example")
    history = store.history(
        observables=[sha, other, fresh], hosts=[], since=NOW - HOUR, exclude="inc-3"
    )
    assert dict(history.sightings) == {sha: 2, other: 1}
    assert history.incidents == ()
    everything = store.history(observables=[sha, sha], hosts=[], since=NOW)
    assert dict(everything.sightings) == {sha: 3}
    assert store.history(observables=[], hosts=[], since=NOW) == History.EMPTY


def test_history_prior_incidents(store: AnyStore) -> None:
    old = NOW - 10 * HOUR
    store.save_incident(inc("inc-old", ev("q-0", time=old), total=80, level="contain"))
    store.save_incident(
        inc("inc-1", ev("q-1", time=NOW - HOUR), ev("q-2", time=NOW), total=40, level="notify")
    )
    store.save_incident(inc("inc-7", ev("q-3", host=WS7, time=NOW - 2 * HOUR), total=10))
    store.save_incident(inc("inc-self", ev("q-4", time=NOW)))
    history = store.history(
        observables=[], hosts=["ws-042", "ws-007"], since=NOW - 2 * HOUR, exclude="inc-self"
    )
    assert priors(history) == [
        PriorIncident(id="inc-7", host="ws-007", at=NOW - 2 * HOUR, total=10, level=""),
        PriorIncident(id="inc-1", host="ws-042", at=NOW, total=40, level="notify"),
    ]
    # A host is known by its name and by its IP: one prior per key asked for.
    both = store.history(observables=[], hosts=["ws-042", "10.1.2.3"], since=old, exclude=None)
    assert [(p.id, p.host) for p in priors(both)] == [
        ("inc-old", "10.1.2.3"),
        ("inc-old", "ws-042"),
        ("inc-1", "10.1.2.3"),
        ("inc-1", "ws-042"),
        ("inc-self", "10.1.2.3"),
        ("inc-self", "ws-042"),
    ]
    later = store.history(observables=[], hosts=["ws-042"], since=NOW + US)
    assert later.incidents == ()


# -- revisions, claims, the runner --------------------------------------------------------


def test_revisions_refuse_a_stale_save(store: AnyStore) -> None:
    first = inc("inc-1", ev("v-1"))
    assert store.save_incident(first, expected=0) == 1
    read = store.get_incident("inc-1")
    assert read is not None
    assert read.revision == 1
    assert read == first  # the revision is not part of equality...
    assert "revision" not in read.to_dict()  # ...nor of the data
    other = store.get_incident("inc-1")
    assert other is not None
    other.status = fido.IncidentStatus.CLOSED
    assert store.save_incident(other, expected=other.revision) == 2
    read.events = (*read.events, ev("v-2"))
    with pytest.raises(fido.ConflictError, match="since it was read") as info:
        store.save_incident(read, expected=read.revision)
    assert (info.value.incident_id, info.value.expected, info.value.found) == ("inc-1", 1, 2)
    after = store.get_incident("inc-1")
    assert after is not None
    assert (after.status, after.revision, [e.id for e in after.events]) == (
        fido.IncidentStatus.CLOSED,
        2,
        ["v-1"],
    )
    assert store.incident_for_event("edr", "v-2") is None  # nothing of it was written
    with pytest.raises(fido.ConflictError):
        store.save_incident(inc("inc-1", ev("v-1")), expected=0)  # "new" is a revision too
    assert store.save_incident(read) == 3  # without `expected`, whatever is stored
    assert [i.revision for i in store.incidents()] == [3]


def test_claims(store: AnyStore) -> None:
    later = NOW + HOUR
    assert store.add_event(ev("k-1"), owner="a", until=later) is True
    assert list(store.add_events([ev("k-2"), ev("k-3")], owner="a", until=later)) == [True] * 2
    store.add_event(ev("k-4"))  # unclaimed
    claim: dict[str, Any] = {"owner": "b", "until": later + HOUR, "now": NOW}
    assert store.claim_event("edr", "k-1", **claim) == "a"  # held: not b's
    assert store.claim_event("edr", "k-4", **claim) == "b"  # unclaimed: b's now
    assert store.claim_event("edr", "k-4", **claim) == "b"  # b renews its own
    assert store.claim_event("edr", "k-1", **claim, steal="a") == "b"  # a is gone
    assert store.claim_event("edr", "k-2", owner="b", until=later + HOUR, now=later) == "b"
    assert store.claim_event("edr", "k-3", owner="a", until=later, now=NOW) == "a"
    store.save_incident(inc("inc-1", ev("k-3")))
    assert store.claim_event("edr", "k-3", **claim) is None  # part of an incident now
    assert store.claim_event("edr", "unknown", **claim) is None
    assert [e.id for e in store.pending_events()] == ["k-1", "k-2", "k-4"]


def test_one_runner(store: AnyStore) -> None:
    assert store.acquire_runner("host/1/a", NOW) is None
    assert store.acquire_runner("host/1/a", NOW + HOUR) is None  # a renewal
    assert store.acquire_runner("host/2/b", NOW + HOUR) == ("host/1/a", NOW)
    store.release_runner("host/2/b")  # not b's to release
    assert store.acquire_runner("host/2/b", NOW + HOUR) == ("host/1/a", NOW)
    store.release_runner("host/1/a")
    assert store.acquire_runner("host/2/b", NOW + HOUR) is None
    store.release_runner("host/2/b")


# -- cursors, dead letters, close ---------------------------------------------------------


def test_cursors(store: AnyStore) -> None:
    assert store.get_cursor("edr") is None
    store.set_cursor("edr", "page-1")
    store.set_cursor("ids", "2026-11-28T12:00:00Z")
    assert store.get_cursor("edr") == "page-1"
    store.set_cursor("edr", "page-2")
    assert store.get_cursor("edr") == "page-2"
    store.set_cursor("edr", None)
    assert store.get_cursor("edr") is None
    assert store.get_cursor("ids") == "2026-11-28T12:00:00Z"


def test_dead_letters_newest_first(store: AnyStore) -> None:
    assert list(store.dead_letters()) == []
    letters = [
        fido.DeadLetter(
            reason=f"bad {i}",
            at=NOW + i * US,
            detector="edr",
            event_id=f"x-{i}",
            field="time",
            payload={"id": f"x-{i}", "n": [1, 2.5, None, True]},
        )
        for i in range(3)
    ]
    letters.append(fido.DeadLetter(reason="no detector", at=NOW, payload="not json {"))
    for letter in letters:
        store.add_dead_letter(letter)
    newest = list(store.dead_letters())
    assert newest == letters[::-1]
    assert [(d.at, d.payload) for d in newest] == [(d.at, d.payload) for d in letters[::-1]]
    assert list(store.dead_letters(limit=2)) == letters[:1:-1]
    assert list(store.dead_letters(limit=0)) == []


def test_close_is_idempotent(store: AnyStore) -> None:
    store.add_event(ev("c-1"))
    store.close()
    store.close()
