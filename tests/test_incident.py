from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from fido import (
    Action,
    Approval,
    ApprovalStatus,
    Assessment,
    Decision,
    EmptyLookup,
    EnrichmentFailure,
    Event,
    FailureKind,
    Host,
    HostContext,
    Incident,
    IncidentStatus,
    InvalidRecord,
    Observable,
    Reputation,
    ResponseRecord,
    ResponseStatus,
    Severity,
    StageRecord,
    User,
    UserContext,
    Verdict,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SHA256 = "44d88612fea8a8f36de82e1278abb02f" * 2


def incident() -> Incident:
    first = Event(
        detector="edr",
        id="1",
        time=NOW,
        title="Trojan",
        severity=Severity.HIGH,
        host=Host(name="ws-1"),
        user=User("bdoe"),
        observables=[SHA256, "evil.example"],
    )
    second = Event(
        detector="ids",
        id="9",
        time=NOW,
        title="C2 beacon",
        severity=Severity.CRITICAL,
        host=Host(name="ws-1"),
        observables=["evil.example", "203.0.113.7"],
    )
    sha = Observable.parse(SHA256)
    return Incident(
        id="inc-1",
        created_at=NOW,
        updated_at=NOW + timedelta(seconds=2),
        events=(first, second),
        findings=(
            Reputation(source="vt", subject=sha, verdict=Verdict.MALICIOUS, fetched_at=NOW),
            HostContext(source="cmdb", subject=Host(name="ws-1"), fetched_at=NOW),
            UserContext(source="ad", subject=User("bdoe"), fetched_at=NOW),
        ),
        failures=(
            EnrichmentFailure(
                enricher="otx",
                subject=sha,
                kind=FailureKind.TIMEOUT,
                message="no answer within 5s",
                at=NOW,
            ),
        ),
        empty_lookups=(
            EmptyLookup(enricher="otx", subject=Observable.parse("203.0.113.7"), at=NOW),
        ),
        assessment=Assessment(threat=80, total=80, assessed_at=NOW, policy="default"),
        decision=Decision(level="ticket", actions=(Action(name="notify"), Action(name="ticket"))),
        responses=(
            ResponseRecord(
                action="notify",
                responder="slack",
                status=ResponseStatus.DONE,
                at=NOW,
                key="inc-1/notify/slack",
            ),
            ResponseRecord(
                action="ticket",
                responder="jira",
                status=ResponseStatus.UNKNOWN,
                at=NOW,
                key="inc-1/ticket/jira",
                detail="no answer within 30 s",
            ),
        ),
        approvals=(
            Approval(
                action=Action(name="contain", requires_approval=True),
                requested_at=NOW,
                expires_at=NOW + timedelta(hours=4),
            ),
        ),
        audit=(
            StageRecord(
                stage="enrich",
                started_at=NOW,
                duration=timedelta(milliseconds=12),
                outcome="ok",
                detail="3 findings, 1 failure",
            ),
        ),
    )


def test_derived_views() -> None:
    i = incident()
    assert i.title == "Trojan"
    assert i.severity is Severity.CRITICAL
    assert i.detectors == ("edr", "ids")
    assert i.hosts == (Host(name="ws-1"),)
    assert i.users == (User("bdoe"),)
    assert [o.value for o in i.observables] == [SHA256, "evil.example", "203.0.113.7"]
    assert i.subjects == (*i.observables, Host(name="ws-1"), User("bdoe"))
    assert i.findings_for(Observable.parse(SHA256)) == (i.findings[0],)
    assert i.status is IncidentStatus.OPEN
    assert i.approvals[0].status is ApprovalStatus.PENDING


@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        # a network sensor's address and an EDR's fuller record of the same machine
        (
            [Host(ip="10.1.2.3"), Host(name="ws-042", ip="10.1.2.3")],
            [Host(name="ws-042", ip="10.1.2.3")],
        ),
        (
            [Host(name="ws-042"), Host(name="ws-042", ip="10.1.2.3", os="Windows 11")],
            [Host(name="ws-042", ip="10.1.2.3", os="Windows 11")],
        ),
        # a conflicting field: two machines, both kept
        (
            [Host(name="ws-042", ip="10.1.2.3"), Host(name="ws-043", ip="10.1.2.3")],
            [Host(name="ws-042", ip="10.1.2.3"), Host(name="ws-043", ip="10.1.2.3")],
        ),
        ([Host(ip="10.1.2.3"), Host(ip="10.1.2.4")], [Host(ip="10.1.2.3"), Host(ip="10.1.2.4")]),
        ([Host(ip="10.1.2.3"), Host(ip="10.1.2.3")], [Host(ip="10.1.2.3")]),
    ],
)
def test_hosts_described_more_fully_elsewhere_are_left_out(
    hosts: list[Host], expected: list[Host]
) -> None:
    events = tuple(
        Event(detector="d", id=str(n), time=NOW, title="t", host=h) for n, h in enumerate(hosts)
    )
    i = Incident(id="x", created_at=NOW, updated_at=NOW, events=events)
    assert list(i.hosts) == expected


def test_empty_incident() -> None:
    empty = Incident(id="x", created_at=NOW, updated_at=NOW)
    assert empty.title == ""
    assert empty.severity is Severity.INFO
    assert empty.subjects == ()
    assert not empty.assessment.assessed
    assert empty.decision.actions == ()


def test_round_trip_through_json() -> None:
    i = incident()
    data = json.loads(json.dumps(i.to_dict()))
    assert data["schema"] == 1
    assert data["findings"][0]["type"] == "reputation"
    assert data["findings"][1]["subject"] == {
        "type": "host",
        "name": "ws-1",
        "fqdn": None,
        "ip": None,
        "mac": None,
        "os": None,
    }
    assert Incident.from_dict(data) == i


def test_the_revision_is_the_store_s_not_the_data_s() -> None:
    i = incident()
    i.revision = 7
    assert "revision" not in i.to_dict()
    again = Incident.from_dict(i.to_dict())
    assert again.revision == 0
    assert again == i  # not part of equality either


@pytest.mark.parametrize(
    ("status", "level", "joinable"),
    [
        (IncidentStatus.OPEN, "ticket", True),
        (IncidentStatus.SUPPRESSED, "suppress", True),  # by its score: a later event may join
        (IncidentStatus.SUPPRESSED, "allowlisted", False),
        (IncidentStatus.CLOSED, "ticket", False),
    ],
)
def test_joinable(status: IncidentStatus, level: str, joinable: bool) -> None:
    i = incident()
    i.status, i.decision = status, Decision(level=level)
    assert i.joinable is joinable


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schema": 9}, "schema"),
        ({"schema": None}, "schema"),
        ({"status": "resolved"}, "status"),
        ({"findings": [{"type": "opinion"}]}, "findings[0].type"),
        (
            {"findings": [{"type": "reputation", "source": "x", "verdict": "evil"}]},
            "findings[0].verdict",
        ),
        (
            {"findings": [{"type": "reputation", "source": "x", "detections": 3, "total": 1}]},
            "findings[0]",
        ),
        ({"audit": [{"stage": "x"}]}, "audit[0].started_at"),
    ],
)
def test_from_dict_errors(change: dict[str, object], field: str) -> None:
    data = incident().to_dict()
    data.update(change)
    with pytest.raises(InvalidRecord) as info:
        Incident.from_dict(data)
    assert info.value.field == field
    with pytest.raises(InvalidRecord):
        Incident.from_dict("x")  # type: ignore[arg-type]
